import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { apply, conversionStatus, resetReadiness, rollback } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { asRole, dataChecksums, schemaFingerprint } from './helpers/conversion.js'

const db = await testDatabase(import.meta.url)
const DEFAULT_ID = '0d5e6f00-0000-4000-8000-000000000001'
const OTHER_ID = '0d5e6f00-0000-4000-8000-000000000002'
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

async function configFor(t: TestDatabase, options: { tenantTable?: { schema: string; name: string }; defaultTenantId?: string; batchSize?: number } = {}): Promise<TenantizeConfig> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    const catalog = await introspect(client)
    const role = `${t.name}_app`
    after(async () => {
      await db.sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined)
    })
    const proposed = proposeConfig(catalog, { defaultTenantId: options.defaultTenantId ?? DEFAULT_ID, appRole: role, tenantColumn: 'org_id', ...(options.tenantTable === undefined ? {} : { tenantTable: options.tenantTable }) }).config
    return parseConfig({ ...proposed, batchSize: options.batchSize ?? 5000 })
  } finally {
    await client.end()
  }
}

/** An app of the old kind that keeps writing (no tenant column known) until stopped. */
function oldAppWriter(url: string, sql: (i: number) => string): { stop(): Promise<number> } {
  let running = true
  let written = 0
  const done = (async () => {
    const client = new pg.Client(url)
    await client.connect()
    try {
      while (running) {
        await client.query(sql(written))
        written++
      }
    } finally {
      await client.end()
    }
  })()
  return {
    async stop() {
      running = false
      await done
      return written
    },
  }
}

