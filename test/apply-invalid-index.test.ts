import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply, conversionStatus } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)

const SCHEMA = `
  CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE projects (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, name text);
  CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text);
  INSERT INTO clients VALUES (1, 'one'), (2, 'two');
  INSERT INTO projects (client_id, name) SELECT 1 + g % 2, 'p' || g FROM generate_series(1, 20) g;
  INSERT INTO tasks (project_id, title) SELECT 1 + g % 20, 't' || g FROM generate_series(1, 300) g;`

async function configFor(t: TestDatabase, tenantTable = 'clients'): Promise<TenantizeConfig> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    const proposed = proposeConfig(await introspect(client), { tenantTable: { schema: 'public', name: tenantTable }, defaultTenantId: '1', appRole: t.role('app') }).config
    return parseConfig(proposed)
  } finally {
    await client.end()
  }
}

/** A session holding a snapshot: every CREATE INDEX CONCURRENTLY in the database waits for it to end. */
async function snapshotHolder(url: string): Promise<{ release(): Promise<void> }> {
  const holder = new pg.Client(url)
  await holder.connect()
  await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
  await holder.query('SELECT 1')
  let released: Promise<void> | undefined
  return {
    release() {
      released ??= holder.query('COMMIT').then(() => holder.end())
      return released
    },
  }
}

/** Run `sql` (a concurrent index build) the way an interrupted run did: cut short by lock_timeout, leaving an INVALID index. */
async function interruptedBuild(url: string, sql: string): Promise<void> {
  const holder = await snapshotHolder(url)
  const client = new pg.Client(url)
  await client.connect()
  try {
    await client.query(`SET lock_timeout = '100ms'`)
    await assert.rejects(client.query(sql), /lock timeout/)
  } finally {
    await client.end()
    await holder.release()
  }
}

const invalid = (t: TestDatabase): Promise<{ index: string }[]> =>
  t.sql<{ index: string }>(`SELECT indexrelid::regclass::text AS index FROM pg_index WHERE NOT indisvalid ORDER BY 1`)

async function failure(promise: Promise<unknown>): Promise<TenantizeError> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TenantizeError, `expected a TenantizeError, got ${String((error as Error | undefined)?.stack ?? error)}`)
  return error
}

const stepSql = async (t: TestDatabase, config: TenantizeConfig, id: string): Promise<readonly string[]> => {
  const { plan } = await apply({ databaseUrl: t.url, config, phase: 'schema', dryRun: true })
  const step = plan.steps.find((s) => s.id.startsWith(id))
  assert.ok(step !== undefined, `a step ${id}`)
  return step.up
}

test('a concurrent build cut short by lock_timeout is dropped and built again on the retry, not skipped by IF NOT EXISTS', async () => {
  const t = await db.another('retry_rebuild')
  await t.sql(SCHEMA)
  const config = await configFor(t)
  const holder = await snapshotHolder(t.url)
  const events: MigrateEvent[] = []
  try {
    await apply({
      databaseUrl: t.url, config, phase: 'schema', timeouts: { lockTimeoutMs: 200, retryDelayMs: 20, tries: 50 },
      onEvent: (e) => {
        events.push(e)
        // The old transaction ends once the first build has been cut short.
        if (e.event === 'retry') void holder.release()
      },
    })
  } finally {
    await holder.release()
  }
  const repairs = events.filter((e): e is Extract<MigrateEvent, { event: 'repair' }> => e.event === 'repair')
  assert.deepEqual(repairs.map((r) => [r.migration.replace(/^\d+_/, ''), r.index, r.action]), [['tenant-key:public.projects:client_id,id', 'projects_client_id_id_key', 'drop']])
  assert.deepEqual(await invalid(t), [], 'no index is left INVALID')
  assert.deepEqual(await t.sql(`SELECT convalidated FROM pg_constraint WHERE conname = 'tasks_org_id_project_id_tenant_fkey'`), [{ convalidated: true }], 'the composite foreign key found its unique key')
  const logged = await t.sql<{ event: string; error: string }>(`SELECT event, error FROM tenantize.migration_events WHERE event = 'repair'`)
  assert.deepEqual(logged, [{ event: 'repair', error: 'dropped INVALID index projects_client_id_id_key left by an interrupted build' }])
})

