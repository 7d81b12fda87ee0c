import type pg from 'pg'
import { ErrorCodes, TenantizeError } from '../errors.js'

/**
 * The runner's advisory lock: `pg_advisory_lock(1413828161, 1)` ('TENA', 1), session-scoped, per database.
 * Advisory locks are per database, so runners on different databases do not block each other.
 */
export const LOCK_KEY = Object.freeze({ classid: 0x54454e41, objid: 1 })

type Queryable = Pick<pg.Client, 'query'>

interface Holder {
  pid: number
  usename: string | null
  application_name: string | null
  client_addr: string | null
  backend_start: Date | null
}

async function lockHolder(client: Queryable): Promise<Holder | undefined> {
  const { rows } = await client.query<Holder>(
    `SELECT a.pid, a.usename, a.application_name, host(a.client_addr) AS client_addr, a.backend_start
       FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())`,
    [LOCK_KEY.classid, LOCK_KEY.objid],
  )
  return rows[0]
}

function describeHolder(h: Holder | undefined): string {
  if (h === undefined) return 'another session'
  const who = [h.usename === null ? undefined : `user ${h.usename}`, h.application_name ? `application "${h.application_name}"` : undefined, h.client_addr === null ? undefined : `from ${h.client_addr}`]
    .filter(Boolean)
    .join(', ')
  return `pid ${h.pid}${who === '' ? '' : ` (${who})`}${h.backend_start === null ? '' : `, connected since ${h.backend_start.toISOString()}`}`
}

/** Longest single wait for the runner lock (well under deadlock_timeout's default 1 s). */
const WAIT_SLICE_MS = 200

/**
 * Take the runner lock. Without `waitMs` a second runner fails at once; with it, waits that long
 * (using lock_timeout, which applies to advisory locks) before failing. The error names the holder.
 */
export async function acquireRunnerLock(client: Queryable, waitMs: number | undefined): Promise<void> {
  if (waitMs === undefined || waitMs <= 0) {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_catalog.pg_try_advisory_lock($1, $2) AS ok', [LOCK_KEY.classid, LOCK_KEY.objid])
    if (rows[0]?.ok === true) return
  } else {
    // Wait in slices: a statement that waits holds a snapshot, and the other runner's CREATE INDEX CONCURRENTLY
    // waits for every older snapshot to go — one long wait for the lock that runner holds would be a deadlock.
    const deadline = performance.now() + waitMs
    try {
      for (let left = waitMs; left > 0; left = deadline - performance.now()) {
        await client.query(`SELECT pg_catalog.set_config('lock_timeout', $1, false)`, [`${Math.ceil(Math.min(WAIT_SLICE_MS, left))}ms`])
        try {
          await client.query('SELECT pg_catalog.pg_advisory_lock($1, $2)', [LOCK_KEY.classid, LOCK_KEY.objid])
          return
        } catch (error) {
          if ((error as { code?: string }).code !== '55P03') throw error
        }
      }
    } finally {
      await client.query(`SELECT pg_catalog.set_config('lock_timeout', '0', false)`)
    }
  }
  const holder = await lockHolder(client)
  throw new TenantizeError(ErrorCodes.LOCKED, `another migration runner is running: ${describeHolder(holder)}`, {
    object: 'tenantize migration lock',
    fix: waitMs === undefined ? 'wait for it to finish, or pass --lock-wait SECONDS to wait for it' : 'wait longer (--lock-wait), or stop the other runner',
    details: { holderPid: holder?.pid },
  })
}

export async function releaseRunnerLock(client: Queryable): Promise<void> {
  await client.query('SELECT pg_catalog.pg_advisory_unlock($1, $2)', [LOCK_KEY.classid, LOCK_KEY.objid])
}

const POOLER_FIX = 'connect the runner directly to PostgreSQL (or through a session-mode pool), not through a transaction-mode pooler such as PgBouncer pool_mode=transaction'

/**
 * Session locks and session settings do not survive a transaction-mode pooler: each statement may land
 * on another server connection, and another client's statements on ours. Detects that and refuses:
 * two direct client connections never share a backend, and one direct connection never changes backend.
 * The runner's connection and a second one (`other`) take turns asking for `pg_backend_pid()`.
 */
export async function assertDirectSession(client: Queryable, other: Queryable): Promise<void> {
  const mine = new Set<number>()
  const theirs = new Set<number>()
  const pid = async (c: Queryable): Promise<number> => (await c.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]!.pid
  for (let i = 0; i < 3; i++) {
    mine.add(await pid(client))
    theirs.add(await pid(other))
  }
  if (mine.size > 1 || [...mine].some((p) => theirs.has(p))) {
    throw new TenantizeError(ErrorCodes.POOLER, 'statements of one connection ran on different server connections, or two connections shared one: this is a transaction-mode pooler, where the runner lock cannot hold', {
      object: 'connection',
      fix: POOLER_FIX,
    })
  }
}

/** Before each migration: the lock must still be held by this very backend (it would not be behind a pooler). */
/**
 * SQL: this session holds the runner lock, with the lock's class id and object id as parameters `$<first>` and
 * `$<first + 1>`: for a statement that does its work only while the lock is held (the runner's start event).
 */
export function lockHeldSql(first: number): string {
  return `EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_catalog.pg_backend_pid()
       AND classid = $${first} AND objid = $${first + 1} AND objsubid = 2)`
}

/** This session no longer holds the runner lock (a transaction-mode pooler handed the runner another backend). */
export function lockLost(): TenantizeError {
  return new TenantizeError(ErrorCodes.POOLER, 'the runner lock is no longer held by this session', { object: 'tenantize migration lock', fix: POOLER_FIX })
}
