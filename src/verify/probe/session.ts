import type pg from 'pg'
import { quoteIdent, roleName } from '../../sql/quote.js'

/** What one statement did: its rows, or the error PostgreSQL answered with. */
export type StepResult =
  | { readonly ok: true; readonly rows: Record<string, unknown>[]; readonly rowCount: number }
  | {
      readonly ok: false
      readonly code: string
      readonly message: string
      /** The constraint PostgreSQL named (unique, check, foreign key, exclusion, domain check), if any. */
      readonly constraint?: string | undefined
      /** The column PostgreSQL named (NOT NULL violations), if any. */
      readonly column?: string | undefined
    }

/** SQLSTATEs that mean the probe's own SQL is wrong or unsupported here, not that a protection worked. */
const PROBE_BUGS = new Set(['42601', '42703', '42883', '42P01', '42804', '42P18', '42725', '57014', 'XX000', '42P10'])

export function isProbeBug(result: StepResult): boolean {
  return !result.ok && PROBE_BUGS.has(result.code)
}

/** `tenantize.tenant_id` → `"tenantize"."tenant_id"` for SET / RESET. */
export function settingSql(setting: string): string {
  return setting.split('.').map(quoteIdent).join('.')
}

/**
 * The probe's session: one connection inside one transaction. Each check runs in a savepoint it rolls
 * back, each statement in a nested one so that an error does not end the check.
 */
export class ProbeSession {
  constructor(
    readonly client: pg.ClientBase,
    readonly appRole: string,
    readonly setting: string,
  ) {}

  async exec(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
    return this.client.query(text, values)
  }

  /** Run one statement in its own savepoint; never throws for SQL errors. */
  async step(text: string, values: unknown[] = []): Promise<StepResult> {
    await this.client.query('SAVEPOINT tz_probe_step')
    try {
      const result = await this.client.query(text, values)
      await this.client.query('RELEASE SAVEPOINT tz_probe_step')
      return { ok: true, rows: result.rows as Record<string, unknown>[], rowCount: result.rowCount ?? 0 }
    } catch (error) {
      await this.client.query('ROLLBACK TO SAVEPOINT tz_probe_step')
      await this.client.query('RELEASE SAVEPOINT tz_probe_step')
      const e = error as { code?: string; message?: string; constraint?: string; column?: string }
      return { ok: false, code: e.code ?? '', message: e.message ?? String(error), constraint: e.constraint, column: e.column }
    }
  }

  /** Run `fn` in a savepoint that is always rolled back: nothing it does survives (roles, settings, rows). */
  async isolated<T>(fn: () => Promise<T>): Promise<T> {
    await this.client.query('SAVEPOINT tz_probe_check')
    try {
      return await fn()
    } finally {
      await this.client.query('ROLLBACK TO SAVEPOINT tz_probe_check')
      await this.client.query('RELEASE SAVEPOINT tz_probe_check')
    }
  }

  /** Become the app role (transaction-locally) with `tenant` as context; null leaves the context untouched. */
  async asApp(tenant: string | null): Promise<void> {
    await this.client.query(`SET LOCAL ROLE ${roleName(this.appRole)}`)
    if (tenant !== null) await this.client.query('SELECT pg_catalog.set_config($1, $2, true)', [this.setting, tenant])
  }

  /** Back to the session's own role (the admin that seeded the rows). */
  async asAdmin(): Promise<void> {
    await this.client.query('RESET ROLE')
  }
}
