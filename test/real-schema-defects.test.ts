/**
 * Regression tests for the defects found by running the conversion on real public schemas (issue #10):
 * each repro from the issue, run init → apply → isolation as the app role → rollback on a real server.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { apply, initConfig, readiness, resetReadiness, rollback } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { TenantizeError } from '../src/errors.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { asRole, dataChecksums, schemaFingerprint } from './helpers/conversion.js'

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

/** init as the CLI runs it (facts from the data), with a role of this database's own that is dropped afterwards. */
async function init(t: TestDatabase, tenantTable?: string, extra: { batchSize?: number; tenantColumn?: string } = {}): Promise<{ config: TenantizeConfig; notes: readonly string[] }> {
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).then(() => undefined, () => undefined))
  const { config, notes } = await withClient(t.url, (c) =>
    initConfig(c, { appRole: role, ...(extra.tenantColumn === undefined ? {} : { tenantColumn: extra.tenantColumn }), ...(tenantTable === undefined ? {} : { tenantTable: { schema: tenantTable.split('.')[0]!, name: tenantTable.slice(tenantTable.indexOf('.') + 1) } }) }),
  )
  return { config: parseConfig({ ...config, ...(extra.batchSize === undefined ? {} : { batchSize: extra.batchSize }) }), notes }
}

const classes = (c: TenantizeConfig): Record<string, string> => Object.fromEntries(Object.entries(c.tables).map(([k, v]) => [k, v.class]))

test('defect 1: a table the tenant table points at takes the tenant of the row that references it; no tenant reads another\'s settings', async () => {
  const t = await db.another('reverse_path')
  await t.sql(`CREATE TABLE settings (id bigint PRIMARY KEY, secret text);
    CREATE TABLE orgs (id bigint PRIMARY KEY, settings_id bigint REFERENCES settings (id));
    INSERT INTO settings VALUES (10, 's1'), (20, 's2'), (30, 'nobody');
    INSERT INTO orgs VALUES (1, 10), (2, 20);`)
  const before = await schemaFingerprint(t.url)
  const data = await dataChecksums(t.url, ['public.settings', 'public.orgs'])
  const { config } = await init(t, 'public.orgs')
  assert.equal(config.tables['public.settings']!.class, 'child')
  assert.deepEqual(config.tables['public.settings']!.path, { columns: ['id'], parent: 'public.orgs', parentColumns: ['settings_id'], via: ['public.orgs'], reverse: true })
  assert.match(config.tables['public.settings']!.reason, /2 of 3 referenced by exactly one tenant; the 1 row\(s\) nobody references belong to the default tenant/)

  // The old app keeps inserting settings and orgs during the schema phase: the trigger on orgs hands the new settings row its tenant.
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast })
  await t.sql(`INSERT INTO settings VALUES (40, 's3'); INSERT INTO orgs VALUES (3, 40);`)
  // Those writes had no tenant context: enforce refuses until told they are over.
  await assert.rejects(apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast }), /still get writes without a tenant context/)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, ignoreReadiness: true })
  assert.deepEqual(await t.sql(`SELECT id::int, org_id::int FROM settings ORDER BY id`), [{ id: 10, org_id: 1 }, { id: 20, org_id: 2 }, { id: 30, org_id: 1 }, { id: 40, org_id: 3 }])

  const app = config.roles.app
  const secrets = (tenant: string): Promise<string[]> => asRole(t.url, app, tenant, async (c) => (await c.query<{ secret: string }>('SELECT secret FROM settings ORDER BY id')).rows.map((r) => r.secret))
  assert.deepEqual(await secrets('1'), ['s1', 'nobody'])
  assert.deepEqual(await secrets('2'), ['s2'])
  assert.deepEqual(await secrets('3'), ['s3'])
  // An org can no longer point at another tenant's settings row (composite foreign key from the tenant table).
  await assert.rejects(t.sql(`UPDATE orgs SET settings_id = 20 WHERE id = 1`), /violates foreign key constraint/)

  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
  assert.equal(await schemaFingerprint(t.url), before)
  await t.sql(`DELETE FROM orgs WHERE id = 3; DELETE FROM settings WHERE id = 40;`)
  assert.deepEqual(await dataChecksums(t.url, ['public.settings', 'public.orgs']), data)
})

