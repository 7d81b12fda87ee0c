/**
 * verify on a Citus coordinator. Citus runs a query on the shards of a distributed table, on the workers,
 * so what protects the rows is the shards' row-level security, the context the workers see and the role
 * the coordinator connects to them as. Facts measured on Citus 13.2 (docs/citus.md):
 * - a policy with a sub-select is refused on a distributed table ("Subqueries are not supported in
 *   policies on distributed tables"): create_distributed_table fails on a table that has one;
 * - policies reach the shards without `AS RESTRICTIVE`: a restrictive policy widens access on the shards;
 * - `set_config()` does not reach the workers, `SET LOCAL` does with `citus.propagate_set_commands = 'local'`;
 * - the coordinator connects to the workers as the current user, also after `SET ROLE` (it needs LOGIN).
 *
 * The generic probe identifies its rows by (tableoid, ctid), which Citus keeps per shard, so on a
 * coordinator with distributed tables the probe here runs instead: through the coordinator, as the app
 * role with `SET LOCAL` context, in a transaction it rolls back, with the rows already there.
 */
import type pg from 'pg'
import type { Table } from '../catalog/types.js'
import { qualifiedName, quoteIdent, quoteLiteral, roleName } from '../sql/quote.js'
import type { ModelTable, TenantModel } from './lints/model.js'
import { RULES_DOC } from './lints/index.js'
import { CITUS_CHECKS, type LiveCheck } from './probe/registry.js'
import type { Finding, ProbeCheck, ProbeReport, ProbeStatus } from './types.js'

/** What verify reads from Citus's metadata. */
export interface CitusFacts {
  readonly version: string
  /** Tables in Citus's metadata (pg_dist_partition), by oid. */
  readonly tables: ReadonlyMap<number, { readonly kind: 'distributed' | 'reference' | 'local'; readonly column: string | null }>
  /** The app role's `citus.propagate_set_commands` from its role settings, or null. */
  readonly propagate: string | null
}

const PROPAGATE = 'citus.propagate_set_commands'

/** Citus's facts, or null when the citus extension is not installed in this database. */
export async function readCitusFacts(client: pg.ClientBase, appRole: string | null): Promise<CitusFacts | null> {
  const version = (await client.query<{ v: string | null }>(`SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus') AS v`)).rows[0]?.v
  if (version === null || version === undefined) return null
  const { rows } = await client.query<{ oid: number; method: string; column: string | null }>(
    `SELECT logicalrelid::oid::int8 AS oid, partmethod AS method, pg_catalog.column_to_column_name(logicalrelid, partkey) AS column FROM pg_catalog.pg_dist_partition`,
  )
  const tables = new Map(rows.map((r) => [Number(r.oid), { kind: r.method === 'h' ? ('distributed' as const) : r.method === 'n' && r.column === null ? ('reference' as const) : ('local' as const), column: r.column }]))
  let propagate: string | null = null
  if (appRole !== null) {
    const settings = await client.query<{ s: string }>(
      `SELECT unnest(setconfig) AS s FROM pg_catalog.pg_db_role_setting d JOIN pg_catalog.pg_roles r ON r.oid = d.setrole
        WHERE r.rolname = $1 AND d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))`,
      [appRole],
    )
    propagate = settings.rows.map((r) => r.s).find((s) => s.startsWith(`${PROPAGATE}=`))?.slice(PROPAGATE.length + 1) ?? null
  }
  return { version, tables, propagate }
}

const byId = new Map(CITUS_CHECKS.map((c) => [c.id, c]))
const rule = (id: string): LiveCheck => byId.get(id)!
const tableSql = (t: { schema: string; name: string }): string => qualifiedName(t.schema, t.name)
const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

function finding(id: string, source: 'lint' | 'probe', objectKind: Finding['objectKind'], object: string, table: string | null, message: string, fix: string): Finding {
  const r = rule(id)
  return { rule: `citus-${id}`, severity: r.severity, source, objectKind, object, table, message, why: r.why, fix, docs: `${RULES_DOC}#citus-${id}` }
}

/** The tenant tables Citus has in its metadata, with the kind. */
function citusTables(model: TenantModel, facts: CitusFacts): { m: ModelTable; kind: 'distributed' | 'reference' | 'local' }[] {
  return model.tenantTables().flatMap((m) => {
    const c = facts.tables.get(m.table.oid)
    return c === undefined ? [] : [{ m, kind: c.kind }]
  })
}

