import { ServiceError } from '../errors.js'
import type { DeliveryService } from '../service/delivery-service.js'
import type { GroupRecord } from '../storage/store.js'
import type { Caller } from './token-verifier.js'

/**
 * Who may do what, once callers are authenticated (AUTH=jwt). A caller is the client its token
 * names. It acts only as itself (its pool, its queue, its sends) and sees a group's members, log
 * and GroupInfo (whose ratchet tree names every member) only while it is a member; anyone
 * authenticated may claim a KeyPackage, to add its owner. A non-member may join a group by an
 * external commit (RFC 9420 §12.4.3.2, MLS_EXTERNAL_COMMITS) as itself: that takes the group's
 * current GroupInfo, which only a member can read here, so a member must have given it to it
 * (an invitation); the service checks the commit's signature against it.
 *
 * Without authentication (AUTH=none) every check passes: `OPEN_ACCESS`.
 */
export interface AccessPolicy {
  /** The caller must be `clientId`. */
  self(caller: Caller | null, clientId: string, what: string): void
  /**
   * The caller must be a member of the group (404 for a group that does not exist). Resolves with
   * the group when it was read to check, so a door that answers with it need not read it again.
   */
  member(caller: Caller | null, groupId: string, what: string): Promise<GroupRecord | undefined>
  /** The caller must be `clientId` or a member of the group (leaving, or removing someone). */
  selfOrMember(caller: Caller | null, clientId: string, groupId: string, what: string): Promise<void>
}

export const OPEN_ACCESS: AccessPolicy = {
  self() {},
  async member() {
    return undefined
  },
  async selfOrMember() {},
}

export class MemberAccess implements AccessPolicy {
  readonly #service: Pick<DeliveryService, 'getGroup'>

  constructor(service: Pick<DeliveryService, 'getGroup'>) {
    this.#service = service
  }

  self(caller: Caller | null, clientId: string, what: string): void {
    if (authenticated(caller).clientId !== clientId) throw forbidden(caller!, `only ${JSON.stringify(clientId)} may ${what}`)
  }

  async member(caller: Caller | null, groupId: string, what: string): Promise<GroupRecord> {
    const { clientId } = authenticated(caller)
    const group = await this.#service.getGroup(groupId)
    if (!group.members.includes(clientId)) throw forbidden(caller!, `only members of group ${JSON.stringify(groupId)} may ${what}`)
    return group
  }

  async selfOrMember(caller: Caller | null, clientId: string, groupId: string, what: string): Promise<void> {
    if (authenticated(caller).clientId === clientId) return
    await this.member(caller, groupId, what)
  }
}

function authenticated(caller: Caller | null): Caller {
  // The door authenticates first; a request that reached here without a caller is a wiring bug,
  // refused rather than let through.
  if (caller === null) throw new ServiceError('unauthenticated', 'this route needs a bearer token: send Authorization: Bearer <JWT>')
  return caller
}

function forbidden(caller: Caller, message: string): ServiceError {
  return new ServiceError('forbidden', `${message}; the token is for ${JSON.stringify(caller.clientId)}`)
}