test('defect 1: rows referenced by several tenants are proposed global with the counts, never given to one tenant', async () => {
  const t = await db.another('reverse_shared')
  await t.sql(`CREATE TABLE plans (id bigint PRIMARY KEY, name text);
    CREATE TABLE orgs (id bigint PRIMARY KEY, plan_id bigint REFERENCES plans (id));
    INSERT INTO plans VALUES (1, 'free'), (2, 'pro'), (3, 'unused');
    INSERT INTO orgs VALUES (1, 1), (2, 1), (3, 2);`)
  const { config, notes } = await init(t, 'public.orgs')
  assert.equal(config.tables['public.plans']!.class, 'global')
  assert.match(config.tables['public.plans']!.reason, /1 of 3 row\(s\) are referenced by more than one tenant through public\.orgs\.orgs_plan_id_fkey/)
  assert.ok(notes.some((n) => /public\.plans: 1 row\(s\) referenced by several tenants/.test(n)))
})

test('defect 1: a tenant-scoped table pointing at a table of its own tenant makes it a reverse child of that table', async () => {
  const t = await db.another('reverse_direct')
  await t.sql(`CREATE TABLE tenants (id bigint PRIMARY KEY);
    CREATE TABLE addresses (id bigint PRIMARY KEY, street text);
    CREATE TABLE customers (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id), address_id bigint REFERENCES addresses (id));
    INSERT INTO tenants VALUES (1), (2);
    INSERT INTO addresses VALUES (1, 'a1'), (2, 'a2');
    INSERT INTO customers VALUES (1, 1, 1), (2, 2, 2);`)
  const { config } = await init(t, 'public.tenants')
  assert.deepEqual(classes(config), { 'public.addresses': 'child', 'public.customers': 'direct', 'public.tenants': 'root' })
  assert.equal(config.tables['public.addresses']!.path!.parent, 'public.customers')
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const streets = (tenant: string): Promise<string[]> => asRole(t.url, config.roles.app, tenant, async (c) => (await c.query<{ street: string }>('SELECT street FROM addresses ORDER BY id')).rows.map((r) => r.street))
  assert.deepEqual(await streets('1'), ['a1'])
  assert.deepEqual(await streets('2'), ['a2'])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})

test('defect 2: a permissive legacy policy is replaced (no OR around the tenant policy) and restored verbatim by rollback', async () => {
  const t = await db.another('legacy_policy')
  await t.sql(`CREATE TABLE tenants (id bigint PRIMARY KEY); INSERT INTO tenants VALUES (1), (2);
    CREATE TABLE items (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants (id)); INSERT INTO items VALUES (1, 1), (2, 2);
    ALTER TABLE items ENABLE ROW LEVEL SECURITY;
    CREATE POLICY legacy ON items USING (tenant_id = current_setting('app.tenant')::int);
    CREATE POLICY not_archived ON items AS RESTRICTIVE FOR SELECT USING (id > 0);`)
  const policies = (): Promise<unknown[]> => t.sql(`SELECT policyname, permissive, roles::text, cmd, qual, with_check FROM pg_policies WHERE tablename = 'items' ORDER BY policyname`)
  const before = await policies()
  const fingerprint = await schemaFingerprint(t.url)
  const { config } = await init(t, 'public.tenants')
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), config))
  const rls = plan.steps.find((s) => s.id === 'rls:public.items')!
  assert.match(rls.title, /replaces permissive policy legacy/)
  assert.ok(rls.up.includes('DROP POLICY IF EXISTS "legacy" ON "public"."items"'))
  assert.ok(!rls.up.some((u) => u.includes('not_archived')), 'a restrictive policy only narrows access: it stays')
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  await asRole(t.url, config.roles.app, '1', async (c) => {
    assert.deepEqual((await c.query('SELECT id::int FROM items ORDER BY id')).rows, [{ id: 1 }], 'no unrecognized configuration parameter app.tenant')
    await c.query(`SELECT set_config('app.tenant', '2', true)`)
    assert.deepEqual((await c.query('SELECT id::int FROM items ORDER BY id')).rows, [{ id: 1 }], 'the old setting opens nothing')
  })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.deepEqual(await policies(), before)
  assert.equal(await schemaFingerprint(t.url), fingerprint)
})

