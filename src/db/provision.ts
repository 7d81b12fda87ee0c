import { randomBytes } from 'node:crypto'
import { quoteIdent } from '../sql/quote.js'
import { withClient } from './connect.js'
import { withDatabase } from './url.js'

/** A throw-away database on a server: its URL, its name and how to drop it. */
export interface ScratchDatabase {
  readonly url: string
  readonly name: string
  /**
   * The random part of the name (8 hex digits). Roles are cluster-wide: a test names the roles it creates
   * after its database (`${name}_app`, or any name with `_${token}` in it) so {@link dropRolesOf} finds them.
   */
  readonly token: string
  drop(): Promise<void>
}

/** Create a new database with a unique name derived from `label` on the server behind `adminUrl`. */
export async function createScratchDatabase(adminUrl: string, label: string): Promise<ScratchDatabase> {
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 30) || 'db'
  const token = randomBytes(4).toString('hex')
  const name = `tz_${slug}_${token}`
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`))
  const url = withDatabase(adminUrl, name)
  return {
    url,
    name,
    token,
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

/**
 * Drop the roles named after scratch databases (see {@link ScratchDatabase.token}) once those databases are
 * gone: what they own and were granted in the admin database first, then the roles. A role still needed
 * elsewhere (a database not dropped yet) stays and is returned, to be dropped later.
 */
export async function dropRolesOf(adminUrl: string, tokens: readonly string[]): Promise<string[]> {
  if (tokens.length === 0) return []
  return withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ rolname: string }>(
      `SELECT r.rolname FROM pg_catalog.pg_roles r
        WHERE NOT r.rolsuper AND EXISTS (SELECT 1 FROM pg_catalog.unnest($1::text[]) AS t(token) WHERE r.rolname ~ ('(^|_)' || t.token || '(_|$)'))
        ORDER BY r.rolname`,
      [tokens],
    )
    return dropRoles(c, rows.map((r) => r.rolname))
  })
}

/**
 * Drop `tz_…` roles that carry a scratch token but whose database is gone: left by a test process that was
 * killed before its cleanup ran. A role of a database that still exists is never touched.
 */
export async function dropOrphanRoles(adminUrl: string): Promise<string[]> {
  return withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ rolname: string }>(
      `SELECT r.rolname FROM pg_catalog.pg_roles r
        WHERE NOT r.rolsuper AND r.rolname ~ '^tz_' AND r.rolname ~ '_[0-9a-f]{8}(_|$)'
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database d
                           WHERE d.datname ~ '^tz_.*_[0-9a-f]{8}$' AND r.rolname ~ ('(^|_)' || pg_catalog.right(d.datname, 8) || '(_|$)'))
        ORDER BY r.rolname`,
    )
    const roles = rows.map((r) => r.rolname)
    const left = new Set(await dropRoles(c, roles))
    return roles.filter((r) => !left.has(r))
  })
}

/** DROP OWNED (in the connected database) and DROP ROLE each; returns the roles that could not be dropped. */
async function dropRoles(c: { query(text: string): Promise<unknown> }, roles: readonly string[]): Promise<string[]> {
  const left: string[] = []
  for (const role of roles) {
    try {
      await c.query(`DROP OWNED BY ${quoteIdent(role)} CASCADE`)
      await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)
    } catch {
      left.push(role)
    }
  }
  return left
}
