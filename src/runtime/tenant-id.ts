import { InvalidTenantIdError } from './errors.js'

/** The type of the tenant key column: `uuid` (default), `bigint` (int8) or `text`. */
export type TenantIdType = 'uuid' | 'bigint' | 'text'

export const TENANT_ID_TYPES: readonly TenantIdType[] = Object.freeze(['uuid', 'bigint', 'text'])

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DIGITS = /^[0-9]+$/
const INT8_MAX = 9_223_372_036_854_775_807n
/** Control characters (C0, DEL, C1) and unpaired surrogates, which cannot round-trip through UTF-8. */
const FORBIDDEN_TEXT = /[\p{Cc}\p{Cs}]/u
const TEXT_ID_MAX_LENGTH = 256

/**
 * Check a tenant id against its id type and return its canonical form: lower-case hex for `uuid`,
 * decimal without leading zeros for `bigint`, the text itself for `text`.
 *
 * - `uuid`: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` hex digits, any case.
 * - `bigint`: decimal digits only (no sign), at most 9223372036854775807.
 * - `text`: 1–256 characters, no control characters (NUL, newline, tab, …) or unpaired surrogates.
 *
 * @throws {InvalidTenantIdError} when it is not valid; the error never contains the value.
 */
export function parseTenantId(value: unknown, idType: TenantIdType = 'uuid'): string {
  if (!TENANT_ID_TYPES.includes(idType)) {
    throw new TypeError(`unknown tenant id type ${JSON.stringify(idType)}: expected one of ${TENANT_ID_TYPES.join(', ')}`)
  }
  if (typeof value !== 'string') {
    throw new InvalidTenantIdError(idType, `a tenant id must be a string, got ${value === null ? 'null' : typeof value}`)
  }
  switch (idType) {
    case 'uuid':
      if (!UUID.test(value)) throw new InvalidTenantIdError(idType, 'expected 32 hex digits as 8-4-4-4-12')
      return value.toLowerCase()
    case 'bigint': {
      if (!DIGITS.test(value)) throw new InvalidTenantIdError(idType, 'expected decimal digits only')
      const n = BigInt(value)
      if (n > INT8_MAX) throw new InvalidTenantIdError(idType, 'out of range for bigint')
      return n.toString()
    }
    case 'text': {
      const length = [...value].length
      if (length === 0) throw new InvalidTenantIdError(idType, 'a tenant id cannot be empty')
      if (length > TEXT_ID_MAX_LENGTH) throw new InvalidTenantIdError(idType, `longer than ${TEXT_ID_MAX_LENGTH} characters`)
      if (FORBIDDEN_TEXT.test(value)) throw new InvalidTenantIdError(idType, 'contains a control character or an unpaired surrogate')
      return value
    }
  }
}
