/**
 * Regression tests for the defects the second round of corpus schemas found (test/fixtures/corpus/FINDINGS.md,
 * F11 on): each finding's minimal repro, run through init → apply → isolation as the app role → rollback.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { apply, initConfig, rollback } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { DataCheckError } from '../src/datacheck/findings.js'
import { withClient } from '../src/db/connect.js'
import { TenantizeError } from '../src/errors.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { verify } from '../src/verify/index.js'
import { asRole, dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

/** init as the CLI runs it (facts from the data), with a role of this database's own that is dropped afterwards. */
async function init(t: TestDatabase, tenantTable: string, tenantColumn: string): Promise<TenantizeConfig> {
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).then(() => undefined, () => undefined))
  const [schema, name] = tenantTable.split('.') as [string, string]
  const { config } = await withClient(t.url, (c) => initConfig(c, { appRole: role, tenantTable: { schema, name }, tenantColumn }))
  return parseConfig(config)
}

test('corpus F11/F12: a child takes its tenant from the path that names it, not from a table that only gets the default tenant; a table only children reference takes their tenant', async () => {
  const t = await db.another('f11')
  // documenso, reduced: an envelope belongs to a team of an organisation and points at its own meta row.
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE team (id serial PRIMARY KEY, org_id text NOT NULL REFERENCES org);
    CREATE TABLE meta (id text PRIMARY KEY, subject text);
    CREATE TABLE envelope (id text PRIMARY KEY, meta_id text NOT NULL REFERENCES meta, team_id int NOT NULL REFERENCES team, title text);
    INSERT INTO org VALUES ('a', 'A'), ('b', 'B');
    INSERT INTO team (org_id) VALUES ('a'), ('b');
    INSERT INTO meta VALUES ('m1', 'for A'), ('m2', 'for B');
    INSERT INTO envelope VALUES ('e1', 'm1', 1, 'A doc'), ('e2', 'm2', 2, 'B doc');`)
  const before = await schemaFingerprint(t.url)
  const data = await dataChecksums(t.url, ['public.org', 'public.team', 'public.meta', 'public.envelope'])
  const config = await init(t, 'public.org', 'org_id')
  // F11: both keys are NOT NULL; the team's names the tenant, meta's would file every envelope under the default tenant.
  assert.equal(config.tables['public.envelope']!.path!.parent, 'public.team')
  // F12: meta has no path of its own; the envelope (a child) referencing each row gives it its tenant.
  assert.equal(config.tables['public.meta']!.class, 'child')
  assert.deepEqual(config.tables['public.meta']!.path, { columns: ['id'], parent: 'public.envelope', parentColumns: ['meta_id'], via: ['public.envelope', 'public.team', 'public.org'], reverse: true })

  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const read = (tenant: string, sql: string): Promise<string[]> => asRole(t.url, config.roles.app, tenant, async (c) => (await c.query<{ v: string }>(sql)).rows.map((r) => r.v))
  assert.deepEqual(await read('a', 'SELECT title AS v FROM envelope ORDER BY id'), ['A doc'])
  assert.deepEqual(await read('b', 'SELECT title AS v FROM envelope ORDER BY id'), ['B doc'])
  assert.deepEqual(await read('a', 'SELECT subject AS v FROM meta ORDER BY id'), ['for A'])
  assert.deepEqual(await read('b', 'SELECT subject AS v FROM meta ORDER BY id'), ['for B'])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
  assert.equal(await schemaFingerprint(t.url), before)
  assert.deepEqual(await dataChecksums(t.url, ['public.org', 'public.team', 'public.meta', 'public.envelope']), data)
})

test('corpus F13: verify seeds a tenant table whose row references rows it owns (its settings, NOT NULL), so every tenant table is probed', async () => {
  const t = await db.another('f13')
  // documenso, reduced: an organisation references its own settings row, which takes its tenant from it.
  await t.sql(`CREATE TABLE settings (id text PRIMARY KEY, colour text NOT NULL DEFAULT 'blue');
    CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL, settings_id text NOT NULL UNIQUE REFERENCES settings);
    CREATE TABLE team (id serial PRIMARY KEY, org_id text NOT NULL REFERENCES org, name text NOT NULL);
    INSERT INTO settings (id) VALUES ('s1'), ('s2');
    INSERT INTO org VALUES ('a', 'A', 's1'), ('b', 'B', 's2');
    INSERT INTO team (org_id, name) VALUES ('a', 'A team'), ('b', 'B team');`)
  const config = await init(t, 'public.org', 'org_id')
  assert.equal(config.tables['public.settings']!.class, 'child')
  assert.equal(config.tables['public.settings']!.path!.reverse, true)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  assert.deepEqual(report.probe?.unprobed ?? null, [], 'every tenant table probed')
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}`), [])
  const seeded = new Set((report.probe?.seeded ?? []).filter((s) => s.error === null && s.rows > 0).map((s) => s.table))
  for (const table of ['public.org', 'public.settings', 'public.team']) assert.ok(seeded.has(table), `${table} seeded`)
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})

