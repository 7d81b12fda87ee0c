import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { quoteIdent as q } from '../src/sql/index.js'
import { verify } from '../src/verify/verify.js'
import type { Finding, VerifyReport } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { dropRolesAfter, withRoles } from './helpers/verify-fixture.js'

// Seed 000 (energy billing): its row-level security recreated from the runbook's description
// (test/fixtures/verify/seed-000-energy-billing.sql explains each choice), and what verify reports.

const db = await testDatabase(import.meta.url)
const suffix = db.name.slice(db.name.lastIndexOf('_') + 1)
const app = `tz_seed0_app_${suffix}`
const web = `tz_seed0_web_${suffix}`
dropRolesAfter(db, () => [app, web])
await db.sql(withRoles(await readFile(new URL('./fixtures/verify/seed-000-energy-billing.sql', import.meta.url), 'utf8'), { app }))

const RLS_TABLES = ['billing_periods', 'chat_sessions', 'clients', 'customers', 'files', 'invoices', 'meter_readings', 'organization_members', 'organizations', 'tariff_rates', 'users', 'workspaces']
const CHILD_TABLES = ['billing_periods', 'customers', 'files', 'invoices', 'meter_readings', 'tariff_blocks', 'tariff_rates']
const HELPERS = ['get_accessible_client_ids', 'get_current_organization_id', 'get_current_user_id', 'is_organization_admin']

const asRun: VerifyReport = await verify({ databaseUrl: db.url, appRole: app })
const of = (report: VerifyReport, rule: string): Finding[] => report.findings.filter((f) => f.rule === rule)
const tablesOf = (report: VerifyReport, rule: string): string[] => [...new Set(of(report, rule).map((f) => f.table ?? f.object))].sort()
const pub = (names: readonly string[]): string[] => names.map((n) => `public.${n}`).sort()

test('the model is inferred from the seed\'s own policies: organization_id, app.current_organization_id, organizations', () => {
  const m = asRun.model
  assert.deepEqual([m.tenantColumn, m.tenantColumnSource], ['organization_id', 'policies'])
  assert.deepEqual([m.setting, m.settingSource], ['app.current_organization_id', 'policies'])
  assert.deepEqual([m.rootTable, m.rootSource], ['public.organizations', 'foreign keys'])
  assert.deepEqual(m.tables.filter((t) => t.class === 'child').map((t) => t.table).sort(), pub(CHILD_TABLES))
  assert.deepEqual(m.tables.filter((t) => t.class === 'policy').map((t) => t.table), ['public.users'])
})

test('the app user owns every table (Prisma migrates with it) and RLS is never forced: it bypasses every policy', () => {
  assert.deepEqual(tablesOf(asRun, 'rls-not-forced-app-owner'), pub(RLS_TABLES))
  assert.ok(of(asRun, 'rls-not-forced-app-owner').every((f) => f.severity === 'error' && /FORCE ROW LEVEL SECURITY/.test(f.fix)))
})

test('tariff_blocks, a model of the migration, got no policy and has RLS disabled', () => {
  assert.deepEqual(tablesOf(asRun, 'rls-disabled'), ['public.tariff_blocks'])
})

test('the four SECURITY DEFINER helpers belong to the superuser and run with the caller\'s search_path', () => {
  assert.deepEqual(of(asRun, 'function-security-definer-no-search-path').map((f) => f.object).sort(), HELPERS.map((h) => `${q('public')}.${q(h)}()`).sort())
  // Two of them read tenant tables as a superuser: no row-level security at all inside them.
  const readers = of(asRun, 'function-security-definer-tenant-table')
  assert.deepEqual(readers.map((f) => f.object).sort(), ['"public"."get_accessible_client_ids"()', '"public"."is_organization_admin"()'])
  assert.ok(readers.every((f) => f.severity === 'error' && /bypasses row-level security/.test(f.message)))
})

