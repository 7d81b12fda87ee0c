import type pg from 'pg'
import { appLoginProblems } from '../apply/app-login.js'
import { conversionStatus } from '../apply/apply.js'
import { assertConfigMatchesCatalog } from '../apply/config-check.js'
import { connect, withClient } from '../db/connect.js'
import { TenantizeError } from '../errors.js'
import { assertDirectSession } from '../migrate/lock.js'
import type { TenantizeConfig } from '../plan/config.js'
import { missingRlsFixes } from '../pg-security.js'
import { roleName } from '../sql/quote.js'

/**
 * `tenantize doctor`: what an operator checks before (and after) a conversion, each as one line — ok, warn
 * or fail — with the fix. Reads only.
 */
export type DoctorStatus = 'ok' | 'warn' | 'fail'

export interface DoctorCheck {
  /** server, role:app, role:login, role:migrator, role:system, owner, pooler, extensions, config, ledger, indexes. */
  readonly check: string
  readonly status: DoctorStatus
  readonly message: string
  /** How to fix it; null when there is nothing to fix. */
  readonly fix: string | null
}

export interface DoctorReport {
  readonly checks: readonly DoctorCheck[]
  /** No check failed (warnings allowed): `tenantize doctor` exits 0. */
  readonly healthy: boolean
}

export interface DoctorOptions {
  readonly databaseUrl: string
  /** The config, when there is one: roles, tables and the ledger are checked against it. */
  readonly config?: TenantizeConfig | undefined
}

const check = (name: string, status: DoctorStatus, message: string, fix: string | null = null): DoctorCheck => ({ check: name, status, message, fix })

interface RoleRow { rolname: string; rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean; rolcreaterole: boolean }

