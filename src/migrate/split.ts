import libpgQuery from 'libpg-query'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { qualifiedName } from '../sql/quote.js'

/** One statement of a migration file, with where it starts (1-based line) for error messages. */
export interface Statement {
  readonly text: string
  readonly line: number
  /** Tables and views the statement names, quoted (`"s"."t"`, or `"t"` to resolve through search_path). */
  readonly relations: readonly string[]
}

/** Every RangeVar in a parse tree, as quoted names. */
function relationsIn(node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const n of node) relationsIn(n, out)
    return
  }
  if (node === null || typeof node !== 'object') return
  // A RangeVar is serialised bare where the field's type is RangeVar, and as { RangeVar: … } inside node lists.
  const rv = node as { relname?: unknown; schemaname?: unknown; relpersistence?: unknown }
  if (typeof rv.relname === 'string' && 'relpersistence' in rv) {
    out.add(qualifiedName({ schema: typeof rv.schemaname === 'string' ? rv.schemaname : undefined, name: rv.relname }))
  }
  for (const value of Object.values(node as Record<string, unknown>)) relationsIn(value, out)
}

interface RawStmt {
  stmt_location?: number
  stmt_len?: number
  stmt?: Record<string, unknown>
}

let loaded: Promise<void> | undefined

/** The PostgreSQL parser (libpg_query, WebAssembly) is loaded once, on first use. */
function ready(): Promise<void> {
  loaded ??= libpgQuery.loadModule()
  return loaded
}

function lineOf(text: string, charIndex: number): number {
  let line = 1
  for (let i = 0; i < charIndex && i < text.length; i++) if (text.charCodeAt(i) === 10) line++
  return line
}

/** `line:col` plus the offending line with a caret under the position. */
export function caret(text: string, charIndex: number): { line: number; column: number; excerpt: string } {
  const line = lineOf(text, charIndex)
  const start = text.lastIndexOf('\n', charIndex - 1) + 1
  const endIdx = text.indexOf('\n', charIndex)
  const src = text.slice(start, endIdx === -1 ? text.length : endIdx)
  const column = charIndex - start + 1
  return { line, column, excerpt: `${src}\n${' '.repeat(Math.max(0, column - 1))}^` }
}

/**
 * The parse tree of each statement in `sql` (PostgreSQL's own parser), or undefined when it does not parse.
 * For inspecting statements the runner is about to run (which indexes a statement builds), not for splitting.
 */
export async function parseTrees(sql: string): Promise<Record<string, unknown>[] | undefined> {
  await ready()
  try {
    return ((libpgQuery.parseSync(sql) as { stmts?: RawStmt[] }).stmts ?? []).map((s) => s.stmt ?? {})
  } catch {
    return undefined
  }
}

/**
 * Split SQL text into statements with PostgreSQL's own parser, so dollar quotes, comments, string
 * literals and `BEGIN ATOMIC` bodies are handled exactly as the server would.
 * A syntax error throws `TZ_MIGRATION_SYNTAX` naming the file, line and column.
 */
export async function splitStatements(sql: string, file: string): Promise<Statement[]> {
  await ready()
  let stmts: RawStmt[]
  try {
    stmts = (libpgQuery.parseSync(sql) as { stmts?: RawStmt[] }).stmts ?? []
  } catch (error) {
    const details = (error as { sqlDetails?: { cursorPosition?: number; message?: string } }).sqlDetails
    const message = details?.message ?? (error instanceof Error ? error.message : String(error))
    // The parser reports byte offsets into the UTF-8 text.
    const pos = details?.cursorPosition
    const charIndex = pos === undefined ? undefined : Buffer.from(sql, 'utf8').subarray(0, pos).toString('utf8').length
    const where = charIndex === undefined ? undefined : caret(sql, charIndex)
    throw new TenantizeError(ErrorCodes.MIGRATION_SYNTAX, `does not parse: ${message}${where === undefined ? '' : `\n${where.excerpt}`}`, {
      object: where === undefined ? file : `${file}:${where.line}:${where.column}`,
      fix: 'correct the SQL (psql meta-commands such as \\i or \\set are not supported)',
      cause: error,
    })
  }
  const bytes = Buffer.from(sql, 'utf8')
  const out: Statement[] = []
  for (const s of stmts) {
    const start = s.stmt_location ?? 0
    const end = s.stmt_len === undefined || s.stmt_len === 0 ? bytes.length : start + s.stmt_len
    const before = bytes.subarray(0, start).toString('utf8')
    const raw = bytes.subarray(start, end).toString('utf8')
    const text = raw.trim()
    if (text === '') continue
    const lead = raw.length - raw.trimStart().length
    const relations = new Set<string>()
    relationsIn(s.stmt, relations)
    out.push({ text, line: lineOf(before + raw.slice(0, lead), before.length + lead), relations: [...relations] })
  }
  return out
}
