import { randomBytes, randomInt, randomUUID } from 'node:crypto'
import { stringMatching, type ColumnHint } from './constraint-values.js'

/**
 * Values for the probe's throw-away rows: one per column type, fresh on every call (so unique and
 * exclusion constraints hold), always passed as text parameters that PostgreSQL casts to the column's
 * type. Each type has a few variants (lower/upper case text, an empty or one-element array, a JSON object
 * or array, a past or future date …): when a CHECK constraint refuses one, the seeder tries the next.
 */

/** What the probe needs to know about a column's type (read by {@link COLUMN_TYPES_QUERY}). */
export interface ColumnType {
  readonly relid: number
  readonly name: string
  /** The base type's name (under every domain), e.g. `int4`, `varchar`, `uuid`, `_text` for `text[]`. */
  readonly typeName: string
  /** `pg_type.typcategory`: S string, N numeric, D date/time, B boolean, E enum, A array, R range, G geometric, U user… */
  readonly category: string
  /** varchar(n) / char(n) / bit(n) length, from the column or the nearest domain that sets it. */
  readonly maxLength: number | null
  readonly precision: number | null
  readonly scale: number | null
  /** Enum labels (of the element type, for an array of an enum). */
  readonly labels: readonly string[]
  /** For arrays: the element's base type name and category. */
  readonly element: { readonly typeName: string; readonly category: string; readonly maxLength: number | null } | null
  /** For ranges: the subtype's name (`int4`, `timestamptz`, `date`, `numeric`). */
  readonly rangeSubtype: string | null
  /** A domain in the chain is NOT NULL: the column needs a value even when the column itself is nullable. */
  readonly domainNotNull: boolean
  /** CHECK constraints of the domains in the chain: name and definition (over `VALUE`). */
  readonly domainChecks: readonly { readonly name: string; readonly definition: string }[]
}

/**
 * Verify-side query (not part of the catalog snapshot): for each column of the given tables, the base type
 * under any chain of domains, its category, length (from the column or the nearest domain), numeric
 * precision, enum labels, array element, range subtype, and the domains' NOT NULL and CHECK constraints.
 */
export const COLUMN_TYPES_QUERY = `
WITH RECURSIVE chain AS (
  SELECT a.attrelid, a.attnum, a.attname, a.atttypid AS typid, a.atttypmod AS typmod, 0 AS depth
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT c.attrelid, c.attnum, c.attname, d.typbasetype, CASE WHEN c.typmod = -1 THEN d.typtypmod ELSE c.typmod END, c.depth + 1
    FROM chain c JOIN pg_catalog.pg_type d ON d.oid = c.typid AND d.typtype = 'd'
), base AS (
  SELECT DISTINCT ON (attrelid, attnum) * FROM chain ORDER BY attrelid, attnum, depth DESC
)
SELECT b.attrelid::int8 AS relid, b.attname::text AS name, t.typname::text AS type_name, t.typcategory::text AS category,
       CASE WHEN t.typname IN ('bit', 'varbit') AND b.typmod > 0 THEN b.typmod
            WHEN b.typmod > 4 AND t.typcategory = 'S' THEN b.typmod - 4 END AS max_length,
       CASE WHEN t.typname = 'numeric' AND b.typmod > 4 THEN ((b.typmod - 4) >> 16) & 65535 END AS precision,
       CASE WHEN t.typname = 'numeric' AND b.typmod > 4 THEN (b.typmod - 4) & 65535 END AS scale,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
              WHERE e.enumtypid = CASE WHEN t.typcategory = 'A' THEN coalesce(ebt.oid, et.oid) ELSE t.oid END ORDER BY e.enumsortorder) AS labels,
       coalesce(ebt.typname, et.typname)::text AS element_type,
       coalesce(ebt.typcategory, et.typcategory)::text AS element_category,
       CASE WHEN et.typtype = 'd' AND et.typtypmod > 4 AND coalesce(ebt.typcategory, et.typcategory) = 'S' THEN et.typtypmod - 4 END AS element_max_length,
       (SELECT st.typname::text FROM pg_catalog.pg_range r JOIN pg_catalog.pg_type st ON st.oid = r.rngsubtype WHERE r.rngtypid = t.oid) AS range_subtype,
       EXISTS (SELECT 1 FROM chain c JOIN pg_catalog.pg_type d ON d.oid = c.typid
                WHERE c.attrelid = b.attrelid AND c.attnum = b.attnum AND d.typtype = 'd' AND d.typnotnull) AS domain_not_null,
       ARRAY(SELECT con.conname::text FROM chain c JOIN pg_catalog.pg_constraint con ON con.contypid = c.typid AND con.contype = 'c'
              WHERE c.attrelid = b.attrelid AND c.attnum = b.attnum ORDER BY c.depth, con.conname) AS domain_check_names,
       ARRAY(SELECT pg_catalog.pg_get_constraintdef(con.oid) FROM chain c JOIN pg_catalog.pg_constraint con ON con.contypid = c.typid AND con.contype = 'c'
              WHERE c.attrelid = b.attrelid AND c.attnum = b.attnum ORDER BY c.depth, con.conname) AS domain_check_defs
  FROM base b
  JOIN pg_catalog.pg_type t ON t.oid = b.typid
  LEFT JOIN pg_catalog.pg_type et ON t.typcategory = 'A' AND et.oid = t.typelem
  LEFT JOIN pg_catalog.pg_type ebt ON et.typtype = 'd' AND ebt.oid = et.typbasetype`