async function roleChecks(client: pg.ClientBase, config: TenantizeConfig | undefined): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = []
  const role = async (name: string): Promise<RoleRow | undefined> => (await client.query<RoleRow>('SELECT rolname, rolsuper, rolbypassrls, rolcanlogin, rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = $1', [name])).rows[0]
  const me = (await client.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u
  const migrator = await role(me)
  out.push(check('role:migrator', 'ok', `connected as ${me}${migrator?.rolsuper === true ? ' (superuser: apply and verify can do everything they need)' : migrator?.rolbypassrls === true ? ' (BYPASSRLS)' : ' (neither superuser nor BYPASSRLS: verify\'s probe needs one of them)'}`))
  if (config === undefined) return out
  const app = config.roles.app
  const a = await role(app)
  if (a === undefined) out.push(check('role:app', 'warn', `${app} does not exist yet`, 'tenantize apply creates it (NOLOGIN) in the enforce phase'))
  else if (a.rolsuper || a.rolbypassrls) out.push(check('role:app', 'fail', `${app} is ${a.rolsuper ? 'a superuser' : 'BYPASSRLS'}: row-level security never applies to it`, `ALTER ROLE ${roleName(app)} ${a.rolsuper ? 'NOSUPERUSER' : 'NOBYPASSRLS'};`))
  else {
    const owns = (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND pg_catalog.pg_has_role($1, c.relowner, 'USAGE')`, [app])).rows[0]!.n
    out.push(owns > 0 ? check('role:app', 'fail', `${app} owns (or inherits the owner of) ${owns} table(s): an owner can switch row-level security off`, 'give the tables to the migrator role: ALTER TABLE … OWNER TO <migrator>') : check('role:app', 'ok', `${app}: not superuser, not BYPASSRLS, owns no table${a.rolcreaterole ? ' (CREATEROLE: consider NOCREATEROLE)' : ''}`))
  }
  const login = config.roles.login
  if (login === undefined) out.push(check('role:login', 'warn', 'no app login is configured (roles.login): which role the app connects with is not checked', 'tenantize init --app-login ROLE (or apply --app-login ROLE)'))
  else {
    const problems = await appLoginProblems(client, login, app)
    const member = a === undefined ? false : (await client.query<{ m: boolean }>(`SELECT pg_catalog.pg_has_role($1, $2, 'MEMBER') AS m`, [login, app]).catch(() => ({ rows: [{ m: false }] }))).rows[0]?.m === true
    if (problems.length > 0) for (const p of problems) out.push(check('role:login', 'fail', `${login} ${p.message}`, p.fix ?? null))
    else if (!member) out.push(check('role:login', 'warn', `${login} is not a member of ${app}: the tenant policies do not apply to its sessions`, `tenantize apply (it grants it), or GRANT ${roleName(app)} TO ${roleName(login)};`))
    else out.push(check('role:login', 'ok', `${login} logs in, is a member of ${app}, and escapes no policy`))
  }
  const system = config.roles.system
  if (system !== null) {
    const s = await role(system)
    out.push(s === undefined ? check('role:system', 'warn', `${system} does not exist`, `CREATE ROLE ${roleName(system)} NOLOGIN BYPASSRLS; (for asSystem jobs)`) : check('role:system', 'ok', `${system}${s.rolbypassrls ? ' has BYPASSRLS (for cross-tenant jobs only; the app must never connect as it)' : ''}`))
  }
  return out
}

/** PURE: the server line from `server_version_num`. */
export function serverCheck(version: string, versionNum: number): DoctorCheck {
  const missing = missingRlsFixes(versionNum)
  if (missing.length === 0) return check('server', 'ok', `PostgreSQL ${version}: no known row-level security fix missing`)
  return check('server', 'warn', `PostgreSQL ${version} lacks ${missing.map((m) => m.fix.cve).join(', ')}`, `upgrade to ${missing.map((m) => m.upgradeTo).sort().at(-1)} or later`)
}

/** Run every check. Connection errors throw; everything else becomes a line. */
export async function doctor(options: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = []
  await withClient(options.databaseUrl, async (client) => {
    const server = (await client.query<{ v: string; n: string }>(`SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n`)).rows[0]!
    checks.push(serverCheck(server.v, Number(server.n)))
    checks.push(...(await roleChecks(client, options.config)))
    const other = await connect(options.databaseUrl, { applicationName: 'tenantize doctor' })
    try {
      await assertDirectSession(client, other)
      checks.push(check('pooler', 'ok', 'direct session (or a session-mode pool): apply and migrate can hold their lock'))
    } catch (error) {
      if (!(error instanceof TenantizeError)) throw error
      checks.push(check('pooler', 'warn', 'a transaction-mode pooler is behind this URL: apply and migrate refuse to run through it; the runtime is fine (its context is transaction-local)', error.fix ?? null))
    } finally {
      await other.end().catch(() => undefined)
    }
    const ext = (await client.query<{ name: string; version: string }>('SELECT extname AS name, extversion AS version FROM pg_catalog.pg_extension ORDER BY 1')).rows
    const citus = ext.some((e) => e.name === 'citus')
    checks.push(citus && options.config?.target !== 'citus' ? check('extensions', 'warn', `citus is installed but the config's target is ${options.config?.target ?? 'unknown'}`, 'set "target": "citus" when the tables are distributed') : check('extensions', 'ok', ext.map((e) => `${e.name} ${e.version}`).join(', ')))
    if (options.config !== undefined) {
      try {
        await assertConfigMatchesCatalog(client, options.config)
        checks.push(check('config', 'ok', 'every table, path and column the config names exists'))
      } catch (error) {
        if (!(error instanceof TenantizeError)) throw error
        for (const p of error.problems.length > 0 ? error.problems : [{ object: error.object ?? 'config', message: error.message, fix: error.fix }]) checks.push(check('config', 'fail', `${p.object}: ${p.message}`, p.fix ?? null))
      }
    }
    const invalid = (await client.query<{ name: string; tbl: string }>(`SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tbl FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid AND c.relkind = 'i' ORDER BY 1`)).rows
    if (invalid.length === 0) checks.push(check('indexes', 'ok', 'no INVALID index'))
    else for (const i of invalid) checks.push(check('indexes', 'fail', `${i.name} on ${i.tbl} is INVALID (a concurrent build was cut short): maintained on every write, used by no query`, `DROP INDEX CONCURRENTLY ${i.name}; then run tenantize apply again (or build it again)`))
  }, { applicationName: 'tenantize doctor' })
  const status = await conversionStatus(options.databaseUrl)
  if (status.steps.length === 0) checks.push(check('ledger', 'ok', 'no conversion applied yet'))
  else {
    const applied = status.steps.filter((s) => s.applied).length
    checks.push(status.healthy ? check('ledger', applied === status.steps.length ? 'ok' : 'warn', `${applied}/${status.steps.length} steps applied`, applied === status.steps.length ? null : 'tenantize apply resumes at the first step not applied') : check('ledger', 'fail', `${applied}/${status.steps.length} steps applied; ${status.problems.map((p) => `${p.table}: ${p.problem}`).join('; ')}`, 'tenantize status shows each table; tenantize apply repairs what its steps made'))
  }
  return { checks, healthy: checks.every((c) => c.status !== 'fail') }
}
