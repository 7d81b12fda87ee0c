import { test } from 'node:test'
import assert from 'node:assert/strict'
import { quoteIdent as q } from '../src/sql/index.js'
import type { Finding } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, fixtureClient, inRolledBack, lintAfter } from './helpers/verify-fixture.js'

// Permissive policies that let rows past the tenant predicate (issue #11): another setting read beside
// the tenant policy, a switch such as app.bypass = 'on', an OR branch without the tenant comparison —
// and which setting verify takes as the tenant's when policies read several.

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
const client = await fixtureClient(db)

const CTX = '(SELECT tenantize.current_tenant_id())'
const RULE = 'policy-permissive-without-tenant-filter'

async function findings(sql: string, rule: string): Promise<Finding[]> {
  const { findings: all } = await lintAfter(client, sql, { appRole: fx.app })
  return all.filter((f) => f.rule === rule)
}

test('a PUBLIC policy comparing org_id with app.tenant beside the tenant policy is an error; the fix drops it (the tenant policy stays)', async () => {
  const found = await findings("CREATE POLICY legacy ON app.projects USING (org_id = (SELECT nullif(current_setting('app.tenant', true), '')::uuid));", RULE)
  assert.deepEqual(found.map((f) => [f.severity, f.object]), [['error', 'policy "legacy" on "app"."projects"']])
  assert.match(found[0]!.message, /reads "app\.tenant" — settable by any session with set_config\(\)/)
  assert.equal(found[0]!.fix, '-- "tenant_isolation" keeps isolating app.projects; this policy only adds other tenants\' rows:\nDROP POLICY "legacy" ON "app"."projects";')
  // Reported once, as the error, not also as a setting mismatch.
  assert.deepEqual(await findings("CREATE POLICY legacy ON app.projects USING (org_id = (SELECT nullif(current_setting('app.tenant', true), '')::uuid));", 'policy-context-setting-mismatch'), [])
})

test('the same policy made RESTRICTIVE narrows the tenant policy instead: not a bypass', async () => {
  assert.deepEqual(await findings("CREATE POLICY legacy ON app.projects AS RESTRICTIVE USING (org_id = (SELECT nullif(current_setting('app.tenant', true), '')::uuid));", RULE), [])
})

test('a policy of its own gated by app.bypass = \'on\' is an error', async () => {
  const found = await findings(`CREATE POLICY support ON app.invoices FOR SELECT TO ${q(fx.app)} USING (current_setting('app.bypass', true) = 'on');`, RULE)
  assert.deepEqual(found.map((f) => f.object), ['policy "support" on "app"."invoices"'])
  assert.match(found[0]!.message, /reads "app\.bypass"/)
  assert.match(found[0]!.fix, /^-- "tenant_isolation" keeps isolating app\.invoices.*\nDROP POLICY "support" ON "app"\."invoices";$/s)
})

test('the same switch applying to another role than the app role is not the app\'s bypass', async () => {
  const other = fx.role('support')
  assert.deepEqual(await findings(`CREATE ROLE ${q(other)} NOLOGIN; CREATE POLICY support ON app.invoices FOR SELECT TO ${q(other)} USING (current_setting('app.bypass', true) = 'on');`, RULE), [])
})

test('an OR branch on app.bypass inside the tenant policy is an error; the fix keeps only the tenant comparison, atomically', async () => {
  const found = await findings(`ALTER POLICY tenant_isolation ON app.invoices USING (org_id = ${CTX} OR current_setting('app.bypass', true) = 'on');`, RULE)
  assert.deepEqual(found.map((f) => f.object), ['policy "tenant_isolation" on "app"."invoices"'])
  assert.equal(found[0]!.fix, `-- keep the tenant comparison only:\nALTER POLICY "tenant_isolation" ON "app"."invoices" USING ("org_id" = ${CTX}) WITH CHECK ("org_id" = ${CTX});`)
})

test('the switch AND-ed with the tenant comparison only narrows it: not a bypass', async () => {
  assert.deepEqual(await findings(`ALTER POLICY tenant_isolation ON app.invoices USING (org_id = ${CTX} AND current_setting('app.region', true) IS DISTINCT FROM 'off');`, RULE), [])
})

test('an OR branch on a column (… OR status = \'paid\') opens those rows to every tenant', async () => {
  const found = await findings(`ALTER POLICY tenant_isolation ON app.invoices USING (org_id = ${CTX} OR status = 'paid');`, RULE)
  assert.match(found[0]?.message ?? '', /has an OR branch that does not compare "org_id" with the tenant context/)
})

test('OR of two tenant comparisons, and CASE whose every branch compares, still filter by tenant', async () => {
  assert.deepEqual(await findings(`ALTER POLICY tenant_isolation ON app.invoices USING ((org_id = ${CTX} AND status = 'paid') OR (org_id = ${CTX} AND amount > 0));`, RULE), [])
  assert.deepEqual(await findings(`ALTER POLICY tenant_isolation ON app.invoices USING (CASE WHEN status = 'paid' THEN org_id = ${CTX} ELSE false END);`, RULE), [])
})

