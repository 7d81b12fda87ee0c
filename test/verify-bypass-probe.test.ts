import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/db/connect.js'
import { quoteIdent as q } from '../src/sql/index.js'
import type { ProbeCheck, VerifyReport } from '../src/verify/types.js'
import { verifyClient } from '../src/verify/verify.js'
import { testDatabase } from './helpers/db.js'
import { dropRolesAfter } from './helpers/verify-fixture.js'

// The live side of issue #11 on hand-tenanted databases: rows filed under another tenant than the rows
// that reference them, and custom settings a session can flip to see another tenant's rows.

const db = await testDatabase(import.meta.url)
const app = `tz_bypass_app_${db.name.slice(db.name.lastIndexOf('_') + 1)}`
dropRolesAfter(db, () => [app])
await db.sql(`CREATE ROLE ${q(app)} LOGIN NOSUPERUSER NOBYPASSRLS`)

const ctx = (type: string): string => `(SELECT nullif(current_setting('tenantize.tenant_id', true), '')::${type})`
const tenantPolicy = (table: string, column: string, type = 'bigint'): string =>
  `CREATE POLICY tenant_isolation ON ${table} TO ${q(app)} USING (${column} = ${ctx(type)}) WITH CHECK (${column} = ${ctx(type)});`
const rls = (table: string): string => `ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY; ALTER TABLE ${table} FORCE ROW LEVEL SECURITY;`

// The first repro: orgs is the tenant table; settings.org_id says 1 for both rows, but org 2 points at settings 20.
await db.sql(`CREATE SCHEMA mis;
CREATE TABLE mis.settings (id bigint PRIMARY KEY, secret text, org_id bigint NOT NULL);
CREATE TABLE mis.orgs (id bigint PRIMARY KEY, settings_id bigint REFERENCES mis.settings (id));
INSERT INTO mis.settings VALUES (10, 'one', 1), (20, 'two', 1);
INSERT INTO mis.orgs VALUES (1, 10), (2, 20);
${rls('mis.settings')} ${rls('mis.orgs')}
${tenantPolicy('mis.settings', 'org_id')} ${tenantPolicy('mis.orgs', 'id')}
GRANT USAGE ON SCHEMA mis TO ${q(app)}; GRANT SELECT, INSERT, UPDATE, DELETE ON mis.settings, mis.orgs TO ${q(app)};`)

// The second repro (with a bigint tenant column, which the probe can fill): a legacy policy beside the tenant policy.
await db.sql(`CREATE SCHEMA flip;
CREATE TABLE flip.tenants (id bigint PRIMARY KEY);
CREATE TABLE flip.items (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES flip.tenants (id));
${rls('flip.tenants')} ${rls('flip.items')}
${tenantPolicy('flip.tenants', 'id')} ${tenantPolicy('flip.items', 'tenant_id')}
GRANT USAGE ON SCHEMA flip TO ${q(app)}; GRANT SELECT, INSERT, UPDATE, DELETE ON flip.tenants, flip.items TO ${q(app)};`)

/** Verify one schema (the other excluded) after `sql`, inside a transaction that is rolled back. */
async function verifyAfter(schema: 'mis' | 'flip', sql: string): Promise<VerifyReport> {
  const client = await connect(db.url)
  const other = schema === 'mis' ? ['flip.tenants', 'flip.items'] : ['mis.settings', 'mis.orgs']
  try {
    await client.query('BEGIN')
    if (sql !== '') await client.query(sql)
    return (await verifyClient(client, { appRole: app, exclude: other, tenantTable: schema === 'mis' ? 'mis.orgs' : 'flip.tenants', inTransaction: true })).report
  } finally {
    await client.query('ROLLBACK').catch(() => undefined)
    await client.end()
  }
}

const checkOf = (report: VerifyReport, table: string, check: string): ProbeCheck | undefined => report.probe?.checks.find((c) => c.table === table && c.check === check)

