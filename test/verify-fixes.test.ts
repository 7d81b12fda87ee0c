import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { lintCatalog } from '../src/verify/lints/index.js'
import type { Finding } from '../src/verify/types.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { createVerifyFixture } from './helpers/verify-fixture.js'

// Issue #13 item 5: every fix verify prints can be pasted as it is. Each case breaks the hand-made
// tenantized fixture in a fresh database, takes the finding's fix, runs it statement by statement (as psql
// does a file: CONCURRENTLY outside a transaction, BEGIN … COMMIT where the fix says so), and lints again:
// the finding is gone and nothing else changed.

const db = await testDatabase(import.meta.url)
const CTX = '(SELECT tenantize.current_tenant_id())'
const projectsPolicy = (using: string): string => `ALTER POLICY tenant_isolation ON app.projects USING (${using}) WITH CHECK (${using});`

/** The statements of a fix, split where a line ends with `;` (comments stay with the statement they precede). */
function statements(fix: string): string[] {
  return fix.split(/;[ \t]*\n/).map((s) => s.trim()).filter((s) => s.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('--'))).map((s) => (s.endsWith(';') ? s : `${s};`))
}

const key = (f: Finding): string => `${f.rule} ${f.object}`

async function lint(t: TestDatabase, app: string): Promise<Finding[]> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    return (await lintCatalog(await introspect(client), { appRole: app })).findings
  } finally {
    await client.end()
  }
}

/** Break a fresh fixture with `breakSql`, apply the fix of `rule` on `object`, and check the result. */
async function fixes(label: string, breakSql: string, rule: string, object: RegExp, after?: (t: TestDatabase) => Promise<void>): Promise<string> {
  const t = await db.another(label)
  const fx = await createVerifyFixture(t)
  const clean = new Set((await lint(t, fx.app)).map(key))
  await t.sql(breakSql.replaceAll(':app', `"${fx.app}"`))
  const broken = await lint(t, fx.app)
  const finding = broken.find((f) => f.rule === rule && object.test(f.object))
  assert.ok(finding !== undefined, `${rule} on ${object} among ${broken.map(key).join('; ')}`)
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    for (const s of statements(finding.fix)) await client.query(s)
  } finally {
    await client.end()
  }
  const fixed = await lint(t, fx.app)
  assert.deepEqual(fixed.filter((f) => f.rule === rule && f.object === finding.object), [], 'the finding is gone')
  // Nothing else broke: every finding left was there before the break, or is another finding of the break.
  const before = new Set([...clean, ...broken.map(key)])
  assert.deepEqual(fixed.map(key).filter((k) => !before.has(k)), [], 'no new finding')
  await after?.(t)
  return finding.fix
}

test('a global unique index on lower(email): rebuilt with org_id first, keeping the expression, then swapped under the old name', async () => {
  const fix = await fixes('fix_uidx', 'CREATE UNIQUE INDEX invoices_email_lower ON app.invoices (lower(customer_email)) WHERE status <> \'draft\';', 'unique-not-tenant-scoped', /invoices_email_lower/, async (t) => {
    const [row] = await t.sql<{ def: string }>(`SELECT pg_get_indexdef('app.invoices_email_lower'::regclass) AS def`)
    assert.equal(row!.def, "CREATE UNIQUE INDEX invoices_email_lower ON app.invoices USING btree (org_id, lower(customer_email)) WHERE (status <> 'draft'::app.invoice_status)")
  })
  assert.equal(fix, `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "invoices_email_lower_tenant" ON "app"."invoices" ("org_id", lower(customer_email)) WHERE (status <> 'draft'::app.invoice_status);
DROP INDEX CONCURRENTLY "app"."invoices_email_lower";
ALTER INDEX "app"."invoices_email_lower_tenant" RENAME TO "invoices_email_lower";`)
  assert.ok(fix.indexOf('CREATE') < fix.indexOf('DROP'), 'create before drop')
})

test('a global unique constraint: the tenant-scoped index first, then one ALTER swaps the constraint, same name', async () => {
  const fix = await fixes('fix_ucon', 'ALTER TABLE app.invoices ADD CONSTRAINT invoices_customer_email_key UNIQUE (customer_email);', 'unique-not-tenant-scoped', /invoices_customer_email_key/, async (t) => {
    const [row] = await t.sql<{ def: string }>(`SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'invoices_customer_email_key'`)
    assert.equal(row!.def, 'UNIQUE (org_id, customer_email)')
  })
  assert.equal(fix, `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "invoices_customer_email_key_tenant" ON "app"."invoices" ("org_id", customer_email);
ALTER TABLE "app"."invoices" DROP CONSTRAINT "invoices_customer_email_key", ADD CONSTRAINT "invoices_customer_email_key" UNIQUE USING INDEX "invoices_customer_email_key_tenant";`)
})

