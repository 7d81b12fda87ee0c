import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import pg from 'pg'
import { introspect, type Catalog } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import { proposeConfig } from '../src/plan/classify.js'
import { configJsonSchema, parseConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { renderPlanText } from '../src/plan/render.js'
import type { Plan } from '../src/plan/steps.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)
const DEFAULT_ID = '5e0f0c1a-0000-4000-8000-000000000001'
const APP = 'tz_plan_snapshot_app'

async function catalogOf(url: string): Promise<Catalog> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return await introspect(client)
  } finally {
    await client.end()
  }
}

function planSql(plan: Plan): string {
  return plan.steps
    .map((s) => `-- ${s.id} [${s.phase}; ${s.lock}; ${s.transactional ? 'transaction' : 'no transaction'}]\n${s.backfill === undefined ? s.up.join(';\n') : s.backfill.batchSql};\n-- down\n${s.down.join(';\n')}${s.down.length > 0 ? ';' : ''}\n`)
    .join('\n')
}

await db.sql(await readFile('test/fixtures/plan/shop.sql', 'utf8'))
const catalog = await catalogOf(db.url)

test('init classifies every table with its reason: global lookup, direct roots of the FK forest, children by NOT NULL then shortest path', () => {
  const { config, notes } = proposeConfig(catalog, { defaultTenantId: DEFAULT_ID, appRole: APP })
  const classes = Object.fromEntries(Object.entries(config.tables).map(([k, t]) => [k, [t.class, t.path?.parent ?? null, (t.alternatives ?? []).map((a) => a.parent)]]))
  assert.deepEqual(classes, {
    'billing.invoice': ['child', 'public.users', []],
    'billing.invoice line': ['child', 'billing.invoice', ['public.Products']],
    'public.Products': ['direct', null, []],
    'public.currencies': ['global', null, []],
    'public.users': ['direct', null, []],
  })
  assert.match(config.tables['billing.invoice line']!.reason!, /^reaches the tenant through invoice line_invoice_id_fkey \(invoice_id → billing\.invoice\)$/)
  assert.deepEqual(config.tables['billing.invoice line']!.path!.via, ['billing.invoice', 'public.users', 'public.organizations'])
  assert.deepEqual(notes, [])
  assert.equal(config.tenant.table, 'public.organizations')
  assert.equal(config.tenant.create, true)
})

test('re-running init keeps the user\'s edits and classifies only new tables', () => {
  const first = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_ID, appRole: APP }).config)
  const edited = parseConfig({ ...first, roles: { app: 'custom_app', system: null }, tables: { ...first.tables, 'public.Products': { class: 'global', reason: 'shared catalogue' }, 'public.gone': { class: 'direct' } } })
  const again = proposeConfig(catalog, { defaultTenantId: 'ignored' }, edited)
  assert.equal(again.config.tables['public.Products']!.class, 'global')
  assert.equal(again.config.tables['public.Products']!.reason, 'shared catalogue')
  assert.equal(again.config.roles?.app, 'custom_app')
  assert.equal(again.config.tenant.default.id, DEFAULT_ID)
  assert.equal(again.config.tables['public.gone'], undefined)
  assert.deepEqual(again.notes, ['public.gone is no longer in the database: removed from the config'])
})

test('the plan for the shop fixture is exactly the snapshot (UPDATE_SNAPSHOTS=1 rewrites it)', async () => {
  const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_ID, appRole: APP }).config)
  const plan = planConversion(catalog, config)
  const actual = planSql(plan)
  const file = 'test/fixtures/plan/shop.plan.sql'
  if (process.env['UPDATE_SNAPSHOTS'] === '1') await writeFile(file, actual)
  assert.equal(actual, await readFile(file, 'utf8'))
  assert.deepEqual(plan.manual, [])
  assert.deepEqual(plan.enforceBlockers, [])
  const text = renderPlanText(plan)
  assert.match(text, /^Phase schema \(the application keeps working unchanged\)\n {2}database\n {6}1\. schema tenantize and the fail-closed helper tenantize\.current_tenant_id\(\)\n/)
  assert.match(text, /\n\d+ steps \(\d+ schema, \d+ enforce\), 0 manual\.$/)
})

