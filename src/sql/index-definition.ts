/**
 * PURE: the parts of an index definition as `pg_get_indexdef` prints it —
 * `CREATE [UNIQUE] INDEX name ON [ONLY] table USING method (keys) [INCLUDE (…)] [NULLS [NOT] DISTINCT] [WITH (…)] [WHERE …]` —
 * so that a fix or a manual step can rebuild the index with the tenant column first and keep every key
 * expression (`lower(email)`), INCLUDE column, option and predicate as they are.
 */
export interface IndexDefinitionParts {
  /** The key list between the parentheses after `USING method`, e.g. `lower(email), created_at DESC`. */
  readonly keys: string
  /** Everything after the key list, with its leading space, e.g. ` WHERE (deleted_at IS NULL)`; '' when none. */
  readonly tail: string
}

/** Split `definition` (from `pg_get_indexdef`) at its key list; undefined when it does not have the expected shape. */
export function indexDefinitionParts(definition: string, method: string): IndexDefinitionParts | undefined {
  const marker = ` USING ${method} (`
  const start = definition.indexOf(marker)
  if (start === -1) return undefined
  let depth = 0
  let quote: string | null = null
  for (let i = start + marker.length - 1; i < definition.length; i++) {
    const c = definition[i]!
    if (quote !== null) {
      if (c === quote) quote = null
      continue
    }
    if (c === "'" || c === '"') quote = c
    else if (c === '(') depth++
    else if (c === ')' && --depth === 0) return { keys: definition.slice(start + marker.length, i), tail: definition.slice(i + 1) }
  }
  return undefined
}
