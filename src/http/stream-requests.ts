import type { ErrorObject, ValidateFunction } from 'ajv'
import type { FastifyBaseLogger } from 'fastify'
import type { ValidationMode } from '../config.js'
import { ERRORS, isServiceError } from '../errors.js'
import { STREAM_FRAME_SCHEMAS, type StreamAckFrame, type StreamSendFrame } from '../schemas/stream.js'
import { fromBase64 } from '../schemas/base64.js'
import { relayView } from '../schemas/views.js'
import type { DeliveryService } from '../service/delivery-service.js'
import { compileStrictValidator, describeInvalid } from './validation.js'

type Answer = Record<string, unknown>

const validators = {
  ack: compileStrictValidator<StreamAckFrame>(STREAM_FRAME_SCHEMAS.ack),
  send: compileStrictValidator<StreamSendFrame>(STREAM_FRAME_SCHEMAS.send),
} satisfies Record<keyof typeof STREAM_FRAME_SCHEMAS, ValidateFunction>

const EXPECTED = 'expected {"type":"ack","up_to":<seq>} or {"type":"send","group_id":…,"message":<base64>}'

/**
 * Answers one frame a client sent on its live stream: `ack` drops deliveries, `send` relays a
 * message as the stream's client, exactly as POST /groups/{group}/messages would (same checks,
 * same errors, same idempotency). Never throws: every problem is an error frame.
 */
export async function answerStreamFrame(
  text: string | undefined,
  service: DeliveryService,
  clientId: string,
  validation: ValidationMode,
  log: FastifyBaseLogger,
): Promise<Answer> {
  const answer = await answerFrame(text, service, clientId, validation, log)
  if (answer.type === 'error') service.metrics.rejected('stream', String(answer.error))
  return answer
}

async function answerFrame(
  text: string | undefined,
  service: DeliveryService,
  clientId: string,
  validation: ValidationMode,
  log: FastifyBaseLogger,
): Promise<Answer> {
  let frame: unknown
  try {
    frame = text === undefined ? undefined : JSON.parse(text)
  } catch {
    return errorFrame('bad_request', `frames must be JSON text; ${EXPECTED}`)
  }
  const type = typeof frame === 'object' && frame !== null ? (frame as { type?: unknown }).type : undefined
  if (type !== 'ack' && type !== 'send') return errorFrame('bad_request', EXPECTED)
  const id = type === 'send' ? correlationId(frame) : undefined
  const validate = validators[type]
  if (!validate(frame)) return { ...invalidFrame(validate.errors![0]!, frame), ...id }
  try {
    if (type === 'ack') {
      const result = await service.ack(clientId, (frame as StreamAckFrame).up_to)
      return { type: 'ack', acked_up_to: result.ackedUpTo, remaining: result.remaining }
    }
    const send = frame as StreamSendFrame
    const result = await service.relayMessage(
      { groupId: send.group_id, senderId: clientId, message: fromBase64(send.message), messageType: send.message_type, idempotencyKey: send.idempotency_key },
      { validation },
    )
    return { type: 'sent', ...id, ...relayView(result) }
  } catch (err) {
    if (isServiceError(err)) return { ...errorFrame(err.code, err.message), ...id, ...err.details }
    log.error({ err, clientId }, 'stream frame failed')
    return { ...errorFrame('internal', ERRORS.internal.message), ...id }
  }
}

/** The `id` a send frame carries, echoed even when the frame is refused (if it is one we could echo). */
function correlationId(frame: unknown): { id?: string | number } {
  const id = (frame as { id?: unknown }).id
  return (typeof id === 'string' && id.length <= 256) || Number.isSafeInteger(id) ? { id: id as string | number } : {}
}

function invalidFrame(error: ErrorObject, frame: unknown): Answer {
  const { code, message } = describeInvalid(error, 'frame', frame)
  return errorFrame(code, message)
}

function errorFrame(code: string, message: string): Answer {
  return { type: 'error', error: code, message }
}