test('no step rewrites or scans a table under ACCESS EXCLUSIVE: strong locks only on catalog-only steps', () => {
  const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_ID, appRole: APP }).config)
  const plan = planConversion(catalog, config)
  for (const s of plan.steps) {
    if (s.lock === 'ACCESS EXCLUSIVE') assert.equal(s.lockHeld, 'brief', s.id)
    for (const sql of s.up) {
      assert.doesNotMatch(sql, /ALTER COLUMN .* TYPE|SET NOT NULL(?![\s\S]*DROP CONSTRAINT)/, `${s.id} must not rewrite or scan under ACCESS EXCLUSIVE`)
      // An index on a table the same step creates has nothing to block.
      if (/CREATE (UNIQUE )?INDEX/.test(sql) && !/ON ONLY/.test(sql) && !s.up.some((u) => u.startsWith('CREATE TABLE'))) assert.match(sql, /CONCURRENTLY/, s.id)
      if (/ADD CONSTRAINT .* (FOREIGN KEY|CHECK)/.test(sql)) assert.match(sql, /NOT VALID$/, s.id)
    }
  }
})

test('config errors: every problem at once, each naming its key', () => {
  const good = proposeConfig(catalog, { defaultTenantId: DEFAULT_ID }).config
  try {
    parseConfig({ ...good, version: 2, batchSize: 0, tenant: { ...good.tenant, idType: 'int', setting: 'nodot' }, tables: { ...good.tables, 'no_schema': { class: 'direct' }, 'public.x': { class: 'child' } } }, 'my.json')
    assert.fail('expected TZ_CONFIG')
  } catch (error) {
    assert.ok(error instanceof TenantizeError)
    assert.equal(error.code, 'TZ_CONFIG')
    const lines = error.toLines()
    assert.match(lines[0]!, /^TZ_CONFIG my\.json: \d+ problems in the configuration$/)
    for (const key of ['version', 'batchSize', 'tenant.idType', 'tenant.setting', 'tables.no_schema', 'tables.public.x.path']) {
      assert.ok(lines.some((l) => l.startsWith(`TZ_CONFIG my.json: ${key}:`)), `${key} in\n${lines.join('\n')}`)
    }
  }
  const schema = configJsonSchema() as { properties: Record<string, unknown> }
  assert.deepEqual(Object.keys(schema.properties).sort(), ['$schema', 'batchSize', 'lockTimeout', 'roles', 'scopes', 'tables', 'target', 'tenant', 'verify', 'version'])
})

