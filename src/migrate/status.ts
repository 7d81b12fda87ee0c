import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import type { Migration } from './files.js'

/** A row of the ledger table `tenantize.migrations`. */
export interface AppliedMigration {
  readonly name: string
  readonly version: string
  readonly checksum: string
  readonly appliedAt: Date
  readonly durationMs: number
  readonly appliedBy: string
}

/**
 * - `applied`: in the ledger, file unchanged
 * - `changed`: in the ledger, but the up file's checksum differs
 * - `missing`: in the ledger, but no file any more
 * - `pending`: a file not yet applied
 */
export type MigrationState = 'applied' | 'changed' | 'missing' | 'pending'

export interface MigrationStatus {
  readonly name: string
  readonly version: string
  readonly state: MigrationState
  readonly noTransaction: boolean
  readonly hasDown: boolean
  readonly appliedAt: Date | undefined
  readonly appliedBy: string | undefined
  readonly durationMs: number | undefined
}

const byVersion = (a: { version: string }, b: { version: string }): number => Number(a.version) - Number(b.version)

/** Pure: the state of every migration, files and ledger merged, in version order. */
export function migrationStatus(files: readonly Migration[], applied: readonly AppliedMigration[]): MigrationStatus[] {
  const appliedByName = new Map(applied.map((a) => [a.name, a]))
  const rows: MigrationStatus[] = files.map((m) => {
    const a = appliedByName.get(m.name)
    return {
      name: m.name,
      version: m.version,
      state: a === undefined ? 'pending' : a.checksum === m.checksum ? 'applied' : 'changed',
      noTransaction: m.up.noTransaction,
      hasDown: m.down !== undefined,
      appliedAt: a?.appliedAt,
      appliedBy: a?.appliedBy,
      durationMs: a?.durationMs,
    }
  })
  const fileNames = new Set(files.map((m) => m.name))
  for (const a of applied) {
    if (fileNames.has(a.name)) continue
    rows.push({ name: a.name, version: a.version, state: 'missing', noTransaction: false, hasDown: false, appliedAt: a.appliedAt, appliedBy: a.appliedBy, durationMs: a.durationMs })
  }
  return rows.sort(byVersion)
}

export interface PlanUpOptions {
  /** Run even though applied files changed since they were applied. */
  readonly allowChanged?: boolean
  /** Stop after this migration (version or name). */
  readonly to?: string
}

function matches(m: { name: string; version: string }, target: string): boolean {
  return m.name === target || m.version === target
}

/** Pure: the migrations `up` would run, in order, or an error naming every file that blocks it. */
export function planUp(files: readonly Migration[], applied: readonly AppliedMigration[], options: PlanUpOptions = {}): Migration[] {
  const status = migrationStatus(files, applied)
  const problems: Problem[] = []
  if (options.allowChanged !== true) {
    for (const s of status.filter((r) => r.state === 'changed')) {
      problems.push({
        code: ErrorCodes.MIGRATION_CHANGED,
        object: `${s.name}.up.sql`,
        message: `changed since it was applied${s.appliedAt === undefined ? '' : ` on ${s.appliedAt.toISOString()}`}`,
        fix: 'restore the applied version and put the change in a new migration, or pass --allow-changed',
      })
    }
  }
  const lastApplied = Math.max(-1, ...status.filter((r) => r.state !== 'pending').map((r) => Number(r.version)))
  const pending = files.filter((m) => !applied.some((a) => a.name === m.name))
  for (const m of pending) {
    if (Number(m.version) < lastApplied) {
      problems.push({
        code: ErrorCodes.MIGRATION_ORDER,
        object: `${m.name}.up.sql`,
        message: `is pending but numbered before migrations already applied (last applied: ${String(lastApplied).padStart(4, '0')})`,
        fix: 'renumber it after the last applied migration',
      })
    }
  }
  if (options.to !== undefined && !files.some((m) => matches(m, options.to!))) {
    problems.push({ code: ErrorCodes.USAGE, object: options.to, message: 'no such migration', fix: 'pass a version (0003) or name (0003_add_org) from `tenantize migrate status`' })
  }
  if (problems.length > 0) {
    throw new TenantizeError(problems[0]!.code!, problems.length === 1 ? 'cannot migrate up' : `cannot migrate up: ${problems.length} problems`, { problems })
  }
  if (options.to === undefined) return pending
  const stop = pending.findIndex((m) => matches(m, options.to!))
  return stop === -1 ? [] : pending.slice(0, stop + 1)
}

export interface PlanDownOptions {
  /** Reverse down to this migration, which stays applied (version or name). */
  readonly to?: string
  /** Reverse every applied migration. */
  readonly all?: boolean
}

/**
 * Pure: the migrations `down` would reverse, newest first. Without `to`/`all` only the newest one.
 * Refuses, before anything runs, when one of them has no down file or its files are gone.
 */
export function planDown(files: readonly Migration[], applied: readonly AppliedMigration[], options: PlanDownOptions = {}): Migration[] {
  const newestFirst = [...applied].sort((a, b) => byVersion(b, a))
  let targets: AppliedMigration[]
  if (options.all === true) targets = newestFirst
  else if (options.to !== undefined) {
    const keep = newestFirst.findIndex((a) => matches(a, options.to!))
    if (keep === -1) {
      throw new TenantizeError(ErrorCodes.USAGE, 'is not an applied migration', {
        object: options.to,
        fix: 'pass the version or name of an applied migration from `tenantize migrate status`, or --all',
      })
    }
    targets = newestFirst.slice(0, keep)
  } else targets = newestFirst.slice(0, 1)

  const fileByName = new Map(files.map((m) => [m.name, m]))
  const problems: Problem[] = []
  const plan: Migration[] = []
  for (const a of targets) {
    const m = fileByName.get(a.name)
    if (m === undefined) problems.push({ code: ErrorCodes.MIGRATION_MISSING, object: a.name, message: 'is applied but its files are gone', fix: 'restore its up and down files' })
    else if (m.down === undefined) problems.push({ code: ErrorCodes.MIGRATION_NO_DOWN, object: `${a.name}.down.sql`, message: 'does not exist, so this migration cannot be reversed', fix: `write ${a.name}.down.sql` })
    else plan.push(m)
  }
  if (problems.length > 0) {
    throw new TenantizeError(problems[0]!.code!, `cannot migrate down: nothing was run`, { problems })
  }
  return plan
}
