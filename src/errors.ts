/**
 * Every error Tenantize raises on purpose is a {@link TenantizeError}: it carries a stable code users can
 * `switch` on, the object involved (file, table, role, setting) and one line saying how to fix it.
 * The CLI prints these as one line and exits 2; anything else is a bug and shows a stack trace.
 */
export const ErrorCodes = {
  /** Bad command-line usage or option values. */
  USAGE: 'TZ_USAGE',
  /** A configuration value is invalid. */
  CONFIG: 'TZ_CONFIG',
  /** The database could not be reached or refused the login. */
  CONNECTION: 'TZ_CONNECTION',
  /** The migrations directory does not exist or cannot be read. */
  MIGRATION_DIR: 'TZ_MIGRATION_DIR',
  /** A migration file name does not match `NNNN_name.up.sql` / `NNNN_name.down.sql`. */
  MIGRATION_NAME: 'TZ_MIGRATION_NAME',
  /** Two migrations share a number. */
  MIGRATION_DUPLICATE: 'TZ_MIGRATION_DUPLICATE',
  /** A migration file is empty. */
  MIGRATION_EMPTY: 'TZ_MIGRATION_EMPTY',
  /** An applied migration's file changed since it was applied. */
  MIGRATION_CHANGED: 'TZ_MIGRATION_CHANGED',
  /** The ledger lists a migration whose files are gone. */
  MIGRATION_MISSING: 'TZ_MIGRATION_MISSING',
  /** A migration to be reversed has no down file. */
  MIGRATION_NO_DOWN: 'TZ_MIGRATION_NO_DOWN',
  /** A migration failed while running. */
  MIGRATION_FAILED: 'TZ_MIGRATION_FAILED',
  /** Another runner holds the migration lock. */
  LOCKED: 'TZ_LOCKED',
  /** A statement could not get its lock within lock_timeout after all retries. */
  LOCK_TIMEOUT: 'TZ_LOCK_TIMEOUT',
  /** A pre-flight check failed. */
  PREFLIGHT: 'TZ_PREFLIGHT',
  /** pg_dump failed or is missing. */
  BACKUP: 'TZ_BACKUP',
  /** The embedded PostgreSQL server could not be started. */
  EMBEDDED: 'TZ_EMBEDDED',
  /** A file already exists and would be overwritten. */
  EXISTS: 'TZ_EXISTS',
  /** A migration file does not parse as PostgreSQL SQL. */
  MIGRATION_SYNTAX: 'TZ_MIGRATION_SYNTAX',
  /** A pending migration is numbered before one that is already applied. */
  MIGRATION_ORDER: 'TZ_MIGRATION_ORDER',
  /** The connection goes through a transaction-mode pooler, where session locks do not hold. */
  POOLER: 'TZ_POOLER',
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

/** One of several problems reported together (e.g. every bad file name in a directory). */
export interface Problem {
  /** Defaults to the code of the error that carries the problem. */
  readonly code?: ErrorCode
  readonly object: string
  readonly message: string
  readonly fix?: string
}

export interface TenantizeErrorOptions {
  /** The object involved: a file, table, role, key or setting. */
  readonly object?: string
  /** One line telling the user how to fix it. */
  readonly fix?: string
  /** Extra structured details for `--json` output. Never contains secrets. */
  readonly details?: Readonly<Record<string, unknown>>
  /** When several things are wrong at once, each of them; the CLI prints one line per problem. */
  readonly problems?: readonly Problem[]
  readonly cause?: unknown
}

export class TenantizeError extends Error {
  readonly code: ErrorCode
  readonly object: string | undefined
  readonly fix: string | undefined
  readonly details: Readonly<Record<string, unknown>> | undefined
  readonly problems: readonly Problem[]

  constructor(code: ErrorCode, message: string, options: TenantizeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TenantizeError'
    this.code = code
    this.object = options.object
    this.fix = options.fix
    this.details = options.details
    this.problems = options.problems ?? []
  }

  /**
   * `TZ_CODE object: message — fix: …`, one line per problem when there are several
   * (then the first line is the summary).
   */
  toLines(): string[] {
    const line = (code: ErrorCode, object: string | undefined, message: string, fix: string | undefined): string =>
      `${code}${object === undefined ? '' : ` ${object}:`} ${message}${fix === undefined ? '' : ` — fix: ${fix}`}`
    return [
      line(this.code, this.object, this.message, this.fix),
      ...this.problems.map((p) => line(p.code ?? this.code, p.object, p.message, p.fix)),
    ]
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, object: this.object, fix: this.fix, problems: this.problems, details: this.details }
  }
}

export function isTenantizeError(error: unknown): error is TenantizeError {
  return error instanceof TenantizeError
}
