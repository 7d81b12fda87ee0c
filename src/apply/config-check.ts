import type pg from 'pg'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { splitKey, type TenantizeConfig } from '../plan/config.js'

type Queryable = Pick<pg.Client, 'query'>

/** One column (or table, when `column` is null) the configuration names, and where in the file it does. */
interface Named {
  readonly where: string
  /** The config entry (a table key) that names it. */
  readonly owner: string
  readonly table: string
  readonly column: string | null
}

/** Every table and column the paths and scopes of `config` name; tables classed excluded are not looked at. */
function namedObjects(config: TenantizeConfig): Named[] {
  const out: Named[] = []
  for (const [key, t] of Object.entries(config.tables)) {
    if (t.class === 'excluded' || t.path === undefined) continue
    const at = `tables.${key}.path`
    for (const c of t.path.columns) out.push({ where: `${at}.columns`, owner: key, table: key, column: c })
    out.push({ where: `${at}.parent`, owner: key, table: t.path.parent, column: null })
    for (const c of t.path.parentColumns) out.push({ where: `${at}.parentColumns`, owner: key, table: t.path.parent, column: c })
  }
  for (const scope of config.scopes) {
    for (const [key, column] of Object.entries(scope.tables)) out.push({ where: `scopes.${scope.name}.tables.${key}`, owner: key, table: key, column })
  }
  return out
}

/**
 * The configuration checked against the catalog before step 1: every path column, path parent and scope
 * column it names must exist (a typo would otherwise fail half-way, inside a backfill). All problems are
 * reported at once as `TZ_CONFIG`.
 */
export async function assertConfigMatchesCatalog(client: Queryable, config: TenantizeConfig): Promise<void> {
  // The tenant table apply creates does not exist yet.
  const named = namedObjects(config).filter((n) => !(config.tenant.create && n.table === config.tenant.table))
  if (named.length === 0) return
  const parts = named.map((n) => splitKey(n.table))
  const { rows } = await client.query<{ i: number; table_exists: boolean; column_exists: boolean | null }>(
    `SELECT n.i::int AS i, c.oid IS NOT NULL AS table_exists,
            CASE WHEN n.col IS NULL THEN NULL ELSE EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = n.col AND a.attnum > 0 AND NOT a.attisdropped) END AS column_exists
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS n(schema, name, col, i)
       LEFT JOIN pg_catalog.pg_namespace s ON s.nspname = n.schema
       LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = s.oid AND c.relname = n.name AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      ORDER BY n.i`,
    [parts.map((p) => p.schema), parts.map((p) => p.name), named.map((n) => n.column)],
  )
  const problems: Problem[] = []
  const seen = new Set<string>()
  for (const r of rows) {
    const n = named[r.i - 1]!
    const problem = !r.table_exists
      ? { object: n.where, message: `names table ${n.table}, which does not exist`, fix: 'correct the table name (schema.table), or run tenantize init again to propose the paths' }
      : r.column_exists === false
        ? { object: n.where, message: `names column ${n.column} of ${n.table}, which does not exist`, fix: `correct the column name (the columns of the foreign key), or move one of tables.${n.owner}.alternatives into path` }
        : undefined
    if (problem !== undefined && !seen.has(`${problem.object} ${problem.message}`)) {
      seen.add(`${problem.object} ${problem.message}`)
      problems.push(problem)
    }
  }
  if (problems.length > 0) {
    throw new TenantizeError(ErrorCodes.CONFIG, `${problems.length} problem(s): the configuration names tables or columns the database does not have; nothing was changed`, {
      object: 'tenantize.config.json',
      problems,
    })
  }
}
