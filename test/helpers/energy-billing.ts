/**
 * The energy-billing example's isolation and app checks, run the same way on PostgreSQL
 * (test/example-energy-billing.test.ts) and on a Citus cluster with the citus plan (test/citus.test.ts):
 * after the conversion an operator adds a second organization with the same codes, then through
 * `tenantPool` as the app role each organization sees only its rows, and the Fastify API answers 404
 * for what is not the caller's. Only how the app connects differs: on PostgreSQL a pool that `SET ROLE`s
 * and `set_config`, on Citus a pool logged in as the app role and `SET LOCAL` (`strategy: 'set-local'`).
 */
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'
import type pg from 'pg'
import { buildApp } from '../../examples/energy-billing/api.js'
import { contextSql, type ContextStrategy } from '../../src/runtime/context-sql.js'
import { TenantContextMissingError, withTenant } from '../../src/runtime/index.js'
import type { TenantPool } from '../../src/runtime/pg.js'

export const OTHER = 'b0000000-0000-4000-8000-00000000000b'
/** The old app's readings start here, after every generated one. */
export const LIVE = '2030-01-01T00:00:00Z'
const SECRET = 'energy-billing-example-secret-of-at-least-32-bytes'

type Sql = <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>

export interface Customer {
  readonly id: number
  readonly meter_number: string
  readonly client_id: number
}

/** The second organization's rows, made by the operator. */
export interface OtherOrganization {
  clientId: number
  customerId: number
  userId: number
  invoiceId: number
  readonly readings: number
}

/** The app's view of the database: its pool (as the app role) and `tenantPool` over it with the strategy. */
export interface AppConnection {
  readonly pool: pg.Pool
  readonly db: TenantPool
  end(): Promise<void>
}

export interface EnergyBillingApp {
  /** Superuser SQL on the converted database. */
  readonly sql: Sql
  /** A new app connection (pool as the app role, `tenantPool` with `strategy`). */
  connect(): AppConnection
  readonly strategy: ContextStrategy
  /** The default organization (owns every row the generator wrote). */
  readonly tenant: string
  /** Rows per table the generator wrote, and the readings the old app wrote during the schema phase. */
  readonly counts: Record<string, number>
  readonly written: number
  /** The generated customers, by id. */
  readonly customers: readonly Customer[]
}

/**
 * An operator (superuser) adds a second organization with the same client code, account number, e-mail
 * and invoice number as the default one; a duplicate code within it is refused.
 */
