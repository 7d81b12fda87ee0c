import { test } from 'node:test'
import assert from 'node:assert/strict'
import postgres from 'postgres'
import { SystemContextError, TenantContextConflictError, TenantContextMissingError, withTenant } from '../src/runtime/index.js'
import { tenantSql, type TenantSql } from '../src/runtime/postgres.js'
import { testDatabase } from './helpers/db.js'
import { runMatrix, setupTenantSchema } from './helpers/runtime-matrix.js'
import { postgresAdapter, trackedSql, type PostgresSql } from './helpers/runtime-adapters.js'

const db = await testDatabase(import.meta.url)
const fixture = await setupTenantSchema(db)
const { a, b, expected, total } = fixture

type Sql = PostgresSql

runMatrix(postgresAdapter(), fixture)

async function withSql<T>(fn: (sql: Sql, tsql: TenantSql<Record<string, never>>, counts: { connections: number; requests: number }) => Promise<T>): Promise<T> {
  const { sql, counts } = trackedSql({ url: db.url, max: 2, role: fixture.app })
  try {
    return await fn(sql, tenantSql(sql), counts)
  } finally {
    await sql.end()
  }
}

test('postgres.js: a single query is three statements on one reserved connection: BEGIN with the context, the query, COMMIT', async () => {
  await withSql(async (sql, tsql, counts) => {
    const rows = await withTenant(a, () => tsql<{ n: number }[]>`SELECT count(*)::int AS n FROM items WHERE id <> ${'none'}`)
    assert.deepEqual([...rows], [{ n: expected.get(a)!.length }])
    // One reserved connection: BEGIN+context, the query, COMMIT (plus postgres.js' type lookup on connect).
    const before = counts.requests
    await withTenant(a, () => tsql`SELECT 1`)
    assert.equal(counts.requests - before, 3)
    // Fragments and helpers come from the wrapped sql and are bound in the tenant query.
    const picked = await withTenant(a, () => tsql<{ id: string }[]>`SELECT ${sql('id')} FROM items WHERE id IN ${sql([`t0-r0`, `t1-r0`])}`)
    assert.deepEqual([...picked], [{ id: 't0-r0' }])
    await assert.rejects(withTenant(a, () => (tsql as unknown as (x: string) => Promise<unknown>)('id')), TypeError)
  })
})

test('postgres.js: begin takes transaction options, savepoints work, and a pipelined array resolves in order', async () => {
  await withSql(async (_sql, tsql) => {
    const result = await withTenant(a, () => tsql.begin('isolation level serializable read only', async (tx) => {
      const [row] = await tx<{ level: string; setting: string }[]>`SELECT current_setting('transaction_isolation') AS level, current_setting('tenantize.tenant_id') AS setting`
      return row
    }))
    assert.deepEqual(result, { level: 'serializable', setting: a })
    const counts = await withTenant(b, () => tsql.begin((tx) => [tx`SELECT count(*)::int AS n FROM items`, tx`SELECT 2 AS two`]))
    assert.deepEqual(counts.map((rows) => [...rows]), [[{ n: expected.get(b)!.length }], [{ two: 2 }]])
    await withTenant(b, () => tsql.begin(async (tx) => {
      await tx`INSERT INTO items (org_id, id, body) VALUES (${b}, ${'kept'}, ${'x'})`
      await assert.rejects(tx.savepoint(async (sp) => {
        await sp`INSERT INTO items (org_id, id, body) VALUES (${b}, ${'undone'}, ${'x'})`
        throw new Error('undo the savepoint')
      }))
    }))
    assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id IN ('kept', 'undone')`), [{ id: 'kept' }])
    await db.sql(`DELETE FROM items WHERE id = 'kept'`)
  })
})

test('postgres.js: a transaction handle refuses to run after its transaction or under another tenant', async () => {
  await withSql(async (_sql, tsql) => {
    let escaped: ((t: TemplateStringsArray) => Promise<unknown>) | undefined
    await withTenant(a, () => tsql.begin(async (tx) => {
      escaped = (t) => tx(t)
      assert.throws(() => withTenant(b, () => tx`SELECT 1`, { allowNested: true }), TenantContextConflictError)
      assert.throws(() => withTenant(b, () => tx.unsafe('SELECT 1'), { allowNested: true }), TenantContextConflictError)
    }))
    assert.ok(escaped !== undefined)
    assert.throws(() => withTenant(a, () => escaped!`SELECT 1`), TenantContextMissingError)
  })
})

test('postgres.js: asSystem runs through the separate systemSql only', async () => {
  const admin = postgres(db.url, { max: 1, onnotice: () => undefined }) as unknown as Sql
  try {
    await withSql(async (sql, tsql, counts) => {
      await assert.rejects(tsql.asSystem(async () => 1), (error: unknown) => error instanceof SystemContextError && error.code === 'TZ_SYSTEM_CONTEXT')
      assert.throws(() => tenantSql(sql, { systemSql: sql }), SystemContextError)
      const scoped = tenantSql(sql, { systemSql: admin })
      const [row] = await scoped.asSystem((system) => system<{ n: number }[]>`SELECT count(*)::int AS n FROM items`)
      assert.deepEqual(row, { n: total })
      assert.equal(counts.requests, 0, 'the tenant sql was not used')
    })
  } finally {
    await admin.end()
  }
})

test('postgres.js: unsafe without parameters is one query string with its context: results of the text only, errors roll back, a comment gives an empty result', async () => {
  await withSql(async (_sql, tsql, counts) => {
    await withTenant(a, () => tsql.unsafe('SELECT 1')) // the connection opened (and postgres.js' type lookup done)
    const before = counts.requests
    const rows = await withTenant(a, () => tsql.unsafe<{ n: number }[]>('SELECT count(*)::int AS n FROM items'))
    assert.equal(counts.requests - before, 1, 'one query, no reserved connection')
    assert.deepEqual([...rows], [{ n: expected.get(a)!.length }])
    // Several statements in the text: postgres.js' array of results, without the context statement's.
    const both = (await withTenant(b, () => tsql.unsafe('SELECT count(*)::int AS n FROM items; SELECT 2 AS two'))) as unknown as { n?: number; two?: number }[][]
    assert.deepEqual(both.map((r) => [...r]), [[{ n: expected.get(b)!.length }], [{ two: 2 }]])
    // A failing text rolls back what it did before failing (one implicit transaction).
    await assert.rejects(withTenant(a, () => tsql.unsafe(`INSERT INTO items (org_id, id, body) VALUES ('${a}', 'simple-undone', 'x'); SELECT 1/0`)), /division by zero/)
    assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id = 'simple-undone'`), [])
    // Only a comment: nothing of the context statement (its row holds the tenant id) comes back.
    const empty = await withTenant(a, () => tsql.unsafe('-- nothing'))
    assert.equal(empty.length, 0)
    // The two-argument form unsafe(text, options) and explicit parameters keep working.
    const viaOptions = await withTenant(a, () => (tsql.unsafe as unknown as (q: string, o: object) => Promise<unknown[]>)('SELECT 1 AS one', { prepare: false }))
    assert.deepEqual([...viaOptions], [{ one: 1 }])
    const [row] = await withTenant(a, () => tsql.unsafe<{ n: number }[]>('SELECT count(*)::int AS n FROM items WHERE id <> $1', ['none']))
    assert.deepEqual(row, { n: expected.get(a)!.length })
  })
})
