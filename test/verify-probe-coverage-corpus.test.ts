import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply } from '../src/apply/index.js'
import { initConfig } from '../src/apply/init.js'
import { parseConfig } from '../src/plan/config.js'
import type { VerifyReport } from '../src/verify/types.js'
import { exitCodeFor, verify } from '../src/verify/verify.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { fast } from './helpers/examples.js'

// Corpus findings F6 and F9 (test/fixtures/corpus/FINDINGS.md), each its minimal repro taken through
// init (defaults) → apply → verify: the probe seeds every tenant table of both.

const db = await testDatabase(import.meta.url)

/** Load `sql`, run init with its defaults, apply both phases, verify as the config's app role. */
async function converted(t: TestDatabase, sql: string): Promise<VerifyReport> {
  await t.sql(sql)
  const client = new pg.Client(t.url)
  await client.connect()
  let proposed
  try {
    proposed = (await initConfig(client, { appRole: t.role('app') })).config
  } finally {
    await client.end()
  }
  const config = parseConfig(proposed, 'tenantize.config.json')
  await apply({ databaseUrl: t.url, config, phase: 'schema', timeouts: fast })
  await apply({ databaseUrl: t.url, config, phase: 'enforce', timeouts: fast })
  return verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, setting: config.tenant.setting })
}

// Set up before any test is declared (the runner may end the file, and drop its databases, once declared tests are done).
// F6: two foreign keys to one parent and a CHECK between them (MusicBrainz tag_relation, l_<entity>_<entity>).
const f6 = await converted(
  await db.another('f6'),
  `CREATE TABLE tag (id serial PRIMARY KEY, name text NOT NULL);
   CREATE TABLE tag_relation (tag1 int NOT NULL REFERENCES tag, tag2 int NOT NULL REFERENCES tag,
     PRIMARY KEY (tag1, tag2), CHECK (tag1 < tag2));
   CREATE TABLE artist (id serial PRIMARY KEY, name text NOT NULL);
   CREATE TABLE l_artist_artist (id serial PRIMARY KEY, entity0 int NOT NULL REFERENCES artist, entity1 int NOT NULL REFERENCES artist,
     CHECK (entity0 <> entity1));
   CREATE TABLE l_artist_artist_gt (id serial PRIMARY KEY, entity0 int NOT NULL REFERENCES artist, entity1 int NOT NULL REFERENCES artist,
     CHECK (entity0 > entity1));
   INSERT INTO tag (name) VALUES ('a'), ('b');
   INSERT INTO tag_relation VALUES (1, 2);
   INSERT INTO artist (name) VALUES ('a'), ('b');
   INSERT INTO l_artist_artist (entity0, entity1) VALUES (1, 2);
   INSERT INTO l_artist_artist_gt (entity0, entity1) VALUES (2, 1);`,
)
// F9: two tenant tables that reference each other through NULL-able foreign keys (ThingsBoard), and a third that needs one of them.
const f9 = await converted(
  await db.another('f9'),
  `CREATE TABLE device_profile (id serial PRIMARY KEY, name text NOT NULL, firmware_id int);
   CREATE TABLE ota_package (id serial PRIMARY KEY, device_profile_id int REFERENCES device_profile ON DELETE CASCADE, title text NOT NULL);
   ALTER TABLE device_profile ADD FOREIGN KEY (firmware_id) REFERENCES ota_package (id);
   CREATE TABLE device (id serial PRIMARY KEY, device_profile_id int NOT NULL REFERENCES device_profile, name text NOT NULL);
   INSERT INTO device_profile (name) VALUES ('p');
   INSERT INTO ota_package (device_profile_id, title) VALUES (1, 'fw');
   UPDATE device_profile SET firmware_id = 1;
   INSERT INTO device (device_profile_id, name) VALUES (1, 'd');`,
)

/** Every tenant table of the report has probe rows of both tenants and a passing read-other check; verify exits 0. */
function assertAllProbed(report: VerifyReport, tables: readonly string[]): void {
  const probe = report.probe!
  assert.deepEqual(report.model.tables.filter((t) => t.class !== 'global' && t.table !== 'public.organizations').map((t) => t.table).sort(), [...tables].sort())
  assert.deepEqual(probe.unprobed, [])
  assert.deepEqual(probe.seeded.filter((s) => s.error !== null || s.rows < 2).map((s) => `${s.table}: ${s.error ?? `${s.rows} row(s)`}`), [])
  for (const table of tables) {
    for (const check of ['read-own', 'read-other', 'update-other', 'delete-other']) {
      const c = probe.checks.find((x) => x.table === table && x.check === check)
      assert.equal(c?.status, 'pass', `${table} ${check}: ${c?.detail ?? 'missing'}`)
    }
  }
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}: ${f.message}`), [])
  assert.equal(exitCodeFor(report, 'error'), 0)
}

test('F6: a CHECK between two foreign keys to one parent (<, <>, >): the parent gets two probe rows per tenant, every table is probed', () => {
  assertAllProbed(f6, ['public.artist', 'public.l_artist_artist', 'public.l_artist_artist_gt', 'public.tag', 'public.tag_relation'])
  // The relation rows point at two different rows of their parent, in the order the CHECK asks for.
  const rows = f6.probe!.seeded.find((s) => s.table === 'public.tag')
  assert.ok((rows?.rows ?? 0) >= 4, `public.tag has two probe rows per tenant: ${JSON.stringify(rows)}`)
})

test('F9: two tenant tables referencing each other through NULL-able foreign keys are seeded (one side NULL first), and the table that needs one of them too', () => {
  assertAllProbed(f9, ['public.device', 'public.device_profile', 'public.ota_package'])
})