test('corpus F14: plan refuses a global table that references a tenant table (every tenant would read rows pointing at one tenant\'s rows)', async () => {
  const t = await db.another('f14')
  // documenso, reduced: the plans every organisation may take (global) name a mail transport, which init files under a tenant.
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE transport (id text PRIMARY KEY, host text NOT NULL);
    CREATE TABLE plan (id text PRIMARY KEY, transport_id text REFERENCES transport);
    CREATE TABLE team (id serial PRIMARY KEY, org_id text NOT NULL REFERENCES org);
    INSERT INTO org VALUES ('a', 'A'); INSERT INTO transport VALUES ('t1', 'smtp.a');
    INSERT INTO plan VALUES ('free', 't1');`)
  const proposed = await init(t, 'public.org', 'org_id')
  const config = parseConfig({ ...proposed, tables: { ...proposed.tables, 'public.plan': { class: 'global', reason: 'plans are shared' } } })
  await assert.rejects(withClient(t.url, async (c) => planConversion(await introspect(c), config)), (error: unknown) => {
    assert.ok(error instanceof TenantizeError)
    assert.match(JSON.stringify(error.problems), /public\.plan plan_transport_id_fkey.*is global \(every tenant reads it\) but references the tenant table public\.transport/)
    return true
  })
  // Classifying the referenced table global too is one of the fixes the refusal names: then it plans.
  const fixed = parseConfig({ ...config, tables: { ...config.tables, 'public.transport': { class: 'global', reason: 'instance-wide' } } })
  assert.ok((await withClient(t.url, async (c) => planConversion(await introspect(c), fixed))).steps.length > 0)
})

test('corpus F12: a table whose own path is a NULL-able key only takes its tenant from the row that owns it (NOT NULL, unique key to it)', async () => {
  const t = await db.another('f12_nullable')
  // documenso's OrganisationGlobalSettings: an optional sender email (a tenant row) and the organisation that owns it.
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE org_email (id text PRIMARY KEY, org_id text NOT NULL REFERENCES org, email text NOT NULL);
    CREATE TABLE settings (id text PRIMARY KEY, email_id text REFERENCES org_email);
    ALTER TABLE org ADD COLUMN settings_id text UNIQUE REFERENCES settings;
    INSERT INTO settings VALUES ('s1', NULL), ('s2', NULL), ('s3', NULL);
    INSERT INTO org VALUES ('a', 'A', 's1'), ('b', 'B', 's2');
    ALTER TABLE org ALTER COLUMN settings_id SET NOT NULL;`)
  const config = await init(t, 'public.org', 'org_id')
  assert.equal(config.tables['public.settings']!.class, 'child')
  assert.deepEqual(config.tables['public.settings']!.path, { columns: ['id'], parent: 'public.org', parentColumns: ['settings_id'], via: ['public.org'], reverse: true })
  assert.match(config.tables['public.settings']!.reason, /NULL-able foreign keys only/)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.deepEqual(await t.sql(`SELECT id, org_id FROM settings ORDER BY id`), [{ id: 's1', org_id: 'a' }, { id: 's2', org_id: 'b' }, { id: 's3', org_id: 'a' }])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})