test('a settings row filed under org 1 but referenced by org 2 is an error finding, with its count and key', async () => {
  const report = await verifyAfter('mis', '')
  const found = report.findings.filter((f) => f.rule === 'probe-data-misassigned-rows')
  assert.deepEqual(found.map((f) => [f.severity, f.object]), [['error', '"mis"."settings"']])
  assert.match(found[0]!.message, /1 row\(s\) referenced by a mis\.orgs row \(a tenant\) of another tenant through orgs_settings_id_fkey \(orgs\(settings_id\) → settings\(id\)\), e\.g\. id=20$/)
  assert.equal(found[0]!.docs, 'docs/rules.md#probe-data-misassigned-rows')
  assert.ok(found[0]!.fix.startsWith('-- Fix the rows'))
})

test('filed under the tenant that references it, the same row is not reported', async () => {
  const report = await verifyAfter('mis', 'UPDATE mis.settings SET org_id = 2 WHERE id = 20;')
  assert.deepEqual(report.findings.filter((f) => f.rule === 'probe-data-misassigned-rows'), [])
  assert.equal(checkOf(report, 'mis.settings', 'data-misassigned-rows')?.status, 'pass')
})

test('a row of a tenant table pointing at a tenant row other than its own is reported on the tenant table (keys not shown: they are tenant ids)', async () => {
  const report = await verifyAfter('mis', 'ALTER TABLE mis.settings ADD COLUMN billed_org bigint REFERENCES mis.orgs (id); UPDATE mis.settings SET billed_org = 2 WHERE id = 10;')
  const c = checkOf(report, 'mis.orgs', 'data-misassigned-rows')
  assert.equal(c?.status, 'fail')
  assert.match(c?.detail ?? '', /1 row\(s\) referenced by a mis\.settings row of another tenant through settings_billed_org_fkey \(settings\(billed_org\) → orgs\(id\)\)$/)
})

test('a legacy policy comparing the tenant with app.tenant: setting app.tenant to tenant B\'s id shows B\'s rows', async () => {
  const report = await verifyAfter('flip', "CREATE POLICY legacy ON flip.items USING (tenant_id = current_setting('app.tenant')::bigint);")
  const found = report.findings.filter((f) => f.rule === 'probe-setting-flip')
  assert.deepEqual(found.map((f) => [f.severity, f.object]), [['error', '"flip"."items"']])
  assert.match(found[0]!.message, /setting app\.tenant = tenant B's id shows 1 of B's 1 row\(s\) of flip\.items/)
  assert.ok(found[0]!.fix.startsWith('-- Drop the policy'))
  // The lint says the same from the catalog.
  assert.ok(report.findings.some((f) => f.rule === 'policy-permissive-without-tenant-filter' && f.object === 'policy "legacy" on "flip"."items"'))
})

test('a bypass switch: app.bypass = \'on\' and = \'true\' show B\'s rows', async () => {
  const report = await verifyAfter('flip', `CREATE POLICY support ON flip.items FOR SELECT TO ${q(app)} USING (current_setting('app.bypass', true) IN ('on', 'true'));`)
  const c = checkOf(report, 'flip.items', 'setting-flip')
  assert.equal(c?.status, 'fail')
  assert.match(c?.detail ?? '', /app\.bypass = 'on' shows 1 of B's 1 row\(s\); app\.bypass = 'true' shows 1 of B's 1 row\(s\) of flip\.items/)
})

test('a setting AND-ed with the tenant predicate is tried and opens nothing; tables whose policies read no other setting have no such check', async () => {
  const report = await verifyAfter('flip', `ALTER POLICY tenant_isolation ON flip.items USING (tenant_id = ${ctx('bigint')} AND current_setting('app.region', true) IS DISTINCT FROM 'off');`)
  const c = checkOf(report, 'flip.items', 'setting-flip')
  assert.equal(c?.status, 'pass')
  assert.match(c?.detail ?? '', /^app\.region set to 'on', 'true', '1', 'yes', '', tenant B's id: none of B's rows visible$/)
  assert.equal(checkOf(report, 'flip.tenants', 'setting-flip'), undefined)
  assert.deepEqual(report.findings.filter((f) => f.rule === 'probe-setting-flip'), [])
})
