import { hostname, userInfo } from 'node:os'
import type pg from 'pg'
import { connect } from '../db/connect.js'
import { ErrorCodes, TenantizeError, fromPgServerError, isPgServerError } from '../errors.js'
import { backupDatabase } from './backup.js'
import { crashPoint } from './crash.js'
import {
  DEFAULT_TIMEOUTS,
  applyTimeouts,
  backoff,
  invalidIndexes,
  isLockTimeout,
  isTransient,
  lockTimeoutError,
  sleep,
  statementError,
  watchBlockers,
  type Blocker,
  type TimeoutPolicy,
} from './execute.js'
import { loadMigrations, type Migration, type MigrationFile } from './files.js'
import { assertIndexesValid, indexOperations, invalidIndexesOn, repairInvalidIndex, type IndexOperation } from './indexes.js'
import { ensureLedger, readLedger, recordApplied, recordEvent, recordReverted, recordStartHoldingLock, type Direction } from './ledger.js'
import { acquireRunnerLock, assertDirectSession, lockLost, releaseRunnerLock } from './lock.js'
import { preflight, type PreflightCheck } from './preflight.js'
import { splitStatements, type Statement } from './split.js'
import { migrationStatus, planDown, planUp, type MigrationStatus } from './status.js'

/** Where a unit belongs, when it is a plan step: its phase (`schema`, `enforce`) and table; absent for migration files. */
export interface UnitLabel {
  readonly phase?: string
  readonly table?: string | null
}

/** What the runner reports as it goes; the CLI renders these as text or one JSON object per line. */
export type MigrateEvent =
  | ({ readonly event: 'preflight' } & PreflightCheck)
  | { readonly event: 'backup'; readonly file: string; readonly bytes: number; readonly durationMs: number }
  | { readonly event: 'plan'; readonly direction: Direction; readonly migrations: readonly string[]; readonly dryRun: boolean }
  | { readonly event: 'would-run'; readonly direction: Direction; readonly migration: string; readonly noTransaction: boolean; readonly statements: readonly { readonly line: number; readonly sql: string }[] }
  | ({ readonly event: 'start'; readonly direction: Direction; readonly migration: string; readonly index: number; readonly total: number; readonly noTransaction: boolean } & UnitLabel)
  | { readonly event: 'retry'; readonly direction: Direction; readonly migration: string; readonly attempt: number; readonly delayMs: number; readonly blockers: readonly number[] }
  | ({ readonly event: 'finish'; readonly direction: Direction; readonly migration: string; readonly index: number; readonly total: number; readonly durationMs: number } & UnitLabel)
  | { readonly event: 'fail'; readonly direction: Direction; readonly migration: string; readonly error: string; readonly sqlstate: string | undefined }
  | ({ readonly event: 'progress'; readonly migration: string; readonly done: number; readonly total: number; readonly rowsPerSecond: number; readonly etaSeconds: number | null } & UnitLabel)
  | { readonly event: 'done'; readonly direction: Direction; readonly migrations: readonly string[]; readonly durationMs: number; readonly dryRun: boolean }
  /** An INVALID index of the name a concurrent build is about to use was dropped (or, attached to a partitioned index, rebuilt). */
  | { readonly event: 'repair'; readonly direction: Direction; readonly migration: string; readonly index: string; readonly action: 'drop' | 'reindex' }
  /** Stopped on request (SIGINT/SIGTERM) after the current statement or batch; `done` units of `total` ran. */
  | { readonly event: 'interrupt'; readonly direction: Direction; readonly migration: string; readonly signal: string; readonly done: number; readonly total: number }