test('corpus F15: the data check finds rows a NOT VALID foreign key lets dangle, before apply changes anything (the composite key would fail part-way)', async () => {
  const t = await db.another('f15')
  // lago keeps NOT VALID foreign keys (db/not_valid_constraints.yml); a row may name a parent that is gone.
  await t.sql(`CREATE TABLE org (id uuid PRIMARY KEY);
    CREATE TABLE migration (id uuid PRIMARY KEY, organization_id uuid NOT NULL REFERENCES org);
    CREATE TABLE sub_migration (id uuid PRIMARY KEY, organization_id uuid NOT NULL REFERENCES org, migration_id uuid);
    INSERT INTO org VALUES ('00000000-0000-4000-8000-00000000000a');
    INSERT INTO migration VALUES ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-00000000000a');
    INSERT INTO sub_migration VALUES ('00000000-0000-4000-8000-000000000011', '00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-000000000001'),
      ('00000000-0000-4000-8000-000000000012', '00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-0000000000ff');
    ALTER TABLE sub_migration ADD CONSTRAINT sub_migration_migration_fkey FOREIGN KEY (migration_id) REFERENCES migration NOT VALID;`)
  const before = await schemaFingerprint(t.url)
  const config = await init(t, 'public.org', 'organization_id')
  await assert.rejects(apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast }), (error: unknown) => {
    assert.ok(error instanceof DataCheckError)
    const dangling = error.findings.find((x) => x.id === 'dangling:public.sub_migration:sub_migration_migration_fkey')
    assert.ok(dangling !== undefined, JSON.stringify(error.findings.map((x) => x.id)))
    assert.equal(dangling.count, 1)
    assert.match(dangling.samples[0]!, /0000000000ff/)
    return true
  })
  assert.equal(await schemaFingerprint(t.url), before, 'nothing changed')
  // Fixed as the finding says, the conversion goes through.
  await t.sql(`DELETE FROM sub_migration WHERE migration_id = '00000000-0000-4000-8000-0000000000ff'`)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})

test('corpus F16: a foreign key that already carries the tenant column to the parent\'s keeps it the tenant column; no composite key lists it twice', async () => {
  const t = await db.another('f16')
  // lago: membership_roles (membership_id, organization_id) → memberships (id, organization_id).
  await t.sql(`CREATE TABLE organizations (id uuid PRIMARY KEY);
    CREATE TABLE memberships (id uuid PRIMARY KEY, organization_id uuid NOT NULL REFERENCES organizations, UNIQUE (id, organization_id));
    CREATE TABLE membership_roles (id uuid PRIMARY KEY, organization_id uuid NOT NULL, membership_id uuid NOT NULL,
      CONSTRAINT membership_role_membership_fk FOREIGN KEY (membership_id, organization_id) REFERENCES memberships (id, organization_id));
    INSERT INTO organizations VALUES ('00000000-0000-4000-8000-00000000000a'), ('00000000-0000-4000-8000-00000000000b');
    INSERT INTO memberships VALUES ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-00000000000a'), ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-00000000000b');
    INSERT INTO membership_roles VALUES ('00000000-0000-4000-8000-000000000011', '00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-000000000001'),
      ('00000000-0000-4000-8000-000000000012', '00000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-000000000002');`)
  const before = await schemaFingerprint(t.url)
  const config = await init(t, 'public.organizations', 'organization_id')
  assert.equal(config.tables['public.membership_roles']!.class, 'direct')
  assert.equal(config.tables['public.membership_roles']!.column, undefined, 'organization_id stays the tenant column (not renamed)')
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const ids = (tenant: string): Promise<string[]> => asRole(t.url, config.roles.app, tenant, async (c) => (await c.query<{ id: string }>('SELECT id::text FROM membership_roles ORDER BY id')).rows.map((r) => r.id))
  assert.deepEqual(await ids('00000000-0000-4000-8000-00000000000a'), ['00000000-0000-4000-8000-000000000011'])
  assert.deepEqual(await ids('00000000-0000-4000-8000-00000000000b'), ['00000000-0000-4000-8000-000000000012'])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
  assert.equal(await schemaFingerprint(t.url), before)
})

