/**
 * `distribute` (src/citus/distribute.ts) on a real Citus cluster of the file's own (test/helpers/citus.ts,
 * citusLogicalCluster): the fixture converted with target postgres on the coordinator, refused while
 * wal_level = replica, then distributed online while the app keeps writing as itself with its tenant context;
 * every tenant table distributed and colocated, row-level security on every shard, tenants isolated, rows
 * unchanged, a second run does nothing.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import pg from 'pg'
import { generate, TABLES as BILLING_TABLES } from '../examples/energy-billing/generate.js'
import { apply, resetReadiness } from '../src/apply/index.js'
import { distribute, type DistributeProgress } from '../src/citus/distribute.js'
import { registerDistribute } from '../src/cli/commands/distribute.js'
import { TenantizeError } from '../src/errors.js'
import { parseConfig } from '../src/plan/config.js'
import { contextSql } from '../src/runtime/context-sql.js'
import { quoteIdent } from '../src/sql/quote.js'
import { citusLogicalCluster } from './helpers/citus.js'
import { dataChecksums } from './helpers/conversion.js'
import { fast } from './helpers/examples.js'

const cluster = await citusLogicalCluster(import.meta.url)
const skip = 'unavailable' in cluster ? cluster.unavailable : false
const BIG = 'b16b16b1-0000-4000-8000-000000000002'
const DEFAULT = '5e0f0c1a-0000-4000-8000-000000000001'
const TABLES = ['public.account', 'public.project', 'public."task item"']
const CONTEXT = contextSql({ strategy: 'set-local' })
/** The rows the writer adds are marked (account code W…, task item done), so the rows from before can be compared. */
const BEFORE_WRITER = { 'public.account': `WHERE code NOT LIKE 'W%'`, 'public."task item"': 'WHERE NOT done' }

/**
 * The app as deployed for Citus before the distribution: logged in as the app role, its context with SET LOCAL,
 * and citus.propagate_set_commands = 'local' for its session (distribute sets it on the role for new sessions).
 * Each write is its own transaction; failures are counted, not retried; the longest write is the stall.
 */
