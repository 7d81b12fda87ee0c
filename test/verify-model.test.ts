import { test } from 'node:test'
import assert from 'node:assert/strict'
import { analyzeExpression } from '../src/verify/lints/expressions.js'
import type { TenantModel } from '../src/verify/lints/model.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture, fixtureClient, lintAfter } from './helpers/verify-fixture.js'

// The tenant model verify infers (and says it inferred), and what the parser-based analysis of policy
// expressions sees in the catalog's deparsed text.

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)
const client = await fixtureClient(db)
const { model } = await lintAfter(client, '')

test('on the tenantized fixture everything is inferred from the policies and foreign keys, and said so', () => {
  assert.deepEqual(
    [model.tenantColumn, model.tenantColumnSource, model.setting, model.settingSource, model.appRole, model.appRoleSource, model.root?.name, model.rootSource],
    ['org_id', 'policies', 'tenantize.tenant_id', 'policies', fx.app, 'policies', 'organizations', 'foreign keys'],
  )
  assert.ok(model.notes.some((n) => n.startsWith('tenant column "org_id" inferred from the policies of 6 tables')))
  assert.ok(model.notes.some((n) => n.includes(`app role "${fx.app}" inferred from the policies`)))
  const classes = Object.fromEntries(model.tables.map((m) => [m.table.name, m.class]))
  assert.deepEqual(classes, { currencies: 'global', events: 'direct', events_2024: 'direct', events_2025: 'direct', invoices: 'direct', organizations: 'root', projects: 'direct', tasks: 'direct' })
})

test('without policies the tenant column comes from column names, the app role from grants, the setting is the default', async () => {
  const drop = ['organizations', 'projects', 'tasks', 'invoices', 'events', 'events_2024', 'events_2025'].map((t) => `DROP POLICY tenant_isolation ON app.${t};`).join(' ')
  const { model: m } = await lintAfter(client, drop)
  assert.deepEqual([m.tenantColumn, m.tenantColumnSource, m.setting, m.settingSource, m.appRole, m.appRoleSource], ['org_id', 'names', 'tenantize.tenant_id', 'default', fx.app, 'grants'])
  assert.ok(m.notes.some((n) => n.includes('inferred from column names') && n.includes('--tenant-column')))
  assert.ok(m.notes.some((n) => n.includes('assuming the default context setting')))
})

test('options win over inference and are reported as given', async () => {
  const { model: m } = await lintAfter(client, '', { tenantColumn: 'org_id', setting: 'tenantize.tenant_id', appRole: fx.app })
  assert.deepEqual([m.tenantColumnSource, m.settingSource, m.appRoleSource], ['option', 'option', 'option'])
  assert.deepEqual(m.notes.filter((n) => !n.startsWith('tenant table')), [])
})

test('a table without the tenant column that references a tenant table is a child, with its path', async () => {
  const { model: m } = await lintAfter(client, 'CREATE TABLE app.task_notes (id int PRIMARY KEY, task_id bigint REFERENCES app.tasks (id)); CREATE TABLE app.note_tags (note_id int REFERENCES app.task_notes (id), tag text);')
  const child = m.tables.find((t) => t.table.name === 'note_tags')
  assert.deepEqual([child?.class, child?.via], ['child', 'note_tags → task_notes → tasks'])
})

const analyse = (text: string, m: TenantModel = model) =>
  analyzeExpression(text, { catalog: m.catalog, setting: m.setting, contextRoutines: m.contextRoutines, routineSettings: new Map(), tenantColumn: 'org_id' })

test('the tenant model\'s policy: a tenant comparison with the context read once, wrapped', () => {
  const e = analyse('(org_id = ( SELECT tenantize.current_tenant_id() AS current_tenant_id))')
  assert.equal(e.tenantComparison, true)
  assert.deepEqual(e.contextReads, [{ via: 'function', name: 'tenantize.current_tenant_id', wrapped: true }])
  assert.equal(e.openWhenNoContext, null)
  assert.deepEqual(e.subqueries.map((s) => [s.kind, s.relations.length]), [['scalar', 0]])
})

test('a bare call of the context function is unwrapped', () => {
  assert.deepEqual(analyse('(org_id = tenantize.current_tenant_id())').contextReads.map((r) => r.wrapped), [false])
})

test('fail-open patterns are recognised in PostgreSQL\'s deparsed form', () => {
  const ctx = "current_setting('tenantize.tenant_id'::text, true)"
  const cases: [string, RegExp][] = [
    [`((${ctx} IS NULL) OR ((org_id)::text = ${ctx}))`, /IS NULL/],
    [`((${ctx} = ''::text) OR ((org_id)::text = ${ctx}))`, /= ''/],
    [`((NOT (${ctx} IS NOT NULL)) OR ((org_id)::text = ${ctx}))`, /NOT … IS NOT NULL/],
    [`((org_id)::text = COALESCE(${ctx}, (org_id)::text))`, /falls back to the row's own value/],
    [`((org_id)::text ~~ COALESCE(${ctx}, '%'::text))`, /wildcard/],
    [`CASE WHEN (${ctx} IS NULL) THEN true ELSE ((org_id)::text = ${ctx}) END`, /CASE returns true/],
  ]
  for (const [text, pattern] of cases) assert.match(analyse(text).openWhenNoContext ?? 'null', pattern, text)
  assert.equal(analyse(`((org_id)::text = NULLIF(${ctx}, ''::text))`).openWhenNoContext, null)
})

test('constants, volatile built-ins, IN sub-selects, other settings and unparsable text', () => {
  assert.equal(analyse('true').constant, true)
  assert.equal(analyse("((name = 'x'::text) OR true)").constant, true)
  assert.equal(analyse('(random() > (0.5)::double precision)').volatileCalls.includes('random'), true)
  const sub = analyse('(org_id IN ( SELECT m.member_org FROM app.members m))')
  assert.deepEqual(sub.subqueries.map((s) => [s.kind, s.relations, s.feedsTenantColumn]), [['in', [['app', 'members']], true]])
  assert.deepEqual(analyse("(org_id = (current_setting('app.other'::text, true))::uuid)").otherSettings, ['app.other'])
  assert.equal(analyse("(org_id = (current_setting('tenantize.tenant_id'::text))::uuid)").strictSettingReads, 1)
  assert.equal(analyse('(org_id = = broken').parsed, false)
})
