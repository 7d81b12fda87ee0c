import { spawn, execFileSync } from 'node:child_process'
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { freePort } from './embedded.js'

/** A PgBouncer in front of a PostgreSQL server, for tests of pooler behaviour. */
export interface PgBouncer {
  /** The same database URL, through the pooler. */
  readonly url: string
  readonly port: number
  stop(): Promise<void>
}

export interface PgBouncerOptions {
  readonly poolMode?: 'session' | 'transaction' | 'statement'
  /** Server connections per database/user pair. Default 1. */
  readonly poolSize?: number
  /** Open all server connections up front and hand them out in turn (so consecutive transactions change backend). */
  readonly roundRobin?: boolean
}

function pgbouncerBinary(): string {
  for (const bin of ['pgbouncer', '/usr/sbin/pgbouncer']) {
    try {
      execFileSync(bin, ['--version'], { stdio: 'ignore' })
      return bin
    } catch {
      // try the next one
    }
  }
  throw new Error('pgbouncer is not installed (Debian package "pgbouncer"; .ci/run installs it)')
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('node:net')
  const until = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > until) throw new Error(`pgbouncer did not listen on port ${port} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * Start PgBouncer (Debian package `pgbouncer`) on a free local port in front of `serverUrl`. Clients log in
 * with trust; PgBouncer logs in to the server with the URL's password. As root it runs as the OS user
 * `postgres` (PgBouncer refuses to run as root), with its files owned by that user.
 */
export async function startPgBouncer(serverUrl: string, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const bin = pgbouncerBinary()
  const server = new URL(serverUrl)
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'tenantize-pgbouncer-'))
  const user = decodeURIComponent(server.username || 'postgres')
  const password = decodeURIComponent(server.password)
  const poolSize = options.poolSize ?? 1
  const ini = `[databases]
* = host=${server.hostname} port=${server.port || '5432'}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, 'userlist.txt')}
pool_mode = ${options.poolMode ?? 'transaction'}
default_pool_size = ${poolSize}
min_pool_size = ${options.roundRobin === true ? poolSize : 0}
server_round_robin = ${options.roundRobin === true ? 1 : 0}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
pidfile = ${join(dir, 'pgbouncer.pid')}
logfile = ${join(dir, 'pgbouncer.log')}
`
  const esc = (s: string): string => s.replaceAll('"', '""')
  await writeFile(join(dir, 'pgbouncer.ini'), ini)
  await writeFile(join(dir, 'userlist.txt'), `"${esc(user)}" "${esc(password)}"\n`, { mode: 0o600 })
  const asRoot = userInfo().uid === 0
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    for (const f of ['', 'pgbouncer.ini', 'userlist.txt']) await chown(join(dir, f), uid, gid)
  }
  const args = [...(asRoot ? ['-u', 'postgres'] : []), '-d', join(dir, 'pgbouncer.ini')]
  await new Promise<void>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: 'ignore' })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pgbouncer exited with code ${code}`))))
  })
  try {
    await waitForPort(port, 10_000)
  } catch (error) {
    const log = await readFile(join(dir, 'pgbouncer.log'), 'utf8').catch(() => '')
    throw new Error(`${(error as Error).message}\n${log}`, { cause: error })
  }
  const url = new URL(serverUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  url.password = ''
  return {
    url: url.toString(),
    port,
    async stop() {
      const pid = Number((await readFile(join(dir, 'pgbouncer.pid'), 'utf8').catch(() => '')).trim())
      if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 'SIGINT')
        } catch {
          // already gone
        }
        const until = Date.now() + 5000
        while (Date.now() < until) {
          try {
            process.kill(pid, 0)
            await new Promise((r) => setTimeout(r, 50))
          } catch {
            break
          }
        }
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
