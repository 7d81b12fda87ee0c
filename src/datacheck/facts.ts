import type pg from 'pg'
import { splitKey } from '../plan/config.js'
import type { Step } from '../plan/steps.js'
import { qualifiedName, quoteIdent, roleName } from '../sql/quote.js'
import type { Finding } from './findings.js'

type Queryable = Pick<pg.Client, 'query'>

/**
 * Database-wide facts the steps depend on, read from the catalog: the privileges the run needs (ALTER TABLE
 * needs ownership, CREATE INDEX and new tables need CREATE on the schema, schema tenantize needs CREATE on
 * the database, a new role needs CREATEROLE) and invalid indexes on the tables the steps work on.
 */
export async function factFindings(client: Queryable, steps: readonly Step[]): Promise<Finding[]> {
  if (steps.length === 0) return []
  const findings: Finding[] = []
  const keys = [...new Set(steps.map((s) => s.table).filter((t): t is string => t !== null))].sort()
  const parts = keys.map(splitKey)
  const me = (await client.query<{ me: string; superuser: boolean; createrole: boolean; db: string; db_create: boolean; tz: boolean; tz_create: boolean | null }>(
    `SELECT current_user AS me, r.rolsuper AS superuser, r.rolcreaterole AS createrole, current_database() AS db,
            pg_catalog.has_database_privilege(current_database(), 'CREATE') AS db_create,
            n.oid IS NOT NULL AS tz, CASE WHEN n.oid IS NOT NULL THEN pg_catalog.has_schema_privilege(n.oid, 'CREATE') END AS tz_create
       FROM pg_catalog.pg_roles r LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = 'tenantize'
      WHERE r.rolname = current_user`,
  )).rows[0]!
  const user = roleName(me.me)
  if (!me.tz && !me.db_create) {
    findings.push({
      id: 'privilege:create-on-database',
      kind: 'privilege',
      table: null,
      title: `CREATE on database ${me.db}: the run creates schema tenantize (helpers, ledger, plan)`,
      count: 1,
      samples: [`${me.me} may not create schemas in ${me.db}`],
      fixes: [`GRANT CREATE ON DATABASE ${quoteIdent(me.db)} TO ${user}`, 'or create it beforehand: CREATE SCHEMA tenantize AUTHORIZATION <the role that runs apply>'],
    })
  } else if (me.tz && me.tz_create === false) {
    findings.push({
      id: 'privilege:create-on-schema:tenantize',
      kind: 'privilege',
      table: null,
      title: 'CREATE on schema tenantize: the run creates its helpers, ledger and views there',
      count: 1,
      samples: [`${me.me} may not create objects in schema tenantize`],
      fixes: [`GRANT CREATE ON SCHEMA tenantize TO ${user}`],
    })
  }
  if (steps.some((s) => s.id === 'app-role') && !me.superuser && !me.createrole) {
    findings.push({ id: 'privilege:createrole', kind: 'privilege', table: null, title: 'CREATEROLE: the run creates the app role', count: 1, samples: [`${me.me} has neither CREATEROLE nor SUPERUSER`], fixes: [`ALTER ROLE ${user} CREATEROLE`, 'or create the app role beforehand (NOLOGIN NOSUPERUSER NOBYPASSRLS) and plan again'] })
  }
  if (keys.length === 0) return findings

  const relations = (await client.query<{ schema: string; name: string; schema_exists: boolean; schema_create: boolean | null; exists: boolean; kind: string | null; owner: string | null; owned: boolean | null }>(
    `SELECT k.schema, k.name, n.oid IS NOT NULL AS schema_exists,
            CASE WHEN n.oid IS NOT NULL THEN pg_catalog.has_schema_privilege(n.oid, 'CREATE') END AS schema_create,
            c.oid IS NOT NULL AS exists, c.relkind::text AS kind, pg_catalog.pg_get_userbyid(c.relowner) AS owner,
            CASE WHEN c.oid IS NOT NULL THEN pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') END AS owned
       FROM unnest($1::text[], $2::text[]) AS k(schema, name)
       LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = k.schema
       LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = k.name
      ORDER BY k.schema, k.name`,
    [parts.map((p) => p.schema), parts.map((p) => p.name)],
  )).rows
  const noCreate = new Set<string>()
  for (const r of relations) {
    // Tables get indexes; tables the plan creates are new. Views are only altered (ownership, below).
    const builds = (o: typeof r): boolean => o.kind === null || o.kind === 'r' || o.kind === 'p'
    if (r.schema_exists && r.schema_create === false && builds(r) && !noCreate.has(r.schema)) {
      noCreate.add(r.schema)
      const tables = relations.filter((o) => o.schema === r.schema && builds(o)).map((o) => `${o.schema}.${o.name}`)
      findings.push({
        id: `privilege:create-on-schema:${r.schema}`,
        kind: 'privilege',
        table: null,
        title: `CREATE on schema ${r.schema}: the run builds indexes (and creates tables) there`,
        count: 1,
        samples: [`${me.me} may not create objects in schema ${r.schema}, where the plan works on ${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', …' : ''}`],
        fixes: [`GRANT CREATE ON SCHEMA ${quoteIdent(r.schema)} TO ${user}`, 'or run apply as the owner of the schema'],
      })
    }
    if (r.exists && r.owned === false) {
      const what = r.kind === 'v' || r.kind === 'm' ? 'VIEW' : 'TABLE'
      findings.push({
        id: `privilege:owner:${r.schema}.${r.name}`,
        kind: 'privilege',
        table: `${r.schema}.${r.name}`,
        title: `you own ${r.schema}.${r.name} (or are a member of its owner): ALTER ${what}, indexes, triggers and policies need ownership`,
        count: 1,
        samples: [`owned by ${r.owner ?? '?'}, not by ${me.me}`],
        fixes: [`run apply as ${r.owner ?? 'the owner'}, or make ${me.me} a member of it: GRANT ${roleName(r.owner ?? '')} TO ${user}`, `or ALTER ${what} ${qualifiedName(r.schema, r.name)} OWNER TO ${user}`],
      })
    }
  }

  const invalid = (await client.query<{ schema: string; table: string; index: string }>(
    `SELECT n.nspname AS schema, t.relname AS table, i.relname AS index
       FROM pg_catalog.pg_index x
       JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
       JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      WHERE NOT x.indisvalid AND i.relkind = 'i'
        AND (n.nspname, t.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
      ORDER BY 1, 2, 3`,
    [parts.map((p) => p.schema), parts.map((p) => p.name)],
  )).rows
  // The runner repairs an INVALID index left by an interrupted build of a step before building it again.
  const builtBySteps = (r: { schema: string; table: string; index: string }): boolean =>
    steps.some((s) => s.table === `${r.schema}.${r.table}` && s.up.some((sql) => sql.includes(`INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(r.index)} `)))
  for (const r of invalid.filter((i) => !builtBySteps(i))) {
    findings.push({
      id: `invalid-index:${r.schema}.${r.index}`,
      kind: 'index',
      table: `${r.schema}.${r.table}`,
      title: `no invalid index on ${r.schema}.${r.table}: ${r.index} is INVALID (a failed CREATE INDEX CONCURRENTLY); a step creating an index IF NOT EXISTS would keep it as it is`,
      count: 1,
      samples: [r.index],
      fixes: [`DROP INDEX CONCURRENTLY ${qualifiedName(r.schema, r.index)}`, `or rebuild it if the application needs it: REINDEX INDEX CONCURRENTLY ${qualifiedName(r.schema, r.index)}`],
    })
  }
  return findings
}