test('a global unique index on a partitioned table: built on the parent ONLY, then each partition CONCURRENTLY and attached (no CONCURRENTLY on the parent)', async () => {
  const fix = await fixes('fix_upart', 'CREATE UNIQUE INDEX events_kind_key ON app.events (kind, id, occurred_on);', 'unique-not-tenant-scoped', /events_kind_key/, async (t) => {
    const rows = await t.sql<{ valid: boolean }>(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'app.events_kind_key'::regclass`)
    assert.deepEqual(rows, [{ valid: true }])
  })
  assert.doesNotMatch(fix, /CONCURRENTLY[^\n]*ON "app"\."events" /)
  assert.match(fix, /CREATE UNIQUE INDEX IF NOT EXISTS "events_kind_key_tenant" ON ONLY "app"\."events" \("org_id", kind, id, occurred_on\);\n/)
  assert.match(fix, /CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "events_2024_events_kind_key_tenant" ON "app"\."events_2024" .*;\nALTER INDEX "app"\."events_kind_key_tenant" ATTACH PARTITION "app"\."events_2024_events_kind_key_tenant";/)
})

test('a primary key the app chooses: the (org_id, key) index first, then the key moves onto it', async () => {
  const fix = await fixes('fix_pk', 'CREATE TABLE app.notes (org_id uuid NOT NULL REFERENCES app.organizations (id), id bigint PRIMARY KEY, body text);', 'primary-key-not-tenant-scoped', /notes_pkey/)
  assert.equal(fix, `-- a unique (org_id, id) key for composite foreign keys:
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "notes_org_id_id_key" ON "app"."notes" ("org_id", "id");
-- the app chooses these ids: move the primary key onto it (foreign keys that reference "notes_pkey" must move first):
ALTER TABLE "app"."notes" DROP CONSTRAINT "notes_pkey", ADD CONSTRAINT "notes_pkey" PRIMARY KEY USING INDEX "notes_org_id_id_key";`)
})

test('a generated primary key without the tenant column on a partitioned table: the (org_id, key) index is built online per partition', async () => {
  const fix = await fixes('fix_ppk', `CREATE SEQUENCE app.logs_id_seq; CREATE TABLE app.logs (org_id uuid NOT NULL REFERENCES app.organizations (id), id bigint NOT NULL DEFAULT nextval('app.logs_id_seq'), day date NOT NULL, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
    CREATE TABLE app.logs_2025 PARTITION OF app.logs FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');`, 'primary-key-not-tenant-scoped', /logs_pkey/)
  assert.match(fix, /ON ONLY "app"\."logs" \("org_id", "id", "day"\);/)
})

test('a foreign key with ON DELETE CASCADE that can cross tenants: a tenant-scoped twin beside it, the cascade keeps working', async () => {
  const fix = await fixes('fix_fk', 'ALTER TABLE app.invoices ADD COLUMN project_id bigint REFERENCES app.projects (id) ON DELETE CASCADE;', 'fk-not-tenant-scoped', /invoices_project_id_fkey/, async (t) => {
    await t.sql(`INSERT INTO app.organizations (id, slug, name) VALUES ('00000000-0000-4000-8000-000000000001', 'a', 'A');
      INSERT INTO app.projects (org_id, id, name) VALUES ('00000000-0000-4000-8000-000000000001', 7, 'p');
      INSERT INTO app.invoices (org_id, customer_email, amount, currency, status, project_id) VALUES ('00000000-0000-4000-8000-000000000001', 'x@y', 1, 'EUR', 'sent', 7);
      DELETE FROM app.projects WHERE id = 7;`)
    assert.deepEqual(await t.sql('SELECT id FROM app.invoices'), [], 'ON DELETE CASCADE still deletes the invoice')
  })
  assert.doesNotMatch(fix, /DROP CONSTRAINT/)
  assert.match(fix, /ADD CONSTRAINT "invoices_project_id_fkey_tenant" FOREIGN KEY \("org_id", "project_id"\) REFERENCES "app"\."projects" \("org_id", "id"\) DEFERRABLE INITIALLY DEFERRED NOT VALID;/)
})

test('a foreign key to a parent without a unique (org_id, key) index: the fix builds it first', async () => {
  const fix = await fixes('fix_fkidx', 'ALTER TABLE app.projects ADD COLUMN lead_invoice bigint; ALTER TABLE app.invoices ADD CONSTRAINT invoices_number_key UNIQUE (number); ALTER TABLE app.projects ADD CONSTRAINT projects_lead_fkey FOREIGN KEY (lead_invoice) REFERENCES app.invoices (number) ON DELETE SET NULL;', 'fk-not-tenant-scoped', /projects_lead_fkey/)
  assert.ok(fix.indexOf('CREATE UNIQUE INDEX') < fix.indexOf('ADD CONSTRAINT'), fix)
})

for (const [rule, label, breakSql] of [
  ['policy-open-without-context', 'fix_open', projectsPolicy(`org_id = coalesce(${CTX}, org_id)`)],
  ['policy-context-errors-when-missing', 'fix_err', projectsPolicy(`org_id = (SELECT current_setting('tenantize.tenant_id')::uuid)`)],
  ['policy-leaky-function', 'fix_leak', `CREATE FUNCTION app.is_current(a uuid) RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT a = nullif(pg_catalog.current_setting('tenantize.tenant_id', true), '')::uuid $$;\n${projectsPolicy('app.is_current(org_id)')}`],
] as const) {
  test(`${rule}: the new policy is created before the old one is dropped, in one transaction`, async () => {
    const fix = await fixes(label, breakSql, rule, /"app"\."projects"/)
    const lines = fix.split('\n').filter((l) => !l.startsWith('--'))
    assert.equal(lines[0], 'BEGIN;')
    assert.match(lines[1]!, /^CREATE POLICY "tenant_isolation_new" ON "app"\."projects" AS PERMISSIVE FOR ALL TO /)
    assert.equal(lines.at(-3), 'DROP POLICY "tenant_isolation" ON "app"."projects";')
    assert.equal(lines.at(-2), 'ALTER POLICY "tenant_isolation_new" ON "app"."projects" RENAME TO "tenant_isolation";')
    assert.equal(lines.at(-1), 'COMMIT;')
  })
}