test('defect 3: a column named like the tenant column that references another table is not reused', async () => {
  const t = await db.another('foreign_org_id')
  await t.sql(`CREATE TABLE orgs (id bigint PRIMARY KEY); CREATE TABLE legacy_orgs (id bigint PRIMARY KEY);
    CREATE TABLE items (id bigint PRIMARY KEY, org_id bigint CONSTRAINT items_legacy_fk REFERENCES legacy_orgs (id));
    INSERT INTO orgs VALUES (1), (2); INSERT INTO legacy_orgs VALUES (7), (8); INSERT INTO items VALUES (1, 7), (2, 8);`)
  const { config, notes } = await init(t, 'public.orgs')
  assert.equal(config.tables['public.items']!.column, 'tenantize_org_id')
  assert.ok(notes.some((n) => /public\.items\.org_id references public\.legacy_orgs through items_legacy_fk: it is not the tenant column/.test(n)))
  // A hand edit that reuses it is refused by the planner, naming the foreign key.
  const catalog = await withClient(t.url, (c) => introspect(c))
  const bad = parseConfig({ ...config, tables: { ...config.tables, 'public.items': { ...config.tables['public.items']!, column: undefined } } })
  assert.throws(() => planConversion(catalog, bad), (e: unknown) => e instanceof TenantizeError && e.toLines().some((l) => /public\.items\.org_id: references public\.legacy_orgs through items_legacy_fk/.test(l)))
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT id::int, org_id::int, tenantize_org_id::int FROM items ORDER BY id`), [{ id: 1, org_id: 7, tenantize_org_id: 1 }, { id: 2, org_id: 8, tenantize_org_id: 1 }])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('defect 3: generated names never collide with existing constraints or indexes (IF NOT EXISTS would skip the build)', async () => {
  const t = await db.another('name_clash')
  await t.sql(`CREATE TABLE parents (id bigint PRIMARY KEY);
    CREATE TABLE kids (id bigint PRIMARY KEY, parent_id bigint REFERENCES parents (id));
    CREATE INDEX parents_org_id_id_key ON parents (id);
    CREATE INDEX kids_org_id_idx ON kids (id);
    ALTER TABLE kids ADD CONSTRAINT kids_org_id_fkey CHECK (id > 0);
    INSERT INTO parents VALUES (1); INSERT INTO kids VALUES (1, 1);`)
  const { config } = await init(t)
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), parseConfig(config)))
  const sql = plan.steps.flatMap((s) => s.up).join('\n')
  assert.match(sql, /CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "parents_org_id_id_key_2"/)
  assert.match(sql, /ADD CONSTRAINT "kids_org_id_fkey_2" FOREIGN KEY/)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('defect 4: bookkeeping tables of migration tools are excluded with the reason', async () => {
  const t = await db.another('migration_tables')
  await t.sql(`CREATE TABLE schema_migrations (version varchar PRIMARY KEY); CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar);
    CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, migration_name varchar(255) NOT NULL);
    CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255), name varchar(255), applied timestamptz);
    CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint, is_applied boolean, tstamp timestamp);
    CREATE TABLE knex_migrations (id serial PRIMARY KEY, name varchar(255), batch int, migration_time timestamptz);
    CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50));
    CREATE TABLE migrations (id serial PRIMARY KEY, timestamp bigint NOT NULL, name varchar NOT NULL);
    CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
    CREATE TABLE projects (id serial PRIMARY KEY, name text);`)
  const { config } = await init(t)
  for (const key of ['public.schema_migrations', 'public.ar_internal_metadata', 'public._prisma_migrations', 'public.django_migrations', 'public.alembic_version', 'public.goose_db_version', 'public.knex_migrations', 'public.flyway_schema_history', 'public.migrations', 'drizzle.__drizzle_migrations']) {
    assert.equal(config.tables[key]?.class, 'excluded', key)
    assert.match(config.tables[key]!.reason, /bookkeeping table of a migration tool/)
  }
  assert.equal(config.tables['public.projects']!.class, 'direct')
  // A domain table that happens to be called migrations (bird migrations, say) is converted.
  const other = await db.another('migrations_domain')
  await other.sql(`CREATE TABLE migrations (id serial PRIMARY KEY, species text, route text, name text)`)
  assert.equal((await init(other)).config.tables['public.migrations']!.class, 'direct')
})

test('defect 5: backfill keys round-trip exactly: microsecond timestamps sharing a millisecond, bigints above 2^53, numeric, text with a collation', async () => {
  const t = await db.another('exact_keys')
  await t.sql(`ALTER DATABASE "${t.name}" SET timezone = 'Pacific/Chatham';
    CREATE TABLE tenants (id bigint PRIMARY KEY); INSERT INTO tenants VALUES (1), (2);
    CREATE TABLE parents (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id));
    INSERT INTO parents VALUES (1, 1), (2, 2);
    CREATE TABLE events (at timestamptz, seq int, parent_id bigint NOT NULL REFERENCES parents (id), PRIMARY KEY (at, seq));
    INSERT INTO events SELECT '2024-03-01 12:00:00.123+00'::timestamptz + g * interval '1 microsecond', 1, 1 + g % 2 FROM generate_series(1, 50) g;
    CREATE TABLE ledger (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents (id));
    INSERT INTO ledger SELECT 9007199254740993 + g, 1 + g % 2 FROM generate_series(1, 30) g;
    CREATE TABLE amounts (v numeric PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents (id));
    INSERT INTO amounts SELECT 0.1000000000000000001 * g, 1 + g % 2 FROM generate_series(1, 30) g;
    CREATE TABLE words (w text COLLATE "C", k timestamp, parent_id bigint NOT NULL REFERENCES parents (id), PRIMARY KEY (w, k));
    INSERT INTO words SELECT chr(65 + g % 3) || g, '2024-01-01 00:00:00'::timestamp + g * interval '1 microsecond', 1 + g % 2 FROM generate_series(1, 30) g;
    CREATE TABLE keyed (code text NOT NULL, parent_id bigint NOT NULL REFERENCES parents (id)); CREATE UNIQUE INDEX keyed_code ON keyed (code);
    INSERT INTO keyed SELECT 'c' || g, 1 + g % 2 FROM generate_series(1, 10) g;`)
  const { config } = await init(t, 'public.tenants', { batchSize: 3 })
  for (const k of ['public.events', 'public.ledger', 'public.amounts', 'public.words', 'public.keyed']) assert.equal(config.tables[k]!.class, 'child', k)
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast, batchPauseMs: 0 })
  for (const table of ['events', 'ledger', 'amounts', 'words', 'keyed']) {
    assert.deepEqual(await t.sql(`SELECT count(*)::int AS wrong FROM ${table} c JOIN parents p ON p.id = c.parent_id WHERE c.org_id IS DISTINCT FROM p.tenant_id`), [{ wrong: 0 }], table)
  }
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('defect 6: an empty tenant table, a dot in a table name, a tenant table name in mixed case, foreign keys declared only on partitions', async () => {
  const t = await db.another('init_edges')
  await t.sql(`CREATE TABLE "Organisation" (id bigint PRIMARY KEY);
    CREATE TABLE "dotted.name" (id int PRIMARY KEY, org_id bigint REFERENCES "Organisation" (id));
    CREATE TABLE parents (id bigint PRIMARY KEY, org_id bigint NOT NULL REFERENCES "Organisation" (id));
    CREATE TABLE measurements (id bigint, parent_id bigint NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id);
    CREATE TABLE measurements_1 PARTITION OF measurements FOR VALUES FROM (0) TO (100);
    CREATE TABLE measurements_2 PARTITION OF measurements FOR VALUES FROM (100) TO (200);
    ALTER TABLE measurements_1 ADD FOREIGN KEY (parent_id) REFERENCES parents (id);
    ALTER TABLE measurements_2 ADD FOREIGN KEY (parent_id) REFERENCES parents (id);`)
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).then(() => undefined, () => undefined))
  const { config, notes } = await withClient(t.url, (c) => initConfig(c, { appRole: role, tenantTable: { schema: 'public', name: 'organisation' } }))
  const parsed = parseConfig(config)
  assert.equal(parsed.tenant.table, 'public.Organisation')
  assert.ok(notes.some((n) => /--tenant-table public\.organisation matched public\.Organisation/.test(n)))
  assert.equal(parsed.tenant.default.id, '1', 'an empty bigint tenant table gets a bigint default id')
  assert.ok(notes.some((n) => /public\.Organisation is empty: insert the default tenant \(id 1/.test(n)))
  assert.equal(parsed.tables['public.dotted.name']!.class, 'direct')
  assert.equal(parsed.tables['public.measurements']!.class, 'child')
  assert.equal(parsed.tables['public.measurements']!.path!.parent, 'public.parents')
  // The whole conversion runs once the default tenant exists.
  await t.sql(`INSERT INTO "Organisation" VALUES (1), (2); INSERT INTO parents VALUES (1, 1), (2, 2); INSERT INTO measurements VALUES (5, 1), (150, 2); INSERT INTO "dotted.name" VALUES (1, 2);`)
  await apply({ databaseUrl: t.url, config: parsed, phase: 'all', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT id::int, org_id::int FROM measurements ORDER BY id`), [{ id: 5, org_id: 1 }, { id: 150, org_id: 2 }])
  assert.deepEqual(await asRole(t.url, role, '2', async (c) => (await c.query('SELECT id::int FROM "dotted.name"')).rows), [{ id: 1 }])
  await rollback({ databaseUrl: t.url, config: parsed, phase: 'all', timeouts: fast, mergeTenants: true })
})