/** Options every runner invocation shares, whatever it runs. */
export interface RunnerOptions {
  readonly databaseUrl: string
  /** Print what would run; change nothing (not even the ledger). */
  readonly dryRun?: boolean
  /** Skip pre-flight checks that would block (long transactions, locks); fatal ones still stop. */
  readonly force?: boolean
  /** Wait this long for another runner's lock instead of failing at once. */
  readonly lockWaitMs?: number
  readonly timeouts?: Partial<TimeoutPolicy>
  /** `pg_dump -Fc` into this file before any change; a failed backup stops the run. */
  readonly backupFile?: string
  /** A transaction open longer than this blocks the run (pre-flight). Default 60 s. */
  readonly longTransactionSeconds?: number
  readonly onEvent?: (event: MigrateEvent) => void
  /**
   * Stop when aborted (the CLI aborts on SIGINT/SIGTERM): after the current statement, backfill batch or
   * retry wait, never in the middle of one; the run ends with `TZ_INTERRUPTED` and an `interrupt` event.
   * The abort reason (e.g. `'SIGINT'`) names the cause.
   */
  readonly signal?: AbortSignal
  /** How to resume, for the `TZ_INTERRUPTED` fix, e.g. `run tenantize apply again`. */
  readonly resumeHint?: string
}

export interface MigrateOptions extends RunnerOptions {
  /** Directory of `NNNN_name.up.sql` / `.down.sql` files. */
  readonly dir: string
}

export interface MigrateUpOptions extends MigrateOptions {
  readonly allowChanged?: boolean
  /** Apply pending migrations up to and including this one. */
  readonly to?: string
}

export interface MigrateDownOptions extends MigrateOptions {
  /** Reverse down to this migration, which stays applied. */
  readonly to?: string
  /** Reverse every applied migration. */
  readonly all?: boolean
}

export interface MigrateResult {
  readonly direction: Direction
  /** Migrations run (or that would run, on a dry run), in order. */
  readonly migrations: readonly string[]
  readonly dryRun: boolean
}

const runnerName = (): string => `${userInfo().username}@${hostname()} pid ${process.pid}`

/** What a {@link Unit} with custom code gets: the runner's session and its lock-timeout retry. */
export interface UnitContext {
  readonly client: pg.Client
  /**
   * Run `attempt`, retrying it on lock timeout (and on 40001/40P01/53200) with back-off, naming the blocker
   * when it gives up. Stops with `TZ_INTERRUPTED` before an attempt when the run was asked to stop, so a
   * loop of short transactions (backfill batches) stops between two of them.
   */
  retrying(object: string, attempt: () => Promise<void>): Promise<void>
  readonly emit: (event: MigrateEvent) => void
}

/** One thing the runner applies or reverses: a migration file, or a step of a Tenantize plan (with its phase and table, passed on in its events). */
export interface Unit extends UnitLabel {
  /** Ledger key, e.g. `0003_add_org_id`. */
  readonly name: string
  readonly version: string
  readonly checksum: string
  /** Where it comes from, for messages: a file path or a plan step. */
  readonly source: string
  /** Statement by statement outside a transaction (CREATE INDEX CONCURRENTLY). */
  readonly noTransaction: boolean
  readonly statements: readonly Statement[]
  /** Code that runs instead of `statements` and manages its own transactions (batched backfills). */
  readonly custom?: (ctx: UnitContext) => Promise<void>
  /** Kept in the ledger with the applied row, so the unit can be reversed without its source. */
  readonly downSql?: readonly string[]
  /** What to do when a statement fails, instead of the advice for a migration file (a plan step is not edited by hand). */
  readonly advice?: string
}

async function fileUnits(migrations: readonly Migration[], direction: Direction): Promise<Unit[]> {
  const out: Unit[] = []
  for (const m of migrations) {
    const file: MigrationFile = direction === 'up' ? m.up : m.down!
    out.push({ name: m.name, version: m.version, checksum: m.checksum, source: file.path, noTransaction: file.noTransaction, statements: await splitStatements(file.sql, file.path) })
  }
  return out
}

/** Connection, session checks and the runner lock around `fn`; always unlocks and disconnects. */
async function session<T>(options: RunnerOptions, fn: (client: pg.Client, monitor: pg.Client, pid: number) => Promise<T>): Promise<T> {
  const client = await connect(options.databaseUrl, { applicationName: 'tenantize migrate' })
  let monitor: pg.Client | undefined
  let locked = false
  try {
    // When the runner dies (a second Ctrl-C), the server notices within a second and stops the statement.
    await client.query(`SELECT pg_catalog.set_config('client_connection_check_interval', '1000', false)`).catch(() => undefined)
    monitor = await connect(options.databaseUrl, { applicationName: 'tenantize migrate (monitor)' })
    await assertDirectSession(client, monitor)
    await acquireRunnerLock(client, options.lockWaitMs)
    locked = true
    const pid = (await client.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]!.pid
    return await fn(client, monitor, pid)
  } finally {
    if (locked) await releaseRunnerLock(client).catch(() => undefined)
    await monitor?.end().catch(() => undefined)
    await client.end().catch(() => undefined)
  }
}