test('WITH CHECK with an OR branch on app.bypass lets rows be written for any tenant', async () => {
  const found = await findings(`ALTER POLICY tenant_isolation ON app.invoices WITH CHECK (org_id = ${CTX} OR current_setting('app.bypass', true) = 'on');`, 'policy-with-check-without-tenant-filter')
  assert.deepEqual(found.map((f) => f.object), ['policy "tenant_isolation" on "app"."invoices"'])
  assert.match(found[0]!.message, /has a branch that does not compare the tenant column/)
  assert.deepEqual(await findings('', 'policy-with-check-without-tenant-filter'), [])
})

/** Every tenant policy of the fixture rewritten to compare org_id with `app.tenant`, OR-ed with an app.bypass switch. */
const TABLES = ['organizations', 'projects', 'tasks', 'invoices', 'events', 'events_2024', 'events_2025']
const legacyTenant = "(SELECT nullif(current_setting('app.tenant', true), '')::uuid)"
const handTenanted = TABLES.map((t) => {
  const column = t === 'organizations' ? 'id' : 'org_id'
  return `ALTER POLICY tenant_isolation ON app.${t} USING (${column} = ${legacyTenant} OR current_setting('app.bypass', true) = 'on') WITH CHECK (${column} = ${legacyTenant});`
}).join('\n')

test('setting inference: a setting read only as an on/off switch is never the tenant\'s, however often it is read; the notes say why', async () => {
  const { model, findings: all } = await lintAfter(client, handTenanted, { appRole: fx.app })
  assert.deepEqual([model.setting, model.settingSource, model.tenantColumn], ['app.tenant', 'policies', 'org_id'])
  assert.ok(model.notes.includes('context setting "app.tenant" inferred from current_setting() in 7 policies that compare a column with it'), model.notes.join('\n'))
  assert.ok(model.notes.some((n) => n.startsWith('setting "app.bypass" (read by 7 policies) is never compared with a column, only used as a switch')), model.notes.join('\n'))
  // The bypass is reported on every table, and no fix makes a policy read app.bypass.
  assert.deepEqual(all.filter((f) => f.rule === RULE).map((f) => f.table).sort(), TABLES.map((t) => `app.${t}`).sort())
  assert.deepEqual(all.filter((f) => f.fix.includes("'app.bypass'")).map((f) => `${f.rule}: ${f.fix}`), [])
  assert.ok(all.filter((f) => f.rule === RULE).every((f) => f.fix.includes(`current_setting('app.tenant', true)`)))
})

test('setting inference: with two settings compared with the tenant column, the note names both, and the minority policy\'s fix does not rewrite it', async () => {
  const minority = `ALTER POLICY tenant_isolation ON app.invoices USING (org_id = ${legacyTenant}) WITH CHECK (org_id = ${legacyTenant});`
  const { model, findings: all } = await lintAfter(client, minority, { appRole: fx.app })
  assert.equal(model.setting, 'tenantize.tenant_id')
  assert.ok(model.notes.some((n) => n === 'setting "app.tenant" is compared with a column in 1 policy, fewer than "tenantize.tenant_id"; pass --setting app.tenant if that is the one your runtime sets'), model.notes.join('\n'))
  const mismatch = all.filter((f) => f.rule === 'policy-context-setting-mismatch')
  assert.deepEqual(mismatch.map((f) => f.object), ['policy "tenant_isolation" on "app"."invoices"'])
  assert.match(mismatch[0]!.message, /it compares "org_id" with "app\.tenant"; verify took "tenantize\.tenant_id" because more policies compare a column with "tenantize\.tenant_id"/)
  // Only comments: which setting is right is the runtime's to say.
  assert.deepEqual(mismatch[0]!.fix.split('\n').filter((l) => !l.startsWith('--')), [])
  assert.match(mismatch[0]!.fix, /run verify with --setting app\.tenant instead/)
  // Given as an option, the setting is the user's word: the rewrite is real SQL.
  const given = (await lintAfter(client, minority, { appRole: fx.app, setting: 'tenantize.tenant_id' })).findings.filter((f) => f.rule === 'policy-context-setting-mismatch')
  assert.match(given[0]?.fix ?? '', /^BEGIN;\nCREATE POLICY "tenant_isolation_new" ON "app"\."invoices" .*\nDROP POLICY "tenant_isolation" ON "app"\."invoices";\nALTER POLICY "tenant_isolation_new" ON "app"\."invoices" RENAME TO "tenant_isolation";\nCOMMIT;$/s)
})

test('setting inference on the fixture: one setting, compared everywhere, and no note about others', async () => {
  const { model } = await lintAfter(client, '', { appRole: fx.app })
  assert.deepEqual([model.setting, model.settingSource], ['tenantize.tenant_id', 'policies'])
  assert.deepEqual(model.notes.filter((n) => n.startsWith('setting "')), [])
})

