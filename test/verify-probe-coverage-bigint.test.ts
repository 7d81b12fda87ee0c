import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { verify } from '../src/verify/verify.js'
import type { VerifyReport } from '../src/verify/types.js'
import { testDatabase } from './helpers/db.js'
import { dropRolesAfter, withRoles } from './helpers/verify-fixture.js'

// bigint tenant ids the probe must invent (no default), flowing into int tenant columns; and a tenant table
// the app role has no privileges on, which is something to grant, not a broken policy.

const db = await testDatabase(import.meta.url)
const suffix = db.name.slice(db.name.lastIndexOf('_') + 1)
const roles = { owner: `tz_pcb_owner_${suffix}`, app: `tz_pcb_app_${suffix}` }
dropRolesAfter(db, () => Object.values(roles))
await db.sql(withRoles(await readFile(new URL('./fixtures/verify/probe-coverage-bigint.sql', import.meta.url), 'utf8'), roles))
const report: VerifyReport = await verify({ databaseUrl: db.url, appRole: roles.app, tenantTable: 'acct.accounts', tenantColumn: 'account_id' })

test('bigint tenant ids fit the int tenant columns: every tenant table is probed', () => {
  const probe = report.probe!
  assert.deepEqual(report.model.tables.filter((t) => t.class !== 'global').map((t) => t.table).sort(), ['acct.accounts', 'acct.notes', 'acct.projects', 'acct.secrets', 'acct.tasks'])
  assert.deepEqual(probe.unprobed, [])
  for (const table of ['acct.accounts', 'acct.projects', 'acct.tasks', 'acct.notes']) {
    for (const check of ['read-own', 'read-other', 'update-other', 'delete-other']) {
      const c = probe.checks.find((x) => x.table === table && x.check === check)
      assert.equal(c?.status, 'pass', `${table} ${check}: ${c?.detail ?? 'missing'}`)
    }
  }
})

test('a tenant table the app role has no privileges on is probed, and at most info: permission denied is no leak', () => {
  const secrets = report.findings.filter((f) => f.table === 'acct.secrets')
  assert.ok(secrets.length > 0, 'the missing grants are reported')
  assert.deepEqual(secrets.filter((f) => f.severity !== 'info').map((f) => `${f.rule}: ${f.message}`), [])
  const readOwn = report.probe!.checks.find((c) => c.table === 'acct.secrets' && c.check === 'read-own')
  assert.equal(readOwn?.sqlstate, '42501')
  assert.ok(secrets.some((f) => f.rule === 'probe-read-own' && f.severity === 'info'))
  assert.equal(report.probe!.checks.find((c) => c.table === 'acct.secrets' && c.check === 'read-other')?.status, 'pass')
})