test('planning errors: unknown table, tenant column of the wrong type, child without primary key in derive mode — all listed', async () => {
  const t = await db.another('plan_errors')
  await t.sql(`CREATE TABLE orgs (id uuid PRIMARY KEY); CREATE TABLE a (id int PRIMARY KEY, org_id text); CREATE TABLE p (id int PRIMARY KEY, org_id uuid REFERENCES orgs);
    CREATE TABLE nokey (p_id int REFERENCES p, v text)`)
  const cat = await catalogOf(t.url)
  const proposed = parseConfig(proposeConfig(cat, { tenantTable: { schema: 'public', name: 'orgs' }, defaultTenantId: DEFAULT_ID }).config)
  assert.deepEqual(Object.fromEntries(Object.entries(proposed.tables).map(([k, v]) => [k, v.class])), { 'public.a': 'direct', 'public.nokey': 'child', 'public.orgs': 'root', 'public.p': 'direct' })
  assert.equal(proposed.tables['public.a']!.column, 'tenantize_org_id', 'init does not reuse a text org_id as a uuid tenant column')
  // A hand edit back to the text column is refused by the planner.
  // A keyless child is backfilled by row address; taking its tenant backwards needs a key.
  const byAddress = planConversion(cat, proposed).steps.find((s) => s.id === 'backfill:public.nokey')!
  assert.match(byAddress.backfill!.batchSql, /^WITH batch AS \(\n {2}SELECT "ctid" FROM "public"\."nokey" WHERE \(\$1::tid IS NULL OR \("ctid"\) > \(\$1::tid\)\) AND \("ctid"\) <= \(\$3::tid\) LIMIT \$2\n\), last AS \(\n {2}SELECT max\("ctid"\) AS "ctid" FROM batch HAVING count\(\*\) > 0\n\)/)
  const config = parseConfig({ ...proposed, tables: { ...proposed.tables, 'public.a': { class: 'direct' }, 'public.missing': { class: 'direct' }, 'public.nokey': { class: 'child', path: { columns: ['p_id'], parent: 'public.p', parentColumns: ['id'], reverse: true } } } })
  try {
    planConversion(cat, config)
    assert.fail('expected TZ_CONFIG')
  } catch (error) {
    assert.ok(error instanceof TenantizeError)
    const lines = error.toLines()
    assert.match(lines[0]!, /cannot plan: 3 problems/)
    assert.ok(lines.some((l) => /public\.a\.org_id: exists with type text, but tenant ids are uuid/.test(l)))
    assert.ok(lines.some((l) => /public\.nokey: has no primary key \(nor a NOT NULL unique key\), so the rows that reference it cannot be matched in batches/.test(l)))
    assert.ok(lines.some((l) => /tables\.public\.missing: no such table/.test(l)))
  }
})

test('enforce refuses an app role that is superuser, BYPASSRLS, a member of one, or a table owner', async () => {
  const t = await db.another('blockers')
  const role = `${t.name}_app`
  const boss = `${t.name}_boss`
  await t.sql(`CREATE ROLE "${boss}" BYPASSRLS; CREATE ROLE "${role}"; GRANT "${boss}" TO "${role}"; CREATE TABLE items (id int PRIMARY KEY); ALTER TABLE items OWNER TO "${role}"`)
  try {
    const cat = await catalogOf(t.url)
    const config = parseConfig(proposeConfig(cat, { defaultTenantId: DEFAULT_ID, appRole: role }).config)
    const plan = planConversion(cat, config)
    assert.deepEqual(plan.enforceBlockers.map((b) => [b.object, b.reason]), [
      [`role ${role}`, `is a member of ${boss}, which is BYPASSRLS`],
      ['public.items', `is owned by the app role ${role}; owners can switch row-level security off`],
    ])
    assert.equal(plan.enforceBlockers[0]!.fix, `REVOKE "${boss}" FROM "${role}";`)
  } finally {
    await t.sql(`DROP TABLE items; DROP ROLE "${role}"; DROP ROLE "${boss}"`)
  }
})

test('a server older than PostgreSQL 14 is refused by the planner, naming the fix', () => {
  const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_ID, appRole: APP }).config)
  const old = { ...catalog, table: catalog.table, role: catalog.role, tableByOid: catalog.tableByOid, server: { ...catalog.server, version: '13.16', versionNum: 130016 } } as Catalog
  try {
    planConversion(old, config)
    assert.fail('expected TZ_CONFIG')
  } catch (error) {
    assert.ok(error instanceof TenantizeError)
    assert.deepEqual(error.toLines().slice(1), ['TZ_CONFIG server: PostgreSQL 13.16 is too old — fix: upgrade to PostgreSQL 14 or later'])
  }
})

test('target citus: what Citus cannot take yet is refused by name (the membership table here), never planned as plain PostgreSQL', () => {
  const config = parseConfig({ ...proposeConfig(catalog, { defaultTenantId: DEFAULT_ID, appRole: APP }).config, target: 'citus' })
  assert.throws(() => planConversion(catalog, config), (error: unknown) => error instanceof TenantizeError && /membership/.test(error.toLines().join('\n')))
  const plain = parseConfig({ ...config, tenant: { ...config.tenant, membership: null } })
  const steps = planConversion(catalog, plain).steps
  assert.ok(steps.some((s) => s.up.some((u) => u.includes('create_distributed_table'))), 'tenant tables are distributed')
})