export interface ColumnTypeRow {
  relid: string | number
  name: string
  type_name: string
  category: string
  max_length: number | null
  precision: number | null
  scale: number | null
  labels: string[]
  element_type: string | null
  element_category: string | null
  element_max_length: number | null
  range_subtype: string | null
  domain_not_null: boolean
  domain_check_names: string[]
  domain_check_defs: string[]
}

export function columnType(row: ColumnTypeRow): ColumnType {
  return {
    relid: Number(row.relid),
    name: row.name,
    typeName: row.type_name,
    category: row.category,
    maxLength: row.max_length,
    precision: row.precision,
    scale: row.scale,
    labels: row.labels,
    element: row.element_type === null ? null : { typeName: row.element_type, category: row.element_category ?? 'U', maxLength: row.element_max_length },
    rangeSubtype: row.range_subtype,
    domainNotNull: row.domain_not_null,
    domainChecks: row.domain_check_names.map((name, i) => ({ name, definition: row.domain_check_defs[i] ?? '' })),
  }
}

let counter = 0
/** Ranges from one counter never overlap (exclusion constraints); the base keeps runs apart. */
let rangeCounter = randomInt(0, 50_000)

const LOWER = 'abcdefghijklmnopqrstuvwxyz0123456789'
const DIGITS = '0123456789'

function randomFrom(alphabet: string, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += alphabet[randomInt(0, alphabet.length)]
  return out
}

/**
 * A short unique text: `tz` + counter + random hex (or, when at most `max` characters are allowed and
 * that is too short, random letters and digits of exactly `max`), in the case the variant asks for.
 */
function uniqueText(max: number | null, variant = 0, min = 1): string {
  counter++
  const style = variant % 4
  let text: string
  if (style === 2) text = `${counter}${randomInt(100_000, 1_000_000)}`
  else text = `tz${counter.toString(36)}${randomBytes(6).toString('hex')}`
  if (max !== null && text.length > max) text = style === 2 ? randomFrom(DIGITS, max) : randomFrom(LOWER, max)
  while (text.length < min) text += style === 2 ? randomFrom(DIGITS, 1) : randomFrom(LOWER, 1)
  if (style === 1) return text.toUpperCase()
  if (style === 3) return `${text[0]!.toUpperCase()}${text.slice(1)}`
  return text
}

/**
 * Random integers stay below 2^31 for every integer type: a bigint key often flows into an integer
 * column elsewhere (a tenant column, a foreign key), and the probe's values must fit both.
 */
const INT_MAX: Record<string, number> = { int2: 30_000, int4: 2_000_000_000, int8: 2_000_000_000, oid: 2_000_000_000 }

const isNumber = (t: string): boolean => t in INT_MAX || t === 'numeric' || t === 'float4' || t === 'float8' || t === 'money'

/** The largest whole number a numeric(p, s) column holds (0 for numeric(2, 2)); Infinity without a precision. */
const numericCap = (type: ColumnType): number => (type.typeName === 'numeric' && type.precision !== null ? 10 ** (type.precision - (type.scale ?? 0)) - 1 : Infinity)