test('create mode: apply while the old app writes, isolation as the app role, rollback leaves schema and data as they were', async () => {
  const t = await db.another('apply_create')
  await t.sql(await readFile('test/fixtures/plan/shop.sql', 'utf8'))
  await t.sql(`INSERT INTO currencies VALUES ('EUR', 'Euro');
    INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', 'user ' || g FROM generate_series(1, 200) g;
    INSERT INTO "Products" ("SKU", currency) SELECT 'sku-' || g, 'EUR' FROM generate_series(1, 50) g;
    INSERT INTO billing.invoice (user_id, number) SELECT 1 + g % 200, 'INV-' || g FROM generate_series(1, 1000) g;
    INSERT INTO billing."invoice line" (invoice_id, line_no, product_id, qty) SELECT 1 + g % 1000, g, 1 + g % 50, g FROM generate_series(1, 5000) g;`)
  const tables = ['public.users', 'public."Products"', 'public.currencies', 'billing.invoice', 'billing."invoice line"']
  const fingerprint = await schemaFingerprint(t.url)
  const startData = await dataChecksums(t.url, tables)
  const config = await configFor(t)
  const app = config.roles.app
  const filenodes = await t.sql<{ relname: string; relfilenode: string }>(`SELECT relname, relfilenode::text FROM pg_class WHERE relname IN ('users', 'Products', 'invoice', 'invoice line') ORDER BY relname`)

  const writer = oldAppWriter(t.url, (i) => `INSERT INTO billing.invoice (user_id, number) VALUES (${1 + (i % 200)}, 'W-${i}')`)
  const events: MigrateEvent[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast, onEvent: (e) => events.push(e) })
  const written = await writer.stop()
  assert.ok(written > 0, 'the old app kept writing during the schema phase')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM billing.invoice WHERE number LIKE 'W-%'`), [{ n: written }], 'no write was lost')
  assert.deepEqual(await t.sql(`SELECT (SELECT count(*) FROM billing.invoice WHERE org_id IS NULL) + (SELECT count(*) FROM users WHERE org_id IS NULL) AS n`), [{ n: '0' }])
  assert.deepEqual(await t.sql(`SELECT relname, relfilenode::text FROM pg_class WHERE relname IN ('users', 'Products', 'invoice', 'invoice line') ORDER BY relname`), filenodes, 'no table was rewritten')
  assert.ok(events.some((e) => e.event === 'finish' && e.migration.includes('tenant-unique:public.users:users_email_key')))

  // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.

  await resetReadiness(t.url)

  await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  const status = await conversionStatus(t.url)
  assert.ok(status.steps.every((s) => s.applied))
  assert.deepEqual(status.tables.filter((s) => s.class !== 'global').map((s) => [s.table, s.tenantNotNull, s.rlsEnabled, s.rlsForced, s.policyPresent, s.tenantIndexPresent]), [
    ['billing.invoice', true, true, true, true, true],
    ['billing.invoice line', true, true, true, true, true],
    ['public.Products', true, true, true, true, true],
    ['public.organization_members', true, true, true, true, true],
    ['public.organizations', true, true, true, true, true],
    ['public.users', true, true, true, true, true],
  ])
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM organization_members WHERE org_id = $1`, [DEFAULT_ID]), [{ n: 200 }], 'every existing user is a member of the default tenant')

  // A second tenant, made by an operator.
  await t.sql(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'other', 'Other')`, [OTHER_ID])
  const count = (c: pg.Client, table: string): Promise<number> => c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`).then((r) => Number(r.rows[0]!.n))
  await asRole(t.url, app, null, async (c) => {
    for (const table of tables.filter((x) => x !== 'public.currencies')) assert.equal(await count(c, table), 0, `no context sees nothing in ${table}`)
  })
  await asRole(t.url, app, '', async (c) => assert.equal(await count(c, 'public.users'), 0, 'empty context sees nothing'))
  await asRole(t.url, app, 'not-a-uuid', async (c) => assert.rejects(count(c, 'public.users'), /invalid input syntax for type uuid/))
  await asRole(t.url, app, DEFAULT_ID, async (c) => {
    assert.equal(await count(c, 'public.users'), 200)
    assert.equal(await count(c, 'billing.invoice'), 1000 + written)
    assert.equal(await count(c, 'public.organizations'), 1)
  })
  await asRole(t.url, app, OTHER_ID, async (c) => {
    assert.equal(await count(c, 'public.users'), 0)
    assert.equal(await count(c, 'public.currencies'), 1, 'global tables are readable')
    const inserted = await c.query<{ org_id: string }>(`INSERT INTO users (email) VALUES ('u1@example.com') RETURNING org_id`)
    assert.deepEqual(inserted.rows, [{ org_id: OTHER_ID }], 'the same email in another tenant is fine; the tenant comes from the context')
    assert.equal((await c.query(`UPDATE users SET name = 'x' WHERE email = 'u2@example.com'`)).rowCount, 0)
    assert.equal((await c.query(`DELETE FROM billing.invoice`)).rowCount, 0)
    await c.query('SAVEPOINT s')
    await assert.rejects(c.query(`INSERT INTO users (email, org_id) VALUES ('x@example.com', $1)`, [DEFAULT_ID]), /new row violates row-level security policy/)
    await c.query('ROLLBACK TO s')
    await c.query(`INSERT INTO billing.invoice (user_id, number) VALUES (1, 'cross')`)
    await assert.rejects(c.query('SET CONSTRAINTS ALL IMMEDIATE'), /violates foreign key constraint "invoice_org_id_user_id_tenant_fkey"/, 'cannot reference another tenant\'s user (checked at commit)')
  })
  await asRole(t.url, app, OTHER_ID, async (c) => assert.rejects(c.query('SET row_security = off; SELECT * FROM users'), /query would be affected by row-level security policy/))

  // Rollback: refuses while another tenant owns rows, then restores everything.
  await t.sql(`INSERT INTO users (email, org_id) VALUES ('other@example.com', $1)`, [OTHER_ID])
  const refused = await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(refused instanceof TenantizeError && refused.code === 'TZ_PREFLIGHT', String(refused))
  assert.match(refused.toLines().join('\n'), /public\.users: holds rows of 2 tenants/)
  await t.sql(`DELETE FROM users WHERE org_id = $1`, [OTHER_ID])
  await t.sql(`DELETE FROM organizations WHERE id = $1`, [OTHER_ID])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.equal(await schemaFingerprint(t.url), fingerprint, 'schema identical to the start')
  assert.deepEqual(await dataChecksums(t.url, tables, { 'billing.invoice': `WHERE number NOT LIKE 'W-%'` }), startData, 'every row as it was at the start (plus the old app\'s writes)')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM billing.invoice WHERE number LIKE 'W-%'`), [{ n: written }])
  assert.deepEqual(await t.sql(`SELECT to_regclass('public.organizations') AS o, to_regprocedure('tenantize.current_tenant_id()') AS f`), [{ o: null, f: null }])
  assert.deepEqual((await conversionStatus(t.url)).steps, [])
})

test('derive mode: an existing tenant table, children backfilled in batches (resumable) while writes go on, crossing rows refused, merge guarded', async () => {
  const t = await db.another('apply_derive')
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE projects (id bigserial PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients, name text);
    CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, title text);
    CREATE TABLE comments (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), task_id bigint NOT NULL REFERENCES tasks, body text);
    INSERT INTO clients VALUES (1, 'one'), (2, 'two');
    INSERT INTO projects (client_id, name) SELECT 1 + g % 2, 'p' || g FROM generate_series(1, 20) g;
    INSERT INTO tasks (project_id, title) SELECT 1 + g % 20, 't' || g FROM generate_series(1, 3000) g;
    INSERT INTO comments (task_id, body) SELECT 1 + g % 3000, 'c' || g FROM generate_series(1, 2000) g;`)
  const fingerprint = await schemaFingerprint(t.url)
  const config = await configFor(t, { tenantTable: { schema: 'public', name: 'clients' }, defaultTenantId: '1', batchSize: 400 })
  assert.equal(config.tenant.idType, 'bigint')
  assert.deepEqual(Object.fromEntries(Object.entries(config.tables).map(([k, v]) => [k, [v.class, v.column ?? v.path?.parent ?? null]])), {
    'public.clients': ['root', null], 'public.comments': ['child', 'public.tasks'], 'public.projects': ['direct', 'client_id'], 'public.tasks': ['child', 'public.projects'],
  })

  // Crash in the middle of the tasks backfill: the next run resumes from the last finished batch (fixed
  // batches of 400: sized by time, the second one could be smaller).
  let progress = 0
  const crash = await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast, batchPauseMs: 0, batchTargetMs: 0, onEvent: (e) => {
    if (e.event === 'progress' && ++progress === 3) throw new Error('simulated crash')
  } }).then(() => undefined, (e: unknown) => e)
  assert.match(String(crash), /simulated crash/)
  const saved = await t.sql<{ rows_done: string }>(`SELECT rows_done FROM tenantize.backfill_progress`)
  assert.equal(saved.length, 1)
  assert.ok(Number(saved[0]!.rows_done) >= 800)

  const writer = oldAppWriter(t.url, (i) => `INSERT INTO tasks (project_id, title) VALUES (${1 + (i % 20)}, 'w${i}')`)
  const events: MigrateEvent[] = []
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast, batchPauseMs: 1, onEvent: (e) => events.push(e) })
  await writer.stop()
  const firstProgress = events.find((e): e is Extract<MigrateEvent, { event: 'progress' }> => e.event === 'progress')!
  assert.ok(firstProgress.done > 800, `resumed after the saved batches (first progress at ${firstProgress.done})`)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.org_id IS DISTINCT FROM p.client_id`), [{ n: 0 }])
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM comments c JOIN tasks t ON t.id = c.task_id WHERE c.org_id IS DISTINCT FROM t.org_id`), [{ n: 0 }])
  assert.deepEqual(await t.sql(`SELECT attname, attnotnull FROM pg_attribute WHERE attrelid IN ('tasks'::regclass, 'comments'::regclass) AND attname = 'org_id' ORDER BY attrelid`), [{ attname: 'org_id', attnotnull: true }, { attname: 'org_id', attnotnull: true }])

  // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.

  await resetReadiness(t.url)

  await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  await asRole(t.url, config.roles.app, '2', async (c) => {
    const { rows } = await c.query<{ n: string }>('SELECT count(*) AS n FROM tasks')
    const expected = await t.sql<{ n: string }>(`SELECT count(*) AS n FROM tasks WHERE org_id = 2`)
    assert.equal(rows[0]!.n, expected[0]!.n)
    assert.equal((await c.query(`UPDATE comments SET body = 'x' WHERE org_id = 1`)).rowCount, 0)
  })

  await rollback({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT relrowsecurity FROM pg_class WHERE relname = 'tasks'`), [{ relrowsecurity: false }], 'the emergency path turns RLS off and keeps the data model')
  // Two tenants own rows, but every tenant column here was derived from clients: rolling back merges nothing.
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.equal(await schemaFingerprint(t.url), fingerprint)
})

test('derive mode: rows whose two foreign keys point at different tenants stop the step with the count; fixed, apply goes on', async () => {
  const t = await db.another('apply_cross')
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients);
    CREATE TABLE links (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects, other_project_id bigint REFERENCES projects);
    INSERT INTO clients VALUES (1), (2);
    INSERT INTO projects VALUES (10, 1), (20, 2);
    INSERT INTO links VALUES (1, 10, 10), (2, 10, 20), (3, 20, 10), (4, 20, NULL);`)
  const config = await configFor(t, { tenantTable: { schema: 'public', name: 'clients' }, defaultTenantId: '1' })
  const failed = await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(failed instanceof TenantizeError, String(failed))
  // The data check finds them before the first step runs.
  assert.equal(failed.code, 'TZ_PREFLIGHT')
  assert.match(failed.toLines().join('\n'), /public\.links: 2 row\(s\) break: .*links_other_project_id_fkey/)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'links_org_id_other_project_id_tenant_fkey'`), [{ n: 0 }])
  await t.sql(`UPDATE links SET other_project_id = NULL WHERE id IN (2, 3)`)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT convalidated FROM pg_constraint WHERE conname = 'links_org_id_other_project_id_tenant_fkey'`), [{ convalidated: true }])
})