async function runChecks(client: pg.Client, prepared: readonly Unit[], options: RunnerOptions, emit: (e: MigrateEvent) => void): Promise<void> {
  const touched = [...new Set(prepared.flatMap((p) => p.statements.flatMap((s) => s.relations)))]
  const checks = await preflight(client, { touchedTables: touched, ...(options.longTransactionSeconds === undefined ? {} : { longTransactionSeconds: options.longTransactionSeconds }) })
  for (const c of checks) emit({ event: 'preflight', ...c })
  const stopping = checks.filter((c) => c.status === 'fatal' || (c.status === 'block' && options.force !== true))
  if (stopping.length > 0) {
    throw new TenantizeError(ErrorCodes.PREFLIGHT, `${stopping.length} pre-flight check(s) failed; nothing was changed`, {
      problems: stopping.map((c) => ({ object: c.check, message: c.message, ...(c.fix === undefined ? {} : { fix: c.fix }) })),
    })
  }
}

async function serverMajor(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ num: string }>(`SELECT current_setting('server_version_num') AS num`)
  return Math.floor(Number(rows[0]?.num) / 10000)
}

const signalName = (signal: AbortSignal): string => (typeof signal.reason === 'string' ? signal.reason : 'an abort request')

/** Thrown where the runner stops on request; {@link runUnits} turns it into the final `TZ_INTERRUPTED`. */
function interrupted(signal: AbortSignal, where: string): TenantizeError {
  return new TenantizeError(ErrorCodes.INTERRUPTED, where, { details: { signal: signalName(signal) } })
}

/** The statements of a unit, each with the index builds and attachments it holds. */
async function indexPlan(p: Unit): Promise<IndexOperation[][]> {
  return Promise.all(p.statements.map((s) => indexOperations(s.text)))
}

