/**
 * Regression tests for the defects the third round of corpus schemas found (test/fixtures/corpus/FINDINGS.md,
 * F19 on): each finding's minimal repro.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { apply, initConfig, rollback } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { verify } from '../src/verify/index.js'
import { loadSqlParser } from '../src/verify/lints/sql-text.js'
import { hintsFrom } from '../src/verify/probe/constraint-values.js'
import { asRole } from './helpers/conversion.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)
const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

/** init as the CLI runs it (facts from the data), with a role of this database's own that is dropped afterwards. */
async function init(t: TestDatabase, options: { tenantTable?: string; tenantColumn?: string } = {}): Promise<TenantizeConfig> {
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).then(() => undefined, () => undefined))
  const table = options.tenantTable?.split('.') as [string, string] | undefined
  const { config } = await withClient(t.url, (c) =>
    initConfig(c, { appRole: role, ...(table === undefined ? {} : { tenantTable: { schema: table[0], name: table[1] } }), ...(options.tenantColumn === undefined ? {} : { tenantColumn: options.tenantColumn }) }),
  )
  return parseConfig(config)
}

test('corpus F19: the probe reads CHECK (upper(col) = ANY (ARRAY[…])) and (col IS NULL OR …) as the values a column may take', async () => {
  await loadSqlParser()
  const hints = hintsFrom([
    `CHECK ((upper((transactiontype)::text) = ANY (ARRAY['W'::text, 'S'::text, 'P'::text])))`,
    `CHECK (((persontype IS NULL) OR (upper((persontype)::text) = ANY (ARRAY['SC'::text, 'VC'::text]))))`,
    `CHECK ((lower(code) IN ('a', 'b')))`,
  ]).columns
  assert.deepEqual(hints.get('transactiontype')?.allowed, ['W', 'S', 'P'])
  assert.deepEqual(hints.get('persontype')?.allowed, ['SC', 'VC'])
  assert.deepEqual(hints.get('code')?.allowed, ['a', 'b'])
})

test('corpus F19: verify seeds a table whose CHECK lists codes through upper(col) (AdventureWorks person.person, production.transactionhistory), so every tenant table is probed', async () => {
  const t = await db.another('f19')
  await t.sql(`CREATE SCHEMA person;
    CREATE TABLE person.person (businessentityid serial PRIMARY KEY, persontype char(2) NOT NULL, firstname text NOT NULL,
      CONSTRAINT "CK_Person_PersonType" CHECK (persontype IS NULL OR upper(persontype) = ANY (ARRAY['SC', 'VC', 'IN', 'EM', 'SP', 'GC'])));
    CREATE TABLE person.emailaddress (id serial PRIMARY KEY, businessentityid int NOT NULL REFERENCES person.person, email text);
    CREATE TABLE person.history (id serial PRIMARY KEY, transactiontype char(1) NOT NULL CHECK (upper(transactiontype) = ANY (ARRAY['W', 'S', 'P'])));
    INSERT INTO person.person (persontype, firstname) VALUES ('EM', 'Ken');
    INSERT INTO person.emailaddress (businessentityid, email) VALUES (1, 'ken@example.com');
    INSERT INTO person.history (transactiontype) VALUES ('W');`)
  const config = await init(t)
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  assert.deepEqual(report.probe?.unprobed ?? null, [], 'every tenant table probed')
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}`), [])
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('corpus F20: verify does not warn that a unique key over the whole primary key spans all tenants (formbricks (id, "workspaceId") next to the primary key id)', async () => {
  const t = await db.another('f20')
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE workspace (id text PRIMARY KEY, org_id text NOT NULL REFERENCES org);
    CREATE TABLE survey (id text PRIMARY KEY, workspace_id text NOT NULL REFERENCES workspace, slug text);
    CREATE UNIQUE INDEX survey_id_workspace_id_key ON survey (id, workspace_id);
    CREATE TABLE mapping (id serial PRIMARY KEY, survey_id text NOT NULL, workspace_id text NOT NULL,
      FOREIGN KEY (survey_id, workspace_id) REFERENCES survey (id, workspace_id));
    INSERT INTO org VALUES ('a', 'A');
    INSERT INTO workspace VALUES ('w1', 'a');
    INSERT INTO survey VALUES ('s1', 'w1', 'first');
    INSERT INTO mapping (survey_id, workspace_id) VALUES ('s1', 'w1');`)
  const config = await init(t, { tenantTable: 'public.org', tenantColumn: 'org_id' })
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  const unique = report.findings.filter((f) => f.rule === 'unique-not-tenant-scoped').map((f) => f.object)
  assert.ok(!unique.some((o) => o.includes('survey_id_workspace_id_key')), `no warning on the key over the primary key: ${JSON.stringify(unique)}`)
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
})

test('corpus F21: a foreign key declared on a partition only (pagila payment_p2022_01 … → customer, rental, staff) is made tenant-scoped or listed as a manual step; the app cannot point a row at another tenant\'s row unannounced', async () => {
  const t = await db.another('f21')
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE customer (id int PRIMARY KEY, org_id text NOT NULL REFERENCES org, name text);
    CREATE TABLE payment (id int NOT NULL, paid_at bigint NOT NULL, customer_id int NOT NULL) PARTITION BY RANGE (paid_at);
    CREATE TABLE payment_0 PARTITION OF payment FOR VALUES FROM (0) TO (1000000);
    ALTER TABLE ONLY payment_0 ADD CONSTRAINT payment_0_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer (id);
    INSERT INTO org VALUES ('a', 'A'), ('b', 'B');
    INSERT INTO customer VALUES (1, 'a', 'of A'), (2, 'b', 'of B');
    INSERT INTO payment VALUES (1, 1, 1), (2, 1, 2);`)
  const config = await init(t, { tenantTable: 'public.org', tenantColumn: 'org_id' })
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), config))
  const listed = plan.manual.some((m) => m.object.includes('payment_0_customer_id_fkey'))
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  // Tenant A names its own tenant and B's customer: the partition's key checks the id only.
  const refused = await asRole(t.url, config.roles.app, 'a', (c) => c.query(`INSERT INTO payment (id, paid_at, customer_id, org_id) VALUES (3, 5, 2, 'a')`).then(() => false, (e: { code?: string }) => e.code === '23503'))
  assert.ok(refused || listed, `a payment of tenant A referencing tenant B's customer was accepted, and the plan's manual steps do not name payment_0_customer_id_fkey: ${JSON.stringify(plan.manual.map((m) => m.object))}`)
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, mergeTenants: true })
})
