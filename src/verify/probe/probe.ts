import type pg from 'pg'
import { roleName } from '../../sql/quote.js'
import { tablesBehind } from '../lints/rule.js'
import type { TenantModel } from '../lints/model.js'
import type { ModelTable } from '../lints/model.js'
import type { ProbeCheck, ProbeReport, UnprobedTable } from '../types.js'
import { TableChecks } from './checks.js'
import { misassignedRows } from './misassigned-rows.js'
import { settingFlip } from './settings-flip.js'
import { leaves } from './partitions.js'
import { Seeder } from './seed.js'
import { ProbeSession } from './session.js'

export interface ProbeOptions {
  /**
   * The client is already inside a transaction (e.g. a test that changed the schema without committing):
   * the probe then works inside a savepoint it rolls back, instead of its own BEGIN … ROLLBACK.
   */
  readonly inTransaction?: boolean | undefined
  /** statement_timeout for every probe statement. Default 30 s. */
  readonly statementTimeoutMs?: number | undefined
  /** lock_timeout for every probe statement (never queue behind the application for long). Default 2 s. */
  readonly lockTimeoutMs?: number | undefined
}

/** Why the probe could not run, as a report with no checks. */
export interface ProbeNotRun {
  readonly notRun: string
  readonly sessionUser: string
}

interface SessionFacts {
  session_user: string
  current_user: string
  rolsuper: boolean
  rolbypassrls: boolean
  setting_defined: boolean
}

/**
 * The live probe: inside one transaction that is always rolled back, create two throw-away tenants with
 * a row in every tenant table, then run every check of ./registry.ts as the app role (`SET LOCAL ROLE`).
 *
 * Needs a session role that bypasses row-level security (superuser or BYPASSRLS, to create the rows of
 * both tenants) and may SET ROLE to the app role. Takes ROW EXCLUSIVE locks on tenant tables for its
 * duration and uses a few sequence values (sequences do not roll back).
 */