/** Run one migration file: in one transaction, or statement by statement for no-transaction files. */
async function runOne(client: pg.Client, monitor: pg.Client, pid: number, p: Unit, direction: Direction, policy: TimeoutPolicy, scope: string, emit: (e: MigrateEvent) => void, signal: AbortSignal | undefined): Promise<number> {
  const started = performance.now()
  const runner = runnerName()
  const name = p.name
  const watchMs = Math.max(50, Math.min(250, policy.lockTimeoutMs / 2))
  const stopIfAsked = (where: string): void => {
    if (signal?.aborted === true) throw interrupted(signal, where)
  }
  const finishLedger = async (): Promise<void> => {
    if (direction === 'up') await recordApplied(client, scope, p, performance.now() - started, runner)
    else await recordReverted(client, scope, name)
  }
  /** Retry `attempt` on lock timeout and transient errors with back-off; other errors pass through. */
  const retrying = async (object: string, attempt: () => Promise<void>): Promise<void> => {
    let lastBlockers: Blocker[] = []
    for (let tryNo = 1; ; tryNo++) {
      stopIfAsked(`in ${name} before ${tryNo === 1 ? '' : 'another try of '}${object}`)
      const outcome = await watchBlockers(monitor, pid, watchMs, attempt)
      if (outcome.blockers.length > 0) lastBlockers = outcome.blockers
      if (!('error' in outcome)) return
      const lockTimeout = isLockTimeout(outcome.error)
      if (!lockTimeout && !isTransient(outcome.error)) throw outcome.error
      if (tryNo >= policy.tries) throw lockTimeout ? lockTimeoutError(object, policy, lastBlockers) : outcome.error
      const delayMs = backoff(policy, tryNo)
      const sqlstate = (outcome.error as { code: string }).code
      emit({ event: 'retry', direction, migration: name, attempt: tryNo + 1, delayMs, blockers: lockTimeout ? lastBlockers.map((b) => b.pid) : [] })
      const why = lockTimeout ? `lock_timeout; blocked by ${lastBlockers.map((b) => b.pid).join(', ') || 'unknown'}` : String((outcome.error as Error).message)
      await recordEvent(client, { scope, migration: name, direction, event: 'retry', error: why, sqlstate, runner })
      await sleep(delayMs, signal)
    }
  }

  if (p.custom !== undefined) {
    await p.custom({ client, retrying, emit })
    await finishLedger()
  } else if (!p.noTransaction) {
    let current: Statement | undefined
    try {
      await retrying(p.source, async () => {
        await client.query('BEGIN')
        try {
          for (const [i, s] of p.statements.entries()) {
            if (i > 0) stopIfAsked(`in ${name} after statement ${i} of ${p.statements.length}, whose transaction was rolled back`)
            current = s
            await client.query(s.text)
            crashPoint('statement')
          }
          current = undefined
          // The ledger row goes with its values as parameters, then COMMIT (a message of both would need the
          // values written into the SQL text).
          await finishLedger()
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        }
      })
    } catch (error) {
      // A lost connection is not the statement's fault: runUnits says so, with the fix that fits.
      if (error instanceof TenantizeError || current === undefined || connectionLost(error)) throw error
      throw statementError(error, p.source, current, `${p.advice ?? 'correct the migration and run again'}; its transaction was rolled back, so none of it was applied`)
    }
  } else {
    const ops = await indexPlan(p)
    const invalidBefore = await invalidIndexesOn(client, ops.flat())
    for (const [i, s] of p.statements.entries()) {
      if (i > 0) stopIfAsked(`in ${name} after statement ${i} of ${p.statements.length} (they stay applied; the step runs again from its start)`)
      try {
        await retrying(`${p.source}:${s.line}`, async () => {
          // A build cut short (crash, cancel, lock_timeout) leaves an INVALID index that IF NOT EXISTS would keep.
          for (const op of ops[i] ?? []) {
            const repaired = await repairInvalidIndex(client, op)
            if (repaired === undefined) continue
            emit({ event: 'repair', direction, migration: name, index: repaired.index, action: repaired.action })
            await recordEvent(client, { scope, migration: name, direction, event: 'repair', error: `${repaired.action === 'drop' ? 'dropped' : 'rebuilt (REINDEX CONCURRENTLY)'} INVALID index ${repaired.index} left by an interrupted build`, runner })
          }
          await client.query(s.text)
        })
        crashPoint('statement')
      } catch (error) {
        if ((error instanceof TenantizeError && (error.code === ErrorCodes.INTERRUPTED || error.code === ErrorCodes.INVALID_INDEX)) || connectionLost(error)) throw error
        const leftovers = await invalidIndexes(client).catch(() => [])
        const before = i === 0 ? 'no statement of this file was applied' : `the ${i} statement(s) before line ${s.line} stayed applied (this file runs outside a transaction)`
        const base = error instanceof TenantizeError ? error : statementError(error, p.source, s, p.advice === undefined ? `correct the statement and run again; ${before}, so keep the file safe to re-run (IF NOT EXISTS)` : `${p.advice}; ${before} (the step is safe to re-run)`)
        if (leftovers.length === 0) throw base
        throw new TenantizeError(base.code, `${base.message}; ${before}`, {
          ...(base.object === undefined ? {} : { object: base.object }),
          ...(base.fix === undefined ? {} : { fix: base.fix }),
          details: { ...base.details, invalidIndexes: leftovers.map((l) => l.index) },
          problems: leftovers.map((l) => ({ object: l.index, message: 'index is INVALID (left by a failed CREATE INDEX CONCURRENTLY)', fix: l.fix })),
          cause: base.cause,
        })
      }
    }
    await assertIndexesValid(client, ops.flat(), invalidBefore, p.source)
    await finishLedger()
  }
  return performance.now() - started
}

/** The ledger scope of `tenantize migrate` (plan steps run by `apply` use `apply`). */
export const MIGRATE_SCOPE = 'migrate'