test('defect 7: rollback leaves every privilege as it was (schema USAGE too) and drops the role it created; --purge drops the ledger schema', async () => {
  const t = await db.another('exact_rollback')
  const existing = `${t.name}_old`
  after(() => db.sql(`DROP ROLE IF EXISTS "${existing}"`).then(() => undefined, () => undefined))
  await t.sql(`CREATE SCHEMA app; REVOKE ALL ON SCHEMA public FROM PUBLIC;
    CREATE TABLE app.notes (id serial PRIMARY KEY, body text); INSERT INTO app.notes (body) VALUES ('a');
    CREATE SEQUENCE app."Tag ids"; CREATE TABLE app.tags (id int PRIMARY KEY DEFAULT nextval('app."Tag ids"'), name text);
    DROP ROLE IF EXISTS "${existing}"; CREATE ROLE "${existing}" NOLOGIN;`)
  // NULL is the default ACL: compare what it means (pg_dump prints nothing for either).
  const acl = (): Promise<unknown[]> => t.sql(`SELECT nspname, coalesce(nspacl, acldefault('n', nspowner))::text AS acl FROM pg_namespace WHERE nspname IN ('public', 'app') ORDER BY 1`)
  const before = await acl()
  const fingerprint = await schemaFingerprint(t.url)
  for (const role of [`${t.name}_app`, existing]) {
    const { config } = await init(t)
    const c = parseConfig({ ...config, roles: { app: role, system: null } })
    await apply({ databaseUrl: t.url, config: c, phase: 'all', timeouts: fast })
    assert.deepEqual(await t.sql(`SELECT has_schema_privilege($1, 'app', 'USAGE') AS ok`, [role]), [{ ok: true }])
    // A sequence named only in a column default (no OWNED BY) is granted too: the app can insert.
    await asRole(t.url, role, c.tenant.default.id, async (client) => {
      await client.query(`INSERT INTO app.tags (name) VALUES ('x')`)
      await client.query(`INSERT INTO app.notes (body) VALUES ('y')`)
    })
    await rollback({ databaseUrl: t.url, config: c, phase: 'all', timeouts: fast, purge: true })
    assert.deepEqual(await acl(), before, `schema privileges after rolling back with role ${role}`)
    assert.equal(await schemaFingerprint(t.url), fingerprint)
    assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'tenantize'`), [{ n: 0 }], '--purge drops the ledger schema')
  }
  assert.deepEqual(await t.sql(`SELECT rolname FROM pg_roles WHERE rolname = $1`, [`${t.name}_app`]), [], 'the role the plan created is gone')
  assert.deepEqual(await t.sql(`SELECT rolname FROM pg_roles WHERE rolname = $1`, [existing]), [{ rolname: existing }], 'a role that existed stays')
})

test('a foreign key declared a shared reference stays single-column: rows may point at another tenant\'s row on purpose', async () => {
  const t = await db.another('shared_reference')
  await t.sql(`CREATE TABLE tenants (id bigint PRIMARY KEY); INSERT INTO tenants VALUES (1), (2);
    CREATE TABLE users (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id)); INSERT INTO users VALUES (1, 1), (2, 2);
    CREATE TABLE tasks (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id), reviewer_id bigint CONSTRAINT tasks_reviewer REFERENCES users (id));
    INSERT INTO tasks VALUES (1, 1, 2);`)
  const { config } = await init(t, 'public.tenants')
  const catalog = await withClient(t.url, (c) => introspect(c))
  assert.ok(planConversion(catalog, config).steps.some((s) => s.id === 'composite-fk:public.tasks:tasks_reviewer'))
  const shared = parseConfig({ ...config, tables: { ...config.tables, 'public.tasks': { ...config.tables['public.tasks']!, sharedReferences: [{ constraint: 'tasks_reviewer', reason: 'reviewers come from a partner tenant' }] } } })
  assert.ok(!planConversion(catalog, shared).steps.some((s) => s.id.includes('tasks_reviewer')), 'no composite key for a shared reference')
  await apply({ databaseUrl: t.url, config: shared, phase: 'all', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT reviewer_id::int FROM tasks`), [{ reviewer_id: 2 }])
  await rollback({ databaseUrl: t.url, config: shared, phase: 'all', timeouts: fast })
})

