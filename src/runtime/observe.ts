import { fileURLToPath } from 'node:url'
import { currentTenant } from './context.js'
import { TenantContextMissingError } from './errors.js'

/**
 * A statement that ran outside any `withTenant` context, reported by an adapter created with the
 * `observe` option (issue #12: find the code paths that still lack tenant context before enforcing).
 */
export interface UnscopedQueryEvent {
  /** Which adapter saw it: `pg`, `postgres.js`, `kysely`, `drizzle`, `prisma`. */
  readonly adapter: string
  /**
   * What ran: the statement's text (parameters are never included), or `transaction` for a transaction
   * begun without context (its statements are not reported one by one).
   */
  readonly sql: string
  /** The first stack frame outside tenantize, the driver and the ORM (`file:line:column`), when there is one. */
  readonly callSite: string | undefined
  /** The captured stack (frames only), for call sites the first frame does not explain. */
  readonly stack: string
}

/** `'warn'`: a process warning (`TZ_UNSCOPED_QUERY`) once per call site; a function: called for every event. */
export type ObserveOption = 'warn' | ((event: UnscopedQueryEvent) => void)

export interface ObserveOptions {
  /**
   * Report statements run outside any `withTenant` context instead of refusing them: they run unscoped,
   * as they would without tenantize, and each is reported with its call site. Meant for the readiness
   * window before `apply --phase enforce`; once the policies are enforced, such statements see no rows
   * and cannot write (the database fails closed). Without `observe` (the default) they throw
   * `TenantContextMissingError` before touching the database.
   */
  readonly observe?: ObserveOption
}

/** Files of tenantize's runtime (this directory, compiled or not): never a call site. */
const RUNTIME_DIR = fileURLToPath(new URL('.', import.meta.url))
const RUNTIME_URL = new URL('.', import.meta.url).href
/** A stack frame's location: `(file:line:col)` or a bare `file:line:col` after `at`. */
const FRAME = /^\s*at (?:.*?\()?(.+?:\d+:\d+)\)?\s*$/
const WARNED_LIMIT = 1000

function isLibraryFrame(location: string): boolean {
  return (
    location.startsWith(RUNTIME_DIR) ||
    location.startsWith(RUNTIME_URL) ||
    location.startsWith('node:') ||
    location.includes('/node_modules/') ||
    location.includes('\\node_modules\\') ||
    location.startsWith('<anonymous>') ||
    location.startsWith('native')
  )
}

/** The stack at the caller, frames only, with enough depth to reach the application through an ORM. */
function captureStack(): string {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 60
  const holder: { stack?: string } = {}
  try {
    Error.captureStackTrace(holder, captureStack)
  } finally {
    Error.stackTraceLimit = limit
  }
  return (holder.stack ?? '').split('\n').slice(1).join('\n')
}

/** The first frame of `stack` outside tenantize, drivers, ORMs and Node itself. */
export function callSiteOf(stack: string): string | undefined {
  for (const line of stack.split('\n')) {
    const location = FRAME.exec(line)?.[1]
    if (location !== undefined && !isLibraryFrame(location)) return location
  }
  return undefined
}

/** What an adapter built with the `observe` option does with a statement outside any context. */
export interface Observer {
  /** Report a statement that runs outside any context (the stack is captured only here). */
  report(sql: string): void
}

/**
 * The observer for an adapter's `observe` option, or `undefined` without it.
 * @throws {TypeError} for a value that is neither `'warn'` nor a function.
 */
export function createObserver(adapter: string, option: ObserveOption | undefined): Observer | undefined {
  if (option === undefined) return undefined
  if (option !== 'warn' && typeof option !== 'function') {
    throw new TypeError(`unknown observe option ${JSON.stringify(option)}: expected 'warn' or a function (event) => void`)
  }
  const warned = new Set<string>()
  const emit =
    option === 'warn'
      ? (event: UnscopedQueryEvent): void => {
          const key = event.callSite ?? event.sql
          if (warned.has(key) || warned.size >= WARNED_LIMIT) return
          warned.add(key)
          const where = event.callSite ?? 'an unknown call site (pass a function as observe to see the stack)'
          const text = event.sql.length > 200 ? `${event.sql.slice(0, 200)}…` : event.sql
          process.emitWarning(`tenantize (${event.adapter}): a statement ran without tenant context at ${where}: ${text} — wrap it in withTenant(tenantId, fn)`, {
            code: 'TZ_UNSCOPED_QUERY',
          })
        }
      : option
  return Object.freeze({
    report(sql: string): void {
      const stack = captureStack()
      const event: UnscopedQueryEvent = Object.freeze({ adapter, sql, callSite: callSiteOf(stack), stack })
      try {
        emit(event)
      } catch {
        // an observer that throws must not change what the statement does
      }
    },
  })
}

/**
 * The tenant for a new statement or transaction: the current one. Outside any context: with an observer,
 * `undefined` after reporting `sql` (the caller runs it unscoped); without one,
 * {@link TenantContextMissingError}.
 */
export function tenantFor(observer: Observer | undefined, sql: string | (() => string)): string | undefined {
  const tenantId = currentTenant()
  if (tenantId !== undefined) return tenantId
  if (observer === undefined) throw new TenantContextMissingError()
  observer.report(typeof sql === 'string' ? sql : sql())
  return undefined
}