export interface RunUnitsOptions extends RunnerOptions {
  /** Ledger scope: units of different scopes never mix in status, order or checksums. */
  readonly scope: string
}

/**
 * The runner itself: session checks, lock, pre-flight, backup, ledger, and each unit in its own transaction
 * (or statement by statement, or its custom code) with lock-timeout retries. `select` picks the units once
 * the lock is held, from the ledger of `options.scope`. Used by `migrate` (files) and `apply` (plan steps).
 */
export async function runUnits(direction: Direction, options: RunUnitsOptions, select: (client: pg.Client) => Promise<Unit[]>): Promise<MigrateResult> {
  try {
    return await runUnitsOrThrow(direction, options, select)
  } catch (error) {
    // No PostgreSQL error leaves the runner without a code, an object and a fix.
    if (isPgServerError(error)) throw fromPgServerError(error)
    if (connectionLost(error)) {
      throw new TenantizeError(ErrorCodes.CONNECTION, `the connection to the server was lost: ${(error as Error).message}`, {
        object: 'database connection',
        fix: `check that the server is up again (it may have crashed or restarted), then ${options.resumeHint ?? 'run the same command again'}: it resumes where it stopped (finished steps and backfill batches are kept in the ledger)`,
        cause: error,
      })
    }
    throw error
  }
}

/** The server went away mid-run (crash, immediate shutdown, network): node-postgres says so without a SQLSTATE. */
function connectionLost(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof TenantizeError) return false
  const code = (error as { code?: unknown }).code
  return /^Connection terminated|not queryable|^read ECONNRESET/.test(error.message) || (typeof code === 'string' && ['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT'].includes(code))
}

const label = (u: Unit): UnitLabel => ({ ...(u.phase === undefined ? {} : { phase: u.phase }), ...(u.table === undefined ? {} : { table: u.table }) })

