import { randomBytes } from 'node:crypto'
import { quoteIdent } from '../sql/quote.js'
import { withClient } from './connect.js'
import { withDatabase } from './url.js'

/** A throw-away database on a server: its URL, its name and how to drop it. */
export interface ScratchDatabase {
  readonly url: string
  readonly name: string
  drop(): Promise<void>
}

/** Create a new database with a unique name derived from `label` on the server behind `adminUrl`. */
export async function createScratchDatabase(adminUrl: string, label: string): Promise<ScratchDatabase> {
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 30) || 'db'
  const name = `tz_${slug}_${randomBytes(4).toString('hex')}`
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`))
  const url = withDatabase(adminUrl, name)
  return {
    url,
    name,
    drop: () => dropDatabase(adminUrl, name),
  }
}

/** Drop a database, ending any sessions still connected to it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (c) => {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`)
  })
}
