import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { TenantizeError } from '../src/errors.js'
import { startPgBouncer } from '../src/db/pgbouncer.js'
import { migrateUp } from '../src/migrate/index.js'
import { testDatabase } from './helpers/db.js'
import { migrationsDir } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)

test('behind PgBouncer in transaction mode the runner refuses (TZ_POOLER) and changes nothing', async () => {
  const bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 2 })
  after(() => bouncer.stop())
  const dir = await migrationsDir({ '0001_a.up.sql': 'CREATE TABLE a (id int);' })
  const error = await migrateUp({ databaseUrl: bouncer.url, dir }).then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TenantizeError, `expected TZ_POOLER, got ${String(error)}`)
  assert.equal(error.code, 'TZ_POOLER')
  assert.match(error.message, /this is a transaction-mode pooler/)
  assert.match(error.fix ?? '', /connect the runner directly to PostgreSQL/)
  assert.deepEqual(await db.sql(`SELECT to_regclass('a') AS a, to_regnamespace('tenantize') AS s`), [{ a: null, s: null }])
})

test('through PgBouncer in session mode the runner works', async () => {
  const bouncer = await startPgBouncer(db.url, { poolMode: 'session', poolSize: 2 })
  after(() => bouncer.stop())
  const dir = await migrationsDir({ '0001_b.up.sql': 'CREATE TABLE b (id int);' })
  const result = await migrateUp({ databaseUrl: bouncer.url, dir })
  assert.deepEqual(result.migrations, ['0001_b'])
})

test('behind PgBouncer in transaction mode with round-robin server connections the runner also refuses', async () => {
  const bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 3, roundRobin: true })
  after(() => bouncer.stop())
  const dir = await migrationsDir({ '0001_c.up.sql': 'CREATE TABLE c (id int);' })
  const outcome = await migrateUp({ databaseUrl: bouncer.url, dir }).then(() => undefined, (e: unknown) => e)
  assert.ok(outcome instanceof TenantizeError && outcome.code === 'TZ_POOLER', String(outcome))
  assert.deepEqual(await db.sql(`SELECT to_regclass('c') AS c`), [{ c: null }])
})
