/**
 * The energy-billing portal API after the conversion: Fastify 5, bearer tokens (HS256, shared secret),
 * and every query through `tenantPool`, so row-level security decides what each caller sees.
 *
 *   GET /me                        who you are (from the users table of your organization)
 *   GET /customers                 customer accounts you may see
 *   GET /customers/:id             one account, or 404
 *   GET /customers/:id/readings    its 15-minute readings (?from=&to= ISO times, ?limit= up to 2000)
 *   GET /invoices                  invoices you may see
 *   GET /invoices/:id              one invoice with its lines, or 404
 *
 * The token carries `sub` (a users.id) and `org_id` (the organization). The user is looked up inside
 * the organization's context — a user of another organization is simply not there (403). Then the
 * role narrows the organization through the sub-tenant scopes of tenantize.config.json:
 * a client admin sets `tenantize.client_id`, a customer user `tenantize.customer_id` (both
 * transaction-local, like the tenant). Another organization's resource, or another customer's, is a 404.
 *
 * Every query names the organization too (`org_id = $1`, the current tenant) and joins tenant tables on
 * it (`c.org_id = i.org_id AND c.id = i.customer_id`, the composite keys of the conversion): on PostgreSQL
 * that is the shape the composite indexes serve; on Citus it routes each query to the organization's
 * shard (a join without the tenant column is refused there). Row-level security stays the backstop.
 * On Citus pass `context: { strategy: 'set-local' }` (CONTEXT_STRATEGY=set-local): the tenant and the
 * scopes are then set with `SET LOCAL`, which Citus sends to the workers (`set_config` it does not).
 *
 *   DATABASE_URL=postgres://app_login@localhost/energy JWT_SECRET=… npx tsx examples/energy-billing/api.ts
 *
 * `app_login` must be a member of tenantize_app (GRANT tenantize_app TO app_login); the pool switches
 * to it with `SET ROLE` on every new connection (set APP_ROLE to change the name).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type pg from 'pg'
import { currentAuth, HttpErrorCodes, HttpProblemError, notFound, problemErrorHandler, tenantPlugin } from '../../src/runtime/fastify.js'
import { contextSql, type ContextSql, type ContextStrategy } from '../../src/runtime/context-sql.js'
import { requireTenant } from '../../src/runtime/context.js'
import { tenantPool, type Queryable, type TenantPool } from '../../src/runtime/pg.js'
import { quoteIdent } from '../../src/sql/quote.js'
import { isMain } from '../shared/generator.js'

/** The sub-tenant settings of tenantize.config.json's `scopes`. */
export const CLIENT_SETTING = 'tenantize.client_id'
export const CUSTOMER_SETTING = 'tenantize.customer_id'

export interface ApiOptions {
  /** A pool whose connections run as the app role (not the owner, no BYPASSRLS). */
  readonly pool: pg.Pool
  /** HMAC secret of the bearer tokens, at least 32 bytes. */
  readonly jwtSecret: string
  /** Fastify's logger option (default off). */
  readonly logger?: boolean
  /** How the tenant and the scopes reach the database: `set_config` (default) or `set-local` (Citus). */
  readonly context?: { readonly strategy: ContextStrategy }
}

export interface Me {
  readonly id: number
  readonly email: string
  readonly name: string
  readonly role: 'energy_admin' | 'client_admin' | 'customer_user'
  readonly client_id: number | null
  readonly customer_id: number | null
}

const ID = /^[1-9][0-9]{0,8}$/

/** A path id: a positive integer, else "not found" (never a database error). */
function idParam(value: unknown): number {
  if (typeof value !== 'string' || !ID.test(value)) throw notFound()
  return Number(value)
}

/** Query string of the readings route, checked by Fastify (400 when malformed). */
const readingsQuery = {
  type: 'object',
  properties: {
    from: { type: 'string', format: 'date-time' },
    to: { type: 'string', format: 'date-time' },
    limit: { type: 'integer', minimum: 1, maximum: 2000, default: 96 },
  },
  additionalProperties: false,
} as const

/** The statements that set each scope, the way the tenant is set (the ids become quoted literals). */
interface Scopes {
  readonly client: ContextSql
  readonly customer: ContextSql
}

/**
 * Run `fn` in one transaction of the caller's organization, as the caller: find them in `users`
 * (row-level security hides other organizations' users), then narrow to their client or customer.
 * `fn` gets the organization's id too, for the queries' explicit tenant predicate.
 */
async function asCaller<T>(db: TenantPool, scopes: Scopes, fn: (tx: Queryable, me: Me, org: string) => Promise<T>): Promise<T> {
  const principal = currentAuth()?.principal
  if (principal?.kind !== 'user' || !ID.test(principal.userId)) throw new HttpProblemError(HttpErrorCodes.NOT_A_MEMBER)
  const userId = principal.userId
  return db.transaction(async (tx) => {
    const org = requireTenant()
    const me = (await tx.query<Me>('SELECT id, email, name, role, client_id, customer_id FROM users WHERE org_id = $1 AND id = $2', [org, userId])).rows[0]
    if (me === undefined) throw new HttpProblemError(HttpErrorCodes.NOT_A_MEMBER)
    if (me.role === 'client_admin') await tx.query(scopes.client.statement(String(me.client_id)))
    if (me.role === 'customer_user') await tx.query(scopes.customer.statement(String(me.customer_id)))
    return fn(tx, me, org)
  })
}