/** The policy's condition without the scalar sub-selects around helper calls: the shape Citus accepts. */
const unwrapped = (expr: string): string => expr.replace(/\(\s*SELECT\s+([A-Za-z0-9_."]+\([^()]*\))(?:\s+AS\s+[A-Za-z0-9_"]+)?\s*\)/gi, '$1')

/** Lints that need Citus's metadata. Pure. */
export function citusLintFindings(model: TenantModel, facts: CitusFacts): Finding[] {
  const out: Finding[] = []
  const placed = new Set(citusTables(model, facts).filter((x) => x.kind !== 'local').map((x) => x.m.table.oid))
  const distributedAny = placed.size > 0
  for (const m of model.tenantTables()) {
    for (const f of model.policies.get(m.table.oid) ?? []) {
      const p = f.policy
      const object = `policy ${quoteIdent(p.name)} on ${tableSql(m.table)}`
      const subqueries = [f.using, f.withCheck].flatMap((e) => e?.subqueries ?? [])
      if (subqueries.length > 0) {
        const using = p.using === null ? '' : ` USING (${unwrapped(p.using)})`
        const check = p.withCheck === null ? '' : ` WITH CHECK (${unwrapped(p.withCheck)})`
        out.push(finding('policy-subquery', 'lint', 'policy', object, display(m.table), `${quoteIdent(p.name)} on ${display(m.table)} has a sub-select; Citus refuses it on a distributed table${placed.has(m.table.oid) ? '' : ' (create_distributed_table fails)'}`, `ALTER POLICY ${quoteIdent(p.name)} ON ${tableSql(m.table)}${using}${check};`))
      }
      if (p.mode === 'restrictive' && placed.has(m.table.oid)) {
        out.push(finding('restrictive-policy', 'lint', 'policy', object, display(m.table), `${quoteIdent(p.name)} on ${display(m.table)} is RESTRICTIVE; Citus copied it to the shards as PERMISSIVE, where it is OR-ed with the tenant policy`, `DROP POLICY ${quoteIdent(p.name)} ON ${tableSql(m.table)};\n-- then AND its condition into the tenant policy (ALTER POLICY … USING (<tenant predicate> AND <its condition>)): target citus does this for sub-tenant scopes`))
      }
    }
  }
  if (distributedAny && model.app !== null) {
    const app = roleName(model.app.name)
    if (facts.propagate !== 'local') {
      out.push(finding('context-not-propagated', 'lint', 'role', app, null, `${PROPAGATE} is ${facts.propagate === null ? 'not set' : `'${facts.propagate}'`} for ${model.app.name}: a tenant context it sets does not reach the workers (queries see no rows)`, `ALTER ROLE ${app} SET ${PROPAGATE} = 'local';\n-- and set the context with SET LOCAL (the runtime's strategy 'set-local'), not set_config()`))
    }
    if (!model.app.login) {
      out.push(finding('app-nologin', 'lint', 'role', app, null, `${model.app.name} cannot log in: the coordinator connects to the workers as the current user, also after SET ROLE, so every query on a distributed table fails`, `ALTER ROLE ${app} LOGIN;\n-- pg_hba.conf on the workers decides where it may log in from; the coordinator authenticates with pg_dist_authinfo or a .pgpass`))
    }
  }
  return out
}

/** Lint rule ids that do not apply on Citus for these tables: the wrapped form is the one Citus refuses. */
export function withoutCitusContradictions(findings: readonly Finding[], model: TenantModel, facts: CitusFacts): Finding[] {
  const placed = new Set(citusTables(model, facts).filter((x) => x.kind !== 'local').map((x) => display(x.m.table)))
  return findings.filter((f) => !(f.rule === 'policy-unwrapped-context' && f.table !== null && placed.has(f.table)))
}

interface Run {
  readonly client: pg.ClientBase
  readonly inTransaction: boolean
}

/** `fn` in a transaction (or savepoint) that is always rolled back. */
async function rolledBack<T>(run: Run, fn: () => Promise<T>): Promise<T> {
  await run.client.query(run.inTransaction ? 'SAVEPOINT tz_citus_probe' : 'BEGIN')
  try {
    return await fn()
  } finally {
    if (run.inTransaction) {
      await run.client.query('ROLLBACK TO SAVEPOINT tz_citus_probe')
      await run.client.query('RELEASE SAVEPOINT tz_citus_probe')
    } else {
      await run.client.query('ROLLBACK')
    }
  }
}