async function runUnitsOrThrow(direction: Direction, options: RunUnitsOptions, select: (client: pg.Client) => Promise<Unit[]>): Promise<MigrateResult> {
  const emit = options.onEvent ?? (() => undefined)
  const started = performance.now()
  const policy: TimeoutPolicy = { ...DEFAULT_TIMEOUTS, ...options.timeouts }
  const scope = options.scope

  if (options.dryRun === true) {
    const client = await connect(options.databaseUrl, { applicationName: 'tenantize (dry run)' })
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const units = await select(client)
      await runChecks(client, units, { ...options, force: true }, emit)
      await client.query('COMMIT')
      emit({ event: 'plan', direction, migrations: units.map((p) => p.name), dryRun: true })
      for (const p of units) {
        emit({ event: 'would-run', direction, migration: p.name, noTransaction: p.noTransaction, statements: p.statements.map((s) => ({ line: s.line, sql: s.text })) })
      }
      const names = units.map((p) => p.name)
      emit({ event: 'done', direction, migrations: names, durationMs: performance.now() - started, dryRun: true })
      return { direction, migrations: names, dryRun: true }
    } finally {
      await client.end().catch(() => undefined)
    }
  }

  return session(options, async (client, monitor, pid) => {
    // Select and parse everything before any change: a syntax error in the last file stops the run up front.
    const units = await select(client)
    await runChecks(client, units, options, emit)
    emit({ event: 'plan', direction, migrations: units.map((p) => p.name), dryRun: false })
    if (units.length > 0 && options.backupFile !== undefined) {
      const t = performance.now()
      const backup = await backupDatabase(options.databaseUrl, options.backupFile, await serverMajor(client))
      emit({ event: 'backup', file: backup.file, bytes: backup.bytes, durationMs: performance.now() - t })
    }
    const done: string[] = []
    if (units.length > 0) {
      await ensureLedger(client)
      await applyTimeouts(client, policy)
    }
    const signal = options.signal
    for (const [i, p] of units.entries()) {
      const name = p.name
      try {
        if (signal?.aborted === true) throw interrupted(signal, `before ${name}`)
        // The start event, recorded only while the runner lock is held: the check and the event in one round trip.
        if (!(await recordStartHoldingLock(client, { scope, migration: name, direction, runner: runnerName() }))) throw lockLost()
        emit({ event: 'start', direction, migration: name, index: i + 1, total: units.length, noTransaction: p.noTransaction, ...label(p) })
        crashPoint('unit-start')
        const durationMs = await runOne(client, monitor, pid, p, direction, policy, scope, emit, signal)
        crashPoint('unit-end')
        await recordEvent(client, { scope, migration: name, direction, event: 'finish', durationMs: Math.round(durationMs), runner: runnerName() })
        emit({ event: 'finish', direction, migration: name, index: i + 1, total: units.length, durationMs, ...label(p) })
        done.push(name)
      } catch (caught) {
        if (caught instanceof TenantizeError && caught.code === ErrorCodes.INTERRUPTED) {
          const by = String(caught.details?.['signal'] ?? 'an abort request')
          const message = `stopped by ${by} ${caught.message}: ${done.length} of ${units.length} ${direction === 'up' ? 'applied' : 'reversed'} in this run, ${units.length - done.length} left`
          emit({ event: 'interrupt', direction, migration: name, signal: by, done: done.length, total: units.length })
          await recordEvent(client, { scope, migration: name, direction, event: 'interrupt', error: message, runner: runnerName() }).catch(() => undefined)
          throw new TenantizeError(ErrorCodes.INTERRUPTED, message, {
            object: name,
            fix: `${options.resumeHint ?? 'run the same command again'}: it resumes where it stopped (finished steps and backfill batches are kept in the ledger)`,
            details: { signal: by, done, remaining: units.length - done.length },
          })
        }
        const error = isPgServerError(caught) ? fromPgServerError(caught, { object: p.source }) : caught
        const sqlstate = error instanceof TenantizeError ? ((error.details?.['sqlstate'] as string | undefined) ?? (error.code === ErrorCodes.LOCK_TIMEOUT ? '55P03' : undefined)) : (error as { code?: string }).code
        const text = error instanceof TenantizeError ? error.message : String((error as Error).message ?? error)
        emit({ event: 'fail', direction, migration: name, error: text, sqlstate })
        await recordEvent(client, { scope, migration: name, direction, event: 'fail', error: text, ...(sqlstate === undefined ? {} : { sqlstate }), runner: runnerName() }).catch(() => undefined)
        throw error
      }
    }
    emit({ event: 'done', direction, migrations: done, durationMs: performance.now() - started, dryRun: false })
    return { direction, migrations: done, dryRun: false }
  })
}

/** Apply pending migrations in order. See {@link MigrateUpOptions}. */
export async function migrateUp(options: MigrateUpOptions): Promise<MigrateResult> {
  const files = await loadMigrations(options.dir)
  return runUnits('up', { ...options, scope: MIGRATE_SCOPE }, async (client) =>
    fileUnits(planUp(files, await readLedger(client, MIGRATE_SCOPE), { ...(options.allowChanged === undefined ? {} : { allowChanged: options.allowChanged }), ...(options.to === undefined ? {} : { to: options.to }) }), 'up'),
  )
}

/** Reverse applied migrations, newest first: the last one, down `to` one, or `all`. */
export async function migrateDown(options: MigrateDownOptions): Promise<MigrateResult> {
  const files = await loadMigrations(options.dir)
  return runUnits('down', { ...options, scope: MIGRATE_SCOPE }, async (client) =>
    fileUnits(planDown(files, await readLedger(client, MIGRATE_SCOPE), { ...(options.to === undefined ? {} : { to: options.to }), ...(options.all === undefined ? {} : { all: options.all }) }), 'down'),
  )
}

/** The state of every migration (files and ledger merged). Reads only; creates nothing. */
export async function migrateStatus(options: { readonly databaseUrl: string; readonly dir: string }): Promise<MigrationStatus[]> {
  const files = await loadMigrations(options.dir)
  const client = await connect(options.databaseUrl, { applicationName: 'tenantize migrate status' })
  try {
    return migrationStatus(files, await readLedger(client, MIGRATE_SCOPE))
  } finally {
    await client.end().catch(() => undefined)
  }
}