export async function runProbe(client: pg.ClientBase, model: TenantModel, options: ProbeOptions = {}): Promise<ProbeReport | ProbeNotRun> {
  if (model.appRole === null) return { notRun: 'the app role is unknown (pass --app-role)', sessionUser: '' }
  const appRole = model.appRole
  await client.query(options.inTransaction === true ? 'SAVEPOINT tz_probe' : 'BEGIN')
  try {
    await client.query(`SELECT pg_catalog.set_config('statement_timeout', $1, true), pg_catalog.set_config('lock_timeout', $2, true)`, [
      String(options.statementTimeoutMs ?? 30_000),
      String(options.lockTimeoutMs ?? 2_000),
    ])
    const facts = (
      await client.query<SessionFacts>(
        `SELECT session_user::text AS session_user, current_user::text AS current_user, r.rolsuper, r.rolbypassrls,
                pg_catalog.current_setting($1, true) IS NOT NULL AS setting_defined
           FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
        [model.setting],
      )
    ).rows[0]
    if (facts === undefined) return { notRun: 'cannot read the session role', sessionUser: '' }
    if (model.app === null) return { notRun: `role "${appRole}" does not exist`, sessionUser: facts.session_user }
    if (!facts.rolsuper && !facts.rolbypassrls) {
      return {
        notRun: `the session role "${facts.current_user}" is subject to row-level security, so it cannot create rows for two tenants; connect as a superuser or a BYPASSRLS role that may SET ROLE to "${appRole}"`,
        sessionUser: facts.session_user,
      }
    }
    const session = new ProbeSession(client, appRole, model.setting)
    const canSet = await session.step(`SET LOCAL ROLE ${roleName(appRole)}`)
    if (!canSet.ok) return { notRun: `the session role "${facts.current_user}" cannot SET ROLE to "${appRole}" (${canSet.message})`, sessionUser: facts.session_user }
    await session.asAdmin()

    const checks: ProbeCheck[] = []
    const seeder = new Seeder(session, model)
    const tableChecks = new TableChecks(session, seeder, model)
    const targets = model.tenantTables().filter((m) => !m.table.foreign)

    for (const m of targets) checks.push(...(await tableChecks.data(m)))
    for (const m of targets) checks.push(...(await misassignedRows(session, model, m)))
    await seeder.seed()
    // No context: before anything in this session sets the setting (a defined setting reads '' forever after).
    const none: ProbeCheck[] = []
    for (const m of targets) {
      if (facts.setting_defined) none.push({ table: `${m.table.schema}.${m.table.name}`, check: 'context-none', status: 'skip', detail: `the setting ${model.setting} was already defined in this session; see context-empty`, sqlstate: null })
      else none.push(await tableChecks.contextNone(m))
    }
    // Tables whose rows need a context (a current_tenant_id() default, a trigger): filled now, after context-none.
    const late = new Set(await seeder.seedWithContext())
    await seeder.relocate()
    checks.push(...none.map((c) => (late.has(c.table) ? { ...c, detail: `${c.detail} (checked before this table's probe rows, which need a tenant context to be created, existed)` } : c)))
    for (const m of targets) checks.push(...(await tableChecks.all(m)))
    for (const m of targets) checks.push(...(await settingFlip(session, seeder, model, m)))
    const unseeded = unprobedTables(seeder, model, targets)
    // A table whose write checks were refused by something other than isolation is not probed either, with its reason.
    const unprobed = withUnexercised(unseeded, tableChecks.notExercised)
    const markers = viewMarkers(seeder)
    for (const v of model.catalog.views) {
      if (v.kind !== 'view' || v.extension !== null || v.schema === 'tenantize') continue
      if (!tablesBehind(model.catalog, v.oid).some((t) => model.isTenantTable(t.oid))) continue
      checks.push(await tableChecks.view(v, markers))
    }
    return {
      sessionUser: facts.session_user,
      appRole,
      setting: model.setting,
      rolledBack: true,
      seeded: seeder.seedable().map((m) => ({
        table: `${m.table.schema}.${m.table.name}`,
        rows: seeder.rows.filter((r) => r.tableOid === m.table.oid).length,
        error: seeder.failures.get(m.table.oid) ?? null,
      })),
      unprobed,
      checks: withoutVacuousPasses(checks, unseeded),
    }
  } finally {
    if (options.inTransaction === true) {
      await client.query('ROLLBACK TO SAVEPOINT tz_probe')
      await client.query('RELEASE SAVEPOINT tz_probe')
    } else {
      await client.query('ROLLBACK')
    }
  }
}

const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

/**
 * Checks that prove nothing about a table without probe rows of both tenants: they look at (or for) the
 * probe's rows. The others stand on their own: insert-other and copy-from write a row the admin was
 * shown to be able to write, row-security-off fails at plan time, data-* read the existing rows.
 */
const NEEDS_ROWS = new Set(['context-none', 'read-own', 'read-other', 'count', 'join', 'update-other', 'delete-other', 'update-move', 'upsert', 'merge', 'copy-to', 'select-for-update', 'cte', 'insert-select', 'context-empty', 'context-garbage', 'context-reset'])

/** Tenant tables without a probe row of tenant A and one of tenant B, and why. */
function unprobedTables(seeder: Seeder, model: TenantModel, targets: readonly ModelTable[]): UnprobedTable[] {
  const out: UnprobedTable[] = []
  for (const m of targets) {
    const t = m.table
    const holders = leaves(model.catalog, t)
    // A partitioned table without partitions cannot hold a row: there is nothing to probe.
    if (holders.length === 0) continue
    const missing = (['A', 'B'] as const).filter((k) => seeder.rowsOf(t, k).length === 0)
    if (missing.length === 0) continue
    const failed = holders.map((h) => [h, seeder.failures.get(h.oid)] as const).find(([, f]) => f !== undefined)
    let reason: string
    if (failed !== undefined) reason = failed[0].oid === t.oid ? failed[1]! : `partition ${display(failed[0])}: ${failed[1]!}`
    else reason = `no probe row of tenant ${missing.join(' or ')} in ${display(t)} after seeding (a trigger removed it, or it could not be found again by primary key)`
    out.push({ table: display(t), reason })
  }
  return out
}

/** The unseeded tables and the tables with a write check not exercised: one entry per table, its reasons joined. */
function withUnexercised(unseeded: readonly UnprobedTable[], unexercised: readonly UnprobedTable[]): UnprobedTable[] {
  const reasons = new Map<string, string[]>()
  for (const u of [...unseeded, ...unexercised]) reasons.set(u.table, [...(reasons.get(u.table) ?? []), u.reason])
  return [...reasons].map(([table, why]) => ({ table, reason: why.join('; ') }))
}

/** For unprobed tables, the checks that passed only because there was nothing to see become skips. */
function withoutVacuousPasses(checks: readonly ProbeCheck[], unprobed: readonly UnprobedTable[]): ProbeCheck[] {
  const why = new Map(unprobed.map((u) => [u.table, u.reason]))
  return checks.map((c) => {
    const reason = why.get(c.table)
    if (reason === undefined || c.status !== 'pass' || !NEEDS_ROWS.has(c.check)) return c
    return { ...c, status: 'skip', detail: `not probed (${reason}); without probe rows of both tenants this shows nothing: ${c.detail}` }
  })
}

/** Values only tenant B's rows hold: its tenant id (when distinctive) and the probe's unique texts. */
function viewMarkers(seeder: Seeder): string[] {
  const out = new Set<string>()
  if (seeder.tenants.B.length >= 8) out.add(seeder.tenants.B)
  for (const r of seeder.rows) {
    if (r.tenant !== 'B') continue
    for (const v of Object.values(r.values)) if (v !== null && /^tz[0-9a-z]{13,}$/.test(v)) out.add(v)
  }
  return [...out]
}
