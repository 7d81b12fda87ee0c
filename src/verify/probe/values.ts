import { randomBytes, randomInt, randomUUID } from 'node:crypto'
import { stringMatching, type ColumnHint } from './constraint-values.js'

/**
 * Values for the probe's throw-away rows: one per column type, fresh on every call (so unique
 * constraints hold), always passed as text parameters that PostgreSQL casts to the column's type.
 */

/** What the probe needs to know about a column's type (read by {@link COLUMN_TYPES_QUERY}). */
export interface ColumnType {
  readonly relid: number
  readonly name: string
  /** The base type's name (for a domain, the type under it), e.g. `int4`, `varchar`, `uuid`. */
  readonly typeName: string
  /** `pg_type.typcategory`: S string, N numeric, D date/time, B boolean, E enum, A array, U user… */
  readonly category: string
  readonly maxLength: number | null
  readonly precision: number | null
  readonly scale: number | null
  readonly labels: readonly string[]
}

/**
 * Verify-side query (not part of the catalog snapshot): base type, category, length, precision and enum
 * labels of the columns of the given tables.
 */
export const COLUMN_TYPES_QUERY = `
SELECT a.attrelid::int8 AS relid, a.attname::text AS name,
       coalesce(bt.typname, t.typname)::text AS type_name,
       coalesce(bt.typcategory, t.typcategory)::text AS category,
       CASE WHEN a.atttypmod > 4 AND coalesce(bt.typcategory, t.typcategory) = 'S' THEN a.atttypmod - 4 END AS max_length,
       CASE WHEN coalesce(bt.typname, t.typname) = 'numeric' AND a.atttypmod > 4 THEN ((a.atttypmod - 4) >> 16) & 65535 END AS precision,
       CASE WHEN coalesce(bt.typname, t.typname) = 'numeric' AND a.atttypmod > 4 THEN (a.atttypmod - 4) & 65535 END AS scale,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = coalesce(bt.oid, t.oid) ORDER BY e.enumsortorder) AS labels
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`

export interface ColumnTypeRow {
  relid: string | number
  name: string
  type_name: string
  category: string
  max_length: number | null
  precision: number | null
  scale: number | null
  labels: string[]
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
  }
}

let counter = 0

/** A short unique text: `tz` + counter + random hex, cut to `max` characters. */
function uniqueText(max: number | null): string {
  counter++
  const text = `tz${counter.toString(36)}${randomBytes(6).toString('hex')}`
  return max === null ? text : text.slice(0, Math.max(1, max))
}

const INT_MAX: Record<string, number> = { int2: 30_000, int4: 2_000_000_000, int8: 9_000_000_000_000 }

/** A fresh value for a column of this type (within what its CHECK constraints ask), as text; null when the probe cannot make one. */
export function valueFor(type: ColumnType, hint: ColumnHint = {}): string | null {
  const t = type.typeName
  if (hint.allowed !== undefined && hint.allowed.length > 0) return hint.allowed[randomInt(0, hint.allowed.length)]!
  if ((hint.min !== undefined || hint.max !== undefined) && (t in INT_MAX || t === 'numeric' || t === 'float4' || t === 'float8')) {
    const lo = Math.ceil(hint.min ?? 1)
    const hi = Math.floor(Math.min(hint.max ?? lo + 1_000_000, t in INT_MAX ? INT_MAX[t]! : Number.MAX_SAFE_INTEGER))
    if (lo <= hi) return String(randomInt(lo, hi + 1))
  }
  if (hint.pattern !== undefined && type.category === 'S') {
    const v = stringMatching(hint.pattern)
    if (v !== null && (type.maxLength === null || v.length <= type.maxLength)) return v
  }
  if (t === 'uuid') return randomUUID()
  if (t in INT_MAX) return String(randomInt(1, INT_MAX[t]!))
  if (t === 'numeric') {
    const digits = type.precision === null ? 6 : Math.max(1, Math.min(6, type.precision - (type.scale ?? 0)))
    return String(randomInt(1, 10 ** digits))
  }
  if (t === 'float4' || t === 'float8') return String(randomInt(1, 1_000_000) / 7)
  if (t === 'money') return String(randomInt(1, 1_000_000))
  if (t === 'bool') return 'true'
  if (t === 'date') return isoDay(randomInt(0, 9000))
  if (t === 'timestamp' || t === 'timestamptz') return `${isoDay(randomInt(0, 9000))} ${String(randomInt(0, 24)).padStart(2, '0')}:00:00+00`
  if (t === 'time' || t === 'timetz') return '12:00:00'
  if (t === 'interval') return `${randomInt(1, 1000)} minutes`
  if (t === 'json' || t === 'jsonb') return `{"tenantize_probe": "${uniqueText(null)}"}`
  if (t === 'bytea') return `\\x${randomBytes(8).toString('hex')}`
  if (t === 'inet' || t === 'cidr') return `10.${randomInt(0, 255)}.${randomInt(0, 255)}.${randomInt(1, 255)}`
  if (t === 'macaddr') return [...randomBytes(6)].map((b) => b.toString(16).padStart(2, '0')).join(':')
  if (type.category === 'E') return type.labels[0] ?? null
  if (type.category === 'A') return '{}'
  if (type.category === 'S') return uniqueText(type.maxLength)
  if (t === 'bit' || t === 'varbit') return '1'
  return null
}

function isoDay(offset: number): string {
  return new Date(Date.UTC(2000, 0, 1 + offset)).toISOString().slice(0, 10)
}

/** A value of the tenant column's type for a tenant that does not exist (no root table to create it in). */
export function tenantValueFor(type: ColumnType | undefined): string {
  if (type === undefined || type.typeName === 'uuid') return randomUUID()
  if (type.typeName in INT_MAX || type.typeName === 'numeric') return String(randomInt(1_000_000_000, 2_000_000_000))
  return `tenantize-probe-${randomBytes(6).toString('hex')}`
}

/** One value in COPY's text format. */
export function copyText(value: string | null): string {
  if (value === null) return '\\N'
  return value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r')
}
