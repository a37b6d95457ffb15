import { Ajv, type CodeOptions, type ErrorObject, type ValidateFunction } from 'ajv'
import type { FastifySchemaCompiler } from 'fastify'
import { isStandardBase64 } from '../schemas/base64.js'
import { BASE64_PATTERN } from '../schemas/common.js'

// BASE64_PATTERN stays in the schemas (OpenAPI and error messages name it); Ajv runs isStandardBase64 for it.

const base64Test = { test: isStandardBase64, toString: () => `/${BASE64_PATTERN}/` }
const regExp: NonNullable<CodeOptions['regExp']> = Object.assign(
  (pattern: string, flags: string) => (pattern === BASE64_PATTERN ? base64Test : new RegExp(pattern, flags)),
  { code: 'new RegExp' },
)

// Our patterns are ASCII; without the `u` flag V8 runs them markedly faster on large base64 bodies.
const ajvOptions = { allErrors: false, strict: false, useDefaults: true, removeAdditional: false, unicodeRegExp: false, code: { regExp } } as const

/**
 * Two validators: bodies are checked strictly (a number where a string belongs is an
 * error, never silently coerced; unknown fields are errors), while the query string and
 * path are text by nature and may be coerced to the declared type.
 */
const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false })
const textAjv = new Ajv({ ...ajvOptions, coerceTypes: true })
for (const ajv of [bodyAjv, textAjv]) {
  ajv.addFormat('date-time', true)
}

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart, contentType }) => {
  // Raw MLS bytes are checked by the service, not by a JSON schema.
  if (httpPart === 'body' && contentType === 'message/mls') return () => true
  if (httpPart === 'body') return bodyAjv.compile(schema as object)
  return decimalIntegers(schema as JsonObjectSchema, textAjv.compile(schema as object))
}

interface JsonObjectSchema {
  readonly properties?: Record<string, { readonly type?: unknown }>
}

/** An integer in a query string or path, written as Ajv would not coerce it by itself: digits, and a sign. */
const DECIMAL_INTEGER = /^-?\d+$/

/**
 * Ajv coerces text to a number as `Number()` does, so ` `, `0x10`, `1e2` and `1.0` passed as
 * 0, 16, 100 and 1. An integer field of the query string or path takes decimal digits only.
 */
function decimalIntegers(schema: JsonObjectSchema, validate: ValidateFunction): ValidateFunction {
  const integers = Object.entries(schema.properties ?? {}).filter(([, property]) => property.type === 'integer').map(([name]) => name)
  if (integers.length === 0) return validate
  const checked = ((data: unknown) => {
    if (data !== null && typeof data === 'object') {
      for (const name of integers) {
        const value = (data as Record<string, unknown>)[name]
        if (typeof value === 'string' && !DECIMAL_INTEGER.test(value)) {
          checked.errors = [{ keyword: 'format', instancePath: `/${name}`, schemaPath: `#/properties/${name}/type`, params: { format: 'integer' }, message: 'must be a whole number in decimal digits' }]
          return false
        }
      }
    }
    const valid = validate(data)
    checked.errors = validate.errors
    return valid
  }) as ValidateFunction
  return checked
}

/** A strict validator for a JSON document that is not an HTTP body (e.g. a WebSocket frame). */
export function compileStrictValidator<T>(schema: object): ValidateFunction<T> {
  return bodyAjv.compile<T>(schema)
}

const PART_NAMES: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' }

/**
 * The error code and sentence for the first validation error of `data` (the validated value:
 * it tells an empty base64 field, which is a missing value, from one that is not base64).
 */
export function describeInvalid(error: ErrorObject, dataVar: string, data: unknown): { code: 'invalid_base64' | 'bad_request'; message: string } {
  if (!isBase64Error(error)) return { code: 'bad_request', message: describeValidationError(error, dataVar) }
  if (valueAt(data, error.instancePath) === '') return { code: 'bad_request', message: `${fieldOf(error, dataVar)} must not be empty` }
  return { code: 'invalid_base64', message: describeValidationError(error, dataVar) }
}

/** One sentence naming the field and what is wrong with it. */
export function describeValidationError(error: ErrorObject, dataVar: string): string {
  const part = PART_NAMES[dataVar] ?? dataVar
  const field = fieldOf(error, dataVar)
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'required':
      return `${part === 'body' && !error.instancePath ? 'body' : field} is missing the required field '${String(params.missingProperty)}'`
    case 'additionalProperties':
      return `${field} has an unknown field '${String(params.additionalProperty)}'`
    case 'pattern':
      if (params.pattern === BASE64_PATTERN) return `${field} must be non-empty standard base64 (RFC 4648, with padding)`
      return `${field} ${error.message ?? 'is invalid'}`
    case 'enum':
      return `${field} must be one of ${(params.allowedValues as unknown[]).join(', ')}`
    case 'type':
      return `${field} must be of type ${String(params.type)}`
    default:
      return `${field} ${error.message ?? 'is invalid'}`
  }
}

function isBase64Error(error: ErrorObject): boolean {
  return error.keyword === 'pattern' && (error.params as { pattern?: string }).pattern === BASE64_PATTERN
}

function fieldOf(error: ErrorObject, dataVar: string): string {
  const part = PART_NAMES[dataVar] ?? dataVar
  const path = pointerTokens(error.instancePath).join('.')
  return path ? `${part} field '${path}'` : part
}

/** The value a JSON pointer (an Ajv instancePath) names in `data`; own properties only. */
function valueAt(data: unknown, pointer: string): unknown {
  let value = data
  for (const token of pointerTokens(pointer)) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, token)) return undefined
    value = (value as Record<string, unknown>)[token]
  }
  return value
}

function pointerTokens(pointer: string): string[] {
  return pointer.split('/').slice(1).map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'))
}
