/**
 * The runtime matrix through a real PgBouncer in transaction mode, for every adapter, and the leak a
 * session-scope setting causes there (which the adapters' transaction-local context does not).
 *
 * PgBouncer refuses the `options` startup parameter, so a client cannot ask for `-c role=…`; and it logs
 * in to the server only as users it has a password for (the admin user, on the embedded server). So the
 * test database makes the app role the admin user's default role in this database
 * (`ALTER ROLE … IN DATABASE … SET role`): every server connection PgBouncer opens runs as the app role.
 * Direct admin connections (setup, checks) ask for their own role back with `-c role=…`.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { tenantPool, withTenant } from '../src/runtime/index.js'
import { startPgBouncer } from '../src/db/pgbouncer.js'
import { withDatabase } from '../src/db/url.js'
import { quoteIdent } from '../src/sql/index.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { runMatrix, setupTenantSchema, type MatrixAdapter } from './helpers/runtime-matrix.js'
import { drizzleAdapter, kyselyAdapter, pgAdapter, postgresAdapter, prismaAdapter } from './helpers/runtime-adapters.js'
import { generatePrismaClient } from './fixtures/prisma/client.js'

const db = await testDatabase(import.meta.url)
const admin = decodeURIComponent(new URL(db.url).username || 'postgres')

/** The test database, with every direct connection back to the admin's own role. */
const asAdmin: TestDatabase = {
  ...db,
  async sql(text, values) {
    const client = new pg.Client({ connectionString: db.url, options: `-c role=${admin}` })
    await client.connect()
    try {
      return (await client.query(text, values)).rows
    } finally {
      await client.end()
    }
  },
}
const fixture = await setupTenantSchema(asAdmin)
await asAdmin.sql(`ALTER ROLE ${quoteIdent(admin)} IN DATABASE ${quoteIdent(db.name)} SET role = ${quoteIdent(fixture.app)}`)
const { a, b, expected } = fixture

const bouncer = await startPgBouncer(withDatabase(db.adminUrl, db.name), { poolMode: 'transaction', poolSize: 2 })
after(() => bouncer.stop())
const generated = await generatePrismaClient()
after(() => generated.dispose())

const adapters: MatrixAdapter[] = [pgAdapter(), postgresAdapter(false), kyselyAdapter(), drizzleAdapter(), prismaAdapter(generated)]
for (const adapter of adapters) {
  // The drivers in full; the ORMs over node-postgres on one pool size, to keep the file fast.
  const sizes = adapter.name === 'pg' || adapter.name === 'postgres.js' ? [1, 2, 4] : [2]
  runMatrix(adapter, fixture, { url: bouncer.url, setRole: false, sizes, label: `${adapter.name} through PgBouncer (transaction mode)` })
}

test('through PgBouncer a session-scope set_config leaks to the next client; the adapters leave nothing behind', async () => {
  // One server connection, so every client gets the same backend.
  const single = await startPgBouncer(withDatabase(db.adminUrl, db.name), { poolMode: 'transaction', poolSize: 1 })
  const next = async (): Promise<{ pid: number; setting: string | null; n: number }> => {
    const client = new pg.Client(single.url)
    await client.connect()
    try {
      const { rows } = await client.query("SELECT pg_backend_pid() AS pid, nullif(current_setting('tenantize.tenant_id', true), '') AS setting, (SELECT count(*)::int FROM items) AS n")
      return rows[0] as { pid: number; setting: string | null; n: number }
    } finally {
      await client.end()
    }
  }
  try {
    const clean = await next()
    assert.deepEqual({ setting: clean.setting, n: clean.n }, { setting: null, n: 0 }, 'the app role sees nothing without a tenant')

    // Every adapter: its tenant's rows inside, nothing left for the next client.
    for (const adapter of adapters) {
      const opened = await adapter.open({ url: single.url, max: 1 })
      try {
        assert.deepEqual(await withTenant(a, () => opened.client.ids()), { orgs: [a], ids: expected.get(a) }, adapter.name)
      } finally {
        await opened.close()
      }
      assert.deepEqual(await next(), { pid: clean.pid, setting: null, n: 0 }, `${adapter.name} left a tenant on the server connection`)
    }

    // A session-scope setting (what the runtime never does) stays on the server connection for the next client.
    const leaking = new pg.Client(single.url)
    await leaking.connect()
    await leaking.query("SELECT set_config('tenantize.tenant_id', $1, false)", [a])
    await leaking.end()
    assert.deepEqual(await next(), { pid: clean.pid, setting: a, n: expected.get(a)!.length }, 'leaked: the next client works as tenant A')
    // …and it survives a tenant transaction: the transaction-local value ends with it.
    const opened = await adapters[0]!.open({ url: single.url, max: 1 })
    try {
      assert.deepEqual(await withTenant(b, () => opened.client.ids()), { orgs: [b], ids: expected.get(b) })
    } finally {
      await opened.close()
    }
    assert.equal((await next()).setting, a)
  } finally {
    await single.stop()
  }
})

test('behind PgBouncer in transaction mode the prepared context statement is missing on the next backend: the statement runs once, unprepared, on every backend', async () => {
  // Round robin over two server connections: consecutive exchanges of one client change backend.
  const rr = await startPgBouncer(withDatabase(db.adminUrl, db.name), { poolMode: 'transaction', poolSize: 2, roundRobin: true })
  const pools = [new pg.Pool({ connectionString: rr.url, max: 1 }), new pg.Pool({ connectionString: rr.url, max: 1 })]
  const insert = `INSERT INTO items (org_id, id, body) VALUES ($1, $2, 'through the pooler')
    RETURNING pg_backend_pid() AS pid, (SELECT count(*)::int FROM pg_prepared_statements WHERE name LIKE 'tenantize\\_context\\_%') AS prepared`
  const ran: { pid: number; prepared: number }[] = []
  try {
    // Two transactions at once: both server connections are open before the statements start.
    const holders = [new pg.Client(rr.url), new pg.Client(rr.url)]
    await Promise.all(holders.map(async (c) => (await c.connect(), await c.query('BEGIN'), await c.query('SELECT 1'))))
    await Promise.all(holders.map(async (c) => (await c.query('COMMIT'), await c.end())))
    await withTenant(a, async () => {
      for (const [p, pool] of pools.entries()) {
        const db = tenantPool(pool)
        for (let i = 0; i < 4; i++) ran.push((await db.query<{ pid: number; prepared: number }>(insert, [a, `pooled-${p}-${i}`])).rows[0]!)
      }
    })
    assert.equal(new Set(ran.map((r) => r.pid)).size, 2, 'both backends served the statements')
    // The first statement prepared the context statement on its backend; the next one, on the other backend,
    // found none (the exchange failed before the insert) and was sent again with the context unnamed.
    assert.equal(ran[0]!.prepared, 1)
    assert.ok(ran.some((r) => r.prepared === 0), 'a statement ran on a backend without the prepared context statement')
    const rows = await withTenant(a, () => tenantPool(pools[0]!).query<{ id: string }>("SELECT id FROM items WHERE body = 'through the pooler' ORDER BY id"))
    assert.deepEqual(rows.rows.map((r) => r.id), ['pooled-0-0', 'pooled-0-1', 'pooled-0-2', 'pooled-0-3', 'pooled-1-0', 'pooled-1-1', 'pooled-1-2', 'pooled-1-3'], 'each insert ran exactly once')
  } finally {
    await withTenant(a, () => tenantPool(pools[0]!).query("DELETE FROM items WHERE body = 'through the pooler'"))
    await Promise.all(pools.map((p) => p.end()))
    await rr.stop()
  }
})
