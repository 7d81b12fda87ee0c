import { after } from 'node:test'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { resolveTestServer, type TestServer } from '../../src/db/test-server.js'
import { createScratchDatabase, type ScratchDatabase } from '../../src/db/provision.js'

let serverPromise: Promise<TestServer> | undefined

/** The suite's server, resolved once per process (see resolveTestServer for the order). */
export function testServer(): Promise<TestServer> {
  serverPromise ??= resolveTestServer().then((server) => {
    if (server.kind === 'embedded') after(() => server.stop())
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
  return {
    ...scratch,
    adminUrl,
    sql: (text, values) => runSql(scratch.url, text, values),
    async another(label) {
      const next = await createScratchDatabase(adminUrl, label)
      after(() => next.drop())
      return wrap(next, adminUrl)
    },
  }
}

/**
 * A fresh database for this test file, dropped when the file's tests end.
 * Call at the top level of a test file: `const db = await testDatabase(import.meta.url)`.
 */
export async function testDatabase(fileUrl: string): Promise<TestDatabase> {
  const server = await testServer()
  const label = basename(fileURLToPath(fileUrl)).replace(/\.test\.ts$/, '')
  const scratch = await createScratchDatabase(server.url, label)
  after(() => scratch.drop())
  return wrap(scratch, server.url)
}
