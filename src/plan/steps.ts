/** What `plan` produces: ordered steps, each with its up and down SQL and what it costs the live database. */

/** PostgreSQL table lock modes, weakest first. */
export const LOCK_LEVELS = [
  'none',
  'ACCESS SHARE',
  'ROW SHARE',
  'ROW EXCLUSIVE',
  'SHARE UPDATE EXCLUSIVE',
  'SHARE',
  'SHARE ROW EXCLUSIVE',
  'EXCLUSIVE',
  'ACCESS EXCLUSIVE',
] as const
export type LockLevel = (typeof LOCK_LEVELS)[number]

export type Phase = 'schema' | 'enforce'

/** A batched keyset backfill of a child table's tenant column from its parent, run by `apply` batch by batch. */
export interface Backfill {
  /** Quoted, qualified table name. */
  readonly table: string
  /** Quoted key columns used for keyset pagination (the primary key). */
  readonly keyColumns: readonly string[]
  /**
   * One batch, one statement (run it on its own, not in a transaction block: it is its own transaction):
   * `$1` … `$n` are the last key of the previous batch (the first batch passes NULLs), `$n+1` the batch
   * size, `$n+2` … `$2n+1` the highest key when the backfill started (rows added later are filled by the
   * trigger). With {@link savesProgress}, the same statement keeps the batch's progress in
   * `tenantize.backfill_progress`: `$2n+2` the scope, `$2n+3` the step, `$2n+4` the highest key as a JSON
   * array of texts, `$2n+5` the rows done before this batch. Returns `updated` (rows changed) and the last
   * key (`k1` … `kn`, as text: pass them back as they are) of the batch, or no row when nothing is left.
   */
  readonly batchSql: string
  /**
   * {@link batchSql} saves the progress row itself (one round trip per batch). Absent in a plan frozen by an
   * earlier version, whose batch statement does not: `apply` then saves it in the batch's transaction.
   */
  readonly savesProgress?: true
  /** The highest key now (`k1` … `kn`), or no row for an empty table: where the batches stop. */
  readonly upperKeySql: string
  /** Counts rows still to fill (for progress). */
  readonly remainingSql: string
  /** The same backfill as one `DO` block committing each batch, for `plan --format sql` (run outside a transaction). */
  readonly loopSql: string
  /** The parent's foreign key references this table: rows move from the default tenant to the referencing row's tenant. */
  readonly reverse: boolean
  /**
   * After the last batch, `VACUUM (ANALYZE, SKIP_LOCKED)` the table (SHARE UPDATE EXCLUSIVE: reads and writes
   * go on): the backfill left a dead version of every row, which the app's index scans read through until a
   * vacuum, and the new column has no statistics. Absent in a plan frozen by an earlier version (its step
   * declares a weaker lock): no vacuum then.
   */
  readonly vacuumAfter?: true
}

export interface Step {
  /** Stable id, unique in the plan, e.g. `add-column:public.invoice`. */
  readonly id: string
  readonly phase: Phase
  /** `schema.table` the step works on, or null for database-wide steps. */
  readonly table: string | null
  /** One line for people. */
  readonly title: string
  /** Statements, run in order. Empty for a backfill step (see {@link backfill}). */
  readonly up: readonly string[]
  /** Statements that reverse `up`, run in order. Empty when there is nothing to reverse. */
  readonly down: readonly string[]
  /** The strongest lock the step takes on a table, and for how long in the worst case. */
  readonly lock: LockLevel
  readonly lockHeld: 'brief' | 'scan without blocking writes' | 'per batch' | 'writes wait, reads go on'
  /** false for `CREATE INDEX CONCURRENTLY` and friends: run statement by statement outside a transaction. */
  readonly transactional: boolean
  /** Rows read or written (estimate), 0 for catalog-only changes. */
  readonly rows: number
  /** The table was never analyzed (`reltuples` = -1): `rows` is no estimate, and {@link tableBytes} is its size on disk. */
  readonly rowsUnknown?: true
  /** With {@link rowsUnknown}: `pg_total_relation_size` of the table, or null when unknown. */
  readonly tableBytes?: number | null
  readonly backfill?: Backfill
  /**
   * The step adds this tenant column. `derived`: copied from a parent (rolling back loses nothing);
   * otherwise every existing row got the default tenant and only the column records later tenants.
   */
  readonly addsTenantColumn?: { readonly column: string; readonly derived: boolean }
  /** What the data must satisfy for this step to succeed; checked before the first step of a run. */
  readonly preconditions?: readonly Precondition[]
}

/** Something the plan cannot do safely by itself: the user must act, and is told how. */
export interface ManualStep {
  readonly object: string
  readonly reason: string
  readonly fix: string
}

export interface Plan {
  readonly steps: readonly Step[]
  readonly manual: readonly ManualStep[]
  /** Reasons the enforce phase must not run (app role superuser, BYPASSRLS, owner). */
  readonly enforceBlockers: readonly ManualStep[]
}

/**
 * Something the data must satisfy for a step to succeed, checked read-only before the first step runs
 * (`plan` shows the findings, `apply` refuses to start on any). The SQL is built by the planner, so the
 * check follows exactly what the step will do.
 */
export interface Precondition {
  /** Stable id, unique in the plan, e.g. `crossing:public.invoice:invoice_client_fkey`. */
  readonly id: string
  /** `schema.table` whose rows are checked. */
  readonly table: string
  /** What must hold, for people: "every row has a parent to take its tenant from". */
  readonly title: string
  /** `SELECT count(*)::bigint AS n …`: rows that break it. Read-only. */
  readonly countSql: string
  /** `SELECT … LIMIT 5`: a few offending rows' keys, as text columns. Read-only. */
  readonly sampleSql: string
  /** The ways out, for people (another path, make the table global, declare a shared reference, fix rows with this SQL). */
  readonly fixes: readonly string[]
}