test('an INVALID index left by an earlier run is rebuilt by the next apply; a build that stays INVALID is never recorded as done', async () => {
  const t = await db.another('two_runs')
  await t.sql(SCHEMA)
  const config = await configFor(t)
  // The runner gives up while the old transaction lasts: the step fails, the ledger does not list it.
  const holder = await snapshotHolder(t.url)
  let failed: TenantizeError
  try {
    failed = await failure(apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: { lockTimeoutMs: 100, retryDelayMs: 10, tries: 2 } }))
  } finally {
    await holder.release()
  }
  assert.equal(failed.code, 'TZ_LOCK_TIMEOUT', failed.toLines().join('\n'))
  assert.match(failed.object ?? '', /tenant-key:public\.projects:client_id,id/)
  assert.deepEqual(await invalid(t), [{ index: 'projects_client_id_id_key' }])
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tenantize.migrations WHERE name LIKE '%tenant-key%'`), [{ n: 0 }])

  const events: MigrateEvent[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: { lockTimeoutMs: 1000, retryDelayMs: 20, tries: 10 }, onEvent: (e) => events.push(e) })
  assert.ok(events.some((e) => e.event === 'repair' && e.index === 'projects_client_id_id_key' && e.action === 'drop'))
  assert.deepEqual(await invalid(t), [])
  assert.deepEqual(await t.sql(`SELECT convalidated FROM pg_constraint WHERE conname = 'tasks_org_id_project_id_tenant_fkey'`), [{ convalidated: true }])
})

test('an index that another session left INVALID under the name a step builds, and a crash in between: the next apply rebuilds it', async () => {
  const t = await db.another('crash')
  await t.sql(SCHEMA)
  const config = await configFor(t)
  const up = await stepSql(t, config, 'tenant-key:public.projects')
  // A crash just before the step, then the build of that step cut short (as by a crash during it).
  const crash = await failure(apply({ databaseUrl: t.url, config, phase: 'schema', onEvent: (e) => {
    if (e.event === 'start' && e.migration.includes('tenant-key:')) throw new TenantizeError('TZ_MIGRATION_FAILED', 'simulated crash')
  } }))
  assert.match(crash.message, /simulated crash/)
  await interruptedBuild(t.url, up[0]!)
  assert.deepEqual(await invalid(t), [{ index: 'projects_client_id_id_key' }])
  await apply({ databaseUrl: t.url, config, phase: 'schema' })
  assert.deepEqual(await invalid(t), [])
  assert.deepEqual(await t.sql(`SELECT event FROM tenantize.migration_events WHERE event = 'repair'`), [{ event: 'repair' }])
})

test('status shows an INVALID tenant index as absent (exit 1); pre-flight names it with the fix', async () => {
  const t = await db.another('status')
  await t.sql(SCHEMA)
  const config = await configFor(t)
  await apply({ databaseUrl: t.url, config, phase: 'schema' })
  const before = await conversionStatus(t.url)
  assert.deepEqual(before.tables.filter((s) => s.table === 'public.tasks').map((s) => s.tenantIndexPresent), [true])
  // What an earlier version left: the step recorded as done, its index INVALID.
  await t.sql('DROP INDEX tasks_org_id_idx')
  await interruptedBuild(t.url, 'CREATE INDEX CONCURRENTLY tasks_org_id_idx ON tasks (org_id)')
  const after = await conversionStatus(t.url)
  assert.deepEqual(after.tables.filter((s) => s.table === 'public.tasks').map((s) => s.tenantIndexPresent), [false])
  const cli = await runCli(['status', '--db', t.url])
  assert.equal(cli.code, 1, cli.stdout + cli.stderr)
  assert.match(cli.stdout, /\npublic\.tasks +child +org_id +yes +no +no +no +NO\n/i)
  const events: MigrateEvent[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', onEvent: (e) => events.push(e) })
  const check = events.find((e): e is Extract<MigrateEvent, { event: 'preflight' }> => e.event === 'preflight' && e.check === 'invalid-indexes')
  assert.ok(check !== undefined)
  assert.equal(check.status, 'warn')
  assert.match(check.message, /public\.tasks_org_id_idx|tasks_org_id_idx/)
  assert.match(check.fix ?? '', /REINDEX INDEX CONCURRENTLY tasks_org_id_idx/)
})

test('partitioned table: a partition index left INVALID and already attached (by an earlier version) is rebuilt in place, and the parent index becomes valid', async () => {
  const t = await db.another('partitioned')
  await t.sql(`
    CREATE TABLE "Tenants" (slug text PRIMARY KEY);
    CREATE TABLE docs (id int PRIMARY KEY, tenant text NOT NULL REFERENCES "Tenants", title text);
    CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, doc_id int REFERENCES docs, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO "Tenants" VALUES ('acme'), ('globex');
    INSERT INTO docs SELECT g, CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 'd' || g FROM generate_series(1, 50) g;
    INSERT INTO events SELECT g, DATE '2025-06-01' + (g % 400), 1 + g % 50 FROM generate_series(1, 300) g;`)
  const config = await configFor(t, 'Tenants')
  const up = await stepSql(t, config, 'tenant-index:public.events')
  assert.equal(up.length, 5)
  await failure(apply({ databaseUrl: t.url, config, phase: 'schema', onEvent: (e) => {
    if (e.event === 'start' && e.migration.includes('tenant-index:public.events')) throw new TenantizeError('TZ_MIGRATION_FAILED', 'simulated crash')
  } }))
  // What a run before this fix left: the parent index, a partition's build cut short, then attached INVALID.
  await t.sql(up[0]!)
  await interruptedBuild(t.url, up[1]!)
  await t.sql(up[2]!)
  assert.deepEqual(await invalid(t), [{ index: 'events_2025_org_id_idx' }, { index: 'events_org_id_idx' }])
  const events: MigrateEvent[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', onEvent: (e) => events.push(e) })
  assert.ok(events.some((e) => e.event === 'repair' && e.index === 'events_2025_org_id_idx' && e.action === 'reindex'), 'the attached partition index was rebuilt in place')
  assert.deepEqual(await invalid(t), [], 'the partition index and, once it is valid and attached, the parent index are valid')
  assert.deepEqual((await conversionStatus(t.url)).tables.filter((s) => s.table === 'public.events').map((s) => s.tenantIndexPresent), [true])
})
