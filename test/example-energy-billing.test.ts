import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generate, TABLES } from '../examples/energy-billing/generate.js'
import { apply, resetReadiness, rollback } from '../src/apply/index.js'
import { testDatabase } from './helpers/db.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { addSecondOrganization, apiChecks, deleteSecondOrganization, LIVE, tenantPoolChecks, type EnergyBillingApp, type OtherOrganization } from './helpers/energy-billing.js'
import { appDatabase, assertEnforced, exampleConfig, existingTables, fast, loadExample, oldAppWriter, planFor, tableSql } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)

test('generate: the same rows on every run', async () => {
  const [a, b] = [await db.another('eb_gen_a'), await db.another('eb_gen_b')]
  const counts = await loadExample(a, 'energy-billing', generate)
  await loadExample(b, 'energy-billing', generate)
  assert.equal(counts['meter_reading'], 24 * 2 * 96, '24 customers, two days of 15-minute readings')
  assert.ok(Object.values(counts).every((n) => n > 0))
  const tables = TABLES.map((t) => `public.${t}`)
  assert.deepEqual(await dataChecksums(a.url, tables), await dataChecksums(b.url, tables))
})

test('energy billing: converted while meters keep reporting, isolated per organization, client and customer, then rolled back to what it was', async (t) => {
  const counts = await loadExample(db, 'energy-billing', generate)
  const config = await exampleConfig(db, 'energy-billing')
  const DEFAULT = config.tenant.default.id
  const app = config.roles.app
  const tables = existingTables(config)
  const fingerprint = await schemaFingerprint(db.url)
  const startData = await dataChecksums(db.url, tables)
  const customers = await db.sql<{ id: number; meter_number: string; client_id: number }>('SELECT id, meter_number, client_id FROM customer ORDER BY id')
  let written = 0

  await t.test('plan: a tenant column everywhere, tenant-scoped numbers, composite keys, client and customer scopes', async () => {
    const plan = await planFor(db.url, config)
    const ids = plan.steps.map((s) => s.id)
    for (const id of [
      'tenant-table:public.organizations',
      'add-column:public.meter_reading',
      'add-column:public.users',
      'composite-fk:public.meter_reading:meter_reading_customer_id_fkey',
      'tenant-unique:public.invoice:invoice_invoice_number_key',
      'tenant-unique:public.customer:customer_account_number_key',
      'rls:public.invoice_line',
      'scope:client',
      'scope:customer',
      'view:public.daily_consumption',
    ]) assert.ok(ids.includes(id), `the plan has ${id}`)
    assert.ok(!ids.some((id) => id.startsWith('backfill:')), 'every existing row belongs to the default organization: no backfill')
    assert.deepEqual(plan.manual, [])
    assert.deepEqual(plan.enforceBlockers, [])
  })

  await t.test('schema phase while the unchanged app keeps inserting meter readings', async () => {
    const writer = oldAppWriter(db.url, (i) => {
      const c = customers[i % customers.length]!
      return { text: `INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, $2, $3::timestamptz + $4 * interval '15 minutes', 0.250, 'off_peak')`, values: [c.id, c.meter_number, LIVE, i] }
    })
    await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
    written = await writer.stop()
    assert.ok(written > 0, 'the old app kept writing during the schema phase')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n, count(*) FILTER (WHERE org_id = $2)::int AS mine FROM meter_reading WHERE reading_at >= $1`, [LIVE, DEFAULT]), [{ n: written, mine: written }], 'no write was lost; each went to the default organization')
    assert.deepEqual(await db.sql(`SELECT relrowsecurity FROM pg_class WHERE oid = 'meter_reading'::regclass`), [{ relrowsecurity: false }], 'no row-level security before the enforce phase')
  })

  await t.test('enforce phase: every tenant table NOT NULL, RLS enabled and forced, policy, tenant index', async () => {
    // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.
    await resetReadiness(db.url)
    await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
    const status = await assertEnforced(db.url, config)
    assert.equal(status.tables.length, 10, 'organizations and the nine tables of the system')
  })

  let other: OtherOrganization | undefined
  await t.test('an operator adds a second organization with the same client code, account number and e-mail', async () => {
    other = await addSecondOrganization(db.sql, customers)
  })

  const converted: EnergyBillingApp = {
    sql: db.sql,
    connect: () => appDatabase(db.url, app),
    strategy: 'set_config',
    tenant: DEFAULT,
    counts,
    get written() {
      return written
    },
    customers,
  }

  await t.test('through tenantPool as the app role: each organization sees only its rows; writes across fail', async () => {
    await tenantPoolChecks(converted, other!)
  })

  await t.test('the Fastify API: 404 for another organization\'s invoice, a customer user sees only their own account', async () => {
    await apiChecks(converted, other!)
  })

  await t.test('the second organization is deleted; rollback restores the schema and every row', async () => {
    await deleteSecondOrganization(db.sql)
    await rollback({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
    assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
    assert.deepEqual(await dataChecksums(db.url, tables, { [tableSql('public.meter_reading')]: `WHERE reading_at < '${LIVE}'` }), startData, 'every row as it was')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM meter_reading WHERE reading_at >= $1`, [LIVE]), [{ n: written }], 'and the old app\'s readings are all still there')
    assert.deepEqual(await db.sql(`SELECT to_regclass('public.organizations') AS o`), [{ o: null }])
  })
})
