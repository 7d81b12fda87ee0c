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
  /** An index a step builds is INVALID (a concurrent build was cut short), or another session is building it. */
  INVALID_INDEX: 'TZ_INVALID_INDEX',
  /** Stopped by SIGINT / SIGTERM after the current statement or batch; running the command again resumes. */
  INTERRUPTED: 'TZ_INTERRUPTED',
  /** The database role lacks a privilege (SQLSTATE 42501, class 0L/0P), found in pre-flight or while running. */
  PRIVILEGE: 'TZ_PRIVILEGE',
  /** A serialization failure, deadlock or out-of-memory (SQLSTATE 40001, 40P01, 53200, class 40/72) outlasted its retries. */
  TRANSIENT: 'TZ_TRANSIENT',
  /** The server ran out of disk, connections or another resource (SQLSTATE class 53). */
  RESOURCES: 'TZ_RESOURCES',
  /** A statement was cancelled: statement_timeout or pg_cancel_backend (SQLSTATE 57014). */
  CANCELED: 'TZ_CANCELED',
  /** The server shut down, crashed or reported an internal error (SQLSTATE 57P01–57P05, class 58, XX, F0). */
  SERVER: 'TZ_SERVER',
  /** Rows violate a constraint or hold values the statement cannot take (SQLSTATE class 22, 23, 44). */
  DATA: 'TZ_DATA',
  /**
   * A tenant lifecycle command (`tenant create|show|suspend|resume|delete|import|export`) refused: no such
   * tenant, a slug taken, the default tenant, a status that does not allow it, rows of shared tables in
   * the way, a source that cannot be imported, a target that is not empty.
   */
  TENANT: 'TZ_TENANT',
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

/** What a SQLSTATE means for the user: the error code and a first fix. Exact codes first, then the class. */
const SQLSTATES: Readonly<Record<string, { readonly code: ErrorCode; readonly fix: string }>> = {
  '42501': { code: ErrorCodes.PRIVILEGE, fix: 'run as the owner of the objects involved (or a role with CREATE on their schema), or GRANT the privilege the message names' },
  '55P03': { code: ErrorCodes.LOCK_TIMEOUT, fix: 'end the blocking transaction or run at a quieter time; --lock-timeout and --retries change the limits' },
  '55006': { code: ErrorCodes.LOCK_TIMEOUT, fix: 'another session uses the object: wait for it to finish, then run again' },
  '57014': { code: ErrorCodes.CANCELED, fix: 'the statement hit statement_timeout or was cancelled (pg_cancel_backend): raise --statement-timeout or find who cancelled it, then run again' },
  '53300': { code: ErrorCodes.CONNECTION, fix: 'too many connections: close some or raise max_connections, then run again' },
  '3D000': { code: ErrorCodes.CONNECTION, fix: 'create the database first or correct its name in the URL' },
  '08': { code: ErrorCodes.CONNECTION, fix: 'the connection to the server broke: check the server and the network, then run again (applied steps are kept in the ledger)' },
  '28': { code: ErrorCodes.CONNECTION, fix: 'correct the user or password in the URL, or allow this user in pg_hba.conf' },
  '0L': { code: ErrorCodes.PRIVILEGE, fix: 'use a role that may grant the privilege (the owner, or WITH GRANT OPTION)' },
  '0P': { code: ErrorCodes.PRIVILEGE, fix: 'correct the role named in the message, or create it first' },
  '40': { code: ErrorCodes.TRANSIENT, fix: 'a concurrent transaction conflicted (serialization failure or deadlock) on every try: run again at a quieter time' },
  '72': { code: ErrorCodes.TRANSIENT, fix: 'a snapshot was too old: run again' },
  '53': { code: ErrorCodes.RESOURCES, fix: 'free disk space or memory on the server (or raise its limits), then run again' },
  '57': { code: ErrorCodes.SERVER, fix: 'the server is shutting down or restarting: wait until it accepts connections, then run again' },
  '58': { code: ErrorCodes.SERVER, fix: 'the server hit an operating-system error: see its log, then run again' },
  XX: { code: ErrorCodes.SERVER, fix: 'the server reported an internal error (possibly corruption): see its log before running again' },
  F0: { code: ErrorCodes.SERVER, fix: 'the server configuration file is broken: see its log' },
  '22': { code: ErrorCodes.DATA, fix: 'a value cannot be taken as the statement needs it: correct the rows the message names, then run again' },
  '23': { code: ErrorCodes.DATA, fix: 'rows violate a constraint: correct the rows the message names, then run again' },
  '44': { code: ErrorCodes.DATA, fix: 'a row violates a view\'s WITH CHECK OPTION: correct it, then run again' },
}

const FALLBACK = { code: ErrorCodes.MIGRATION_FAILED, fix: 'correct the SQL or the object the message names, then run again' } as const

/** The error code and first fix for a SQLSTATE (exact code, else its two-character class, else a failed migration). */
export function classifySqlstate(sqlstate: string): { readonly code: ErrorCode; readonly fix: string } {
  return SQLSTATES[sqlstate] ?? SQLSTATES[sqlstate.slice(0, 2)] ?? FALLBACK
}

/** A PostgreSQL error as the driver raises it: a five-character SQLSTATE and a severity. */
export interface PgServerError {
  readonly message: string
  readonly code: string
  readonly severity?: string
  readonly detail?: string
  readonly hint?: string
  readonly schema?: string
  readonly table?: string
  readonly column?: string
  readonly constraint?: string
}

export function isPgServerError(error: unknown): error is PgServerError {
  if (error === null || typeof error !== 'object') return false
  const e = error as { code?: unknown; severity?: unknown; message?: unknown }
  return typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string' && typeof e.message === 'string'
}

/**
 * A PostgreSQL error that reached no more specific handler, as a {@link TenantizeError}: the code of its
 * SQLSTATE class, the object (the caller's, else the table/constraint the server named) and a fix.
 */
export function fromPgServerError(error: PgServerError, options: { readonly object?: string; readonly fix?: string } = {}): TenantizeError {
  const { code, fix } = classifySqlstate(error.code)
  const named = [error.schema, error.table].filter((x) => x !== undefined).join('.')
  const object = options.object ?? (named !== '' ? `${named}${error.column === undefined ? '' : `.${error.column}`}` : error.constraint)
  const extra = [error.detail ? `DETAIL: ${error.detail}` : '', error.hint ? `HINT: ${error.hint}` : ''].filter(Boolean).join(' ')
  return new TenantizeError(code, `${error.message} (SQLSTATE ${error.code})${extra ? ` ${extra}` : ''}`, {
    ...(object === undefined ? {} : { object }),
    fix: options.fix === undefined ? fix : `${options.fix}; ${fix}`,
    details: { sqlstate: error.code },
    cause: error,
  })
}
