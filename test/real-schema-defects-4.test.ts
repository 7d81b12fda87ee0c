/**
 * Regression tests for the defects the fourth round of corpus schemas found (test/fixtures/corpus/FINDINGS.md,
 * F22 on): each finding's minimal repro.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { apply, initConfig, rollback } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { quoteIdent } from '../src/sql/quote.js'
import { exitCodeFor, verify } from '../src/verify/index.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

/** init as the CLI runs it (facts from the data; init creates the tenant table), with a role of this database's own that is dropped afterwards. */
async function init(t: TestDatabase): Promise<TenantizeConfig> {
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).then(() => undefined, () => undefined))
  const { config } = await withClient(t.url, (c) => initConfig(c, { appRole: role }))
  return parseConfig(config)
}

/** Convert, verify as the app role, roll back; the report's unprobed tables and errors. */
async function convertAndVerify(t: TestDatabase): Promise<{ unprobed: readonly string[] | null; errors: string[]; probed: string[] }> {
  const config = await init(t)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  return {
    unprobed: report.probe?.unprobed.map((u) => `${u.table}: ${u.reason}`) ?? null,
    errors: report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}: ${f.message}`),
    probed: [...new Set((report.probe?.checks ?? []).filter((c) => c.check === 'read-other' && c.status === 'pass').map((c) => c.table))].sort(),
  }
}

test('corpus F22: verify seeds a table whose CHECK ties an enum kind to which references are set (Lemmy modlog), so every tenant table is probed', async () => {
  const t = await db.another('f22')
  // Only kind 'purge' with both references NULL passes: the seeder used to keep one reference filled.
  await t.sql(`CREATE TYPE modlog_kind AS ENUM ('add', 'ban', 'purge');
    CREATE TABLE person (id serial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE post (id serial PRIMARY KEY, title text NOT NULL);
    CREATE TABLE modlog (id serial PRIMARY KEY, kind modlog_kind NOT NULL, mod_id int NOT NULL REFERENCES person,
      target_person_id int REFERENCES person, target_post_id int REFERENCES post,
      CONSTRAINT modlog_check CHECK ((kind = 'add' AND num_nonnulls(target_person_id, target_post_id) = 3)
        OR (kind = 'purge' AND num_nonnulls(target_person_id, target_post_id) = 0)));
    INSERT INTO person (name) VALUES ('admin');
    INSERT INTO post (title) VALUES ('first');
    INSERT INTO modlog (kind, mod_id) VALUES ('purge', 1);`)
  const { unprobed, errors, probed } = await convertAndVerify(t)
  assert.deepEqual(unprobed, [], 'every tenant table probed')
  assert.deepEqual(errors, [])
  assert.ok(probed.includes('public.modlog'), `modlog probed: ${probed.join(', ')}`)
})

test('corpus F23: verify probes a table the app fills only through triggers on other tables (Lemmy report_combined: one row per report, a CHECK that exactly one key is set, each key unique)', async () => {
  const t = await db.another('f23')
  await t.sql(`CREATE TABLE person (id serial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE post_report (id serial PRIMARY KEY, creator_id int NOT NULL REFERENCES person, reason text NOT NULL);
    CREATE TABLE comment_report (id serial PRIMARY KEY, creator_id int NOT NULL REFERENCES person, reason text NOT NULL);
    CREATE TABLE report_combined (id serial PRIMARY KEY, creator_id int NOT NULL REFERENCES person,
      post_report_id int UNIQUE REFERENCES post_report ON DELETE CASCADE, comment_report_id int UNIQUE REFERENCES comment_report ON DELETE CASCADE,
      CONSTRAINT report_combined_check CHECK (num_nonnulls(post_report_id, comment_report_id) = 1));
    CREATE FUNCTION report_combined_post() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO report_combined (creator_id, post_report_id) VALUES (NEW.creator_id, NEW.id); RETURN NULL; END $$;
    CREATE FUNCTION report_combined_comment() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO report_combined (creator_id, comment_report_id) VALUES (NEW.creator_id, NEW.id); RETURN NULL; END $$;
    CREATE TRIGGER report_combined AFTER INSERT ON post_report FOR EACH ROW EXECUTE FUNCTION report_combined_post();
    CREATE TRIGGER report_combined AFTER INSERT ON comment_report FOR EACH ROW EXECUTE FUNCTION report_combined_comment();
    INSERT INTO person (name) VALUES ('reporter');
    INSERT INTO post_report (creator_id, reason) VALUES (1, 'spam');
    INSERT INTO comment_report (creator_id, reason) VALUES (1, 'rude');`)
  const { unprobed, errors, probed } = await convertAndVerify(t)
  assert.deepEqual(unprobed, [], 'every tenant table probed')
  assert.deepEqual(errors, [])
  assert.ok(probed.includes('public.report_combined'), `report_combined probed: ${probed.join(', ')}`)
})

/** F25's schema: a tenant table whose trigger runs a function of schema r, which calls another function of r. */
const F25_SCHEMA = `CREATE SCHEMA r;
  CREATE FUNCTION r.slug(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower($1) $$;
  CREATE FUNCTION r.post_change_values() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.slug = r.slug(NEW.title); RETURN NEW; END $$;
  CREATE TABLE post (id serial PRIMARY KEY, title text NOT NULL, slug text);
  CREATE TRIGGER change_values BEFORE INSERT ON post FOR EACH ROW EXECUTE FUNCTION r.post_change_values();
  INSERT INTO post (title) VALUES ('Hello');`

test('corpus F25 (A): a refusal of insert-other that is not isolation (42501 permission denied for schema r, raised by a trigger function) is not exercised, the table not probed, and verify fails', async () => {
  const t = await db.another('f25a')
  // r.slug is named in dynamic SQL, looked up on every call: PL/pgSQL keeps a static call's plan, resolved when the
  // probe's admin seeded the table, for the rest of the session, so the app role's insert would not look up r again.
  await t.sql(F25_SCHEMA.replace('NEW.slug = r.slug(NEW.title);', "EXECUTE 'SELECT r.slug($1)' INTO NEW.slug USING NEW.title;"))
  const config = await init(t)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  // The grant (B) adds, taken away again: the app role's every insert into post now fails before the policy is reached.
  await t.sql(`REVOKE USAGE ON SCHEMA r FROM ${quoteIdent(config.roles.app)}`)
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const check = report.probe!.checks.find((c) => c.table === 'public.post' && c.check === 'insert-other')!
  // Before the fix: status 'pass', "INSERT of a row for tenant B was refused (42501: permission denied for schema r)".
  assert.equal(check.status, 'error', check.detail)
  assert.equal(check.sqlstate, '42501')
  assert.match(check.detail, /^not exercised: INSERT of a row for tenant B was refused by 42501: permission denied for schema r/)
  const unprobed = report.probe!.unprobed.find((u) => u.table === 'public.post')
  assert.ok(unprobed !== undefined, `public.post is not probed: ${JSON.stringify(report.probe!.unprobed)}`)
  assert.match(unprobed.reason, /insert-other not exercised: .*42501: permission denied for schema r/)
  const finding = report.findings.find((f) => f.rule === 'probe-unprobed' && f.table === 'public.post')
  assert.equal(finding?.severity, 'error')
  assert.equal(report.summary.unprobed, 1)
  assert.equal(exitCodeFor(report, 'error'), 1, 'verify exits 1')
  // The checks that did run keep their result: reads were exercised.
  assert.equal(report.probe!.checks.find((c) => c.table === 'public.post' && c.check === 'read-other')!.status, 'pass')
})

test('corpus F25 (B): the plan grants USAGE on the schema of a tenant table\'s trigger functions, so the app inserts its own rows; verify proves insert-other; rollback revokes it', async () => {
  const t = await db.another('f25b')
  await t.sql(F25_SCHEMA)
  const config = await init(t)
  const role = quoteIdent(config.roles.app)
  const catalog = await withClient(t.url, (c) => introspect(c))
  const grants = planConversion(catalog, config).steps.find((s) => s.id === 'grants')!
  assert.equal(grants.up[0], `GRANT USAGE ON SCHEMA "r", "tenantize" TO ${role}`)
  assert.equal(grants.down.at(-1), `REVOKE USAGE ON SCHEMA "r", "tenantize" FROM ${role}`)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const usage = async (): Promise<boolean> => (await t.sql(`SELECT pg_catalog.has_schema_privilege($1, 'r', 'USAGE') AS u`, [config.roles.app]))[0]!.u as boolean
  assert.equal(await usage(), true)
  const slug = await withClient(t.url, async (c) => {
    await c.query('BEGIN')
    await c.query(`SET LOCAL ROLE ${role}`)
    await c.query('SELECT pg_catalog.set_config($1, $2, true)', [config.tenant.setting, config.tenant.default.id])
    const r = await c.query(`INSERT INTO post (title) VALUES ('World') RETURNING slug`)
    await c.query('ROLLBACK')
    return r.rows[0].slug as string
  })
  assert.equal(slug, 'world', 'the app role\'s insert ran the trigger and its function of r')
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  const check = report.probe!.checks.find((c) => c.table === 'public.post' && c.check === 'insert-other')!
  assert.equal(check.status, 'pass', check.detail)
  assert.match(check.detail, /row-level security.*tenant A's own row was accepted/)
  assert.deepEqual(report.probe!.unprobed, [])
  assert.equal(exitCodeFor(report, 'error'), 0, report.findings.map((f) => `${f.rule}: ${f.message}`).join('\n'))
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  // The role the plan created is dropped, which PostgreSQL allows only once nothing grants it anything: r's ACL names it no more.
  const left = await t.sql(`SELECT coalesce(pg_catalog.array_to_string(n.nspacl, ','), '') AS acl, EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1) AS role
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'r'`, [config.roles.app])
  assert.equal(left[0]!.role, false, 'rollback dropped the app role')
  assert.ok(!(left[0]!.acl as string).includes(config.roles.app), `rollback revoked USAGE on r: ${left[0]!.acl as string}`)
})
