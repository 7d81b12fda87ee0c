import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply, resetReadiness } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { checkData, DataCheckError, runDataCheck, type DataCheckEvent, type Finding } from '../src/datacheck/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import type { Plan } from '../src/plan/steps.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { schemaFingerprint } from './helpers/conversion.js'

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** init's proposal for the database as it is (an existing tenant table when given), with a role dropped after the file. */
async function configFor(t: TestDatabase, options: { tenantTable?: string; defaultTenantId?: string; edit?: (c: TenantizeConfig) => unknown } = {}): Promise<TenantizeConfig> {
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined))
  const catalog = await withPg(t.url, (c) => introspect(c))
  const tenantTable = options.tenantTable === undefined ? undefined : { schema: 'public', name: options.tenantTable }
  const config = parseConfig(proposeConfig(catalog, { defaultTenantId: options.defaultTenantId ?? '1', appRole: role, ...(tenantTable === undefined ? {} : { tenantTable }) }).config)
  return options.edit === undefined ? config : parseConfig(options.edit(config))
}

async function planOf(t: TestDatabase, config: TenantizeConfig): Promise<Plan> {
  return withPg(t.url, async (c) => planConversion(await introspect(c), config))
}

const brief = (findings: readonly Finding[]): [string, number, readonly string[]][] => findings.map((f) => [f.id, f.count, f.samples])

/**
 * apply (and its dry run) refuses before the first step with every finding at once: nothing changes —
 * no ledger, no schema tenantize, the catalog as it was.
 */
async function refusedUpFront(t: TestDatabase, config: TenantizeConfig): Promise<DataCheckError> {
  const before = await schemaFingerprint(t.url)
  const dry = await apply({ databaseUrl: t.url, config, phase: 'all', dryRun: true, timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(dry instanceof DataCheckError, `the dry run reports the findings too: ${String(dry)}`)
  const refused = await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(refused instanceof DataCheckError, String(refused))
  assert.deepEqual(brief(refused.findings), brief(dry.findings))
  assert.equal(refused.code, 'TZ_PREFLIGHT')
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') AS ns, to_regclass('tenantize.migrations') AS ledger`), [{ ns: null, ledger: null }], 'nothing was created: no ledger, no schema')
  assert.equal(await schemaFingerprint(t.url), before, 'the catalog is as it was')
  return refused
}

/** The fixed data: no finding, and apply runs every step. */
async function cleanAndApplied(t: TestDatabase, config: TenantizeConfig): Promise<void> {
  const result = await runDataCheck(t.url, await planOf(t, config))
  assert.deepEqual(brief(result.findings), [])
  const done = await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.equal(done.migrations.length, done.plan.steps.length)
}

test('a child whose foreign key is NULL on some rows: refused before step 1 with the rows; given a parent, apply completes', async () => {
  const t = await db.another('dc_orphans')
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects, title text);
    INSERT INTO clients VALUES (1), (2);
    INSERT INTO projects VALUES (10, 1), (20, 2);
    INSERT INTO tasks SELECT g, CASE WHEN g IN (3, 7, 8) THEN NULL ELSE 10 * (1 + g % 2) END, 't' || g FROM generate_series(1, 12) g;`)
  const config = await configFor(t, { tenantTable: 'clients' })
  assert.equal(config.tables['public.tasks']?.class, 'child')
  const refused = await refusedUpFront(t, config)
  assert.deepEqual(brief(refused.findings), [['orphans:public.tasks', 3, ['id=3: project_id=NULL', 'id=7: project_id=NULL', 'id=8: project_id=NULL']]])
  const f = refused.findings[0]!
  assert.equal(f.table, 'public.tasks')
  assert.equal(f.kind, 'rows')
  assert.match(f.fixes.at(-1)!, /^give those rows a parent, or delete them: SELECT \* FROM "public"\."tasks" AS t0 WHERE t0\."project_id" IS NULL OR NOT EXISTS/)
  const lines = refused.toLines()
  assert.equal(lines[0], 'TZ_PREFLIGHT data check: the data check found 1 problem(s) that would stop the conversion part-way; nothing was changed — fix: fix each one (or change the config as shown), then run apply again; tenantize plan shows them too')
  assert.match(lines[1]!, /^TZ_PREFLIGHT public\.tasks: 3 row\(s\) break: every row of public\.tasks has a public\.projects row \(project_id → id\) to take its tenant from: the foreign key is neither NULL nor dangling \(e\.g\. id=3: project_id=NULL; id=7: project_id=NULL; id=8: project_id=NULL\) — fix: classify public\.tasks as global/)

  await t.sql(`UPDATE tasks SET project_id = 20 WHERE project_id IS NULL`)
  await cleanAndApplied(t, config)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.org_id IS DISTINCT FROM p.client_id`), [{ n: 0 }])
})