/** Tenant column types written as they are in the routed query's cast. */
const PLAIN = new Set(['uuid', 'bigint', 'integer', 'smallint', 'text'])

const settingSql = (setting: string): string => setting.split('.').map(quoteIdent).join('.')

/** The row-level security and policies of a relation as one line, for comparing the coordinator with each shard. */
const securityOf = (relation: string): string =>
  `SELECT coalesce(string_agg(p.polname || ' ' || CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END || ' ' || p.polcmd::text || ' ' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '') || ' / ' || coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), ''), '; ' ORDER BY p.polname), '') || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
     FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid WHERE c.oid = ${relation}::pg_catalog.regclass GROUP BY c.relrowsecurity, c.relforcerowsecurity`

/** A tenant value no row has: the other-tenant check's context (every existing row is another tenant's). */
async function unusedTenant(client: pg.ClientBase, t: Table, column: string): Promise<string | null> {
  const type = t.columns.find((c) => c.name === column)?.type ?? ''
  if (type === 'uuid') return (await client.query<{ v: string }>('SELECT pg_catalog.gen_random_uuid()::text AS v')).rows[0]!.v
  if (/^(bigint|integer|smallint|numeric)/.test(type)) return (await client.query<{ v: string }>(`SELECT (coalesce(max(${quoteIdent(column)}), 0) + 1)::text AS v FROM ${tableSql(t)}`)).rows[0]!.v
  if (/^(text|character varying)/.test(type)) return `tz-probe-${Date.now().toString(36)}`
  return null
}

/**
 * The live checks on Citus, per tenant table in Citus's metadata, through the coordinator: the shards'
 * row-level security equals the coordinator's; as the app role with no context no row; with a tenant
 * that has no rows, no row of anyone (every shard asked); with a tenant that has rows, exactly its rows,
 * with the explicit tenant predicate (routed to its shard) and without it (every shard).
 */
