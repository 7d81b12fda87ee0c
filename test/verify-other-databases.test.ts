import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { quoteIdent as q } from '../src/sql/index.js'
import { verify } from '../src/verify/verify.js'
import type { VerifyReport } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { dropRolesAfter, withRoles } from './helpers/verify-fixture.js'

// verify on a database Tenantize did not make: the catalog test's fixture (test/fixtures/catalog-fixture.sql),
// with odd identifiers (quotes, spaces, commas, unicode), partitions, inheritance, a foreign table, a
// materialized view, SECURITY DEFINER and LEAKPROOF functions, data — and an app role whose name needs quoting.

const db = await testDatabase(import.meta.url)
const suffix = db.name.slice(db.name.lastIndexOf('_') + 1)
const roles = {
  owner: `tz_vo_owner_${suffix}`,
  app: `tz "odd" app ü ${suffix}`,
  bypass: `tz_vo_bypass_${suffix}`,
  staff: `tz_vo_staff_${suffix}`,
  everyone: `tz_vo_everyone_${suffix}`,
}
dropRolesAfter(db, () => Object.values(roles))
await db.sql(withRoles(await readFile(new URL('./fixtures/catalog-fixture.sql', import.meta.url), 'utf8'), roles))
await db.sql(`GRANT USAGE ON SCHEMA app, "Odd ""Schema"" ü", tenantize TO ${q(roles.app)}`)

const report: VerifyReport = await verify({ databaseUrl: db.url, appRole: roles.app })
const ODD = '"Odd ""Schema"" ü"."Tab,le ""1"""'

test('the probe fills every table (odd names, partitions, identity columns, a constant default under a unique key) and no check breaks', () => {
  assert.deepEqual(report.probe!.seeded.filter((s) => s.error !== null), [])
  assert.deepEqual(report.probe!.checks.filter((c) => c.status === 'error'), [])
  assert.ok(report.probe!.checks.some((c) => c.table === 'Odd "Schema" ü.Tab,le "1"'))
})

test('fix SQL quotes schema, table, policy and role names that need it', () => {
  const disabled = report.findings.find((f) => f.rule === 'rls-disabled-with-policies' && f.object === ODD)
  assert.ok(disabled !== undefined)
  assert.equal(disabled.fix, `ALTER TABLE ${ODD} ENABLE ROW LEVEL SECURITY;\nALTER TABLE ${ODD} FORCE ROW LEVEL SECURITY;`)
  const toPublic = report.findings.find((f) => f.rule === 'policy-to-public' && f.object === `policy "odd ""policy""" on ${ODD}`)
  assert.ok(toPublic !== undefined)
  assert.equal(toPublic.fix, `ALTER POLICY "odd ""policy""" ON ${ODD} TO ${q(roles.app)};`)
  assert.match(q(roles.app), /^"tz ""odd"" app ü /)
})

test('the catalog fixture\'s real problems are reported, by lint and by the probe', () => {
  const has = (rule: string, object: string): boolean => report.findings.some((f) => f.rule === rule && f.object === object)
  assert.ok(has('policy-permissive-true', 'policy "project_read" on "app"."project"'))
  assert.ok(has('grant-truncate', '"app"."task"'))
  assert.ok(has('rls-disabled', '"app"."org"'))
  assert.ok(has('partition-rls-disabled', '"app"."event_default"'))
  assert.ok(has('function-leakproof', '"app"."same"(a bigint, b bigint)'))
  assert.ok(has('function-security-definer-no-search-path', '"app"."projects_of"(p_org bigint)'))
  assert.ok(has('matview-over-tenant-table', '"app"."task_count"'))
  // project_read USING (true) shows B's projects; project_delete USING (budget IS NULL) lets A delete them.
  assert.ok(has('probe-read-other', '"app"."project"'))
  assert.ok(has('probe-delete-other', '"app"."project"'))
  // The existing rows (three organizations, their projects and tasks) are visible without any context.
  assert.ok(has('probe-context-none', '"app"."task"'))
})
