import libpgQuery from 'libpg-query'

/**
 * PostgreSQL's own parser and scanner (libpg_query, WebAssembly) for the catalog's SQL text: policy
 * expressions and function bodies. Pure computation; the module is loaded once with {@link loadSqlParser},
 * after which everything here is synchronous.
 */

let loaded: Promise<void> | undefined
let ready = false

export function loadSqlParser(): Promise<void> {
  loaded ??= libpgQuery.loadModule().then(() => {
    ready = true
  })
  return loaded
}

function assertReady(): void {
  if (!ready) throw new Error('the SQL parser is not loaded: await loadSqlParser() first')
}

/** A parse-tree node as libpg_query serializes it: `{ NodeType: { …fields } }`. */
export type AstNode = Record<string, unknown>

/**
 * Parse one expression as PostgreSQL deparsed it (`pg_get_expr`). Returns the expression node
 * (the `val` of `SELECT <expr>`), or null when it does not parse.
 */
export function parseExpression(text: string): AstNode | null {
  assertReady()
  try {
    const result = libpgQuery.parseSync(`SELECT ${text}`) as unknown as {
      stmts?: { stmt?: { SelectStmt?: { targetList?: { ResTarget?: { val?: AstNode } }[] } } }[]
    }
    const targets = result.stmts?.[0]?.stmt?.SelectStmt?.targetList
    if (targets?.length !== 1) return null
    return targets[0]?.ResTarget?.val ?? null
  } catch {
    return null
  }
}

export interface Token {
  /** `IDENT`, `SCONST`, `ASCII_40` ( `(` ), … ; keywords are `UNKNOWN` with their text. */
  readonly kind: string
  readonly text: string
}

/** The lexical tokens of SQL-like text (comments dropped); null when it does not scan (e.g. an open quote). */
export function scanTokens(text: string): Token[] | null {
  assertReady()
  try {
    return libpgQuery.scanSync(text).tokens.map((t) => ({ kind: t.tokenName, text: t.text }))
  } catch {
    return null
  }
}

/** The identifier a token names: quoted ones keep their case, others are lower-cased as PostgreSQL does. */
export function identifierOf(token: Token): string | null {
  if (token.kind !== 'IDENT' && token.kind !== 'UNKNOWN') return null
  const t = token.text
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) return t.slice(1, -1).replaceAll('""', '"')
  return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(t) ? t.toLowerCase() : null
}

/** The value of a string constant token (`'a''b'` → `a'b`), else null. */
export function stringOf(token: Token): string | null {
  if (token.kind !== 'SCONST') return null
  const t = token.text
  if (t.startsWith("'") && t.endsWith("'")) return t.slice(1, -1).replaceAll("''", "'")
  if (/^[Ee]'/.test(t)) return t.slice(2, -1).replaceAll("''", "'").replaceAll('\\\\', '\\')
  return null
}

/** The single entry of a wrapper node: `{ FuncCall: {…} }` → `['FuncCall', {…}]`. */
export function nodeType(node: unknown): [string, AstNode] | null {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return null
  const keys = Object.keys(node)
  if (keys.length !== 1) return null
  const key = keys[0]!
  if (!/^[A-Z]/.test(key)) return null
  const body = (node as AstNode)[key]
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? [key, body as AstNode] : null
}

/** `[{ String: { sval: 'a' } }, …]` → `['a', …]` (names of functions, columns, operators). */
export function names(list: unknown): string[] {
  if (!Array.isArray(list)) return []
  const out: string[] = []
  for (const item of list) {
    const t = nodeType(item)
    if (t?.[0] === 'String' && typeof t[1]['sval'] === 'string') out.push(t[1]['sval'])
    else if (t?.[0] === 'A_Star') out.push('*')
  }
  return out
}

/**
 * Visit every node below `node`, depth first. `visit` gets the node's type, its fields and the chain of
 * enclosing node types (outermost first); returning false skips the node's children.
 */
export function walk(node: unknown, visit: (type: string, body: AstNode, ancestors: readonly string[]) => boolean | void, ancestors: string[] = []): void {
  if (Array.isArray(node)) {
    for (const item of node) walk(item, visit, ancestors)
    return
  }
  if (node === null || typeof node !== 'object') return
  const typed = nodeType(node)
  if (typed !== null) {
    const [type, body] = typed
    if (visit(type, body, ancestors) === false) return
    ancestors.push(type)
    for (const value of Object.values(body)) walk(value, visit, ancestors)
    ancestors.pop()
    return
  }
  // A bare struct (a field whose type is fixed, e.g. SelectStmt.whereClause holds a node, RangeVar fields).
  for (const value of Object.values(node)) walk(value, visit, ancestors)
}
