import type { TLocalizedValidationError } from 'typebox/error'

/**
 * Words for "Invalid message format: <detail>". The original deserialised requests with
 * serde, so its clients and their users saw details like "missing field `client_id`" or
 * "unknown variant `Foo`, expected one of …"; these helpers say the same things about a
 * JSON value and the first TypeBox error found in it.
 */

/** serde's name for the kind of a JSON value: integer `5`, string "x", a sequence, … */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a sequence'
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``
    case 'string':
      return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`
    case 'boolean':
      return `boolean \`${value}\``
    default:
      return 'a map'
  }
}

export function unknownVariant(name: string, expected: readonly string[]): string {
  // The name is user input: keep a hostile one from bloating the answer.
  const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name
  return `unknown variant \`${shown}\`, expected one of ${expected.map((e) => `\`${e}\``).join(', ')}`
}

/** Turns the first validation error into one line that names the field. */
export function describeSchemaError(request: unknown, errors: readonly TLocalizedValidationError[]): string {
  // A missing field is the most useful thing to hear about first, as with serde.
  const error = errors.find((e) => e.keyword === 'required') ?? errors[0]
  if (!error) return 'invalid request'
  if (error.keyword === 'required') {
    const params = error.params as { requiredProperties?: readonly string[] }
    return `missing field \`${params.requiredProperties?.[0] ?? '?'}\``
  }
  const path = error.instancePath.split('/').slice(1).map(unescapePointer)
  const field = fieldName(path)
  const actual = valueAt(request, path)
  switch (error.keyword) {
    case 'type': {
      const params = error.params as { type?: string }
      return `invalid type: ${describeValue(actual)}, expected ${article(params.type ?? 'value')} at ${field}`
    }
    case 'enum':
    case 'const': {
      const params = error.params as { allowedValues?: readonly unknown[]; allowedValue?: unknown }
      const allowed = (params.allowedValues ?? [params.allowedValue]).map(String)
      return typeof actual === 'string' ? `${unknownVariant(actual, allowed)} at ${field}` : `invalid value: ${describeValue(actual)} at ${field}`
    }
    case 'minItems':
      return `invalid length 0, expected at least one byte at ${field}`
    default:
      return `invalid value: ${describeValue(actual)} at ${field} (${error.message})`
  }
}

function article(type: string): string {
  const names: Record<string, string> = { integer: 'an integer', array: 'a sequence', object: 'a map', string: 'a string', boolean: 'a boolean', number: 'a number' }
  return names[type] ?? type
}

/** `key_package[3]` for ["key_package", "3"]. */
function fieldName(path: readonly string[]): string {
  const name = path.map((p, i) => (/^\d+$/.test(p) && i > 0 ? `[${p}]` : i > 0 ? `.${p}` : p)).join('')
  return `field \`${name}\``
}

function unescapePointer(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~')
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let value = root
  for (const key of path) {
    // Own properties only: a request is untrusted and may name `__proto__`.
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined
    value = (value as Record<string, unknown>)[key]
  }
  return value
}
