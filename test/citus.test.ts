/**
 * `target: 'citus'` on a real 3-node Citus cluster (test/helpers/citus.ts): the energy-billing example
 * converted by the library (plan + apply), its tenant tables distributed by org_id and colocated, the
 * tenant table a reference table; the app role isolated per organization through SET LOCAL (the context
 * Citus sends to the workers); a query with the explicit tenant predicate routed to one shard. The
 * example's isolation and API checks of test/example-energy-billing.test.ts (test/helpers/energy-billing.ts)
 * pass here too, and every statement the API sends is routed to one shard.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { generate, TABLES } from '../examples/energy-billing/generate.js'
import { apply, resetReadiness, rollback } from '../src/apply/index.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { contextSql } from '../src/runtime/context-sql.js'
import { tenantPool } from '../src/runtime/pg.js'
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js'
import { citusDatabase, type CitusDatabase } from './helpers/citus.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { addSecondOrganization, apiChecks, deleteSecondOrganization, LIVE, OTHER, tenantPoolChecks, type EnergyBillingApp, type OtherOrganization } from './helpers/energy-billing.js'
import { fast, oldAppWriter, planFor } from './helpers/examples.js'

const citus = await citusDatabase(import.meta.url)
const skip = 'unavailable' in citus ? citus.unavailable : false
const CONTEXT = contextSql({ strategy: 'set-local' })

/** The example's committed config with target citus and a role unique to this database. */
async function citusConfig(role: string): Promise<TenantizeConfig> {
  const raw = JSON.parse(await readFile(new URL('../examples/energy-billing/tenantize.config.json', import.meta.url), 'utf8')) as { roles: Record<string, unknown> }
  return parseConfig({ ...raw, target: 'citus', roles: { ...raw.roles, app: role } }, 'examples/energy-billing/tenantize.config.json')
}

/** The URL of `db` logged in as `role` (trust authentication on the test cluster). */
function loginUrl(db: CitusDatabase, role: string): string {
  const url = new URL(db.url)
  url.username = role
  return url.toString()
}

/**
 * Run `fn` in one transaction logged in as `role`, the tenant (and sub-tenant scopes) set with
 * `SET LOCAL` — the statement the runtime's set-local strategy sends — or no context at all.
 */
async function asTenant<T>(url: string, tenant: string | null, fn: (c: pg.Client) => Promise<T>, scopes: Record<string, string> = {}): Promise<T> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    await client.query('BEGIN')
    if (tenant !== null) await client.query(CONTEXT.statement(tenant))
    for (const [setting, value] of Object.entries(scopes)) await client.query(contextSql({ strategy: 'set-local', setting }).statement(value))
    const out = await fn(client)
    await client.query('COMMIT')
    return out
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    await client.end()
  }
}

const taskCount = (plan: { 'QUERY PLAN': string }[]): number[] => plan.map((r) => r['QUERY PLAN']).flatMap((line) => [...line.matchAll(/Task Count: (\d+)/g)].map((m) => Number(m[1])))

