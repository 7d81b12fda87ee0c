import type { Catalog, Table } from '../../catalog/types.js'

/**
 * Partition key values for the probe's rows: a row inserted into a leaf partition must fall inside its
 * bound (and its ancestors'). Read from the catalog's deparsed `RANGE (…)` keys and `FOR VALUES …` bounds.
 */

/** Split `a, 'b,c', (d)` at top-level commas. */
function splitTop(text: string): string[] {
  const out: string[] = []
  let depth = 0
  let quote = false
  let cur = ''
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quote) {
      cur += ch
      if (ch === "'") {
        if (text[i + 1] === "'") {
          cur += "'"
          i++
        } else quote = false
      }
      continue
    }
    if (ch === "'") quote = true
    else if (ch === '(') depth++
    else if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      out.push(cur.trim())
      cur = ''
    } else cur += ch
  }
  if (cur.trim() !== '') out.push(cur.trim())
  return out
}

/** The text inside the parentheses that follow `keyword` (e.g. `FROM (…)`). */
function group(text: string, keyword: string): string | null {
  const at = text.indexOf(`${keyword} (`)
  if (at === -1) return null
  let depth = 0
  let quote = false
  const start = at + keyword.length + 1
  for (let i = start; i < text.length; i++) {
    const ch = text[i]!
    if (quote) {
      if (ch === "'" && text[i + 1] === "'") i++
      else if (ch === "'") quote = false
      continue
    }
    if (ch === "'") quote = true
    else if (ch === '(') depth++
    else if (ch === ')') {
      depth--
      if (depth === 0) return text.slice(start + 1, i)
    }
  }
  return null
}

/** A literal as text (`'2024-01-01'` → `2024-01-01`, `42` → `42`, `'a'::text` → `a`); null for MINVALUE, NULL, expressions. */
function literal(item: string): string | null {
  const bare = item.replace(/::[\w ."[\]]+$/, '').trim()
  const q = /^'((?:[^']|'')*)'$/.exec(bare)
  if (q !== null) return q[1]!.replaceAll("''", "'")
  if (/^-?\d+(\.\d+)?$/.test(bare)) return bare
  if (/^(true|false)$/i.test(bare)) return bare.toLowerCase()
  return null
}

/** The key columns of `RANGE (a, b)` / `LIST (a)` / `HASH (a)`; null when any element is an expression. */
function keyColumns(partitionKey: string): string[] | null {
  const m = /^(RANGE|LIST|HASH) \((.*)\)$/s.exec(partitionKey.trim())
  if (m === null) return null
  const out: string[] = []
  for (const part of splitTop(m[2]!)) {
    const id = /^("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)(?:\s+COLLATE\s+\S+)?(?:\s+\S+_ops)?$/.exec(part)
    if (id === null) return null
    out.push(id[1]!.startsWith('"') ? id[1]!.slice(1, -1).replaceAll('""', '"') : id[1]!)
  }
  return out
}

/** Values a row must have to land in `bound` of a table partitioned by `partitionKey`; `hash` when only trying helps. */
function boundValues(partitionKey: string, bound: string): Map<string, string> | 'hash' | null {
  const cols = keyColumns(partitionKey)
  if (cols === null) return null
  if (bound.trim() === 'DEFAULT') return new Map()
  if (bound.includes('WITH (modulus')) return 'hash'
  const items = group(bound, 'FROM') ?? group(bound, 'IN')
  if (items === null) return null
  const values = splitTop(items)
  const out = new Map<string, string>()
  if (group(bound, 'FROM') !== null) {
    cols.forEach((c, i) => {
      const v = values[i] === undefined ? null : literal(values[i]!)
      if (v !== null) out.set(c, v)
    })
  } else {
    const v = values[0] === undefined ? null : literal(values[0])
    if (v !== null && cols[0] !== undefined) out.set(cols[0], v)
  }
  return out
}

/** Leaf partitions of a partitioned table (recursively), or the table itself when it is not partitioned. */
export function leaves(catalog: Catalog, t: Table): Table[] {
  if (!t.partitioned) return [t]
  return t.partitions.flatMap((p) => {
    const child = catalog.tableByOid(p.oid)
    return child === undefined ? [] : leaves(catalog, child)
  })
}

/** Every table whose rows show through `t`: itself, its partitions and inheritance children, recursively. */
export function descendants(catalog: Catalog, t: Table): Set<number> {
  const out = new Set<number>([t.oid])
  for (const ref of [...t.partitions, ...t.inheritedBy]) {
    const child = catalog.tableByOid(ref.oid)
    if (child !== undefined) for (const oid of descendants(catalog, child)) out.add(oid)
  }
  return out
}

/** Key values a row inserted directly into the leaf `t` needs for every level above it; `hash` somewhere means retries. */
export function leafKeyValues(catalog: Catalog, t: Table): { values: Map<string, string>; retry: boolean } {
  const values = new Map<string, string>()
  let retry = false
  let current: Table | undefined = t
  while (current?.partitionOf != null) {
    const parent = catalog.tableByOid(current.partitionOf.parent.oid)
    if (parent?.partitionKey == null) break
    const v = boundValues(parent.partitionKey, current.partitionOf.bound)
    if (v === 'hash' || v === null || current.partitionOf.bound.trim() === 'DEFAULT') retry = true
    if (v !== 'hash' && v !== null) for (const [k, x] of v) if (!values.has(k)) values.set(k, x)
    current = parent
  }
  return { values, retry }
}
