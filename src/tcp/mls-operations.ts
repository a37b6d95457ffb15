import * as S from '../schemas/tcp.js'
import { groupInfoView, keyPackageCountView, toByteArray, welcomeView } from '../schemas/views.js'
import type { RelayResult } from '../service/delivery-service.js'
import { op, success, type Operation, type OperationContext } from './operation.js'

const bytes = (array: readonly number[]) => Uint8Array.from(array)
const optionalBytes = (array: readonly number[] | undefined) => (array === undefined ? undefined : bytes(array))

const commitResponse = (r: RelayResult): S.CommitResponse => ({
  type: 'CommitResponse',
  group_id: r.groupId,
  seq: r.seq,
  epoch: r.epoch,
  message_type: r.messageType,
})

/** The MLS operations of the REST API, over TCP (documented in protocol.ts). */
export function mlsOperations({ service, validation, access }: OperationContext): Array<[string, Operation]> {
  return [
    op(S.StoreKeyPackagesRequestSchema, 'store key packages', async (r, session) => {
      access.self(session.caller, r.client_id, 'add KeyPackages to its pool')
      const result = await service.storeKeyPackages(r.client_id, r.key_packages.map(bytes), { validation })
      return {
        ...success(`Stored ${result.stored} KeyPackage(s) for ${r.client_id}`),
        stored: result.stored,
        available: result.available,
      }
    }),
    op(S.CountKeyPackagesRequestSchema, 'count key packages', async (r, session) => {
      access.self(session.caller, r.client_id, 'count its KeyPackages')
      return { type: 'KeyPackageCountResponse', ...keyPackageCountView(r.client_id, await service.countKeyPackages(r.client_id)) }
    }),
    op(S.DeleteKeyPackageRequestSchema, 'delete key package', async (r, session) => {
      access.self(session.caller, r.client_id, 'delete its KeyPackages')
      await service.deleteKeyPackage(r.client_id, r.ref)
      return success(`KeyPackage deleted: ${r.ref}`)
    }),
    // RFC 9420 §14: the Welcome is routed only once its Commit is accepted, in one step.
    op(S.CommitBundleRequestSchema, 'commit', async (r, session) => {
      access.self(session.caller, r.sender_id, 'commit as its sender_id')
      return commitResponse(await service.commit({
        groupId: r.group_id,
        senderId: r.sender_id,
        commit: bytes(r.commit),
        welcome: optionalBytes(r.welcome),
        groupInfo: optionalBytes(r.group_info),
        ratchetTree: optionalBytes(r.ratchet_tree),
        welcomeRecipients: r.welcome_recipients,
      }))
    }),
    op(S.ReadWelcomesRequestSchema, 'read welcomes', async (r, session) => {
      access.self(session.caller, r.client_id, 'read its Welcomes')
      const welcomes = (await service.readWelcomes(r.client_id, r.after, r.limit)).map((w) => welcomeView(w, toByteArray))
      return { type: 'WelcomesResponse', client_id: r.client_id, welcomes }
    }),
    op(S.GetGroupInfoRequestSchema, 'get group info', async (r, session) => {
      await access.member(session.caller, r.group_id, 'read its GroupInfo')
      return { type: 'GroupInfoResponse', ...groupInfoView(r.group_id, await service.getGroupInfo(r.group_id), toByteArray) }
    }),
  ]
}