test('every policy is TO PUBLIC, calls VOLATILE SECURITY DEFINER helpers without a pinned search_path, and has no WITH CHECK', () => {
  for (const rule of ['policy-to-public', 'policy-volatile-function', 'policy-security-definer-function', 'policy-function-search-path', 'policy-missing-with-check']) {
    assert.deepEqual(tablesOf(asRun, rule), pub(RLS_TABLES), rule)
  }
})

test('organization-level policies call the helper per row; the client/customer chains are IN (SELECT …) sub-queries', () => {
  assert.deepEqual(tablesOf(asRun, 'policy-unwrapped-context'), pub(['chat_sessions', 'clients', 'organization_members', 'organizations', 'workspaces']))
  assert.deepEqual(tablesOf(asRun, 'policy-in-subquery'), pub(['billing_periods', 'customers', 'files', 'invoices', 'meter_readings', 'tariff_rates', 'users']))
  assert.deepEqual(tablesOf(asRun, 'tenant-table-no-tenant-column'), pub(CHILD_TABLES))
})

test('a global unique client code and a chat session that can point at another tenant\'s workspace', () => {
  assert.deepEqual(of(asRun, 'unique-not-tenant-scoped').map((f) => f.object), ['constraint "clients_code_key" on "public"."clients"'])
  assert.deepEqual(of(asRun, 'fk-not-tenant-scoped').map((f) => f.object), ['constraint "chat_sessions_workspace_id_fkey" on "public"."chat_sessions"'])
})

test('what the seed got right is not reported: its indexes, fail-closed helpers, no superuser app, a patched server', () => {
  for (const rule of ['index-no-tenant-leading', 'policy-open-without-context', 'policy-permissive-true', 'app-role-superuser', 'app-role-bypassrls', 'server-rls-cve']) {
    assert.deepEqual(of(asRun, rule), [], rule)
  }
})

test('the live probe confirms it: as the app user, tenant A reads, changes and exports tenant B\'s rows in every table', () => {
  const failed = (check: string): string[] => asRun.probe!.checks.filter((c) => c.check === check && c.status === 'fail').map((c) => c.table).sort()
  const all = pub([...RLS_TABLES, 'tariff_blocks'])
  for (const check of ['read-other', 'count', 'copy-to', 'context-none', 'context-empty', 'row-security-off']) assert.deepEqual(failed(check), all, check)
  assert.deepEqual(failed('insert-other'), all.filter((t) => t !== 'public.users')) // users rows name no tenant
  assert.equal(asRun.summary.error > 0, true)
})

test('with a separate, non-owner app role the policies mostly isolate: tariff_blocks has none, and an invoice can be pointed at another tenant\'s billing period', async () => {
  await db.sql(`CREATE ROLE ${q(web)} LOGIN NOBYPASSRLS; GRANT USAGE ON SCHEMA public TO ${q(web)}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${q(web)}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${q(web)}`)
  const report = await verify({ databaseUrl: db.url, appRole: web })
  const failures = report.probe!.checks.filter((c) => c.status === 'fail')
  assert.deepEqual([...new Set(failures.map((c) => c.table))].sort(), ['public.invoices', 'public.tariff_blocks'])
  // invoices_isolation checks customer_id only; billing_period_id may name any tenant's billing period.
  const invoice = failures.filter((c) => c.table === 'public.invoices')
  assert.deepEqual(invoice.map((c) => c.check), ['update-move'])
  assert.match(invoice[0]!.detail, /pointed 1 row\(s\) of public\.invoices at a public\.billing_periods row of tenant B \(through billing_period_id\)/)
  // Empty context: the helper casts '' to integer, so queries fail — closed, but with an error.
  const empty = report.probe!.checks.find((c) => c.table === 'public.clients' && c.check === 'context-empty')
  assert.equal(empty?.status, 'pass')
  assert.match(empty?.detail ?? '', /22P02/)
  assert.deepEqual(of(report, 'rls-not-forced-app-owner'), [])
  assert.deepEqual(tablesOf(report, 'rls-not-forced'), pub(RLS_TABLES))
})