test('energy billing with target citus: distributed by org_id, colocated, isolated per organization through SET LOCAL, one shard per scoped query', { skip }, async (t) => {
  if ('unavailable' in citus) return
  const db = citus
  await db.sql(await readFile(new URL('../examples/energy-billing/schema.sql', import.meta.url), 'utf8'))
  const loader = new pg.Client(db.url)
  await loader.connect()
  const counts = await generate(loader, { scale: 'small' }).finally(async () => {
    await loader.query('ANALYZE')
    await loader.end()
  })
  const config = await citusConfig(db.role('app'))
  const DEFAULT = config.tenant.default.id
  const app = config.roles.app
  const tables = TABLES.map((name) => `public.${quoteIdent(name)}`)
  const startData = await dataChecksums(db.url, tables)
  const fingerprint = await schemaFingerprint(db.url)
  const customers = await db.sql<{ id: number; meter_number: string; client_id: number }>('SELECT id, meter_number, client_id FROM customer ORDER BY id')
  let written = 0

  await t.test('plan: the conversion steps as on PostgreSQL, then Citus steps at the end of enforce', async () => {
    const plan = await planFor(db.url, config)
    const citusSteps = plan.steps.filter((s) => s.id.startsWith('citus-'))
    assert.deepEqual(plan.steps.slice(-citusSteps.length), citusSteps, 'the Citus steps come last')
    assert.deepEqual(
      citusSteps.filter((s) => s.id.startsWith('citus-distribute:')).map((s) => s.table).sort(),
      TABLES.map((name) => `public.${name}`).sort(),
      'every tenant table is distributed',
    )
    assert.deepEqual(citusSteps.filter((s) => s.id.startsWith('citus-reference:')).map((s) => s.table), ['public.organizations'], 'the tenant table is a reference table (the example has no global table)')
    assert.ok(!plan.steps.some((s) => s.up.some((u) => u.startsWith('CREATE POLICY') && /\(SELECT /.test(u))), 'no policy has the sub-select Citus refuses')
    assert.deepEqual(plan.enforceBlockers, [])
  })

  await t.test('schema phase on the coordinator while the unchanged app keeps inserting meter readings', async () => {
    const writer = oldAppWriter(db.url, (i) => {
      const c = customers[i % customers.length]!
      return { text: `INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, $2, $3::timestamptz + $4 * interval '15 minutes', 0.250, 'off_peak')`, values: [c.id, c.meter_number, LIVE, i] }
    })
    await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
    written = await writer.stop()
    assert.ok(written > 0, 'the old app kept writing')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n, count(*) FILTER (WHERE org_id = $2)::int AS mine FROM meter_reading WHERE reading_at >= $1`, [LIVE, DEFAULT]), [{ n: written, mine: written }])
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM pg_dist_partition`), [{ n: 0 }], 'nothing is distributed before enforce')
  })

  await t.test('enforce: tenant tables hash-distributed by org_id in one colocation group, the tenant table a reference table, shards on both workers', async () => {
    await resetReadiness(db.url)
    await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
    const placed = await db.sql<{ table: string; method: string; column: string | null; colocation: number; replication: string }>(
      `SELECT logicalrelid::regclass::text AS table, partmethod AS method, column_to_column_name(logicalrelid, partkey) AS column, colocationid AS colocation, repmodel AS replication
         FROM pg_dist_partition ORDER BY 1`,
    )
    const distributed = placed.filter((p) => p.method === 'h')
    assert.deepEqual(distributed.map((p) => p.table).sort(), [...TABLES].sort())
    assert.ok(distributed.every((p) => p.column === 'org_id'), 'distributed by the tenant column')
    assert.equal(new Set(distributed.map((p) => p.colocation)).size, 1, 'all colocated')
    assert.deepEqual(placed.filter((p) => p.method !== 'h').map((p) => ({ table: p.table, method: p.method, replication: p.replication })), [{ table: 'organizations', method: 'n', replication: 't' }], 'organizations: a reference table')
    assert.deepEqual(
      await db.sql(`SELECT table_name::text AS t, citus_table_type AS type FROM citus_tables WHERE table_name = 'organizations'::regclass`),
      [{ t: 'organizations', type: 'reference' }],
    )
    const nodes = await db.sql<{ nodeport: number }>(`SELECT DISTINCT nodeport FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid) WHERE s.logicalrelid = 'meter_reading'::regclass ORDER BY 1`)
    assert.deepEqual(nodes.map((n) => n.nodeport), [9701, 9702])
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM meter_reading`), [{ n: counts['meter_reading']! + written }], 'every row moved to the shards')
    // Each shard has the coordinator's policies, with the same mode and condition: none was widened on the way.
    for (const table of TABLES) {
      const policies = (relation: string): string =>
        `SELECT coalesce(string_agg(polname || ' ' || CASE WHEN polpermissive THEN 'permissive' ELSE 'restrictive' END || ' ' || pg_get_expr(polqual, polrelid), '; ' ORDER BY polname), '') || ' rls=' || relrowsecurity || ' force=' || relforcerowsecurity
           FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.oid = ${relation}::regclass GROUP BY relrowsecurity, relforcerowsecurity`
      const [coordinator] = await db.sql<{ p: string }>(`SELECT (${policies('$1')}) AS p`, [table])
      const shards = await db.sql<{ result: string; success: boolean }>(`SELECT result, success FROM run_command_on_shards($1, $2)`, [table, policies(`'%s'`)])
      assert.ok(coordinator!.p.includes('tenant_isolation permissive') && coordinator!.p.endsWith('rls=true force=true'), `${table}: ${coordinator!.p}`)
      assert.ok(!coordinator!.p.includes('restrictive'), `${table}: no restrictive policy (Citus would copy it as permissive)`)
      assert.deepEqual([...new Set(shards.map((r) => `${String(r.success)} ${r.result}`))], [`true ${coordinator!.p}`], `${table}: every shard has the coordinator's row-level security and policies`)
    }
  })

  await t.test('the app role logs in with citus.propagate_set_commands = local (the plan sets it on the role, and LOGIN: the coordinator connects to the workers as it)', async () => {
    const url = loginUrl(db, app)
    const client = new pg.Client(url)
    await client.connect()
    try {
      assert.deepEqual((await client.query(`SELECT current_setting('citus.propagate_set_commands') AS v`)).rows, [{ v: 'local' }])
    } finally {
      await client.end()
    }
  })

  let other: OtherOrganization = { clientId: 0, customerId: 0, userId: 0, invoiceId: 0, readings: 0 }
  await t.test('an operator adds a second organization with the same client code, account number and e-mail', async () => {
    other = await addSecondOrganization(db.sql, customers)
  })

  await t.test('as the app role with SET LOCAL: each organization sees only its rows; writes across are refused; no context sees nothing', async () => {
    const url = loginUrl(db, app)
    const count = async (c: pg.Client, table: string): Promise<number> => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteIdent(table)}`)).rows[0]!.n
    await asTenant(url, DEFAULT, async (c) => {
      assert.equal(await count(c, 'customer'), counts['customer'])
      assert.equal(await count(c, 'meter_reading'), counts['meter_reading']! + written)
      assert.equal(await count(c, 'invoice'), counts['invoice'])
      assert.equal(await count(c, 'organizations'), 1, 'the reference table too')
      assert.equal((await c.query(`UPDATE invoice SET status = 'void' WHERE id = $1`, [other.invoiceId])).rowCount, 0, 'another organization\'s invoice cannot be updated')
      assert.equal((await c.query(`DELETE FROM meter_reading WHERE customer_id = $1`, [other.customerId])).rowCount, 0)
    })
    await assert.rejects(
      asTenant(url, DEFAULT, (c) => c.query(`INSERT INTO meter_reading (org_id, customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, $2, 'H-1', now(), 1, 'off_peak')`, [OTHER, other.customerId])),
      /new row violates row-level security policy/,
      'WITH CHECK refuses a row of another organization, on the worker',
    )
    await assert.rejects(
      asTenant(url, DEFAULT, (c) => c.query(`INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, 'H-1', now(), 1, 'off_peak')`, [other.customerId])),
      /violates foreign key constraint "meter_reading_org_id_customer_id_tenant_fkey/,
      'a reading cannot point at another organization\'s customer: the composite key holds between colocated shards',
    )
    await asTenant(url, OTHER, async (c) => {
      assert.deepEqual((await c.query('SELECT id FROM customer')).rows, [{ id: other.customerId }])
      assert.equal(await count(c, 'meter_reading'), other.readings)
      assert.deepEqual((await c.query('SELECT count(*)::int AS n, sum(kwh)::float AS kwh FROM daily_consumption')).rows, [{ n: 1, kwh: 48 }], 'the view runs with the caller\'s row-level security')
      assert.equal((await c.query(`UPDATE customer SET name = 'x' WHERE id = $1`, [customers[0]!.id])).rowCount, 0)
    })
    const clientId = customers[0]!.client_id
    assert.equal(
      await asTenant(url, DEFAULT, (c) => count(c, 'customer'), { 'tenantize.client_id': String(clientId) }),
      customers.filter((c) => c.client_id === clientId).length,
      'the client scope, set with SET LOCAL too, narrows the organization to one client',
    )
    const me = customers[1]!
    const asCustomer = await asTenant(
      url,
      DEFAULT,
      async (c) => ({ customers: (await c.query('SELECT id FROM customer')).rows, others: (await c.query<{ n: number }>('SELECT ((SELECT count(*) FROM invoice WHERE customer_id <> $1) + (SELECT count(*) FROM meter_reading WHERE customer_id <> $1))::int AS n', [me.id])).rows[0]!.n }),
      { 'tenantize.customer_id': String(me.id) },
    )
    assert.deepEqual(asCustomer, { customers: [{ id: me.id }], others: 0 }, 'a customer user (customer scope) sees only their own account, invoices and readings')
    assert.equal(await asTenant(url, null, (c) => count(c, 'meter_reading')), 0, 'no context: no rows')
    await assert.rejects(
      asTenant(url, null, (c) => c.query(`INSERT INTO client (code, name) VALUES ('ZZ', 'nobody')`)),
      /null value in column "org_id"|cannot perform an INSERT with NULL in the partition column/,
      'no context: an insert is refused',
    )
    const withSetConfig = await asTenant(url, null, async (c) => {
      await c.query(`SELECT set_config('tenantize.tenant_id', $1, true)`, [DEFAULT])
      return count(c, 'customer')
    })
    assert.equal(withSetConfig, 0, 'set_config does not reach the workers: fails closed (no rows), which is why the context is SET LOCAL on Citus')
  })

  await t.test('EXPLAIN: with the explicit tenant predicate one task (one shard); with row-level security alone every shard', async () => {
    const url = loginUrl(db, app)
    const shards = (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_dist_shard WHERE logicalrelid = 'meter_reading'::regclass`))[0]!.n
    const routed = await asTenant(url, DEFAULT, async (c) => (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) SELECT sum(kwh) FROM meter_reading WHERE org_id = ${quoteLiteral(DEFAULT)} AND customer_id = $1`, [customers[0]!.id])).rows)
    assert.deepEqual(taskCount(routed), [1], 'routed to the shard of the tenant')
    const joined = await asTenant(url, DEFAULT, async (c) => (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) SELECT i.id FROM invoice i JOIN customer c ON c.org_id = i.org_id AND c.id = i.customer_id WHERE i.org_id = ${quoteLiteral(DEFAULT)}`)).rows)
    assert.deepEqual(taskCount(joined), [1], 'a join of colocated tables on the tenant column is routed to one shard too')
    await assert.rejects(
      asTenant(url, DEFAULT, (c) => c.query(`SELECT count(*) FROM invoice i JOIN customer c ON c.id = i.customer_id`)),
      /the query contains a join that requires repartitioning/,
      'a join of distributed tables must be on the tenant column: row-level security does not make it one',
    )
    const fanned = await asTenant(url, DEFAULT, async (c) => (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) SELECT sum(kwh) FROM meter_reading WHERE customer_id = $1`, [customers[0]!.id])).rows)
    assert.deepEqual(taskCount(fanned), [shards], 'row-level security alone: every shard is asked')
    assert.equal(await asTenant(url, DEFAULT, async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM meter_reading WHERE org_id = $1`, [OTHER])).rows[0]!.n), 0, 'a predicate naming another tenant is routed there and row-level security still returns nothing')
  })

  // The app's statements, recorded as sent (text and values), to EXPLAIN each one after the API checks.
  const sent: { text: string; values: unknown[] }[] = []
  class RecordingClient extends pg.Client {
    override query(...args: unknown[]): never {
      const [config, values] = args as [{ text?: unknown; values?: unknown[] } | string, unknown[] | undefined]
      const text = typeof config === 'string' ? config : config.text
      if (typeof text === 'string' && /^\s*SELECT\b/i.test(text)) sent.push({ text, values: (typeof config === 'string' ? undefined : config.values) ?? values ?? [] })
      return (super.query as (...a: unknown[]) => never)(...args)
    }
  }
  const converted = (): EnergyBillingApp => ({
    sql: db.sql,
    // Logged in as the app role (SET ROLE would not pick up its citus.propagate_set_commands), SET LOCAL context.
    connect: () => {
      const pool = new pg.Pool({ connectionString: loginUrl(db, app), max: 4, Client: RecordingClient })
      return { pool, db: tenantPool(pool, { strategy: 'set-local' }), end: () => pool.end() }
    },
    strategy: 'set-local',
    tenant: DEFAULT,
    counts,
    written,
    customers,
  })

  await t.test('the example\'s isolation checks as on PostgreSQL, through tenantPool with the set-local strategy as the app role', async () => {
    const url = loginUrl(db, app)
    await assert.rejects(asTenant(url, DEFAULT, (c) => c.query('SELECT count(*) FROM open_invoice')), /the query contains a join that requires repartitioning/, 'schema.sql\'s open_invoice joins by id alone: refused on Citus')
    await db.sql(await readFile(new URL('../examples/energy-billing/citus-views.sql', import.meta.url), 'utf8'))
    await tenantPoolChecks(converted(), other)
  })

  await t.test('the example\'s Fastify API as on PostgreSQL (context set-local), and every statement it sent routed to one shard', async () => {
    sent.length = 0
    await apiChecks(converted(), other)
    const statements = [...new Map(sent.map((s) => [s.text, s])).values()]
    assert.ok(statements.length >= 6, `the API's queries were recorded (${statements.length})`)
    const url = loginUrl(db, app)
    for (const s of statements) {
      const plan = await asTenant(url, DEFAULT, async (c) => (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${s.text}`, s.values)).rows)
      assert.deepEqual(taskCount(plan), [1], `routed to one shard: ${s.text}`)
      if (/FROM invoice i JOIN customer c/.test(s.text) && /i\.id = \$2/.test(s.text)) console.log(`# EXPLAIN (COSTS OFF) of the API's GET /invoices/:id on Citus:\n#   ${s.text.replace(/\s+/g, ' ')}\n${plan.map((r) => `#   ${r['QUERY PLAN']}`).join('\n')}`)
    }
  })

  await t.test('rollback: the tables back to local ones, then the conversion reversed; every row as it was', async () => {
    await deleteSecondOrganization(db.sql)
    // schema.sql's open_invoice again (citus-views.sql joins on org_id, which the rollback drops), as the conversion left it.
    const original = /CREATE VIEW open_invoice AS([^;]+);/.exec(await readFile(new URL('../examples/energy-billing/schema.sql', import.meta.url), 'utf8'))![1]!
    await db.sql(`CREATE OR REPLACE VIEW open_invoice WITH (security_invoker = true) AS${original}`)
    await rollback({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM pg_dist_partition`), [{ n: 0 }], 'nothing is distributed any more')
    assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1`, [app]), [{ n: 0 }], 'the app role the plan created is gone')
    assert.deepEqual(await dataChecksums(db.url, tables, { 'public."meter_reading"': `WHERE reading_at < '${LIVE}'` }), startData, 'every row as it was')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM meter_reading WHERE reading_at >= $1`, [LIVE]), [{ n: written }])
    assert.deepEqual(await db.sql(`SELECT to_regclass('public.organizations') AS o`), [{ o: null }])
  })
})
