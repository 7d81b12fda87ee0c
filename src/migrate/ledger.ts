import type pg from 'pg'
import { LOCK_KEY, lockHeldSql } from './lock.js'
import type { AppliedMigration } from './status.js'

/** Schema holding Tenantize's own objects: the migration ledger and, later, the tenant helpers. */
export const LEDGER_SCHEMA = 'tenantize'

/** Creates the ledger when absent; safe to run again. Runs under the runner's advisory lock. */
export const LEDGER_DDL = `
CREATE SCHEMA IF NOT EXISTS tenantize;
CREATE TABLE IF NOT EXISTS tenantize.migrations (
  scope       text NOT NULL DEFAULT 'migrate',
  name        text NOT NULL,
  version     text NOT NULL,
  checksum    text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
  applied_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms integer NOT NULL CHECK (duration_ms >= 0),
  applied_by  text NOT NULL DEFAULT current_user,
  runner      text,
  down_sql    text[],
  PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS tenantize.migration_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  scope       text NOT NULL DEFAULT 'migrate',
  migration   text NOT NULL,
  direction   text NOT NULL CHECK (direction IN ('up', 'down')),
  event       text NOT NULL CONSTRAINT migration_events_event_check CHECK (event IN ('start', 'retry', 'finish', 'fail', 'repair', 'interrupt')),
  duration_ms integer,
  error       text,
  sqlstate    text,
  by_user     text NOT NULL DEFAULT current_user,
  runner      text
);
CREATE TABLE IF NOT EXISTS tenantize.backfill_progress (
  scope       text NOT NULL,
  step        text NOT NULL,
  last_key    jsonb,
  rows_done   bigint NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (scope, step)
);
-- Ledgers made by earlier versions allow fewer events: widen the check once (the table is Tenantize's own).
DO $ledger$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = 'tenantize.migration_events'::regclass
                  AND conname = 'migration_events_event_check' AND pg_catalog.pg_get_constraintdef(oid) LIKE '%interrupt%') THEN
    ALTER TABLE tenantize.migration_events DROP CONSTRAINT IF EXISTS migration_events_event_check,
      ADD CONSTRAINT migration_events_event_check CHECK (event IN ('start', 'retry', 'finish', 'fail', 'repair', 'interrupt'));
  END IF;
END
$ledger$;
COMMENT ON TABLE tenantize.migrations IS 'Migrations applied by tenantize migrate/apply: one row per applied migration.';
COMMENT ON TABLE tenantize.migration_events IS 'Every start, retry, finish, failure, index repair and interruption of a tenantize migration, kept across rollbacks.';
`

export type LedgerEvent = 'start' | 'retry' | 'finish' | 'fail' | 'repair' | 'interrupt'
export type Direction = 'up' | 'down'

type Queryable = Pick<pg.Client, 'query'>

/** The applied migrations, or none when the ledger does not exist yet (nothing is created). */
export async function readLedger(client: Queryable, scope: string): Promise<AppliedMigration[]> {
  const exists = await client.query<{ ok: boolean }>(`SELECT to_regclass('tenantize.migrations') IS NOT NULL AS ok`)
  if (exists.rows[0]?.ok !== true) return []
  const { rows } = await client.query<{ name: string; version: string; checksum: string; applied_at: Date; duration_ms: number; applied_by: string }>(
    'SELECT name, version, checksum, applied_at, duration_ms, applied_by FROM tenantize.migrations WHERE scope = $1 ORDER BY version::numeric, name',
    [scope],
  )
  return rows.map((r) => ({ name: r.name, version: r.version, checksum: r.checksum, appliedAt: r.applied_at, durationMs: r.duration_ms, appliedBy: r.applied_by }))
}

export async function ensureLedger(client: Queryable): Promise<void> {
  await client.query(LEDGER_DDL)
}

export interface EventRow {
  readonly scope: string
  readonly migration: string
  readonly direction: Direction
  readonly event: LedgerEvent
  readonly durationMs?: number
  readonly error?: string
  readonly sqlstate?: string
  readonly runner: string
}

export async function recordEvent(client: Queryable, e: EventRow): Promise<void> {
  await client.query(
    'INSERT INTO tenantize.migration_events (scope, migration, direction, event, duration_ms, error, sqlstate, runner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    [e.scope, e.migration, e.direction, e.event, e.durationMs ?? null, e.error ?? null, e.sqlstate ?? null, e.runner],
  )
}

/**
 * A unit's `start` event, recorded only while this session holds the runner lock ({@link lockHeldSql}): the
 * check and the event in one round trip. False, and nothing recorded, when the lock is not held.
 */
export async function recordStartHoldingLock(client: Queryable, e: Omit<EventRow, 'event' | 'durationMs' | 'error' | 'sqlstate'>): Promise<boolean> {
  const { rows } = await client.query<{ held: boolean }>(
    `INSERT INTO tenantize.migration_events (scope, migration, direction, event, runner)
     SELECT $1, $2, $3, 'start', $4
      WHERE ${lockHeldSql(5)}
     RETURNING true AS held`,
    [e.scope, e.migration, e.direction, e.runner, LOCK_KEY.classid, LOCK_KEY.objid],
  )
  return rows[0]?.held === true
}

export async function recordApplied(client: Queryable, scope: string, m: { name: string; version: string; checksum: string; downSql?: readonly string[] | undefined }, durationMs: number, runner: string): Promise<void> {
  await client.query(
    `INSERT INTO tenantize.migrations (scope, name, version, checksum, duration_ms, runner, down_sql) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (scope, name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now(), duration_ms = EXCLUDED.duration_ms,
       applied_by = current_user, runner = EXCLUDED.runner, down_sql = EXCLUDED.down_sql`,
    [scope, m.name, m.version, m.checksum, Math.round(durationMs), runner, m.downSql === undefined ? null : [...m.downSql]],
  )
}

export async function recordReverted(client: Queryable, scope: string, name: string): Promise<void> {
  await client.query('DELETE FROM tenantize.migrations WHERE scope = $1 AND name = $2', [scope, name])
}
