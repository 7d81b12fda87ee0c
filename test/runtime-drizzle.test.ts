import { test } from 'node:test'
import assert from 'node:assert/strict'
import type pg from 'pg'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import { count, sql } from 'drizzle-orm'
import { TenantContextConflictError, TenantContextMissingError, withTenant } from '../src/runtime/index.js'
import { tenantDrizzlePool } from '../src/runtime/drizzle.js'
import { testDatabase } from './helpers/db.js'
import { runMatrix, setupTenantSchema } from './helpers/runtime-matrix.js'
import { drizzleAdapter, drizzleItems as items, drizzleTenantizeCode, trackedPool } from './helpers/runtime-adapters.js'

const db = await testDatabase(import.meta.url)
const fixture = await setupTenantSchema(db)
const { a, b, expected, total } = fixture

runMatrix(drizzleAdapter(), fixture)
runMatrix(drizzleAdapter({ pipeline: true }), fixture, { sizes: [2] })

type Counts = { connections: number; requests: number }

async function withDrizzle<T>(fn: (d: NodePgDatabase, counts: Counts, pool: pg.Pool, scoped: pg.Pool) => Promise<T>, max = 2): Promise<T> {
  const { pool, counts } = trackedPool({ url: db.url, max, role: fixture.app })
  const scoped = tenantDrizzlePool(pool)
  try {
    return await fn(drizzle({ client: scoped }), counts, pool, scoped)
  } finally {
    await pool.end()
  }
}

const SETTINGS = sql`SELECT current_setting('transaction_isolation') AS level, current_setting('transaction_read_only') AS mode, current_setting('tenantize.tenant_id') AS setting`

test('drizzle: a lazy query returned from withTenant runs as that tenant, also nested', async () => {
  await withDrizzle(async (d) => {
    // Drizzle's queries run when awaited; withTenant starts them inside its context.
    const own = await withTenant(a, () => d.select({ orgId: items.orgId }).from(items))
    assert.deepEqual([...new Set(own.map((r) => r.orgId))], [a])
    const nested = await withTenant(a, () => withTenant(b, () => d.select({ orgId: items.orgId }).from(items), { allowNested: true }))
    assert.deepEqual([...new Set(nested.map((r) => r.orgId))], [b])
  })
})

test('drizzle: db.transaction() keeps its isolation level and access mode, with the context set', async () => {
  await withDrizzle(async (d) => {
    const rows = await withTenant(a, () => d.transaction((tx) => tx.execute(SETTINGS), { isolationLevel: 'serializable', accessMode: 'read only' }))
    assert.deepEqual(rows.rows, [{ level: 'serializable', mode: 'on', setting: a }])
  })
})

test('drizzle: nested transactions (savepoints) pass through, the outer one commits', async () => {
  await withDrizzle(async (d) => {
    await withTenant(b, () => d.transaction(async (tx) => {
      await tx.insert(items).values({ orgId: b, id: 'kept', body: 'x' })
      await assert.rejects(tx.transaction(async (inner) => {
        await inner.insert(items).values({ orgId: b, id: 'undone', body: 'x' })
        throw new Error('undo the savepoint')
      }))
      const [seen] = await tx.select({ n: count() }).from(items)
      assert.equal(seen?.n, expected.get(b)!.length + 1)
    }))
    assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id IN ('kept', 'undone')`), [{ id: 'kept' }])
    await db.sql(`DELETE FROM items WHERE id = 'kept'`)
  })
})

test('drizzle: a client from connect() is scoped; one released inside a transaction is rolled back first', async () => {
  await withDrizzle(async (_d, _counts, pool, scoped) => {
    await assert.rejects(scoped.connect(), TenantContextMissingError)
    const pid = await withTenant(a, async () => {
      const client = await scoped.connect()
      // A statement outside a transaction runs in one of its own.
      const [row] = (await client.query<{ pid: number; v: string }>("SELECT pg_backend_pid() AS pid, current_setting('tenantize.tenant_id') AS v")).rows
      assert.equal(row?.v, a)
      assert.equal(client.getTransactionStatus(), 'I')
      // BEGIN (with modes, any case, trailing ;) gets the context in the same message.
      await client.query('Begin Isolation Level Repeatable Read;')
      assert.deepEqual((await client.query("SELECT current_setting('tenantize.tenant_id') AS v")).rows, [{ v: a }])
      await client.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [a, 'left-open', 'x'])
      await assert.rejects(withTenant(b, () => client.query('SELECT 1'), { allowNested: true }), TenantContextConflictError)
      client.release() // still inside the transaction
      await assert.rejects(client.query('SELECT 1'), TenantContextMissingError)
      return row!.pid
    })
    // The release rolls back before the connection goes back to the pool (of one: this waits for it).
    const raw = await pool.connect()
    try {
      const [row] = (await raw.query<{ pid: number; v: string | null }>("SELECT pg_backend_pid() AS pid, current_setting('tenantize.tenant_id', true) AS v")).rows
      assert.equal(raw.getTransactionStatus(), 'I')
      assert.deepEqual(row, { pid, v: '' })
    } finally {
      raw.release()
    }
    assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id = 'left-open'`), [])
  }, 1)
})

test('drizzle: a client handed out inside someone else\'s open transaction still gets the context first', async () => {
  await withDrizzle(async (_d, _counts, pool, scoped) => {
    // Code sharing the pool that releases a client mid-transaction (node-postgres does not roll back).
    const leaky = await pool.connect()
    await leaky.query('BEGIN')
    leaky.release()
    const { rows } = await withTenant(a, () => scoped.query<{ v: string }>("SELECT current_setting('tenantize.tenant_id') AS v"))
    assert.deepEqual(rows, [{ v: a }])
    const raw = await pool.connect()
    try {
      assert.equal(raw.getTransactionStatus(), 'I', 'rolled back before it went back to the pool')
    } finally {
      raw.release()
    }
  }, 1)
})

test('drizzle: a statement that only looks like BEGIN is not merged, and still runs scoped', async () => {
  await withDrizzle(async (_d, _counts, _pool, scoped) => {
    const rows = await withTenant(a, () => scoped.query("BEGIN; SELECT current_setting('tenantize.tenant_id') AS v; COMMIT"))
    const results = rows as unknown as { rows: unknown[] }[]
    assert.deepEqual(results[1]?.rows, [{ v: a }])
    const callbackStyle = scoped.query as unknown as (text: string, callback: () => void) => Promise<unknown>
    await assert.rejects(withTenant(a, () => callbackStyle('SELECT 1', () => undefined)), TypeError)
  })
})

test('drizzle: system work goes through a separate drizzle on another pool', async () => {
  const { pool: systemPool } = trackedPool({ url: db.url, max: 1 })
  try {
    await withDrizzle(async (d, counts) => {
      await assert.rejects(d.select().from(items), (error: unknown) => drizzleTenantizeCode(error) === 'TZ_TENANT_CONTEXT_MISSING')
      const [row] = await drizzle({ client: systemPool }).select({ n: count() }).from(items)
      assert.equal(row?.n, total)
      assert.deepEqual(counts, { connections: 0, requests: 0 }, 'the tenant pool was not used')
    })
  } finally {
    await systemPool.end()
  }
})
