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

test('corpus F21: a foreign key declared on a partition only (pagila payment_p2022_01 … → customer, rental, staff) gets its composite twin on that partition: the app cannot point a row at another tenant\'s row; verify sees it scoped; rollback removes it', async () => {
  const t = await db.another('f21')
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY, name text NOT NULL);
    CREATE TABLE customer (id int PRIMARY KEY, org_id text NOT NULL REFERENCES org, name text);
    CREATE TABLE payment (id int NOT NULL, paid_at bigint NOT NULL, customer_id int NOT NULL) PARTITION BY RANGE (paid_at);
    CREATE TABLE payment_0 PARTITION OF payment FOR VALUES FROM (0) TO (1000000);
    CREATE TABLE payment_1 PARTITION OF payment FOR VALUES FROM (1000000) TO (2000000);
    ALTER TABLE ONLY payment_0 ADD CONSTRAINT payment_0_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer (id);
    INSERT INTO org VALUES ('a', 'A'), ('b', 'B');
    INSERT INTO customer VALUES (1, 'a', 'of A'), (2, 'b', 'of B');
    INSERT INTO payment VALUES (1, 1, 1), (2, 1, 2), (3, 1000001, 2);`)
  const constraintsOf = (table: string) => t.sql<{ c: string }>(`SELECT conname || ' ' || pg_get_constraintdef(oid) AS c FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY 1`, [table])
  const before = await constraintsOf('payment_0')
  const proposed = await init(t, { tenantTable: 'public.org', tenantColumn: 'org_id' })
  // init files payments under the default tenant (payment_1 has no key to a customer); this team knows each payment's customer.
  assert.equal(proposed.tables['public.payment']?.class, 'direct')
  const config = parseConfig({ ...proposed, tables: { ...proposed.tables, 'public.payment': { ...proposed.tables['public.payment']!, class: 'child', path: { columns: ['customer_id'], parent: 'public.customer', parentColumns: ['id'], reverse: false, via: ['public.customer', 'public.org'] } } } })
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), config))
  assert.ok(!plan.manual.some((m) => m.object.includes('payment_0_customer_id_fkey')), `no manual step for the partition's key: ${JSON.stringify(plan.manual.map((m) => m.object))}`)
  const fk = plan.steps.find((s) => s.id === 'composite-fk:public.payment_0:payment_0_customer_id_fkey')
  assert.ok(fk !== undefined, `a composite key step on the partition: ${plan.steps.map((s) => s.id).join(' ')}`)
  assert.equal(fk.table, 'public.payment', 'the step belongs to the partitioned table (apply --tables public.payment)')
  assert.match(fk.up[0]!, /SELECT count\(\*\) INTO n FROM "public"."payment_0" AS c JOIN "public"."customer" AS p/, 'the rows of the partition are checked first')
  assert.equal(fk.up[1], 'ALTER TABLE "public"."payment_0" ADD CONSTRAINT "payment_0_org_id_customer_id_tenant_fkey" FOREIGN KEY ("org_id", "customer_id") REFERENCES "public"."customer" ("org_id", "id") DEFERRABLE INITIALLY DEFERRED NOT VALID')
  assert.deepEqual(plan.steps.filter((s) => s.id.startsWith('composite-fk')).map((s) => s.id), ['composite-fk:public.payment_0:payment_0_customer_id_fkey', 'composite-fk-validate:public.payment_0:payment_0_customer_id_fkey'], 'nothing on payment_1, which has no such key')
  await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  // Tenant A names its own tenant and B's customer: the composite key refuses it (checked now, not at commit).
  const attempt = (paidAt: number) => asRole(t.url, config.roles.app, 'a', async (c) => {
    await c.query('SET CONSTRAINTS ALL IMMEDIATE')
    return c.query(`INSERT INTO payment (id, paid_at, customer_id, org_id) VALUES (9, $1, 2, 'a')`, [paidAt]).then(() => 'accepted', (e: { code?: string }) => e.code ?? 'error')
  })
  assert.equal(await attempt(5), '23503', 'payment_0: a row of tenant A naming tenant B\'s customer is refused')
  assert.equal(await attempt(1000005), 'accepted', 'payment_1 had no key to begin with: nothing is added there')
  assert.deepEqual(await t.sql(`SELECT id, org_id FROM payment ORDER BY id`), [{ id: 1, org_id: 'a' }, { id: 2, org_id: 'b' }, { id: 3, org_id: 'b' }], 'each payment in its customer\'s tenant')
  const report = await verify({ databaseUrl: t.url, appRole: config.roles.app, tenantColumn: config.tenant.column, tenantTable: config.tenant.table })
  assert.deepEqual(report.findings.filter((f) => f.rule === 'fk-not-tenant-scoped').map((f) => f.object), [], 'verify sees the partition\'s key scoped')
  await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
  assert.deepEqual(await constraintsOf('payment_0'), before, 'rollback leaves the partition\'s keys as they were')
})

test('corpus F21: a partition\'s key whose rows cross tenants is found before the first step, naming the partition', async () => {
  const t = await db.another('f21x')
  await t.sql(`CREATE TABLE org (id text PRIMARY KEY);
    CREATE TABLE customer (id int PRIMARY KEY, org_id text NOT NULL REFERENCES org);
    CREATE TABLE account (id int PRIMARY KEY, org_id text NOT NULL REFERENCES org);
    CREATE TABLE payment (id int NOT NULL, paid_at bigint NOT NULL, customer_id int NOT NULL, account_id int NOT NULL REFERENCES account) PARTITION BY RANGE (paid_at);
    CREATE TABLE payment_0 PARTITION OF payment FOR VALUES FROM (0) TO (1000000);
    ALTER TABLE ONLY payment_0 ADD CONSTRAINT payment_0_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer (id);
    INSERT INTO org VALUES ('a'), ('b');
    INSERT INTO customer VALUES (1, 'a'), (2, 'b');
    INSERT INTO account VALUES (1, 'a');
    INSERT INTO payment VALUES (1, 1, 1, 1), (2, 1, 2, 1);`)
  const proposed = await init(t, { tenantTable: 'public.org', tenantColumn: 'org_id' })
  // The payment takes its tenant from its account (the partitioned table's own key), not the partition's customer.
  const config = parseConfig({ ...proposed, tables: { ...proposed.tables, 'public.payment': { ...proposed.tables['public.payment']!, path: { columns: ['account_id'], parent: 'public.account', parentColumns: ['id'], reverse: false, via: ['public.account', 'public.org'] } } } })
  const plan = await withClient(t.url, async (c) => planConversion(await introspect(c), config))
  const crossing = plan.steps.flatMap((s) => s.preconditions ?? []).find((p) => p.id === 'crossing:public.payment_0:payment_0_customer_id_fkey')
  assert.ok(crossing !== undefined, 'a precondition on the partition\'s key')
  const rows = await t.sql<{ n: string }>(crossing.countSql)
  assert.equal(rows[0]?.n, '1', 'payment 2 (tenant a through its account) names customer 2 of tenant b')
  await assert.rejects(apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast }), (e: { code?: string; findings?: readonly { id: string; count: number; samples: readonly string[] }[] }) => {
    assert.equal(e.code, 'TZ_PREFLIGHT')
    assert.deepEqual(e.findings?.map((f) => [f.id, f.count, f.samples]), [['crossing:public.payment_0:payment_0_customer_id_fkey', 1, ['ctid=(0,2): customer_id=2']]])
    return true
  })
  assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM information_schema.columns WHERE column_name = 'org_id' AND table_name LIKE 'payment%'`), [{ n: 0 }], 'nothing applied')
})