function appWriter(url: string, projects: readonly number[], stepAt: () => string): { stop(): Promise<{ written: number; failed: string[]; stallMs: number; stallAt: string }> } {
  let running = true
  const out = { written: 0, failed: [] as string[], stallMs: 0, stallAt: '' }
  const done = (async () => {
    const client = new pg.Client(url)
    await client.connect()
    await client.query(`SET citus.propagate_set_commands = 'local'`)
    try {
      for (let i = 0; running; i++) {
        const t0 = performance.now()
        const at = stepAt()
        try {
          await client.query('BEGIN')
          await client.query(CONTEXT.statement(BIG))
          if (i % 2 === 0) await client.query(`INSERT INTO "task item" (project_id, done) VALUES ($1, true)`, [projects[i % projects.length]])
          else await client.query(`INSERT INTO account (code, currency) VALUES ($1, 'EUR')`, [`W${i}`])
          await client.query('COMMIT')
          out.written++
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          out.failed.push(`${at}: ${(error as Error).message}`)
        }
        const ms = performance.now() - t0
        if (ms > out.stallMs) {
          out.stallMs = ms
          out.stallAt = at
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    } finally {
      await client.end()
    }
  })()
  return {
    async stop() {
      running = false
      await done
      return out
    },
  }
}

test('distribute a database converted on PostgreSQL, online, on a Citus cluster: refused on wal_level = replica, then every tenant table distributed and colocated while the app writes', { skip }, async (t) => {
  if ('unavailable' in cluster) return
  const db = cluster.db
  await db.sql(await readFile('test/fixtures/citus/schema.sql', 'utf8'))
  await db.sql(`INSERT INTO currency VALUES ('EUR', 'Euro')`)
  await db.sql(`INSERT INTO account (code, currency) SELECT 'A' || g, 'EUR' FROM generate_series(1, 50) g`)
  await db.sql(`INSERT INTO project (account_id, title) SELECT id, 'p' FROM account`)
  await db.sql(`INSERT INTO "task item" (project_id) SELECT id FROM project`)
  const app = db.role('app')
  // The app logs in as the app role (trust authentication on the test cluster).
  await db.sql(`CREATE ROLE ${quoteIdent(app)} LOGIN`)
  const input = {
    version: 1 as const,
    target: 'postgres',
    tenant: { table: 'public.organizations', create: true, default: { id: DEFAULT } },
    roles: { app, system: null },
    tables: {
      'public.currency': { class: 'global' },
      'public.account': { class: 'direct' },
      'public.project': { class: 'child', path: { columns: ['account_id'], parent: 'public.account', parentColumns: ['id'] } },
      'public.task item': { class: 'child', path: { columns: ['project_id'], parent: 'public.project', parentColumns: ['id'] } },
    },
  }
  const config = parseConfig(input)
  const dir = await mkdtemp(join(tmpdir(), 'tz-distribute-'))
  after(() => rm(dir, { recursive: true, force: true }))
  const configFile = join(dir, 'tenantize.config.json')
  await writeFile(configFile, JSON.stringify(input))
  await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
  await resetReadiness(db.url)
  await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
  await db.sql(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'big', 'Big Co')`, [BIG])
  await db.sql(`INSERT INTO account (org_id, code, currency) SELECT $1, 'B' || g, 'EUR' FROM generate_series(1, 100) g`, [BIG])
  await db.sql(`INSERT INTO project (org_id, account_id, title) SELECT org_id, id, 'big' FROM account WHERE org_id = $1`, [BIG])
  await db.sql(`INSERT INTO "task item" (org_id, project_id) SELECT org_id, id FROM project WHERE org_id = $1`, [BIG])
  const before = await dataChecksums(db.url, TABLES)
  const policiesNow = () => db.sql<{ t: string; p: string }>(`SELECT polrelid::regclass::text AS t, polname || ' ' || pg_get_expr(polqual, polrelid) AS p FROM pg_policy ORDER BY 1, 2`)
  const converted = await policiesNow()
  assert.ok(converted.some((r) => /\( SELECT\s+CASE\s+WHEN \(current_setting\('tenantize\.tenant_id'::text, true\) <> ''::text\)/.test(r.p)), 'converted for PostgreSQL: the helper\'s body in a sub-select')

  await t.test('refused while wal_level = replica, naming the setting and the fix; nothing changed', async () => {
    await assert.rejects(distribute({ databaseUrl: db.url, config }), (e: unknown) => {
      assert.ok(e instanceof TenantizeError)
      assert.equal(e.code, 'TZ_PREFLIGHT')
      // One problem is the error itself; several (this machine's PostgreSQL also wants Citus's decoder approved) are listed together.
      const problems = e.problems.length > 0 ? e.problems : [{ object: e.object, message: e.message.replace(/^cannot distribute \(nothing was changed\): /, ''), fix: e.fix }]
      const wal = problems.find((p) => p.object === 'wal_level')
      assert.ok(wal !== undefined, e.toLines().join('\n'))
      assert.equal(wal.message, 'create_distributed_table_concurrently copies the rows by logical replication and needs wal_level = logical on every node; 127.0.0.1:9710 has replica, 127.0.0.1:9711 has replica, 127.0.0.1:9712 has replica')
      assert.equal(wal.fix, "ALTER SYSTEM SET wal_level = 'logical' on every node and restart them (then run tenantize distribute again)")
      assert.ok(problems.every((p) => p.object === 'wal_level' || p.object === 'output_plugin_libraries'), e.toLines().join('\n'))
      return true
    })
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM pg_dist_partition`), [{ n: 0 }])
    assert.deepEqual(await policiesNow(), converted)
  })

  await t.test('dry run: the steps with their locks, nothing changed', async () => {
    await cluster.enableLogical()
    const result = await distribute({ databaseUrl: db.url, config, dryRun: true })
    assert.ok(result.steps.every((s) => s.status === 'planned'))
    const distributeSteps = result.steps.filter((s) => s.id.startsWith('citus-distribute:'))
    assert.deepEqual(distributeSteps.map((s) => s.id), ['citus-distribute:public.account', 'citus-distribute:public.project', 'citus-distribute:public.task item'], 'referenced tables first')
    assert.ok(distributeSteps.every((s) => s.lock === 'SHARE UPDATE EXCLUSIVE' && s.lockHeld === 'writes go on; they wait only at the switch'))
    assert.deepEqual(result.steps.filter((s) => s.id.startsWith('citus-reference:')).map((s) => [s.id, s.lock]), [['citus-reference:public.currency', 'EXCLUSIVE'], ['citus-reference:public.organizations', 'EXCLUSIVE']])
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM pg_dist_partition`), [{ n: 0 }])
  })

  await t.test('distribute while the app writes as itself: no write fails; every tenant table distributed by org_id in one colocation group, the others reference tables', async () => {
    const projects = (await db.sql<{ id: number }>(`SELECT id FROM project WHERE org_id = $1 ORDER BY id`, [BIG])).map((r) => r.id)
    const url = new URL(db.url)
    url.username = app
    let current = 'before'
    const writer = appWriter(url.toString(), projects, () => current)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const events: DistributeProgress[] = []
    let result: Awaited<ReturnType<typeof distribute>>
    try {
      result = await distribute({
        databaseUrl: db.url,
        config,
        timeouts: fast,
        onProgress: (e) => {
          events.push(e)
          if (e.status === 'running') current = e.step
          if (e.status === 'done') current = `after ${e.step}`
        },
      })
      await new Promise((resolve) => setTimeout(resolve, 300))
    } finally {
      const w = await writer.stop()
      console.log(`# distribute: ${w.written} writes, ${w.failed.length} failed, longest write stall ${Math.round(w.stallMs)} ms (during ${w.stallAt})`)
    }
    const w = await writer.stop()
    for (const e of events.filter((x) => x.status === 'done')) console.log(`# ${e.step}: ${Math.round(e.stepMs ?? 0)} ms`)
    assert.deepEqual(w.failed, [], 'no write failed')
    assert.ok(w.written > 0)
    assert.ok(result.steps.every((s) => s.status === 'applied'), result.steps.map((s) => `${s.id} ${s.status}`).join(', '))
    assert.deepEqual([...result.distributed].sort(), ['public.account', 'public.project', 'public.task item'])
    assert.deepEqual([...result.reference].sort(), ['public.currency', 'public.organizations'])
    const placed = await db.sql<{ t: string; method: string; column: string | null; colocation: number; repmodel: string }>(
      `SELECT logicalrelid::regclass::text AS t, partmethod AS method, column_to_column_name(logicalrelid, partkey) AS column, colocationid AS colocation, repmodel FROM pg_dist_partition ORDER BY 1`,
    )
    const hashed = placed.filter((p) => p.method === 'h')
    assert.deepEqual(hashed.map((p) => p.t), ['"task item"', 'account', 'project'])
    assert.ok(hashed.every((p) => p.column === 'org_id'))
    assert.equal(new Set(hashed.map((p) => p.colocation)).size, 1, 'colocated')
    assert.deepEqual(placed.filter((p) => p.method !== 'h').map((p) => [p.t, p.repmodel]), [['currency', 't'], ['organizations', 't']], 'reference tables')
    assert.deepEqual(await dataChecksums(db.url, TABLES, BEFORE_WRITER), before, 'every row from before as it was')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM "task item" WHERE done AND org_id = $1`, [BIG]), [{ n: Math.ceil(w.written / 2) }], 'every write landed, in its tenant')
    const fks = await db.sql<{ n: string }>(`SELECT conrelid::regclass::text || ' ' || conname AS n FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('project'::regclass, '"task item"'::regclass) ORDER BY 1`)
    assert.ok(fks.some((f) => f.n.includes('tenant_fkey')), `the composite foreign keys are back: ${fks.map((f) => f.n).join(', ')}`)
    assert.deepEqual(await db.sql(`SELECT to_regclass('tenantize.distribute_state') AS s`), [{ s: null }], 'no state left')
  })

  await t.test('row-level security forced on every shard with the policy in the shape Citus accepts; tenant A cannot see or write B', async () => {
    for (const table of ['account', 'project', '"task item"']) {
      const shards = await db.sql<{ result: string }>(
        `SELECT DISTINCT result FROM run_command_on_shards($1, $$SELECT c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND strpos(pg_get_expr(p.polqual, p.polrelid), 'SELECT') = 0) FROM pg_class c WHERE c.oid = '%s'::regclass$$)`,
        [table],
      )
      assert.deepEqual(shards, [{ result: 't' }], `${table}: every shard`)
    }
    assert.ok((await policiesNow()).every((r) => !r.p.includes('SELECT')), 'no sub-select left in any policy')
    const url = new URL(db.url)
    url.username = app
    const asTenant = async <T>(tenant: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
      const client = new pg.Client(url.toString())
      await client.connect()
      try {
        await client.query('BEGIN')
        if (tenant !== null) await client.query(CONTEXT.statement(tenant))
        return await fn(client)
      } finally {
        await client.query('ROLLBACK').catch(() => undefined)
        await client.end()
      }
    }
    const count = (c: pg.Client, table: string) => c.query<{ n: number; others: number }>(`SELECT count(*)::int AS n, count(*) FILTER (WHERE org_id <> current_setting('tenantize.tenant_id')::uuid)::int AS others FROM ${table}`).then((r) => r.rows[0]!)
    assert.deepEqual(await asTenant(DEFAULT, (c) => count(c, 'account')), { n: 50, others: 0 })
    assert.deepEqual(await asTenant(DEFAULT, (c) => count(c, '"task item"')), { n: 50, others: 0 })
    const big = await asTenant(BIG, (c) => count(c, 'project'))
    assert.deepEqual(big, { n: 100, others: 0 })
    assert.equal(await asTenant(null, async (c) => (await count(c, 'account')).n), 0, 'no context: no rows')
    await assert.rejects(asTenant(DEFAULT, (c) => c.query(`INSERT INTO account (org_id, code, currency) VALUES ($1, 'X', 'EUR')`, [BIG])), /new row violates row-level security policy/, 'WITH CHECK on the worker')
    const bigProject = (await db.sql<{ id: number }>(`SELECT id FROM project WHERE org_id = $1 LIMIT 1`, [BIG]))[0]!.id
    await assert.rejects(asTenant(DEFAULT, (c) => c.query(`INSERT INTO "task item" (project_id) VALUES ($1)`, [bigProject])), /violates foreign key constraint/, 'a task cannot point at another tenant\'s project: the composite key holds between colocated shards')
  })

  await t.test('a second run does nothing; the CLI says so', async () => {
    const placements = await db.sql(`SELECT logicalrelid::regclass::text AS t, colocationid FROM pg_dist_partition ORDER BY 1`)
    const result = await distribute({ databaseUrl: db.url, config })
    assert.ok(result.steps.every((s) => s.status === 'skipped'), result.steps.map((s) => `${s.id} ${s.status}`).join(', '))
    assert.deepEqual(await db.sql(`SELECT logicalrelid::regclass::text AS t, colocationid FROM pg_dist_partition ORDER BY 1`), placements)
    const program = new Command().exitOverride()
    const out: string[] = []
    let exit = -1
    registerDistribute(program, { stdout: { write: (s: string) => out.push(s) }, stderr: { write: () => true }, env: {} }, (code) => (exit = code))
    await program.parseAsync(['distribute', '--db', db.url, '--config', configFile], { from: 'user' })
    assert.equal(exit, 0)
    assert.match(out.join(''), /citus-distribute:public\.task item: done already/)
    assert.match(out.join(''), /nothing to do: 3 tenant table\(s\) distributed \(colocation group \d+\), 2 reference table\(s\)/)
  })
})

test('distribute the energy-billing example converted on PostgreSQL: sub-tenant scopes folded into the tenant policy, view grants kept, tenants and clients isolated', { skip }, async () => {
  if ('unavailable' in cluster) return
  const db = await cluster.database()
  await db.sql(await readFile(new URL('../examples/energy-billing/schema.sql', import.meta.url), 'utf8'))
  const loader = new pg.Client(db.url)
  await loader.connect()
  const counts = await generate(loader, { scale: 'small' }).finally(() => loader.end())
  const raw = JSON.parse(await readFile(new URL('../examples/energy-billing/tenantize.config.json', import.meta.url), 'utf8')) as { roles: Record<string, unknown> }
  const app = db.role('app')
  const config = parseConfig({ ...raw, target: 'postgres', roles: { ...raw.roles, app } }, 'examples/energy-billing/tenantize.config.json')
  const tables = BILLING_TABLES.map((name) => `public.${quoteIdent(name)}`)
  await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
  await resetReadiness(db.url)
  await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
  const converted = await dataChecksums(db.url, tables)
  const restrictive = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_policy WHERE NOT polpermissive`)
  assert.ok(restrictive[0]!.n > 0, 'converted for PostgreSQL: the scopes are restrictive policies')
  const result = await distribute({ databaseUrl: db.url, config, timeouts: fast })
  assert.ok(result.steps.some((s) => s.id === 'citus-policy:public.customer' && s.status === 'applied'))
  assert.deepEqual([...result.distributed].sort(), BILLING_TABLES.map((n) => `public.${n}`).sort())
  assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM pg_policy WHERE NOT polpermissive OR strpos(pg_get_expr(polqual, polrelid), 'SELECT') > 0`), [{ n: 0 }], 'no restrictive or sub-select policy left')
  assert.deepEqual(await dataChecksums(db.url, tables), converted, 'every row as the conversion left it')
  const customers = await db.sql<{ id: number; client_id: number }>('SELECT id, client_id FROM customer ORDER BY id')
  assert.equal(customers.length, counts['customer'])
  const url = new URL(db.url)
  url.username = app
  const scoped = async (settings: Record<string, string>, sql: string): Promise<number> => {
    const client = new pg.Client(url.toString())
    await client.connect()
    try {
      await client.query('BEGIN')
      for (const [setting, value] of Object.entries(settings)) await client.query(contextSql({ strategy: 'set-local', setting }).statement(value))
      return (await client.query<{ n: number }>(sql)).rows[0]!.n
    } finally {
      await client.query('ROLLBACK').catch(() => undefined)
      await client.end()
    }
  }
  const tenant = config.tenant.default.id
  assert.equal(await scoped({ 'tenantize.tenant_id': tenant }, 'SELECT count(*)::int AS n FROM customer'), customers.length)
  const clientId = customers[0]!.client_id
  assert.equal(await scoped({ 'tenantize.tenant_id': tenant, 'tenantize.client_id': String(clientId) }, 'SELECT count(*)::int AS n FROM customer'), customers.filter((c) => c.client_id === clientId).length, 'the client scope narrows, on the shards')
  assert.equal(await scoped({ 'tenantize.tenant_id': 'b0000000-0000-4000-8000-00000000000b' }, 'SELECT count(*)::int AS n FROM customer'), 0, 'another tenant sees nothing')
  assert.equal(await scoped({}, 'SELECT count(*)::int AS n FROM meter_reading'), 0, 'no context: nothing')
  assert.ok((await scoped({ 'tenantize.tenant_id': tenant }, 'SELECT count(*)::int AS n FROM daily_consumption')) > 0, 'the app keeps its grant on the view over distributed tables')
})
