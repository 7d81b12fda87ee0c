import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import pg from 'pg'
import { addBlock } from '../../src/blocks/index.js'
import { withClient } from '../../src/db/connect.js'
import { migrateUp } from '../../src/migrate/index.js'
import { quoteIdent } from '../../src/sql/index.js'
import { testDatabase, type TestDatabase } from './db.js'

export interface BlockDatabase {
  readonly db: TestDatabase
  /** The app role (NOLOGIN, unique per run). */
  readonly app: string
  /** Pool connected as the app role (the admin with `role` set at connection start). */
  readonly appPool: pg.Pool
  /** Pool as the admin (superuser): the system pool. */
  readonly systemPool: pg.Pool
  /** Two tenants in `organizations`. */
  readonly a: string
  readonly b: string
}

/**
 * A fresh database with an app role, an `organizations` table with two tenants, and `block` added with
 * `tenantize add` and applied with the runner. Everything is dropped after the file.
 */
export async function blockDatabase(fileUrl: string, block: 'rbac' | 'api-keys' | 'audit'): Promise<BlockDatabase> {
  const db = await testDatabase(fileUrl)
  const app = `${db.name}_app`
  const dir = await mkdtemp(join(tmpdir(), `tz-${block}-`))
  const appPool = new pg.Pool({ connectionString: db.url, max: 2, options: `-c role=${app}` })
  const systemPool = new pg.Pool({ connectionString: db.url, max: 2 })
  // Idle clients are terminated when the harness drops the database.
  for (const pool of [appPool, systemPool]) pool.on('error', () => undefined)
  after(async () => {
    await appPool.end()
    await systemPool.end()
    await rm(dir, { recursive: true, force: true })
    await db.drop()
    await withClient(db.adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(app)}`))
  })
  const [a, b] = [randomUUID(), randomUUID()]
  await db.sql(`CREATE ROLE ${quoteIdent(app)} NOLOGIN; CREATE TABLE organizations (id uuid PRIMARY KEY)`)
  await db.sql('INSERT INTO organizations VALUES ($1), ($2)', [a, b])
  await addBlock({ block, dir, appRole: app })
  await migrateUp({ databaseUrl: db.url, dir })
  return { db, app, appPool, systemPool, a, b }
}
