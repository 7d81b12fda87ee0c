import { createHash } from 'node:crypto'
import { quoteIdent, quoteLiteral } from '../sql/quote.js'

/**
 * How the tenant reaches the database, always transaction-local (never session scope, which leaks
 * through poolers in transaction mode):
 * - `set_config` (default): `SELECT pg_catalog.set_config('<setting>', '<id>', true)`.
 * - `set-local` (Citus): `SET LOCAL <setting> = '<id>'` — Citus propagates `SET LOCAL` to the workers
 *   (with `citus.propagate_set_commands = 'local'`), but not `set_config`.
 */
export type ContextStrategy = 'set_config' | 'set-local'

export const CONTEXT_STRATEGIES: readonly ContextStrategy[] = Object.freeze(['set_config', 'set-local'])

/** The setting that carries the tenant id; `tenantize.current_tenant_id()` reads it. */
export const DEFAULT_CONTEXT_SETTING = 'tenantize.tenant_id'

export interface ContextSqlOptions {
  /** Default `set_config`. */
  readonly strategy?: ContextStrategy
  /**
   * A custom setting name `prefix.name` (more dot-separated parts allowed), each part an ASCII
   * identifier. Default `tenantize.tenant_id`. Names are case-insensitive in PostgreSQL and are
   * lower-cased here.
   */
  readonly setting?: string
}

/** A validated context strategy: its options and the statement that sets a tenant. */
export interface ContextSql {
  readonly strategy: ContextStrategy
  readonly setting: string
  /**
   * The single statement that makes `tenantId` current for the rest of the transaction. The id becomes
   * a literal through `quoteLiteral`; pass ids already checked by `withTenant`.
   */
  statement(tenantId: string): string
  /**
   * The statement for inside a transaction block (after `BEGIN`), whichever the strategy:
   * `SET LOCAL <setting> = '<id>'`. Inside a block it does what `set_config(…, true)` does, but as a
   * utility statement the server neither plans nor runs through the executor: 3–5 µs of backend CPU
   * against 25–35 µs for `SELECT pg_catalog.set_config(…)` sent as text (PostgreSQL 15). Outside a
   * block it would only warn: never send it without `BEGIN` before it.
   */
  local(tenantId: string): string
  /**
   * The same statement with the tenant id as its one bind parameter (`$1`), for drivers that can keep it
   * prepared on a connection; `name` is derived from `text`, so a statement of that name always has this
   * text. `undefined` for `set-local` (`SET` takes no parameters).
   */
  readonly prepared: PreparedContext | undefined
}

/** A context statement to prepare once per connection. */
export interface PreparedContext {
  /** `tenantize_context_` and a hash of `text`. */
  readonly name: string
  /** e.g. `SELECT pg_catalog.set_config('tenantize.tenant_id', $1, true)`. */
  readonly text: string
}

const SETTING_PART = /^[a-z_][a-z0-9_$]*$/

/**
 * Check a custom setting name: at least two dot-separated parts, each a plain identifier. Requiring a
 * prefix also keeps built-in settings such as `role` or `search_path` out of reach.
 * @returns the name in lower case.
 */
export function validateContextSetting(setting: string): string {
  const name = typeof setting === 'string' ? setting.toLowerCase() : ''
  const parts = name.split('.')
  if (parts.length < 2 || !parts.every((part) => SETTING_PART.test(part))) {
    throw new TypeError(
      `invalid context setting name ${JSON.stringify(setting)}: expected "prefix.name" made of letters, digits, "_" and "$", e.g. ${DEFAULT_CONTEXT_SETTING}`,
    )
  }
  return name
}

/**
 * Validate the options once and return the statement builder.
 *
 * ```ts
 * contextSql().statement(id)                          // SELECT pg_catalog.set_config('tenantize.tenant_id', '<id>', true)
 * contextSql({ strategy: 'set-local' }).statement(id) // SET LOCAL "tenantize"."tenant_id" = '<id>'
 * contextSql().local(id)                              // SET LOCAL "tenantize"."tenant_id" = '<id>' (after BEGIN)
 * ```
 */
export function contextSql(options: ContextSqlOptions = {}): ContextSql {
  const strategy = options.strategy ?? 'set_config'
  if (!CONTEXT_STRATEGIES.includes(strategy)) {
    throw new TypeError(`unknown context strategy ${JSON.stringify(strategy)}: expected one of ${CONTEXT_STRATEGIES.join(', ')}`)
  }
  const setting = validateContextSetting(options.setting ?? DEFAULT_CONTEXT_SETTING)
  let statement: (tenantId: string) => string
  let prepared: PreparedContext | undefined
  const qualified = setting.split('.').map(quoteIdent).join('.')
  const local = (tenantId: string): string => `SET LOCAL ${qualified} = ${literal(tenantId)}`
  if (strategy === 'set_config') {
    const name = quoteLiteral(setting)
    statement = (tenantId) => `SELECT pg_catalog.set_config(${name}, ${literal(tenantId)}, true)`
    const text = `SELECT pg_catalog.set_config(${name}, $1, true)`
    prepared = Object.freeze({ name: `tenantize_context_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`, text })
  } else {
    statement = local
  }
  return Object.freeze({ strategy, setting, statement, local, prepared })
}

function literal(tenantId: string): string {
  if (typeof tenantId !== 'string' || tenantId.length === 0) {
    throw new TypeError('contextSql: a tenant id must be a non-empty string')
  }
  return quoteLiteral(tenantId)
}
