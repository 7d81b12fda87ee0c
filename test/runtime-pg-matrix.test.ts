import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tenantPool, withTenant } from '../src/runtime/index.js'
import { testDatabase } from './helpers/db.js'
import { runMatrix, setupTenantSchema } from './helpers/runtime-matrix.js'
import { pgAdapter, trackedPool } from './helpers/runtime-adapters.js'

const db = await testDatabase(import.meta.url)
const fixture = await setupTenantSchema(db)

runMatrix(pgAdapter(), fixture)
runMatrix(pgAdapter({ pipeline: true }), fixture, { sizes: [1, 2] })

test('pg pipelined: a failing statement rolls back and the connection carries no context afterwards', async () => {
  const { pool } = trackedPool({ url: db.url, max: 1, role: fixture.app, pipeline: true })
  const tdb = tenantPool(pool)
  try {
    await withTenant(fixture.a, async () => {
      await assert.rejects(tdb.query('INSERT INTO items (org_id, id, body) VALUES ($1, 1 / 0, $2)', [fixture.a, 'x']), /division by zero/)
    })
    const { rows } = await pool.query<{ v: string | null }>(`SELECT current_setting('tenantize.tenant_id', true) AS v`)
    assert.ok(rows[0]!.v === null || rows[0]!.v === '')
    assert.equal(pool.totalCount, 1, 'the connection went back to the pool healthy')
  } finally {
    await pool.end()
  }
})
