import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'
import { buildApp } from '../examples/energy-billing/api.js'
import { generate, TABLES } from '../examples/energy-billing/generate.js'
import { apply, resetReadiness, rollback } from '../src/apply/index.js'
import { TenantContextMissingError, withTenant } from '../src/runtime/index.js'
import { testDatabase } from './helpers/db.js'
import { asRole, dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { appDatabase, assertEnforced, exampleConfig, existingTables, fast, loadExample, oldAppWriter, planFor, tableSql } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)
const OTHER = 'b0000000-0000-4000-8000-00000000000b'
const SECRET = 'energy-billing-example-secret-of-at-least-32-bytes'
const LIVE = '2030-01-01T00:00:00Z' // the old app's readings start here, after every generated one

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

  // A second organization, made by an operator (superuser) — same client code, account number, e-mail.
  const other = { clientId: 0, customerId: 0, userId: 0, customerUserId: 0, invoiceId: 0, readings: 96 }
  await t.test('an operator adds a second organization with the same client code, account number and e-mail', async () => {
    await db.sql(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'helios', 'Helios Utilities')`, [OTHER])
    const one = async (sql: string, values: unknown[]): Promise<number> => (await db.sql<{ id: number }>(sql, values))[0]!.id
    other.clientId = await one(`INSERT INTO client (org_id, code, name) VALUES ($1, 'NWE', 'Northwind Energy (Helios)') RETURNING id`, [OTHER])
    const tariff = await one(`INSERT INTO tariff_rate (org_id, client_id, name, rate_type, energy_rate, effective_from) VALUES ($1, $2, 'Flat', 'flat', 0.15, '2024-01-01') RETURNING id`, [OTHER, other.clientId])
    other.customerId = await one(`INSERT INTO customer (org_id, client_id, tariff_rate_id, account_number, meter_number, name, service_address, city, postal_code) SELECT $1, $2, $3, account_number, 'H-' || meter_number, 'Helios household', '1 Sun St', 'Helios', '00001' FROM customer WHERE id = $4 RETURNING id`, [OTHER, other.clientId, tariff, customers[0]!.id])
    other.userId = await one(`INSERT INTO users (org_id, email, name, password_hash, role) VALUES ($1, 'ops@energy.example', 'Helios operations', 'x', 'energy_admin') RETURNING id`, [OTHER])
    other.customerUserId = await one(`INSERT INTO users (org_id, email, name, password_hash, role, client_id, customer_id) VALUES ($1, 'home@helios.example', 'Helios customer', 'x', 'customer_user', $2, $3) RETURNING id`, [OTHER, other.clientId, other.customerId])
    await db.sql(`INSERT INTO meter_reading (org_id, customer_id, meter_number, reading_at, kwh, tou_period) SELECT $1, $2, 'H-1', '2025-01-01T00:00:00Z'::timestamptz + g * interval '15 minutes', 0.5, 'off_peak' FROM generate_series(0, $3 - 1) g`, [OTHER, other.customerId, other.readings])
    const period = await one(`INSERT INTO billing_period (org_id, customer_id, tariff_rate_id, period_start, period_end, total_kwh) VALUES ($1, $2, $3, '2025-01-01', '2025-02-01', 48) RETURNING id`, [OTHER, other.customerId, tariff])
    other.invoiceId = await one(`INSERT INTO invoice (org_id, invoice_number, customer_id, billing_period_id, issued_on, due_on, energy_charges, total) SELECT $1, invoice_number, $2, $3, '2025-02-03', '2025-03-05', 7.2, 7.2 FROM invoice ORDER BY id LIMIT 1 RETURNING id`, [OTHER, other.customerId, period])
    await db.sql(`INSERT INTO invoice_line (org_id, invoice_id, line_no, kind, description, quantity, unit, unit_price, amount) VALUES ($1, $2, 1, 'energy', 'Energy', 48, 'kWh', 0.15, 7.2)`, [OTHER, other.invoiceId])
    await assert.rejects(db.sql(`INSERT INTO client (org_id, code, name) VALUES ($1, 'NWE', 'twice')`, [OTHER]), /duplicate key value violates unique constraint "client_code_key"/, 'codes are unique per organization')
  })

  await t.test('through tenantPool as the app role: each organization sees only its rows; writes across fail', async () => {
    const { db: tenantDb, end } = appDatabase(db.url, app)
    try {
      const count = async (table: string): Promise<number> => Number((await tenantDb.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
      await withTenant(DEFAULT, async () => {
        assert.equal(await count('customer'), counts['customer'])
        assert.equal(await count('meter_reading'), counts['meter_reading']! + written)
        assert.equal(await count('invoice'), counts['invoice'])
        assert.equal(await count('users'), counts['users'])
        assert.equal(await count('organizations'), 1)
        assert.equal((await tenantDb.query(`UPDATE invoice SET status = 'void' WHERE id = $1`, [other.invoiceId])).rowCount, 0, 'another organization\'s invoice cannot be updated')
        assert.equal((await tenantDb.query(`DELETE FROM meter_reading WHERE customer_id = $1`, [other.customerId])).rowCount, 0)
        await assert.rejects(tenantDb.query(`INSERT INTO meter_reading (org_id, customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, $2, 'H-1', now(), 1, 'off_peak')`, [OTHER, other.customerId]), /new row violates row-level security policy/)
        await assert.rejects(tenantDb.query(`INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, 'H-1', now(), 1, 'off_peak')`, [other.customerId]), /violates foreign key constraint "meter_reading_org_id_customer_id_tenant_fkey"/, 'a reading cannot point at another organization\'s customer')
      })
      await withTenant(OTHER, async () => {
        assert.deepEqual((await tenantDb.query('SELECT id FROM customer')).rows, [{ id: other.customerId }])
        assert.equal(await count('meter_reading'), other.readings)
        assert.deepEqual((await tenantDb.query('SELECT count(*)::int AS n, sum(kwh)::float AS kwh FROM daily_consumption')).rows, [{ n: 1, kwh: 48 }], 'the view runs with the caller\'s row-level security')
        assert.equal((await tenantDb.query('SELECT count(*)::int AS n FROM open_invoice')).rows[0]!.n, 1)
        assert.equal((await tenantDb.query(`UPDATE customer SET name = 'x' WHERE id = $1`, [customers[0]!.id])).rowCount, 0)
      })
      await withTenant(DEFAULT, async () => {
        const scoped = await tenantDb.transaction(async (tx) => {
          await tx.query(`SELECT set_config('tenantize.client_id', $1, true)`, [String(customers[0]!.client_id)])
          return (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM customer')).rows[0]!.n
        })
        assert.equal(scoped, customers.filter((c) => c.client_id === customers[0]!.client_id).length, 'the client scope narrows the organization to one client')
      })
      await assert.rejects(tenantDb.query('SELECT count(*) FROM customer'), TenantContextMissingError, 'no context: nothing is sent')
      await asRole(db.url, app, null, async (c) => assert.deepEqual((await c.query('SELECT count(*)::int AS n FROM meter_reading')).rows, [{ n: 0 }], 'no context in the database sees no rows'))
    } finally {
      await end()
    }
  })

  await t.test('the Fastify API: 404 for another organization\'s invoice, a customer user sees only their own account', async () => {
    const { pool, end } = appDatabase(db.url, app)
    let api: FastifyInstance | undefined
    try {
      api = await buildApp({ pool, jwtSecret: SECRET })
      const server = api
      const token = (sub: number, org: string): Promise<string> => new SignJWT({ org_id: org }).setProtectedHeader({ alg: 'HS256' }).setSubject(String(sub)).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(SECRET))
      const get = async (url: string, bearer?: string): Promise<{ status: number; body: unknown }> => {
        const reply = await server.inject({ method: 'GET', url, headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` } })
        return { status: reply.statusCode, body: reply.json() }
      }
      const users = await db.sql<{ id: number; role: string; client_id: number | null; customer_id: number | null }>(`SELECT id, role, client_id, customer_id FROM users WHERE org_id = $1 ORDER BY id`, [DEFAULT])
      const admin = await token(users.find((u) => u.role === 'energy_admin')!.id, DEFAULT)
      const clientAdminRow = users.find((u) => u.role === 'client_admin')!
      const clientAdmin = await token(clientAdminRow.id, DEFAULT)
      const customerRow = users.find((u) => u.role === 'customer_user')!
      const customerUser = await token(customerRow.id, DEFAULT)
      const otherAdmin = await token(other.userId, OTHER)
      const ownInvoices = await db.sql<{ id: number }>(`SELECT id FROM invoice WHERE org_id = $1 ORDER BY id`, [DEFAULT])

      assert.equal((await get('/customers')).status, 401, 'no token')
      const all = await get('/customers', admin)
      assert.equal(all.status, 200)
      assert.equal((all.body as unknown[]).length, counts['customer'])
      assert.equal(((await get('/invoices', admin)).body as unknown[]).length, ownInvoices.length)
      assert.equal((await get(`/invoices/${ownInvoices[0]!.id}`, admin)).status, 200)
      const foreign = await get(`/invoices/${other.invoiceId}`, admin)
      assert.equal(foreign.status, 404, 'another organization\'s invoice does not exist for this user')
      assert.deepEqual(foreign.body, (await get('/invoices/999999', admin)).body, 'the same answer as an invoice that does not exist')
      assert.equal((await get(`/customers/${other.customerId}/readings`, admin)).status, 404)

      const theirs = await get('/invoices', otherAdmin)
      assert.deepEqual((theirs.body as { id: number }[]).map((i) => i.id), [other.invoiceId])
      assert.equal((await get(`/invoices/${ownInvoices[0]!.id}`, otherAdmin)).status, 404)
      assert.equal((await get('/customers', await token(users[0]!.id, OTHER))).status, 403, 'a user of one organization is not a member of another')

      const clientCustomers = await get('/customers', clientAdmin)
      assert.deepEqual([...new Set((clientCustomers.body as { client_id: number }[]).map((c) => c.client_id))], [clientAdminRow.client_id], 'a client admin sees only that client\'s customers')

      const mine = await get('/customers', customerUser)
      assert.deepEqual((mine.body as { id: number }[]).map((c) => c.id), [customerRow.customer_id], 'a customer user sees only their own account')
      const myInvoices = (await get('/invoices', customerUser)).body as { customer_id: number }[]
      assert.ok(myInvoices.length > 0 && myInvoices.every((i) => i.customer_id === customerRow.customer_id))
      const readings = await get(`/customers/${customerRow.customer_id}/readings?limit=500&to=${LIVE}`, customerUser)
      assert.equal(readings.status, 200)
      assert.equal((readings.body as { readings: unknown[] }).readings.length, 2 * 96)
      const neighbour = customers.find((c) => c.id !== customerRow.customer_id)!
      assert.equal((await get(`/customers/${neighbour.id}`, customerUser)).status, 404, 'another customer of the same organization is not found')
      assert.equal((await get(`/customers/${neighbour.id}/readings`, customerUser)).status, 404)
      const neighbourInvoice = await db.sql<{ id: number }>(`SELECT id FROM invoice WHERE customer_id = $1 LIMIT 1`, [neighbour.id])
      assert.equal((await get(`/invoices/${neighbourInvoice[0]!.id}`, customerUser)).status, 404)
      assert.equal((await get(`/customers/${customerRow.customer_id}/readings?from=yesterday`, customerUser)).status, 400)
    } finally {
      await api?.close()
      await end()
    }
  })

  await t.test('the second organization is deleted; rollback restores the schema and every row', async () => {
    for (const table of ['invoice_line', 'invoice', 'billing_period', 'meter_reading', 'users', 'customer', 'tariff_rate', 'client']) await db.sql(`DELETE FROM ${table} WHERE org_id = $1`, [OTHER])
    await db.sql(`DELETE FROM organizations WHERE id = $1`, [OTHER])
    await rollback({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
    assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
    assert.deepEqual(await dataChecksums(db.url, tables, { [tableSql('public.meter_reading')]: `WHERE reading_at < '${LIVE}'` }), startData, 'every row as it was')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM meter_reading WHERE reading_at >= $1`, [LIVE]), [{ n: written }], 'and the old app\'s readings are all still there')
    assert.deepEqual(await db.sql(`SELECT to_regclass('public.organizations') AS o`), [{ o: null }])
  })
})
