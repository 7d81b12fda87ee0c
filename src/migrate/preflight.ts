import type pg from 'pg'
import { missingRlsFixes } from '../pg-security.js'

type Queryable = Pick<pg.Client, 'query'>

/**
 * - `ok`: passed; `info`: a fact worth showing (database size)
 * - `warn`: shown, never stops the run (a server missing RLS security fixes)
 * - `block`: stops the run unless `--force` (long transactions, locks held on tables the migrations touch)
 * - `fatal`: always stops (unsupported server)
 */
export type CheckStatus = 'ok' | 'info' | 'warn' | 'block' | 'fatal'

export interface PreflightCheck {
  readonly check: 'server-version' | 'security-fixes' | 'long-transactions' | 'table-locks' | 'invalid-indexes' | 'privileges' | 'config' | 'database-size'
  readonly status: CheckStatus
  readonly message: string
  readonly fix?: string
}

export interface PreflightOptions {
  /** Tables the pending migrations name (schema-qualified or resolved through search_path). */
  readonly touchedTables: readonly string[]
  /** A transaction open longer than this blocks the run. Default 60. */
  readonly longTransactionSeconds?: number
}

export const MIN_SERVER_VERSION_NUM = 140000

/** Seed 002's pre-checks done properly: each check's result, nothing changed. */
export async function preflight(client: Queryable, options: PreflightOptions): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = []
  const server = (await client.query<{ num: string; version: string; size: string; bytes: string }>(
    `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version,
            pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(current_database())) AS size,
            pg_catalog.pg_database_size(current_database())::text AS bytes`,
  )).rows[0]!
  const num = Number(server.num)
  if (num < MIN_SERVER_VERSION_NUM) {
    checks.push({ check: 'server-version', status: 'fatal', message: `PostgreSQL ${server.version} is not supported (14 or later is needed)`, fix: 'upgrade the server' })
  } else {
    checks.push({ check: 'server-version', status: 'ok', message: `PostgreSQL ${server.version}` })
  }
  const missing = missingRlsFixes(num)
  checks.push(
    missing.length === 0
      ? { check: 'security-fixes', status: 'ok', message: 'no known row-level security fix is missing' }
      : {
          check: 'security-fixes',
          status: 'warn',
          message: `PostgreSQL ${server.version} misses row-level security fixes: ${missing.map((m) => `${m.fix.cve} (${m.fix.summary}; fixed in ${m.upgradeTo})`).join('; ')}`,
          fix: `upgrade to ${missing.map((m) => m.upgradeTo).sort().at(-1)} or later`,
        },
  )

  const seconds = options.longTransactionSeconds ?? 60
  const long = (await client.query<{ pid: number; usename: string | null; state: string | null; age: string }>(
    `SELECT pid, usename, state, (now() - xact_start)::text AS age FROM pg_catalog.pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_catalog.pg_backend_pid() AND xact_start IS NOT NULL
        AND xact_start < now() - make_interval(secs => $1) ORDER BY xact_start`,
    [seconds],
  )).rows
  checks.push(
    long.length === 0
      ? { check: 'long-transactions', status: 'ok', message: `no transaction open longer than ${seconds} s` }
      : {
          check: 'long-transactions',
          status: 'block',
          message: `${long.length} transaction(s) open longer than ${seconds} s: ${long.map((l) => `pid ${l.pid} (${l.usename ?? '?'}, ${l.state ?? '?'}, ${l.age})`).join(', ')}; they hold locks and block CREATE INDEX CONCURRENTLY`,
          fix: 'let them finish or end them (pg_terminate_backend), or pass --force to run anyway',
        },
  )

  if (options.touchedTables.length > 0) {
    const locks = (await client.query<{ pid: number; mode: string; rel: string; usename: string | null }>(
      `SELECT l.pid, l.mode, l.relation::regclass::text AS rel, a.usename
         FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.pid <> pg_catalog.pg_backend_pid() AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
          AND l.relation = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL)
          -- Short writes of a live application are normal; what makes DDL wait is a lock held by an idle or
          -- old transaction, or a lock stronger than ROW EXCLUSIVE.
          AND (a.state IN ('idle in transaction', 'idle in transaction (aborted)') OR a.xact_start < now() - interval '5 seconds'
               OR l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock'))
          -- An autovacuum worker gives way to any lock request that conflicts with it (its truncation even holds
          -- ACCESS EXCLUSIVE for a moment, seen on embedded PostgreSQL 18 after a tenant's rows were deleted); one
          -- that prevents wraparound does not, and counts.
          AND NOT (a.backend_type = 'autovacuum worker' AND a.query NOT LIKE '%(to prevent wraparound)%')
        ORDER BY l.relation::regclass::text, l.pid`,
      [options.touchedTables],
    )).rows
    checks.push(
      locks.length === 0
        ? { check: 'table-locks', status: 'ok', message: `no other session holds a lock on the ${options.touchedTables.length} table(s) the migrations touch` }
        : {
            check: 'table-locks',
            status: 'block',
            message: `idle or long transactions (or strong locks) hold locks on tables the migrations touch: ${locks.map((l) => `${l.rel} ${l.mode} by pid ${l.pid} (${l.usename ?? '?'})`).join(', ')}`,
            fix: 'wait for those sessions to finish, or pass --force to run anyway (statements wait at most lock_timeout)',
          },
    )
  }
  const invalid = (await client.query<{ index: string; table: string }>(
    `SELECT i.indexrelid::pg_catalog.regclass::text AS index, i.indrelid::pg_catalog.regclass::text AS table
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
      ORDER BY 1`,
  )).rows
  checks.push(
    invalid.length === 0
      ? { check: 'invalid-indexes', status: 'ok', message: 'no INVALID index' }
      : {
          check: 'invalid-indexes',
          status: 'warn',
          message: `${invalid.length} INVALID index(es), left by concurrent builds that were cut short: ${invalid.map((i) => `${i.index} on ${i.table}`).join(', ')}; they serve no query and a unique one enforces nothing (a pending step that builds one of these names drops and rebuilds it)`,
          fix: invalid.map((i) => `REINDEX INDEX CONCURRENTLY ${i.index}`).join('; '),
        },
  )
  checks.push({ check: 'database-size', status: 'info', message: `database size ${server.size}` })
  return checks
}