export async function addSecondOrganization(sql: Sql, customers: readonly Customer[]): Promise<OtherOrganization> {
  const other: OtherOrganization = { clientId: 0, customerId: 0, userId: 0, invoiceId: 0, readings: 96 }
  await sql(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'helios', 'Helios Utilities')`, [OTHER])
  const one = async (text: string, values: unknown[]): Promise<number> => (await sql<{ id: number }>(text, values))[0]!.id
  other.clientId = await one(`INSERT INTO client (org_id, code, name) VALUES ($1, 'NWE', 'Northwind Energy (Helios)') RETURNING id`, [OTHER])
  const tariff = await one(`INSERT INTO tariff_rate (org_id, client_id, name, rate_type, energy_rate, effective_from) VALUES ($1, $2, 'Flat', 'flat', 0.15, '2024-01-01') RETURNING id`, [OTHER, other.clientId])
  // The values copied from the default organization are read first: one statement per shard on Citus.
  const [first] = await sql<{ account_number: string; meter_number: string }>(`SELECT account_number, meter_number FROM customer WHERE id = $1`, [customers[0]!.id])
  other.customerId = await one(
    `INSERT INTO customer (org_id, client_id, tariff_rate_id, account_number, meter_number, name, service_address, city, postal_code) VALUES ($1, $2, $3, $4, $5, 'Helios household', '1 Sun St', 'Helios', '00001') RETURNING id`,
    [OTHER, other.clientId, tariff, first!.account_number, `H-${first!.meter_number}`],
  )
  other.userId = await one(`INSERT INTO users (org_id, email, name, password_hash, role) VALUES ($1, 'ops@energy.example', 'Helios operations', 'x', 'energy_admin') RETURNING id`, [OTHER])
  await sql(`INSERT INTO users (org_id, email, name, password_hash, role, client_id, customer_id) VALUES ($1, 'home@helios.example', 'Helios customer', 'x', 'customer_user', $2, $3)`, [OTHER, other.clientId, other.customerId])
  await sql(`INSERT INTO meter_reading (org_id, customer_id, meter_number, reading_at, kwh, tou_period) SELECT $1, $2, 'H-1', '2025-01-01T00:00:00Z'::timestamptz + g * interval '15 minutes', 0.5, 'off_peak' FROM generate_series(0, $3 - 1) g`, [OTHER, other.customerId, other.readings])
  const period = await one(`INSERT INTO billing_period (org_id, customer_id, tariff_rate_id, period_start, period_end, total_kwh) VALUES ($1, $2, $3, '2025-01-01', '2025-02-01', 48) RETURNING id`, [OTHER, other.customerId, tariff])
  const [invoice] = await sql<{ invoice_number: string }>(`SELECT invoice_number FROM invoice ORDER BY id LIMIT 1`)
  other.invoiceId = await one(`INSERT INTO invoice (org_id, invoice_number, customer_id, billing_period_id, issued_on, due_on, energy_charges, total) VALUES ($1, $2, $3, $4, '2025-02-03', '2025-03-05', 7.2, 7.2) RETURNING id`, [OTHER, invoice!.invoice_number, other.customerId, period])
  await sql(`INSERT INTO invoice_line (org_id, invoice_id, line_no, kind, description, quantity, unit, unit_price, amount) VALUES ($1, $2, 1, 'energy', 'Energy', 48, 'kWh', 0.15, 7.2)`, [OTHER, other.invoiceId])
  // On Citus the index is the shard's: client_code_key_<shard id>.
  await assert.rejects(sql(`INSERT INTO client (org_id, code, name) VALUES ($1, 'NWE', 'twice')`, [OTHER]), /duplicate key value violates unique constraint "client_code_key/, 'codes are unique per organization')
  return other
}

/** The second organization's rows deleted (children first), so that rollback can run. */
export async function deleteSecondOrganization(sql: Sql): Promise<void> {
  for (const table of ['invoice_line', 'invoice', 'billing_period', 'meter_reading', 'users', 'customer', 'tariff_rate', 'client']) await sql(`DELETE FROM ${table} WHERE org_id = $1`, [OTHER])
  await sql(`DELETE FROM organizations WHERE id = $1`, [OTHER])
}

/** Through `tenantPool` as the app role: each organization sees only its rows; writes across fail; no context, no rows. */
export async function tenantPoolChecks(app: EnergyBillingApp, other: OtherOrganization): Promise<void> {
  const { db: tenantDb, pool, end } = app.connect()
  const { counts, written, customers } = app
  try {
    const count = async (table: string): Promise<number> => Number((await tenantDb.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
    await withTenant(app.tenant, async () => {
      assert.equal(await count('customer'), counts['customer'])
      assert.equal(await count('meter_reading'), counts['meter_reading']! + written)
      assert.equal(await count('invoice'), counts['invoice'])
      assert.equal(await count('users'), counts['users'])
      assert.equal(await count('organizations'), 1)
      assert.equal((await tenantDb.query(`UPDATE invoice SET status = 'void' WHERE id = $1`, [other.invoiceId])).rowCount, 0, 'another organization\'s invoice cannot be updated')
      assert.equal((await tenantDb.query(`DELETE FROM meter_reading WHERE customer_id = $1`, [other.customerId])).rowCount, 0)
      await assert.rejects(tenantDb.query(`INSERT INTO meter_reading (org_id, customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, $2, 'H-1', now(), 1, 'off_peak')`, [OTHER, other.customerId]), /new row violates row-level security policy/)
      await assert.rejects(tenantDb.query(`INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, tou_period) VALUES ($1, 'H-1', now(), 1, 'off_peak')`, [other.customerId]), /violates foreign key constraint "meter_reading_org_id_customer_id_tenant_fkey/, 'a reading cannot point at another organization\'s customer')
    })
    await withTenant(OTHER, async () => {
      assert.deepEqual((await tenantDb.query('SELECT id FROM customer')).rows, [{ id: other.customerId }])
      assert.equal(await count('meter_reading'), other.readings)
      assert.deepEqual((await tenantDb.query('SELECT count(*)::int AS n, sum(kwh)::float AS kwh FROM daily_consumption')).rows, [{ n: 1, kwh: 48 }], 'the view runs with the caller\'s row-level security')
      assert.equal((await tenantDb.query('SELECT count(*)::int AS n FROM open_invoice')).rows[0]!.n, 1)
      assert.equal((await tenantDb.query(`UPDATE customer SET name = 'x' WHERE id = $1`, [customers[0]!.id])).rowCount, 0)
    })
    await withTenant(app.tenant, async () => {
      const clientScope = contextSql({ strategy: app.strategy, setting: 'tenantize.client_id' })
      const scoped = await tenantDb.transaction(async (tx) => {
        await tx.query(clientScope.statement(String(customers[0]!.client_id)))
        return (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM customer')).rows[0]!.n
      })
      assert.equal(scoped, customers.filter((c) => c.client_id === customers[0]!.client_id).length, 'the client scope narrows the organization to one client')
    })
    await assert.rejects(tenantDb.query('SELECT count(*) FROM customer'), TenantContextMissingError, 'no context: nothing is sent')
    assert.deepEqual((await pool.query('SELECT count(*)::int AS n FROM meter_reading')).rows, [{ n: 0 }], 'no context in the database sees no rows')
  } finally {
    await end()
  }
}

/** The Fastify API (examples/energy-billing/api.ts): 404 for another organization's invoice, a customer user sees only their own account. */
export async function apiChecks(app: EnergyBillingApp, other: OtherOrganization): Promise<void> {
  const { pool, end } = app.connect()
  const { sql, counts, customers } = app
  let api: FastifyInstance | undefined
  try {
    api = await buildApp({ pool, jwtSecret: SECRET, context: { strategy: app.strategy } })
    const server = api
    const token = (sub: number, org: string): Promise<string> => new SignJWT({ org_id: org }).setProtectedHeader({ alg: 'HS256' }).setSubject(String(sub)).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(SECRET))
    const get = async (url: string, bearer?: string): Promise<{ status: number; body: unknown }> => {
      const reply = await server.inject({ method: 'GET', url, headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` } })
      return { status: reply.statusCode, body: reply.json() }
    }
    const users = await sql<{ id: number; role: string; client_id: number | null; customer_id: number | null }>(`SELECT id, role, client_id, customer_id FROM users WHERE org_id = $1 ORDER BY id`, [app.tenant])
    const admin = await token(users.find((u) => u.role === 'energy_admin')!.id, app.tenant)
    const clientAdminRow = users.find((u) => u.role === 'client_admin')!
    const clientAdmin = await token(clientAdminRow.id, app.tenant)
    const customerRow = users.find((u) => u.role === 'customer_user')!
    const customerUser = await token(customerRow.id, app.tenant)
    const otherAdmin = await token(other.userId, OTHER)
    const ownInvoices = await sql<{ id: number }>(`SELECT id FROM invoice WHERE org_id = $1 ORDER BY id`, [app.tenant])

    assert.equal((await get('/customers')).status, 401, 'no token')
    const all = await get('/customers', admin)
    assert.equal(all.status, 200)
    assert.equal((all.body as unknown[]).length, counts['customer'])
    assert.equal(((await get('/invoices', admin)).body as unknown[]).length, ownInvoices.length)
    const own = await get(`/invoices/${ownInvoices[0]!.id}`, admin)
    assert.equal(own.status, 200)
    assert.ok((own.body as { lines: unknown[] }).lines.length > 0, 'with its lines')
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
    const neighbourInvoice = await sql<{ id: number }>(`SELECT id FROM invoice WHERE customer_id = $1 LIMIT 1`, [neighbour.id])
    assert.equal((await get(`/invoices/${neighbourInvoice[0]!.id}`, customerUser)).status, 404)
    assert.equal((await get(`/customers/${customerRow.customer_id}/readings?from=yesterday`, customerUser)).status, 400)
  } finally {
    await api?.close()
    await end()
  }
}