const CUSTOMER_COLUMNS = 'c.id, c.client_id, c.account_number, c.meter_number, c.name, c.service_address, c.city, c.customer_type, c.status'
// Invoices and readings are reached through customer, so the client scope (on customer) narrows them too.
const INVOICE_COLUMNS = 'i.id, i.invoice_number, i.customer_id, i.issued_on, i.due_on, i.energy_charges, i.demand_charges, i.fixed_charges, i.taxes, i.total, i.currency, i.status'
/** Invoices joined to their customer on the composite key (the organization and the id). */
const INVOICES = 'invoice i JOIN customer c ON c.org_id = i.org_id AND c.id = i.customer_id'

/** Build the API (not listening): `app.inject(…)` in tests, `app.listen(…)` to serve. */
export async function buildApp(options: ApiOptions): Promise<FastifyInstance> {
  const strategy = options.context?.strategy ?? 'set_config'
  const db = tenantPool(options.pool, { strategy })
  const scopes: Scopes = { client: contextSql({ strategy, setting: CLIENT_SETTING }), customer: contextSql({ strategy, setting: CUSTOMER_SETTING }) }
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(tenantPlugin, { jwt: { secret: options.jwtSecret }, logger: app.log })
  app.setErrorHandler(problemErrorHandler({ logger: app.log }))

  app.get('/me', async () => asCaller(db, scopes, async (_tx, me) => me))

  app.get('/customers', async () =>
    asCaller(db, scopes, async (tx, _me, org) => (await tx.query(`SELECT ${CUSTOMER_COLUMNS} FROM customer c WHERE c.org_id = $1 ORDER BY c.id LIMIT 500`, [org])).rows),
  )

  app.get<{ Params: { id: string } }>('/customers/:id', async (request) => {
    const id = idParam(request.params.id)
    return asCaller(db, scopes, async (tx, _me, org) => {
      const row = (await tx.query(`SELECT ${CUSTOMER_COLUMNS} FROM customer c WHERE c.org_id = $1 AND c.id = $2`, [org, id])).rows[0]
      if (row === undefined) throw notFound()
      return row
    })
  })

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string; limit: number } }>('/customers/:id/readings', { schema: { querystring: readingsQuery } }, async (request) => {
    const id = idParam(request.params.id)
    const { from = '1970-01-01T00:00:00Z', to = '9999-12-31T00:00:00Z', limit } = request.query
    return asCaller(db, scopes, async (tx, _me, org) => {
      if ((await tx.query('SELECT 1 FROM customer WHERE org_id = $1 AND id = $2', [org, id])).rowCount === 0) throw notFound()
      const { rows } = await tx.query(
        `SELECT r.reading_at, r.kwh, r.demand_kw, r.tou_period, r.quality
           FROM meter_reading r
          WHERE r.org_id = $1 AND r.customer_id = $2 AND r.reading_at >= $3 AND r.reading_at < $4
          ORDER BY r.reading_at
          LIMIT $5`,
        [org, id, from, to, limit],
      )
      return { customerId: id, readings: rows }
    })
  })

  app.get('/invoices', async () =>
    asCaller(db, scopes, async (tx, _me, org) => (await tx.query(`SELECT ${INVOICE_COLUMNS} FROM ${INVOICES} WHERE i.org_id = $1 ORDER BY i.id LIMIT 500`, [org])).rows),
  )

  app.get<{ Params: { id: string } }>('/invoices/:id', async (request) => {
    const id = idParam(request.params.id)
    return asCaller(db, scopes, async (tx, _me, org) => {
      const invoice = (await tx.query(`SELECT ${INVOICE_COLUMNS} FROM ${INVOICES} WHERE i.org_id = $1 AND i.id = $2`, [org, id])).rows[0]
      if (invoice === undefined) throw notFound()
      const lines = (await tx.query('SELECT line_no, kind, description, quantity, unit, unit_price, amount FROM invoice_line WHERE org_id = $1 AND invoice_id = $2 ORDER BY line_no', [org, id])).rows
      return { ...invoice, lines }
    })
  })

  return app
}

if (isMain(import.meta.url)) {
  const { default: pgModule } = await import('pg')
  const url = process.env['DATABASE_URL']
  const secret = process.env['JWT_SECRET']
  if (url === undefined || secret === undefined) throw new Error('set DATABASE_URL (a login role that is a member of the app role) and JWT_SECRET (at least 32 bytes)')
  const role = process.env['APP_ROLE'] ?? 'tenantize_app'
  const strategy = process.env['CONTEXT_STRATEGY'] === 'set-local' ? 'set-local' : 'set_config'
  const pool = new pgModule.Pool({ connectionString: url })
  pool.on('connect', (client) => {
    client.query(`SET ROLE ${quoteIdent(role)}`).catch((error: unknown) => client.emit('error', error))
  })
  const app = await buildApp({ pool, jwtSecret: secret, logger: true, context: { strategy } })
  await app.listen({ host: '127.0.0.1', port: Number(process.env['PORT'] ?? 3000) })
}
