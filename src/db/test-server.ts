import { startEmbeddedPostgres } from './embedded.js'
import { connect } from './connect.js'

/** Where the test suite's PostgreSQL comes from. */
export type TestServerKind = 'env' | 'local' | 'embedded'

export interface TestServer {
  /** An admin URL on the server (may create and drop databases). */
  readonly url: string
  readonly kind: TestServerKind
  stop(): Promise<void>
}

/** The well-known local server of these machines: trust auth, user postgres. */
export const LOCAL_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

async function answers(url: string): Promise<boolean> {
  try {
    const client = await connect(url, { connectTimeoutMs: 2_000, applicationName: 'tenantize-test-probe' })
    await client.end()
    return true
  } catch {
    return false
  }
}

/**
 * Pick the PostgreSQL server for tests, in this order:
 * 1. `TENANTIZE_TEST_SERVER_URL` (set by `npm test` for its child processes, so one server serves all files);
 * 2. `TENANTIZE_TEST_PG=embedded` forces a new embedded PostgreSQL 18;
 * 3. `DATABASE_URL` when set;
 * 4. PostgreSQL on 127.0.0.1:5432 when it answers;
 * 5. otherwise a new embedded PostgreSQL.
 */
export async function resolveTestServer(env: NodeJS.ProcessEnv = process.env): Promise<TestServer> {
  const noop = async (): Promise<void> => undefined
  const given = env['TENANTIZE_TEST_SERVER_URL']
  if (given !== undefined && given !== '') {
    return { url: given, kind: (env['TENANTIZE_TEST_SERVER_KIND'] as TestServerKind | undefined) ?? 'env', stop: noop }
  }
  const forced = env['TENANTIZE_TEST_PG']
  if (forced !== undefined && forced !== '' && forced !== 'embedded' && forced !== 'auto') {
    throw new Error(`TENANTIZE_TEST_PG must be "embedded" or "auto", got ${JSON.stringify(forced)}`)
  }
  if (forced !== 'embedded') {
    const databaseUrl = env['DATABASE_URL']
    if (databaseUrl !== undefined && databaseUrl !== '') return { url: databaseUrl, kind: 'env', stop: noop }
    if (await answers(LOCAL_URL)) return { url: LOCAL_URL, kind: 'local', stop: noop }
  }
  const server = await startEmbeddedPostgres()
  return { url: server.url, kind: 'embedded', stop: () => server.stop() }
}