function numeric(type: ColumnType, variant: number): string {
  const fractionOnly = numericCap(type) <= 0
  if (variant % 3 === 1) return fractionOnly ? '0.1' : '1'
  if (variant % 3 === 2) return '0'
  const t = type.typeName
  if (t in INT_MAX) return String(randomInt(1, INT_MAX[t]!))
  if (t === 'numeric') {
    const scale = type.scale ?? 0
    const whole = type.precision === null ? 6 : Math.min(6, type.precision - scale)
    // numeric(2, 2) has no integer digits: a fraction
    if (whole <= 0) return `0.${randomInt(1, 10 ** Math.min(scale, 6)).toString().padStart(Math.min(scale, 6), '0')}`
    return String(randomInt(1, 10 ** whole))
  }
  if (t === 'money') return String(randomInt(1, 1_000_000))
  return String(randomInt(1, 1_000_000) / 7)
}

function isoDay(offset: number): string {
  return new Date(Date.UTC(2000, 0, 1 + offset)).toISOString().slice(0, 10)
}

/** A day: variant 0 in 2000–2024, 1 in the future (2100+), 2 the first of 2000. */
function day(variant: number): string {
  if (variant % 3 === 1) return isoDay(36_525 + randomInt(0, 9000))
  if (variant % 3 === 2) return '2000-01-01'
  return isoDay(randomInt(0, 9000))
}

function dateTime(t: string, variant: number): string {
  const d = day(variant)
  if (t === 'date') return d
  const time = `${String(randomInt(0, 24)).padStart(2, '0')}:${String(randomInt(0, 60)).padStart(2, '0')}:00`
  return t === 'timestamptz' ? `${d} ${time}+00` : `${d} ${time}`
}

/** A range no other range from this process overlaps. */
function range(subtype: string | null): string | null {
  const k = ++rangeCounter
  if (subtype === 'int4' || subtype === 'int8' || subtype === 'numeric') return `[${k * 10},${k * 10 + 5})`
  if (subtype === 'date') return `[${isoDay(k * 2)},${isoDay(k * 2 + 1)})`
  if (subtype === 'timestamp' || subtype === 'timestamptz') {
    const start = new Date(Date.UTC(2000, 0, 1) + k * 3_600_000)
    const end = new Date(start.getTime() + 1_800_000)
    const fmt = (x: Date): string => `${x.toISOString().slice(0, 19).replace('T', ' ')}${subtype === 'timestamptz' ? '+00' : ''}`
    return `[${fmt(start)},${fmt(end)})`
  }
  return null
}

