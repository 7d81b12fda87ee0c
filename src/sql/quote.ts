/**
 * The one place where names and literal values become SQL text. Every identifier in every statement
 * Tenantize builds goes through {@link quoteIdent} (or the helpers built on it), and every literal that
 * cannot be a bind parameter (DDL has none) goes through {@link quoteLiteral}.
 */

/** Always double-quotes, so reserved words, upper case, spaces, dots and unicode keep their meaning. */
export function quoteIdent(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError('quoteIdent: an identifier must be a non-empty string')
  }
  if (name.includes('\0')) throw new TypeError('quoteIdent: an identifier cannot contain a NUL character')
  return `"${name.replaceAll('"', '""')}"`
}

/**
 * A SQL string literal. Uses the `E''` form when the value has backslashes so the result means the same
 * whatever `standard_conforming_strings` is set to.
 *
 * Values in queries must be bind parameters; use this only where SQL has no parameters (DDL, `SET`).
 */
export function quoteLiteral(value: string | number | bigint | boolean | null): string {
  if (value === null) return 'NULL'
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`quoteLiteral: ${String(value)} is not a finite number`)
    return `'${String(value)}'`
  }
  if (typeof value === 'bigint') return `'${value.toString()}'`
  if (value.includes('\0')) throw new TypeError('quoteLiteral: a literal cannot contain a NUL character')
  const body = value.replaceAll("'", "''")
  return value.includes('\\') ? `E'${body.replaceAll('\\', '\\\\')}'` : `'${body}'`
}

/** A possibly schema-qualified object name: `{ schema, name }` → `"schema"."name"`. */
export interface QualifiedName {
  readonly schema?: string | undefined
  readonly name: string
}

export function qualifiedName(object: QualifiedName | string, name?: string): string {
  if (typeof object === 'string') {
    return name === undefined ? quoteIdent(object) : `${quoteIdent(object)}.${quoteIdent(name)}`
  }
  return object.schema === undefined ? quoteIdent(object.name) : `${quoteIdent(object.schema)}.${quoteIdent(object.name)}`
}

const ROLE_KEYWORDS = new Set(['PUBLIC', 'CURRENT_ROLE', 'CURRENT_USER', 'SESSION_USER'])

/**
 * A role name as it appears in GRANT, policies (`TO …`) and ALTER ROLE. The pseudo-roles PUBLIC,
 * CURRENT_ROLE, CURRENT_USER and SESSION_USER are accepted only in upper case as keywords; any other
 * spelling is a real role name and is quoted.
 */
export function roleName(role: string): string {
  return ROLE_KEYWORDS.has(role) ? role : quoteIdent(role)
}

/** A comma-separated list of quoted identifiers, e.g. a column list. */
export function identList(names: readonly string[]): string {
  if (names.length === 0) throw new TypeError('identList: a column list cannot be empty')
  return names.map(quoteIdent).join(', ')
}

/**
 * Parse `schema.table` or `table` as a user types it on the command line: a dot separates schema and
 * name, double quotes protect dots and keep case (`"My.Schema"."T"`), unquoted parts are lower-cased as
 * PostgreSQL does.
 */
export function parseQualifiedName(text: string, defaultSchema = 'public'): { schema: string; name: string } {
  const parts: string[] = []
  let i = 0
  while (i < text.length) {
    if (text[i] === '"') {
      let part = ''
      i++
      for (;;) {
        if (i >= text.length) throw new TypeError(`unterminated quoted identifier in ${JSON.stringify(text)}`)
        if (text[i] === '"') {
          if (text[i + 1] === '"') { part += '"'; i += 2; continue }
          i++
          break
        }
        part += text[i]
        i++
      }
      parts.push(part)
    } else {
      const end = text.indexOf('.', i)
      const raw = end === -1 ? text.slice(i) : text.slice(i, end)
      parts.push(raw.trim().toLowerCase())
      i = end === -1 ? text.length : end
    }
    if (i < text.length) {
      if (text[i] !== '.') throw new TypeError(`expected "." after a quoted identifier in ${JSON.stringify(text)}`)
      i++
      if (i >= text.length) throw new TypeError(`name ends with "." in ${JSON.stringify(text)}`)
    }
  }
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw new TypeError(`expected "table" or "schema.table", got ${JSON.stringify(text)}`)
  }
  return parts.length === 2 ? { schema: parts[0]!, name: parts[1]! } : { schema: defaultSchema, name: parts[0]! }
}