export async function citusProbe(client: pg.ClientBase, model: TenantModel, facts: CitusFacts, options: { inTransaction?: boolean | undefined } = {}): Promise<ProbeReport> {
  const run: Run = { client, inTransaction: options.inTransaction === true }
  const appRole = model.appRole!
  const checks: ProbeCheck[] = []
  const add = (t: Table, check: string, status: ProbeStatus, detail: string, sqlstate: string | null = null): void => {
    checks.push({ table: display(t), check, status, detail, sqlstate })
  }
  const sessionUser = (await client.query<{ u: string }>('SELECT session_user::text AS u')).rows[0]!.u
  const asApp = async (tenant: string | null): Promise<void> => {
    await client.query(`SET LOCAL ${PROPAGATE} = 'local'`)
    await client.query(`SET LOCAL ROLE ${roleName(appRole)}`)
    if (tenant !== null) await client.query(`SET LOCAL ${settingSql(model.setting)} = ${quoteLiteral(tenant)}`)
  }
  const count = async (sql: string, values: unknown[] = []): Promise<{ n: number } | { error: string; code: string }> => {
    try {
      return { n: Number((await client.query<{ n: string }>(sql, values)).rows[0]!.n) }
    } catch (error) {
      const e = error as { message?: string; code?: string }
      return { error: e.message ?? String(error), code: e.code ?? '' }
    }
  }
  for (const { m, kind } of citusTables(model, facts)) {
    const t = m.table
    const column = m.tenantColumn ?? (m.class === 'root' ? (t.indexes.find((i) => i.primary)?.columns[0] ?? null) : null)
    // Shards: the same row-level security and policies as the coordinator's table.
    if (kind !== 'local') {
      const [own] = (await client.query<{ p: string }>(`SELECT (${securityOf('$1')}) AS p`, [tableSql(t)])).rows
      const shards = (await client.query<{ shardid: string; result: string; success: boolean }>(`SELECT shardid::text, result, success FROM pg_catalog.run_command_on_shards($1, $2)`, [tableSql(t), securityOf(`'%s'`)])).rows
      const differ = shards.filter((s) => !s.success || s.result !== own?.p)
      if (differ.length === 0) add(t, 'shards', 'pass', `all ${shards.length} shard(s) have the coordinator's row-level security and policies`)
      else add(t, 'shards', 'fail', `${differ.length} of ${shards.length} shard(s) differ from the coordinator (${own?.p ?? 'no policy'}): shard ${differ[0]!.shardid} has ${differ[0]!.result}`)
    }
    if (column === null) {
      add(t, 'no-context', 'skip', 'no tenant column')
      continue
    }
    const col = quoteIdent(column)
    const rows = await rolledBack(run, () => count(`SELECT count(*) AS n FROM ${tableSql(t)}`))
    if ('error' in rows) {
      add(t, 'no-context', 'error', `the admin cannot count the rows: ${rows.error}`, rows.code)
      continue
    }
    const none = await rolledBack(run, async () => {
      await asApp(null)
      return count(`SELECT count(*) AS n FROM ${tableSql(t)}`)
    })
    if ('error' in none) add(t, 'no-context', 'pass', `with no context the query was refused (${none.code})`, none.code)
    else add(t, 'no-context', rows.n === 0 ? 'skip' : none.n === 0 ? 'pass' : 'fail', rows.n === 0 ? 'the table is empty: nothing to see' : `with no context the app role sees ${none.n} of ${rows.n} row(s)`)
    if (rows.n === 0) continue
    const nobody = await unusedTenant(client, t, column)
    if (nobody !== null) {
      const seen = await rolledBack(run, async () => {
        await asApp(nobody)
        return count(`SELECT count(*) AS n FROM ${tableSql(t)}`)
      })
      if ('error' in seen) add(t, 'other-tenant', 'error', `as a tenant without rows the query failed: ${seen.error}`, seen.code)
      else add(t, 'other-tenant', seen.n === 0 ? 'pass' : 'fail', `as a tenant without rows, every shard asked: ${seen.n} of ${rows.n} row(s) of other tenants visible`)
    }
    const own = (await client.query<{ v: string; n: string }>(`SELECT ${col}::text AS v, count(*) AS n FROM ${tableSql(t)} WHERE ${col} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1`)).rows[0]
    if (own === undefined) continue
    const seen = await rolledBack(run, async () => {
      await asApp(own.v)
      // The explicit predicate in the column's own type, so that Citus routes the query to the tenant's shard.
      const type = t.columns.find((c) => c.name === column)?.type ?? 'text'
      const predicate = PLAIN.has(type) ? `${col} = $1::${type}` : `${col}::text = $1`
      return { routed: await count(`SELECT count(*) AS n FROM ${tableSql(t)} WHERE ${predicate}`, [own.v]), all: await count(`SELECT count(*) AS n FROM ${tableSql(t)}`) }
    })
    if ('error' in seen.routed || 'error' in seen.all) {
      const e = 'error' in seen.routed ? seen.routed : (seen.all as { error: string; code: string })
      add(t, 'own-rows', 'error', `as the tenant with the most rows the query failed: ${e.error}`, e.code)
    } else if (seen.all.n > Number(own.n)) {
      add(t, 'other-tenant', 'fail', `as the tenant with the most rows (${own.n}), every shard asked: ${seen.all.n} row(s) visible, ${seen.all.n - Number(own.n)} of other tenants`)
    } else {
      add(t, 'own-rows', seen.routed.n === Number(own.n) && seen.all.n === Number(own.n) ? 'pass' : 'fail', `as the tenant with the most rows: ${seen.routed.n} of its ${own.n} row(s) with the tenant predicate, ${seen.all.n} without`)
    }
  }
  return { sessionUser, appRole, setting: model.setting, rolledBack: true, seeded: [], unprobed: [], checks }
}

/** Findings for the Citus checks that failed or could not run. */
export function citusProbeFindings(model: TenantModel, probe: ProbeReport): Finding[] {
  return probe.checks.flatMap((c) => {
    if ((c.status !== 'fail' && c.status !== 'error') || !byId.has(c.check)) return []
    const t = model.catalog.tables.find((x) => display(x) === c.table)
    const object = t === undefined ? c.table : tableSql(t)
    const f = finding(c.check, 'probe', 'table', object, c.table, c.status === 'fail' ? c.detail : `${c.check}: ${c.detail}`, `-- ${rule(c.check).fixHint}`)
    return [c.status === 'error' ? { ...f, severity: 'warn' as const } : f]
  })
}