test('a failing plan step advises to fix the cause and run apply again (not to edit a migration file)', async () => {
  const t = await db.another('step_advice')
  await t.sql(`CREATE TABLE notes (id int PRIMARY KEY, body text);
    CREATE FUNCTION no_alter() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no ALTER TABLE today'; END $$;
    CREATE EVENT TRIGGER no_alter ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION no_alter();`)
  const { config } = await init(t)
  const error = await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TenantizeError)
  assert.match(error.message, /no ALTER TABLE today/)
  assert.match(error.fix ?? '', /^fix what the error names \(the data, a lock held elsewhere, a privilege, or the config\), then run tenantize apply again: it resumes at this step; its transaction was rolled back/)
  assert.match(error.object ?? '', /^plan step add-column:public\.notes/)
  await t.sql(`DROP EVENT TRIGGER no_alter`)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('cut-over readiness: writes without tenant context are counted per table; enforce refuses while they go on; canary enforcement table by table', async () => {
  const t = await db.another('readiness')
  await t.sql(`CREATE TABLE notes (id serial PRIMARY KEY, body text); CREATE TABLE tags (id serial PRIMARY KEY, name text)`)
  const { config } = await init(t)
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast })
  const id = config.tenant.default.id
  // The old app writes without context; the new one (on tags only) with it.
  await t.sql(`INSERT INTO notes (body) VALUES ('a'); INSERT INTO notes (body) SELECT 'b' FROM generate_series(1, 50); UPDATE notes SET body = 'c' WHERE id = 1`)
  await t.sql(`BEGIN; SELECT set_config('tenantize.tenant_id', $1, true); INSERT INTO tags (name) VALUES ('x'); COMMIT`.replace('$1', `'${id}'`))
  assert.deepEqual(await readiness(t.url), [
    { table: 'public.notes', withContext: 0, withoutContext: 3 },
    { table: 'public.tags', withContext: 1, withoutContext: 0 },
  ], 'counted per statement, not per row')
  const refused = await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast }).then(() => undefined, (e: unknown) => e)
  assert.ok(refused instanceof TenantizeError)
  assert.match(refused.message, /1 table\(s\) still get writes without a tenant context/)
  assert.ok(refused.problems.some((p) => p.object === 'public.notes' && /3 write statement\(s\) without a tenant context, 0 with one/.test(p.message)))
  assert.deepEqual(await t.sql(`SELECT relname, relrowsecurity FROM pg_class WHERE relname IN ('notes', 'tags') ORDER BY 1`), [{ relname: 'notes', relrowsecurity: false }, { relname: 'tags', relrowsecurity: false }], 'nothing was enforced')
  // Canary: tags first.
  await apply({ databaseUrl: t.url, config, phase: 'enforce', tables: ['public.tags'], timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT relname, relrowsecurity FROM pg_class WHERE relname IN ('notes', 'tags') ORDER BY 1`), [{ relname: 'notes', relrowsecurity: false }, { relname: 'tags', relrowsecurity: true }])
  await assert.rejects(apply({ databaseUrl: t.url, config, phase: 'enforce', tables: ['public.nope'], timeouts: fast }), /public\.nope is not a table the plan enforces/)
  // The app is fixed; a new window stays at zero; notes can be enforced.
  await resetReadiness(t.url)
  assert.deepEqual((await readiness(t.url)).find((r) => r.table === 'public.notes'), { table: 'public.notes', withContext: 0, withoutContext: 0 })
  await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname = 'tenantize_readiness'`), [{ n: 0 }], 'the counters stop at enforce')
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('corpus F5: a primary key the app assigns is listed as a manual step (an existence oracle); keys from a sequence, uuids and keys per parent row are not', async () => {
  const t = await db.another('natural_pk')
  await t.sql(`CREATE TABLE customer (customer_id int PRIMARY KEY, name text NOT NULL);
    CREATE TABLE invoice (invoice_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer, total numeric NOT NULL);
    CREATE TABLE invoice_line (invoice_id int REFERENCES invoice, line_no int, PRIMARY KEY (invoice_id, line_no));
    CREATE TABLE counter (id serial PRIMARY KEY, n int);
    CREATE TABLE token (id uuid PRIMARY KEY, n int);`)
  const { config } = await init(t)
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), config))
  const listed = plan.manual.filter((m) => /takes its values from the app/.test(m.reason)).map((m) => m.object).sort()
  assert.deepEqual(listed, ['public.customer customer_pkey', 'public.invoice invoice_pkey'])
  assert.match(plan.manual.find((m) => m.object === 'public.customer customer_pkey')!.reason, /foreign keys reference it/)
  assert.match(plan.manual.find((m) => m.object === 'public.invoice invoice_pkey')!.fix, /make the key \(org_id, invoice_id\) once every foreign key referencing it includes org_id and change the app's ON CONFLICT \(invoice_id\) to match/)
})

