import type { Catalog, Policy, Table } from '../../catalog/types.js'
import { quoteIdent } from '../../sql/quote.js'
import { tableSql } from './rule.js'

/**
 * Fix SQL that is safe to paste: complete (nothing left as "…"), and ordered create → swap → drop, so that
 * at no moment the table lacks the protection being replaced.
 */

/** At most 63 bytes, cut at a character boundary. */
function trim63(name: string): string {
  let out = name
  while (Buffer.byteLength(out) > 63) out = out.slice(0, -1)
  return out
}

/**
 * Build a unique index without blocking writes. A plain table: `CREATE UNIQUE INDEX CONCURRENTLY`. A
 * partitioned table refuses CONCURRENTLY, so: the index on the parent ONLY (invalid, instant), then each
 * partition's index CONCURRENTLY, attached one by one; the parent's index is valid once all are attached.
 */
export function onlineUniqueIndex(catalog: Catalog, table: Table, name: string, keys: string, tail = ''): string {
  if (!table.partitioned) return `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(name)} ON ${tableSql(table)} (${keys})${tail};`
  const out = [
    `-- ${tableSql(table)} is partitioned: PostgreSQL builds no index CONCURRENTLY on it. Build it on the parent only, then on each partition without blocking writes, and attach:`,
    `CREATE UNIQUE INDEX IF NOT EXISTS ${quoteIdent(name)} ON ONLY ${tableSql(table)} (${keys})${tail};`,
  ]
  for (const ref of table.partitions) {
    const part = catalog.table(ref.schema, ref.name)
    if (part === undefined || part.foreign) continue
    const partName = trim63(`${part.name}_${name}`)
    out.push(onlineUniqueIndex(catalog, part, partName, keys, tail), `ALTER INDEX ${tableSql({ schema: table.schema, name })} ATTACH PARTITION ${tableSql({ schema: part.schema, name: partName })};`)
  }
  return out.join('\n')
}

/** A name for a replacement object: `<name>_<suffix>`, at most 63 bytes. */
export function replacementName(name: string, suffix: string): string {
  let base = name
  while (Buffer.byteLength(`${base}_${suffix}`) > 63) base = base.slice(0, -1)
  return `${base}_${suffix}`
}

/**
 * Replace a policy without a moment in which the table has none (or the wrong one): in one transaction,
 * create the new policy under another name, drop the old one, give the new one the old name.
 * `create(name)` is the CREATE POLICY statement for the given name.
 */
export function swapPolicy(p: Policy, create: (name: string) => string): string {
  const temp = replacementName(p.name, 'new')
  return `BEGIN;\n${create(temp)}\nDROP POLICY ${quoteIdent(p.name)} ON ${tableSql(p.table)};\nALTER POLICY ${quoteIdent(temp)} ON ${tableSql(p.table)} RENAME TO ${quoteIdent(p.name)};\nCOMMIT;`
}
