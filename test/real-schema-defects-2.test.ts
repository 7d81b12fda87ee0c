/**
 * Regression tests for the defects the second round of corpus schemas found (test/fixtures/corpus/FINDINGS.md,
 * F11 on): each finding's minimal repro, run through init → apply → isolation as the app role → rollback.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { apply, initConfig, rollback } from '../src/apply/index.js'
import { withClient } from '../src/db/connect.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
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