test('corpus F8: a view over a view over a tenant table gets security_invoker too', async () => {
  const t = await db.another('view_over_view')
  await t.sql(`CREATE TABLE device (id serial PRIMARY KEY, name text NOT NULL);
    CREATE VIEW device_active AS SELECT id, name FROM device;
    CREATE VIEW device_info AS SELECT * FROM device_active;`)
  const { config } = await init(t)
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), config))
  assert.ok(plan.steps.some((s) => s.id === 'view:public.device_active'))
  assert.ok(plan.steps.some((s) => s.id === 'view:public.device_info'))
})

test('corpus F7: a child without any key is backfilled by row address; init never proposes a class plan refuses', async () => {
  const t = await db.another('keyless_child')
  await t.sql(`CREATE TABLE tenants (id bigint PRIMARY KEY); INSERT INTO tenants VALUES (1), (2);
    CREATE TABLE alarm (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id));
    INSERT INTO alarm SELECT g, 1 + g % 2 FROM generate_series(1, 20) g;
    CREATE TABLE alarm_comment (alarm_id bigint NOT NULL REFERENCES alarm (id), body text);
    INSERT INTO alarm_comment SELECT 1 + g % 20, 'c' || g FROM generate_series(1, 100) g;
    CREATE TABLE widget_type (id bigint PRIMARY KEY, tenant_id bigint NOT NULL, name text);
    CREATE TABLE widget (id bigint PRIMARY KEY, type_id bigint REFERENCES widget_type (id));
    INSERT INTO widget_type VALUES (1, 1, 'a'), (2, 2, 'b');`)
  const { config } = await init(t, 'public.tenants', { batchSize: 7, tenantColumn: 'tenant_id' })
  assert.equal(config.tables['public.alarm_comment']!.class, 'child')
  assert.equal(config.tables['public.widget_type']!.class, 'direct', 'a table holding the tenant column is tenant-owned, never global reference data')
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast, batchPauseMs: 0 })
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS wrong FROM alarm_comment c JOIN alarm a ON a.id = c.alarm_id WHERE c.tenant_id IS DISTINCT FROM a.tenant_id`), [{ wrong: 0 }])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('during the schema phase a writer with a tenant context gets its own tenant by default; the old app (no context) the default tenant', async () => {
  const t = await db.another('schema_phase_default')
  await t.sql(`CREATE TABLE tenants (id bigint PRIMARY KEY); INSERT INTO tenants VALUES (1), (2);
    CREATE TABLE projects (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id));
    CREATE TABLE notes (id serial PRIMARY KEY, code text)`)
  const { config } = await init(t, 'public.tenants', { tenantColumn: 'tenant_id' })
  assert.equal(config.tables['public.notes']!.class, 'direct')
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast })
  await t.sql(`INSERT INTO notes (code) VALUES ('old app')`)
  await withClient(t.url, async (c) => {
    await c.query('BEGIN')
    await c.query(`SELECT set_config('tenantize.tenant_id', '2', true)`)
    await c.query(`INSERT INTO notes (code) VALUES ('tenant-aware')`)
    await c.query('COMMIT')
  })
  assert.deepEqual(await t.sql(`SELECT code, tenant_id::int FROM notes ORDER BY id`), [{ code: 'old app', tenant_id: 1 }, { code: 'tenant-aware', tenant_id: 2 }])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})
