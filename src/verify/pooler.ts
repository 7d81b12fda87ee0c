import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { connect } from '../db/connect.js'
import { redactUrl } from '../db/url.js'
import type { PoolerReport } from './types.js'

/**
 * The pooler leak probe: through a pooler (PgBouncer in transaction mode), does a tenant context set by
 * one client reach the next client? Session scope (`set_config(…, false)`, `SET`) is expected to leak
 * through transaction pooling — the reason the runtime only ever sets context transaction-locally —
 * and transaction scope must never leak.
 *
 * The markers are random strings that are no tenant id. A session-scope marker left on a server
 * connection is cleared (set to '') before returning.
 */

export interface PoolerProbeOptions {
  /** How many statements the observing client runs, hoping to be handed the marked backend. Default 12. */
  readonly attempts?: number
}

interface Seen {
  pid: number
  seen: string | null
}

async function observe(client: pg.Client, setting: string): Promise<Seen> {
  const r = await client.query<{ pid: number; seen: string | null }>('SELECT pg_catalog.pg_backend_pid() AS pid, pg_catalog.current_setting($1, true) AS seen', [setting])
  return r.rows[0]!
}

function marker(): string {
  return `tenantize-leak-probe-${randomBytes(8).toString('hex')}`
}

export async function probePooler(poolerUrl: string, setting: string, options: PoolerProbeOptions = {}): Promise<PoolerReport> {
  const attempts = options.attempts ?? 12
  const backends = new Set<number>()
  const setter = await connect(poolerUrl, { applicationName: 'tenantize-verify-pooler-a' })
  const observer = await connect(poolerUrl, { applicationName: 'tenantize-verify-pooler-b' })
  try {
    // 1. Session scope, outside any transaction: the server connection goes back to the pool with it.
    const sessionMarker = marker()
    const set = await setter.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid, pg_catalog.set_config($1, $2, false)', [setting, sessionMarker])
    const sessionPid = set.rows[0]!.pid
    backends.add(sessionPid)
    const sessionScope = await watch(observer, setting, sessionMarker, sessionPid, attempts, backends)

    // 2. Transaction scope: set inside a transaction, committed.
    const localMarker = marker()
    await setter.query('BEGIN')
    const local = await setter.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid, pg_catalog.set_config($1, $2, true)', [setting, localMarker])
    await setter.query('COMMIT')
    const localPid = local.rows[0]!.pid
    backends.add(localPid)
    const transactionScope = await watch(observer, setting, localMarker, localPid, attempts, backends)

    // 3. Clear the session marker wherever it may still be (best effort through the pool).
    const cleaned = await clear(observer, setter, setting, sessionMarker, attempts * 2)
    return {
      url: redactUrl(poolerUrl),
      setting,
      sessionScope: sessionScope.leaked
        ? { status: 'fail', detail: `a context set with session scope by one client (backend ${sessionPid}) was seen by another client: this pooler hands server connections over with their settings (transaction pooling)` }
        : sessionScope.reached
          ? { status: 'pass', detail: `another client got backend ${sessionPid} after the session-scope set_config and did not see it (the pooler resets server connections)` }
          : { status: 'skip', detail: `the observing client never got backend ${sessionPid} in ${attempts} tries; cannot tell (use a pool of one server connection)` },
      transactionScope: transactionScope.leaked
        ? { status: 'fail', detail: `a transaction-local context (backend ${localPid}) was seen by another client after COMMIT` }
        : transactionScope.reached
          ? { status: 'pass', detail: `another client got backend ${localPid} after the committed transaction and did not see its context` }
          : { status: 'skip', detail: `the observing client never got backend ${localPid} in ${attempts} tries; cannot tell` },
      backends: [...backends].sort((a, b) => a - b),
      cleaned,
    }
  } finally {
    await setter.end().catch(() => undefined)
    await observer.end().catch(() => undefined)
  }
}

/** Run statements on `observer` until it lands on `pid`; did it see `value`? */
async function watch(observer: pg.Client, setting: string, value: string, pid: number, attempts: number, backends: Set<number>): Promise<{ reached: boolean; leaked: boolean }> {
  let reached = false
  for (let i = 0; i < attempts; i++) {
    const s = await observe(observer, setting)
    backends.add(s.pid)
    if (s.seen === value) return { reached: true, leaked: true }
    if (s.pid === pid) reached = true
    if (reached && i >= 2) break
  }
  return { reached, leaked: false }
}

/** Reset the marker on every server connection the clients are handed; true when the last pass found none. */
async function clear(a: pg.Client, b: pg.Client, setting: string, value: string, tries: number): Promise<boolean> {
  const sql = `SELECT CASE WHEN pg_catalog.current_setting($1, true) = $2 THEN pg_catalog.set_config($1, '', false) END AS cleared`
  let quiet = 0
  for (let i = 0; i < tries && quiet < 4; i++) {
    const r = await (i % 2 === 0 ? a : b).query<{ cleared: string | null }>(sql, [setting, value])
    quiet = r.rows[0]?.cleared === null ? quiet + 1 : 0
  }
  return quiet >= 4
}

