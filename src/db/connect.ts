import pg from 'pg'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { redactUrl } from './url.js'

export type Client = pg.Client

interface PgLikeError {
  code?: string
  message: string
  errno?: number
}

/** Turn a driver connection failure into one clear line that names the server and never the password. */
export function connectionError(error: unknown, url: string): TenantizeError {
  const err = error as PgLikeError
  const where = redactUrl(url)
  const code = err.code ?? ''
  const fixes: Record<string, string> = {
    ECONNREFUSED: 'start the server or correct host/port in --db / DATABASE_URL',
    ENOTFOUND: 'correct the host name in --db / DATABASE_URL',
    EAI_AGAIN: 'correct the host name in --db / DATABASE_URL',
    ETIMEDOUT: 'check the host is reachable and the port is open',
    '28P01': 'correct the user or password in the URL',
    '28000': 'allow this user/database in pg_hba.conf or use another user',
    '3D000': 'create the database first or correct its name in the URL',
    '57P03': 'wait for the server to finish starting up and retry',
    '53300': 'too many connections: close some or raise max_connections',
  }
  return new TenantizeError(ErrorCodes.CONNECTION, `cannot connect: ${err.message}`, {
    object: where,
    fix: fixes[code] ?? 'check the URL in --db / DATABASE_URL and that the server accepts connections',
    details: { sqlstate: code === '' ? undefined : code },
    cause: error,
  })
}

export interface ConnectOptions {
  /** Shown in pg_stat_activity so DBAs can see who holds a lock. */
  readonly applicationName?: string
  readonly connectTimeoutMs?: number
}

/** Open a client, or throw a {@link TenantizeError} with code `TZ_CONNECTION`. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: options.applicationName ?? 'tenantize',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  })
  // A dropped connection must surface through the next query, not crash the process.
  client.on('error', () => undefined)
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => undefined)
    throw connectionError(error, url)
  }
  return client
}

/** Run `fn` with a connected client and always close it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>, options: ConnectOptions = {}): Promise<T> {
  const client = await connect(url, options)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}
