/**
 * Regression tests for the defects the fourth round of corpus schemas found (test/fixtures/corpus/FINDINGS.md,
 * F22 on): each finding's minimal repro.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { apply, initConfig, rollback } from '../src/apply/index.js'
import { withClient } from '../src/db/connect.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { quoteIdent } from '../src/sql/quote.js'
import { verify } from '../src/verify/index.js'
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