test('hand-tenanted: a task whose tenant_id differs from its project\'s is found before step 1 (composite key crossing); corrected, apply completes', async () => {
  const t = await db.another('dc_crossing')
  await t.sql(`
    CREATE TABLE tenants (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects, tenant_id bigint REFERENCES tenants);
    INSERT INTO tenants VALUES (1), (2);
    INSERT INTO projects VALUES (10, 1), (20, 2);
    INSERT INTO tasks VALUES (1, 10, 1), (2, 10, 2), (3, 20, 2), (4, 20, 1), (5, NULL, 1);`)
  const config = await configFor(t, { tenantTable: 'tenants', edit: (c) => ({ ...c, tenant: { ...c.tenant, column: 'tenant_id' } }) })
  assert.deepEqual([config.tables['public.projects']?.column, config.tables['public.tasks']?.column], ['tenant_id', 'tenant_id'])
  const plan = await planOf(t, config)
  const firstCrossing = plan.steps.findIndex((s) => s.id === 'composite-fk:public.tasks:tasks_project_id_fkey')
  assert.ok(firstCrossing > 3, 'without the check, apply would commit several steps before this one')
  const refused = await refusedUpFront(t, config)
  assert.deepEqual(brief(refused.findings), [['crossing:public.tasks:tasks_project_id_fkey', 2, ['id=2: project_id=10', 'id=4: project_id=20']]])
  assert.equal(refused.findings[0]!.fixes.find((f) => f.startsWith('if the referenced rows')), `if the referenced rows' tenant is right, correct the rows' tenant: UPDATE "public"."tasks" AS t0 SET "tenant_id" = t1."tenant_id" FROM "public"."projects" AS t1 WHERE t1."id" = t0."project_id" AND t0."tenant_id" <> t1."tenant_id"`)

  // The fix the finding shows, run as shown.
  await t.sql(`UPDATE "public"."tasks" AS t0 SET "tenant_id" = t1."tenant_id" FROM "public"."projects" AS t1 WHERE t1."id" = t0."project_id" AND t0."tenant_id" <> t1."tenant_id"`)
  await cleanAndApplied(t, config)
  assert.deepEqual(await t.sql(`SELECT convalidated FROM pg_constraint WHERE conname = 'tasks_tenant_id_project_id_tenant_fkey'`), [{ convalidated: true }])
})

test('an existing tenant column with NULLs and values that are no tenant: both found at once; fixed, apply completes', async () => {
  const t = await db.another('dc_tenant_column')
  await t.sql(`
    CREATE TABLE tenants (id bigint PRIMARY KEY);
    CREATE TABLE notes (id int PRIMARY KEY, tenant_id bigint, body text);
    INSERT INTO tenants VALUES (1), (2);
    INSERT INTO notes VALUES (1, 1, 'a'), (2, NULL, 'b'), (3, 99, 'c'), (4, 2, 'd'), (5, 98, 'e');`)
  const config = await configFor(t, { tenantTable: 'tenants', edit: (c) => ({ ...c, tables: { ...c.tables, 'public.notes': { ...c.tables['public.notes']!, class: 'direct', column: 'tenant_id' } } }) })
  const refused = await refusedUpFront(t, config)
  assert.deepEqual(brief(refused.findings), [
    ['null-tenant:public.notes', 1, ['id=2']],
    ['foreign-tenant:public.notes', 2, ['id=3: tenant_id=99', 'id=5: tenant_id=98']],
  ])
  await t.sql(`UPDATE notes SET tenant_id = 1 WHERE tenant_id IS NULL OR tenant_id > 2`)
  await cleanAndApplied(t, config)
})

