import { after } from 'node:test'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { resolveTestServer, type TestServer } from '../../src/db/test-server.js'
import { createScratchDatabase, dropOrphanRoles, dropRolesOf, type ScratchDatabase } from '../../src/db/provision.js'

let serverPromise: Promise<TestServer> | undefined

/** The suite's server, resolved once per process (see resolveTestServer for the order). */
export function testServer(): Promise<TestServer> {
  serverPromise ??= resolveTestServer().then(async (server) => {
    if (server.kind === 'embedded') after(() => server.stop())
    // Roles of test processes that were killed before their cleanup ran (their databases are gone).
    await dropOrphanRoles(server.url).catch(() => undefined)
    return server
  })
  return serverPromise
}

export interface TestDatabase extends ScratchDatabase {
  /** Admin URL of the server the database lives on. */
  readonly adminUrl: string
  /** Run SQL on the test database with a fresh connection. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>
  /** Another fresh database on the same server (for tests that need a clean slate), dropped after the file. */
  another(label: string): Promise<TestDatabase>
  /**
   * A role name unique to this database, `${name}_${label}`. Roles are cluster-wide: every role a test
   * creates must carry its database's name (or its token) so that it is dropped with the database.
   */
  role(label: string): string
}

/** Tokens of every database this process (one test file) created: their roles are dropped with them. */
const tokens: string[] = []

/**
 * Drop a database of this file, then every role named after any database of this file that is no longer
 * needed. Runs at each drop, so that whichever drop comes last (hooks of tests and files run in their own
 * order) leaves no role behind, also when a role was granted rights in several of the file's databases.
 */
async function dropWithRoles(scratch: ScratchDatabase, adminUrl: string): Promise<void> {
  await scratch.drop()
  await dropRolesOf(adminUrl, tokens)
}

async function runSql<R extends pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return (await client.query<R>(text, values)).rows
  } finally {
    await client.end()
  }
}

function wrap(scratch: ScratchDatabase, adminUrl: string): TestDatabase {
  tokens.push(scratch.token)
  return {
    ...scratch,
    adminUrl,
    sql: (text, values) => runSql(scratch.url, text, values),
    async another(label) {
      const next = await createScratchDatabase(adminUrl, label)
      after(() => dropWithRoles(next, adminUrl))
      return wrap(next, adminUrl)
    },
    role(label) {
      const name = `${scratch.name}_${label}`
      if (Buffer.byteLength(name) > 63) throw new Error(`role name ${name} is longer than 63 bytes: use a shorter label`)
      return name
    },
  }
}

/**
 * A fresh database for this test file, dropped when the file's tests end, with the roles named after it.
 * Call at the top level of a test file: `const db = await testDatabase(import.meta.url)`.
 */
export async function testDatabase(fileUrl: string): Promise<TestDatabase> {
  return testDatabaseOn((await testServer()).url, fileUrl)
}

/**
 * A fresh database for this test file on another server than the suite's (`adminUrl`), dropped with its
 * roles when the file's tests end. For a test that needs a tool the suite's server lacks (pg_dump of its version).
 */
export async function testDatabaseOn(adminUrl: string, fileUrl: string): Promise<TestDatabase> {
  const label = basename(fileURLToPath(fileUrl)).replace(/\.test\.ts$/, '')
  const scratch = await createScratchDatabase(adminUrl, label)
  after(() => dropWithRoles(scratch, adminUrl))
  return wrap(scratch, adminUrl)
}