/** One element of an array literal, quoted. */
const arrayItem = (v: string): string => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`

/** Values for types that are neither strings, numbers, dates nor containers. */
const OTHER: Record<string, (variant: number) => string> = {
  uuid: () => randomUUID(),
  bool: (v) => (v % 2 === 0 ? 'true' : 'false'),
  time: () => `${String(randomInt(0, 24)).padStart(2, '0')}:${String(randomInt(0, 60)).padStart(2, '0')}:00`,
  timetz: () => `${String(randomInt(0, 24)).padStart(2, '0')}:00:00+00`,
  interval: (v) => `${v % 2 === 1 ? '-' : ''}${randomInt(1, 1000)} minutes`,
  json: (v) => [`{"tenantize_probe": "${uniqueText(null)}"}`, `["${uniqueText(null)}"]`, `"${uniqueText(null)}"`, String(randomInt(1, 1_000_000)), 'true', '{}'][v % 6]!,
  bytea: () => `\\x${randomBytes(8).toString('hex')}`,
  inet: () => `10.${randomInt(0, 255)}.${randomInt(0, 255)}.${randomInt(1, 255)}`,
  cidr: () => `10.${randomInt(0, 255)}.${randomInt(0, 255)}.${randomInt(1, 255)}/32`,
  macaddr: () => [...randomBytes(6)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
  macaddr8: () => [...randomBytes(8)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
  tsvector: () => uniqueText(null),
  tsquery: () => uniqueText(null),
  xml: () => `<tz>${uniqueText(null)}</tz>`,
  point: () => `(${randomInt(1, 1000)},${randomInt(1, 1000)})`,
  box: () => { const x = randomInt(1, 1000); const y = randomInt(1, 1000); return `(${x + 1},${y + 1}),(${x},${y})` },
  circle: () => `<(${randomInt(1, 1000)},${randomInt(1, 1000)}),1>`,
  lseg: () => { const x = randomInt(1, 1000); return `[(${x},0),(${x + 1},1)]` },
  line: () => `{1,-1,${randomInt(1, 1000)}}`,
  path: () => { const x = randomInt(1, 1000); return `[(${x},0),(${x + 1},1)]` },
  polygon: () => { const x = randomInt(1, 1000); return `((${x},0),(${x + 1},0),(${x + 1},1))` },
  pg_lsn: () => `0/${randomInt(1, 2_000_000_000).toString(16).toUpperCase()}`,
  jsonpath: () => `$.${uniqueText(null)}`,
  ltree: () => `tz.${uniqueText(null)}`,
  hstore: () => `"tz"=>"${uniqueText(null)}"`,
  char: () => randomFrom('abcdefghijklmnopqrstuvwxyz', 1),
  txid_snapshot: () => '10:20:',
}

/**
 * A fresh value for a column of this type (within what its CHECK constraints ask), as text; null when the
 * probe cannot make one. `variant` picks another shape of value when an earlier one was refused.
 */
export function valueFor(type: ColumnType, hint: ColumnHint = {}, variant = 0): string | null {
  const t = type.typeName
  const refused = new Set(hint.notEqual ?? [])
  const allowed = hint.allowed?.filter((v) => !refused.has(v))
  if (allowed !== undefined && allowed.length > 0) return variant === 0 ? allowed[randomInt(0, allowed.length)]! : allowed[variant % allowed.length]!
  if ((hint.min !== undefined || hint.max !== undefined) && isNumber(t)) {
    const lo = Math.ceil(hint.min ?? 1)
    const hi = Math.floor(Math.min(hint.max ?? lo + 1_000_000, t in INT_MAX ? INT_MAX[t]! : Number.MAX_SAFE_INTEGER, numericCap(type)))
    if (lo <= hi) return String(variant % 2 === 1 ? lo : randomInt(lo, hi + 1))
  }
  if (hint.pattern !== undefined && (type.category === 'S' || type.category === 'U')) {
    for (let i = 0; i < 5; i++) {
      const v = stringMatching(hint.pattern)
      if (v !== null && (type.maxLength === null || v.length <= type.maxLength) && v.length >= (hint.minLength ?? 0) && v.length <= (hint.maxLength ?? Infinity)) return v
    }
  }
  if (isNumber(t)) return numeric(type, variant)
  if (t === 'date' || t === 'timestamp' || t === 'timestamptz') return dateTime(t, variant)
  if (t === 'jsonb') return OTHER['json']!(variant)
  const other = OTHER[t]
  if (other !== undefined) return other(variant)
  if (type.category === 'E') {
    const labels = type.labels.filter((l) => !refused.has(l))
    return labels.length === 0 ? null : labels[variant % labels.length]!
  }
  if (type.category === 'R') return range(type.rangeSubtype)
  if (type.category === 'A') {
    if (variant % 2 === 1) return '{}'
    const el = type.element
    if (el === null) return '{}'
    const item = valueFor({ ...type, typeName: el.typeName, category: el.category, maxLength: el.maxLength, element: null, precision: null, scale: null, rangeSubtype: null, domainChecks: [] }, {}, 0)
    return item === null ? '{}' : `{${arrayItem(item)}}`
  }
  if (t === 'bit') return randomFrom('01', type.maxLength ?? 1)
  if (t === 'varbit') return randomFrom('01', Math.min(type.maxLength ?? 8, 8))
  if (type.category === 'S') {
    const max = Math.min(type.maxLength ?? Infinity, hint.maxLength ?? Infinity)
    const min = Math.max(hint.minLength ?? 1, t === 'bpchar' && type.maxLength !== null ? type.maxLength : 1)
    const style = hint.lower === true ? 0 : hint.upper === true ? 1 : variant
    return uniqueText(Number.isFinite(max) ? max : null, style, min)
  }
  return null
}

/** A value of the tenant column's type for a tenant that does not exist (no root table to create it in). */
export function tenantValueFor(type: ColumnType | undefined): string {
  if (type === undefined || type.typeName === 'uuid') return randomUUID()
  if (type.typeName === 'int2') return String(randomInt(10_000, 30_000))
  if (type.typeName in INT_MAX || type.typeName === 'numeric') return String(randomInt(1_000_000_000, 2_000_000_000))
  return `tenantize-probe-${randomBytes(6).toString('hex')}`
}

/** One value in COPY's text format. */
export function copyText(value: string | null): string {
  if (value === null) return '\\N'
  return value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r')
}