test('text tenant ids, a composite-key child backfilled in batches, a foreign-key cycle and a partitioned table: apply, isolate, roll back', async () => {
  const t = await db.another('apply_shapes')
  await t.sql(`
    CREATE TABLE "Tenants" (slug text PRIMARY KEY);
    CREATE TABLE docs (id int PRIMARY KEY, tenant text NOT NULL REFERENCES "Tenants", title text);
    CREATE TABLE doc_versions (doc_id int NOT NULL REFERENCES docs, version int NOT NULL, body text, PRIMARY KEY (doc_id, version));
    CREATE TABLE a (id int PRIMARY KEY, b_id int);
    CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);
    ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;
    CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, doc_id int REFERENCES docs, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO "Tenants" VALUES ('acme'), ('globex');
    INSERT INTO docs SELECT g, CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 'd' || g FROM generate_series(1, 50) g;
    INSERT INTO doc_versions SELECT 1 + g % 50, g, 'v' || g FROM generate_series(1, 1200) g;
    INSERT INTO events SELECT g, DATE '2025-06-01' + (g % 400), 1 + g % 50 FROM generate_series(1, 300) g;`)
  const fingerprint = await schemaFingerprint(t.url)
  const config = await configFor(t, { tenantTable: { schema: 'public', name: 'Tenants' }, defaultTenantId: 'acme', batchSize: 100 })
  assert.equal(config.tenant.idType, 'text')
  const classes = Object.fromEntries(Object.entries(config.tables).map(([k, v]) => [k, v.class]))
  assert.deepEqual(classes, { 'public.Tenants': 'root', 'public.a': 'direct', 'public.b': 'direct', 'public.doc_versions': 'child', 'public.docs': 'direct', 'public.events': 'child' })
  const events: MigrateEvent[] = []
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, batchPauseMs: 0, batchTargetMs: 0, onEvent: (e) => events.push(e) })
  assert.ok(events.filter((e) => e.event === 'progress' && e.migration.includes('doc_versions')).length >= 12, 'the composite-key child was filled in batches of 100')
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM doc_versions v JOIN docs d ON d.id = v.doc_id WHERE v.org_id IS DISTINCT FROM d.tenant`), [{ n: 0 }])
  assert.deepEqual(await t.sql(`SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname LIKE 'events%' AND relkind IN ('r', 'p') ORDER BY relname`), [
    { relname: 'events', relrowsecurity: true, relforcerowsecurity: true },
    { relname: 'events_2025', relrowsecurity: true, relforcerowsecurity: true },
    { relname: 'events_2026', relrowsecurity: true, relforcerowsecurity: true },
  ])
  await asRole(t.url, config.roles.app, 'globex', async (c) => {
    const n = async (sql: string): Promise<number> => Number((await c.query<{ n: string }>(sql)).rows[0]!.n)
    assert.equal(await n('SELECT count(*) AS n FROM docs'), 25)
    assert.equal(await n(`SELECT count(*) AS n FROM doc_versions`), Number((await t.sql<{ n: string }>(`SELECT count(*) AS n FROM doc_versions WHERE org_id = 'globex'`))[0]!.n))
    assert.equal(await n(`SELECT count(*) AS n FROM events WHERE org_id = 'acme'`), 0)
    // Partitions are granted like their parent, and read directly they are filtered by their own policy.
    assert.equal(await n(`SELECT count(*) AS n FROM events_2025 WHERE org_id <> 'globex'`), 0, 'partitions cannot be read around the parent')
  })
  await t.sql(`REVOKE SELECT ON events_2025 FROM "${config.roles.app}"`)
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
  assert.equal(await schemaFingerprint(t.url), fingerprint)
})

test('sub-tenant scopes: a RESTRICTIVE policy narrows the tenant to one client when the client context is set', async () => {
  const t = await db.another('apply_scopes')
  await t.sql(`
    CREATE TABLE client (id int PRIMARY KEY, name text);
    CREATE TABLE customer (id int PRIMARY KEY, client_id int NOT NULL REFERENCES client, name text);
    INSERT INTO client VALUES (1, 'one'), (2, 'two');
    INSERT INTO customer SELECT g, 1 + g % 2, 'c' || g FROM generate_series(1, 10) g;`)
  const base = await configFor(t)
  const config = parseConfig({ ...base, scopes: [{ name: 'client', setting: 'tenantize.client_id', idType: 'bigint', tables: { 'public.client': 'id', 'public.customer': 'client_id' } }] })
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const app = config.roles.app
  await asRole(t.url, app, DEFAULT_ID, async (c) => {
    assert.deepEqual((await c.query('SELECT count(*)::int AS n FROM customer')).rows, [{ n: 10 }], 'no client context: the whole tenant')
    await c.query(`SELECT set_config('tenantize.client_id', '2', true)`)
    assert.deepEqual((await c.query('SELECT count(*)::int AS n FROM customer')).rows, [{ n: 5 }])
    assert.deepEqual((await c.query('SELECT id FROM client')).rows, [{ id: 2 }])
    await assert.rejects(c.query(`INSERT INTO customer (id, client_id) VALUES (99, 1)`), /violates row-level security policy/)
  })
  await asRole(t.url, app, null, async (c) => {
    await c.query(`SELECT set_config('tenantize.client_id', '2', true)`)
    assert.deepEqual((await c.query('SELECT count(*)::int AS n FROM customer')).rows, [{ n: 0 }], 'a client context without a tenant sees nothing')
  })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_policy`), [{ n: 0 }])
  assert.deepEqual(await t.sql(`SELECT to_regprocedure('tenantize.current_client_id()') AS f`), [{ f: null }])
})