test('the default tenant must be a row of the existing tenant table: an empty table says so, a missing id says so', async () => {
  const t = await db.another('dc_default')
  await t.sql(`
    CREATE TABLE tenants (id bigint PRIMARY KEY);
    CREATE TABLE settings (id int PRIMARY KEY, value text);
    INSERT INTO settings VALUES (1, 'x');`)
  const config = await configFor(t, { tenantTable: 'tenants', defaultTenantId: '5' })
  const empty = await refusedUpFront(t, config)
  assert.deepEqual(brief(empty.findings), [['default-tenant:public.tenants', 1, ['public.tenants is empty: there is no tenant yet']]])
  await t.sql(`INSERT INTO tenants VALUES (4)`)
  const missing = await refusedUpFront(t, config)
  assert.deepEqual(brief(missing.findings), [['default-tenant:public.tenants', 1, ['no row of public.tenants has id = tenant.default.id']]])
  await t.sql(`INSERT INTO tenants VALUES (5)`)
  await cleanAndApplied(t, config)
})

test('privileges: a role that does not own a table and may not create in its schema or the database is refused up front', async () => {
  const t = await db.another('dc_privileges')
  const runner = `${t.name}_runner`
  after(() => db.sql(`DROP ROLE IF EXISTS "${runner}"`).catch(() => undefined))
  await t.sql(`
    CREATE ROLE "${runner}" LOGIN PASSWORD 'tz-runner-pw';
    CREATE SCHEMA app;
    GRANT USAGE ON SCHEMA app TO "${runner}";
    CREATE TABLE app.users (id bigint PRIMARY KEY, email text);
    CREATE TABLE app.notes (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES app.users, body text);
    ALTER TABLE app.users OWNER TO "${runner}";
    INSERT INTO app.users VALUES (1, 'a'), (2, 'b');
    INSERT INTO app.notes VALUES (1, 1, 'x');`)
  const config = await configFor(t, { defaultTenantId: '0d5e6f00-0000-4000-8000-000000000001', edit: (c) => ({ ...c, tenant: { ...c.tenant, membership: null } }) })
  const url = new URL(t.url)
  url.username = runner
  url.password = 'tz-runner-pw' // the embedded server asks for one over TCP
  const plan = await planOf(t, config)
  const findings = (await runDataCheck(url.toString(), plan)).findings
  assert.deepEqual(findings.map((f) => [f.id, f.kind, f.table, f.samples]), [
    ['privilege:create-on-database', 'privilege', null, [`${runner} may not create schemas in ${t.name}`]],
    ['privilege:createrole', 'privilege', null, [`${runner} has neither CREATEROLE nor SUPERUSER`]],
    ['privilege:create-on-schema:app', 'privilege', null, [`${runner} may not create objects in schema app, where the plan works on app.notes, app.users`]],
    ['privilege:owner:app.notes', 'privilege', 'app.notes', [`owned by postgres, not by ${runner}`]],
    ['privilege:create-on-schema:public', 'privilege', null, [`${runner} may not create objects in schema public, where the plan works on public.organizations`]],
  ].sort((a, b) => findings.findIndex((f) => f.id === a[0]) - findings.findIndex((f) => f.id === b[0])))
  assert.equal(findings.length, 5)
  const before = await schemaFingerprint(t.url)
  const refused = await apply({ databaseUrl: url.toString(), config, phase: 'all', timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(refused instanceof DataCheckError, String(refused))
  assert.equal(refused.findings.length, 5)
  assert.equal(await schemaFingerprint(t.url), before)

  // Granted what the findings say, the same role has nothing left to fix.
  await t.sql(`GRANT CREATE ON DATABASE "${t.name}" TO "${runner}"; GRANT CREATE ON SCHEMA app, public TO "${runner}"; ALTER TABLE app.notes OWNER TO "${runner}"; ALTER ROLE "${runner}" CREATEROLE`)
  assert.deepEqual(brief((await runDataCheck(url.toString(), plan)).findings), [])
})

test('an INVALID index left on a tenant table by a failed concurrent build is a finding; dropped, apply completes', async () => {
  const t = await db.another('dc_invalid_index')
  await t.sql(`
    CREATE TABLE users (id bigint PRIMARY KEY, email text);
    INSERT INTO users VALUES (1, 'a'), (2, 'a');`)
  await assert.rejects(t.sql(`CREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email)`), /could not create unique index/)
  const config = await configFor(t, { defaultTenantId: '0d5e6f00-0000-4000-8000-000000000001', edit: (c) => ({ ...c, tenant: { ...c.tenant, membership: null } }) })
  const refused = await refusedUpFront(t, config)
  assert.deepEqual(refused.findings.map((f) => [f.id, f.kind, f.table, f.samples, f.fixes[0]]), [['invalid-index:public.users_email_idx', 'index', 'public.users', ['users_email_idx'], 'DROP INDEX CONCURRENTLY "public"."users_email_idx"']])
  await t.sql(`DROP INDEX CONCURRENTLY "public"."users_email_idx"`)
  await cleanAndApplied(t, config)
})

test('a resumed run checks only the steps still to run', async () => {
  const t = await db.another('dc_resume')
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects);
    INSERT INTO clients VALUES (1);
    INSERT INTO projects VALUES (10, 1);
    INSERT INTO tasks VALUES (1, 10), (2, 10);`)
  const config = await configFor(t, { tenantTable: 'clients' })
  const schema = await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast })
  assert.ok(schema.migrations.some((m) => m.includes('backfill:public.tasks')))
  // A row loses its parent after its tenant was filled: the backfill's precondition no longer holds, but that step is done.
  await t.sql(`UPDATE tasks SET project_id = NULL WHERE id = 2`)
  const all = await runDataCheck(t.url, schema.plan)
  assert.deepEqual(brief(all.findings), [['orphans:public.tasks', 1, ['id=2: project_id=NULL']]], 'checking every step of the plan would find it')
  // The app that sets the tenant context is deployed: a new readiness window.
  await resetReadiness(t.url)
  const done = await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  assert.ok(done.migrations.length > 0 && done.migrations.every((m) => !m.includes('backfill')))
})

test('each check runs read-only in one snapshot, under statement_timeout; a check that times out is a finding, not a pass', async () => {
  const t = await db.another('dc_timeout')
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects);
    INSERT INTO clients VALUES (1);
    INSERT INTO projects VALUES (10, 1);
    INSERT INTO tasks SELECT g, 10 FROM generate_series(1, 10) g;`)
  const config = await configFor(t, { tenantTable: 'clients' })
  const plan = await planOf(t, config)
  const slow: Plan = {
    ...plan,
    steps: plan.steps.map((s) => (s.id === 'backfill:public.tasks' ? { ...s, preconditions: s.preconditions!.map((p) => ({ ...p, countSql: `SELECT count(*)::bigint AS n FROM "public"."tasks" AS t0 WHERE pg_sleep(0.2) IS NULL` })) } : s)),
  }
  const events: DataCheckEvent[] = []
  const result = await withPg(t.url, (c) => checkData(c, slow, { statementTimeoutMs: 100, onEvent: (e) => events.push(e) }))
  assert.deepEqual(result.findings.map((f) => [f.id, f.kind, f.samples]), [['orphans:public.tasks', 'unchecked', ['no answer within statement_timeout 100 ms']]])
  assert.deepEqual(events.map((e) => [e.event, e.id, e.index, e.total]), [['data-check-start', 'orphans:public.tasks', 1, 1], ['data-check-done', 'orphans:public.tasks', 1, 1]])
  // Nothing may write: a precondition that tried would fail inside the READ ONLY transaction.
  const writing: Plan = { ...plan, steps: plan.steps.map((s) => (s.id === 'backfill:public.tasks' ? { ...s, preconditions: s.preconditions!.map((p) => ({ ...p, countSql: `WITH d AS (DELETE FROM tasks RETURNING 1) SELECT count(*)::bigint AS n FROM d` })) } : s)) }
  const refused = await withPg(t.url, (c) => checkData(c, writing))
  assert.match(refused.findings[0]!.samples[0]!, /^25006: cannot execute \w+ in a read-only transaction$/)
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM tasks`), [{ n: 10 }])
  // The session is left as it was: no open transaction, no statement_timeout.
  await withPg(t.url, async (c) => {
    await checkData(c, plan, { statementTimeoutMs: 1234 })
    assert.deepEqual((await c.query(`SELECT current_setting('statement_timeout') AS s, now() = statement_timestamp() AS outside`)).rows, [{ s: '0', outside: true }])
  })
})

test('reached backwards (the tenant table references it): a row shared by several tenants is found up front; unshared, apply completes', async () => {
  const t = await db.another('dc_shared')
  await t.sql(`
    CREATE TABLE plans (id int PRIMARY KEY, name text);
    CREATE TABLE tenants (id bigint PRIMARY KEY, plan_id int REFERENCES plans);
    INSERT INTO plans VALUES (1, 'free'), (2, 'pro'), (3, 'unused');
    INSERT INTO tenants VALUES (1, 1), (2, 1), (3, 2);`)
  const config = await configFor(t, {
    tenantTable: 'tenants',
    edit: (c) => ({ ...c, tables: { ...c.tables, 'public.plans': { class: 'child', reason: '', path: { columns: ['id'], parent: 'public.tenants', parentColumns: ['plan_id'], reverse: true, via: [] }, alternatives: [], keepGlobalUnique: [] } } }),
  })
  const refused = await refusedUpFront(t, config)
  assert.deepEqual(brief(refused.findings), [['shared:public.plans', 1, ['id=1']]])
  assert.match(refused.findings[0]!.fixes[0]!, /^classify public\.plans as global in the config/)
  await t.sql(`INSERT INTO plans VALUES (4, 'free'); UPDATE tenants SET plan_id = 4 WHERE id = 2`)
  await cleanAndApplied(t, config)
  assert.deepEqual(await t.sql(`SELECT id, org_id::int AS org_id FROM plans ORDER BY id`), [{ id: 1, org_id: 1 }, { id: 2, org_id: 3 }, { id: 3, org_id: 1 }, { id: 4, org_id: 2 }])
})

test('the counts run in batches: a check that fails mid-batch is unchecked, the checks before and after it are counted as alone', async () => {
  const t = await db.another('dc_batch')
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint REFERENCES clients);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects);
    CREATE TABLE notes (id bigint PRIMARY KEY, task_id bigint REFERENCES tasks);
    INSERT INTO clients VALUES (1);
    INSERT INTO projects VALUES (10, 1), (11, NULL);
    INSERT INTO tasks VALUES (1, 10), (2, 11), (3, NULL);
    INSERT INTO notes VALUES (1, 1), (2, NULL);`)
  const config = await configFor(t, { tenantTable: 'clients' })
  const plan = await planOf(t, config)
  const events: DataCheckEvent[] = []
  const whole = await withPg(t.url, (c) => checkData(c, plan, { onEvent: (e) => events.push(e) }))
  assert.equal(whole.checked, 3)
  assert.deepEqual(brief(whole.findings), [['null-tenant:public.projects', 1, ['id=11']], ['orphans:public.tasks', 1, ['id=3: project_id=NULL']], ['orphans:public.notes', 1, ['id=2: task_id=NULL']]])
  assert.deepEqual(events.map((e) => [e.event, e.index]), Array.from({ length: whole.checked }, (_, i) => [['data-check-start', i + 1], ['data-check-done', i + 1]]).flat())
  // The middle check fails: it is unchecked, every other finding is as before.
  const broken = 'orphans:public.tasks'
  const failing: Plan = { ...plan, steps: plan.steps.map((s) => (s.preconditions === undefined ? s : { ...s, preconditions: s.preconditions.map((p) => (p.id === broken ? { ...p, countSql: 'SELECT (1 / 0)::bigint AS n' } : p)) })) }
  const result = await withPg(t.url, (c) => checkData(c, failing))
  assert.deepEqual(result.findings.map((f) => [f.id, f.kind]), whole.findings.map((f) => [f.id, f.id === broken ? 'unchecked' : f.kind]))
  assert.deepEqual(result.findings.find((f) => f.id === broken)?.samples, ['22012: division by zero'])
  assert.deepEqual(brief(result.findings.filter((f) => f.id !== broken)), brief(whole.findings.filter((f) => f.id !== broken)))
})