test('other rules\' fixes of a policy comparing the tenant with another setting keep its setting, and do not repair a bypass', async () => {
  const strict = "(SELECT (current_setting('app.tenant'))::uuid)"
  const errors = await findings(`ALTER POLICY tenant_isolation ON app.invoices USING (org_id = ${strict}) WITH CHECK (org_id = ${strict});`, 'policy-context-errors-when-missing')
  assert.deepEqual(errors.map((f) => f.object), ['policy "tenant_isolation" on "app"."invoices"'])
  assert.match(errors[0]!.fix, /current_setting\('app\.tenant', true\)/)
  assert.doesNotMatch(errors[0]!.fix, /tenantize/)
  // The same strict read in a policy beside the tenant policy is a bypass: only the error, whose fix drops it.
  assert.deepEqual(await findings(`CREATE POLICY legacy ON app.invoices USING (org_id = ${strict});`, 'policy-context-errors-when-missing'), [])
})

test('tenant table inference: when every tenant column references a legacy table whose key no policy compares, the table whose policies do is the tenant table, and each such foreign key is an error', async () => {
  const repoint = ['projects', 'tasks', 'invoices', 'events']
    .map((t) => `ALTER TABLE app.${t} DROP CONSTRAINT ${t}_org_id_fkey; ALTER TABLE app.${t} ADD CONSTRAINT ${t}_org_id_fkey FOREIGN KEY (org_id) REFERENCES app.legacy_orgs (id);`)
    .join('\n')
  const { model, findings: all } = await lintAfter(client, `CREATE TABLE app.legacy_orgs (id uuid PRIMARY KEY);\n${repoint}`, { appRole: fx.app })
  assert.deepEqual([model.root?.name, model.rootSource], ['organizations', 'policies'])
  // 6 tables: the two partitions of app.events carry the foreign key too.
  assert.ok(model.notes.some((n) => n.startsWith('the tenant column\'s foreign keys point at app.legacy_orgs (6 tables), whose key no policy compares with the context; app.organizations is taken as the tenant table')), model.notes.join('\n'))
  const wrong = all.filter((f) => f.rule === 'tenant-column-fk-wrong-table')
  assert.deepEqual(wrong.map((f) => f.table).sort(), ['app.events', 'app.invoices', 'app.projects', 'app.tasks'])
  const fixOf = (table: string): string => wrong.find((f) => f.table === table)?.fix ?? ''
  assert.ok(wrong.every((f) => f.severity === 'error'))
  assert.equal(fixOf('app.invoices'), 'ALTER TABLE "app"."invoices" ADD CONSTRAINT "invoices_org_id_tenant_fkey" FOREIGN KEY ("org_id") REFERENCES "app"."organizations" ("id") NOT VALID;\n-- fails on rows whose "org_id" names no tenant: fix those rows first\nALTER TABLE "app"."invoices" VALIDATE CONSTRAINT "invoices_org_id_tenant_fkey";\nALTER TABLE "app"."invoices" DROP CONSTRAINT "invoices_org_id_fkey";')
  // A partitioned table cannot take a NOT VALID foreign key.
  assert.match(fixOf('app.events'), /^-- .*\nALTER TABLE "app"\."events" ADD CONSTRAINT "events_org_id_tenant_fkey" FOREIGN KEY \("org_id"\) REFERENCES "app"\."organizations" \("id"\);\nALTER TABLE "app"\."events" DROP CONSTRAINT "events_org_id_fkey";$/)
  // Pasted in that order, each fix works: the new key first, then the old one goes.
  await inRolledBack(client, `CREATE TABLE app.legacy_orgs (id uuid PRIMARY KEY);\n${repoint}\n${wrong.map((f) => f.fix).join('\n')}`, async () => undefined)
  // Unchanged, the foreign keys and the policies agree.
  const clean = await lintAfter(client, 'CREATE TABLE app.legacy_orgs (id uuid PRIMARY KEY);', { appRole: fx.app })
  assert.deepEqual([clean.model.root?.name, clean.model.rootSource], ['organizations', 'foreign keys'])
  assert.deepEqual(clean.findings.filter((f) => f.rule === 'tenant-column-fk-wrong-table'), [])
})

test('the bypass fixes paste as they are, and afterwards no bypass is left', async () => {
  const broken = `${handTenanted}\nCREATE POLICY support ON app.invoices FOR SELECT TO ${q(fx.app)} USING (current_setting('app.bypass', true) = 'on');`
  const before = (await lintAfter(client, broken, { appRole: fx.app })).findings.filter((f) => f.rule === RULE)
  assert.equal(before.length, TABLES.length + 1)
  const after = await lintAfter(client, `${broken}\n${before.map((f) => f.fix).join('\n')}`, { appRole: fx.app })
  assert.deepEqual(after.findings.filter((f) => f.rule === RULE || f.rule === 'policy-with-check-without-tenant-filter').map((f) => f.message), [])
  // Still the tenant setting the policies compared with: the fixes kept it.
  assert.equal(after.model.setting, 'app.tenant')
})