test('corpus F17: verify seeds a table whose CHECK asks for exactly one of two references (lago), leaving one NULL-able key NULL, so every tenant table is probed', async () => {
  const t = await db.another('f17')
  // lago, reduced: a charge belongs to a plan or to a subscription, never both.
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE plans (id serial PRIMARY KEY, org_id text NOT NULL REFERENCES org, name text NOT NULL);
    CREATE TABLE subscriptions (id serial PRIMARY KEY, org_id text NOT NULL REFERENCES org, plan_id int NOT NULL REFERENCES plans);
    CREATE TABLE charges (id serial PRIMARY KEY, org_id text NOT NULL REFERENCES org, plan_id int REFERENCES plans, subscription_id int REFERENCES subscriptions, amount int NOT NULL,
      CONSTRAINT charge_owner CHECK ((plan_id IS NOT NULL) <> (subscription_id IS NOT NULL)));
    INSERT INTO org VALUES ('a', 'A'), ('b', 'B');
    INSERT INTO plans (org_id, name) VALUES ('a', 'basic'), ('b', 'basic');
    INSERT INTO subscriptions (org_id, plan_id) VALUES ('a', 1), ('b', 2);
    INSERT INTO charges (org_id, plan_id, subscription_id, amount) VALUES ('a', 1, NULL, 10), ('b', NULL, 2, 20);`)
  const config = await init(t, 'public.org', 'org_id')
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  assert.deepEqual(report.probe?.unprobed ?? null, [], 'every tenant table probed')
  const seeded = new Set((report.probe?.seeded ?? []).filter((s) => s.error === null && s.rows > 0).map((s) => s.table))
  assert.ok(seeded.has('public.charges'), `public.charges seeded: ${JSON.stringify(report.probe?.seeded)}`)
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}`), [])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})

test('corpus F18: a sequence a column default names as text, nextval(\'seq\'::text) without OWNED BY (Roundcube), is granted to the app role: the app can insert', async () => {
  const t = await db.another('f18')
  await t.sql(`CREATE SEQUENCE users_seq; CREATE SEQUENCE contacts_seq;
    CREATE TABLE users (user_id integer DEFAULT nextval('users_seq'::text) PRIMARY KEY, username varchar(128) NOT NULL);
    CREATE TABLE contacts (contact_id integer DEFAULT nextval('contacts_seq'::text) PRIMARY KEY, user_id integer NOT NULL REFERENCES users ON DELETE CASCADE, name text);
    INSERT INTO users (username) VALUES ('a'), ('b'); INSERT INTO contacts (user_id, name) VALUES (1, 'x'), (2, 'y');`)
  const before = await schemaFingerprint(t.url)
  const config = await init(t, 'public.users', 'user_id')
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const seen = await asRole(t.url, config.roles.app, '2', async (c) => {
    await c.query(`INSERT INTO contacts (user_id, name) VALUES (2, 'z')`)
    return (await c.query<{ name: string }>(`SELECT name FROM contacts ORDER BY contact_id`)).rows
  })
  assert.deepEqual(seen, [{ name: 'y' }, { name: 'z' }])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
  assert.equal(await schemaFingerprint(t.url), before)
})
