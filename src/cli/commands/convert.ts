import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline/promises'
import type { Command } from 'commander'
import { z } from 'zod'
import { apply, conversionStatus, initConfig, readinessWindows, resetReadiness, rollback, type ReadinessWindow } from '../../apply/index.js'
import { appLoginProblems, grantAppLogin } from '../../apply/app-login.js'
import { assertConfigMatchesCatalog } from '../../apply/config-check.js'
import { planPrismaMigrations, planSqlFiles } from '../../apply/sql-files.js'
import { introspect } from '../../catalog/index.js'
import { withClient } from '../../db/connect.js'
import { resolveDatabaseUrl } from '../../db/url.js'
import { ErrorCodes, TenantizeError } from '../../errors.js'
import { parseConfig, type TenantizeConfig } from '../../plan/config.js'
import { planConversion } from '../../plan/plan.js'
import { renderPlanText } from '../../plan/render.js'
import { parseQualifiedName } from '../../sql/quote.js'
import { DEFAULT_CONFIG_FILE, readConfigFile } from '../config-file.js'
import { withInterrupts } from '../interrupt.js'
import { line, table, type CliIO } from '../io.js'
import { duration, parseOptions, positiveInt } from '../options.js'
import { convertRenderer } from '../progress.js'
import { checkData, DataCheckError, renderFindings, type Finding } from '../../datacheck/index.js'

const SCHEMA_URL = './node_modules/tenantize/docs/config.schema.json'

const initSchema = z.object({
  db: z.string().optional(),
  tenantTable: z.string().min(1).optional(),
  tenantColumn: z.string().min(1).max(63).optional(),
  appRole: z.string().min(1).max(63).optional(),
  appLogin: z.string().min(1).max(63).optional(),
  schema: z.array(z.string().min(1)).optional(),
  out: z.string().min(1).default(DEFAULT_CONFIG_FILE),
  json: z.boolean().default(false),
})

/** The config an earlier init wrote (and the user may have edited), or undefined when there is none. */
async function previousConfig(path: string): Promise<TenantizeConfig | undefined> {
  const exists = await access(path).then(() => true, () => false)
  return exists ? readConfigFile(path) : undefined
}

/** `init`: classify every table and write (or update, keeping the user's edits) the config file. */
function registerInit(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('init')
    .description('introspect the database, classify every table (root, direct, child, global, excluded) with the reason, and write the config; re-running keeps your edits')
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--tenant-table <schema.table>', 'an existing table whose primary key is the tenant id (default: create public.organizations)')
    .option('--tenant-column <name>', 'the tenant column to add (default: org_id)')
    .option('--app-role <name>', 'the role the application runs as (default: tenantize_app)')
    .option('--app-login <role>', 'the login role your app connects with (its DATABASE_URL user): checked (not owner, superuser or BYPASSRLS), saved as roles.login; apply grants it the app role')
    .option('--schema <name...>', 'only these schemas (default: all but the system ones)')
    .option('--out <file>', 'config file to write', DEFAULT_CONFIG_FILE)
    .option('--json', 'print the config as JSON instead of a summary')
    .action(async (raw: unknown) => {
      const o = parseOptions(initSchema, raw)
      const url = resolveDatabaseUrl(o.db, io.env)
      const previous = await previousConfig(o.out)
      let tenantTable: { schema: string; name: string } | undefined
      try {
        tenantTable = o.tenantTable === undefined ? undefined : parseQualifiedName(o.tenantTable)
      } catch (error) {
        throw new TenantizeError(ErrorCodes.USAGE, (error as Error).message, { object: '--tenant-table', fix: 'write it as schema.table' })
      }
      const { config, notes } = await withClient(
        url,
        (client) => initConfig(client, { ...(tenantTable === undefined ? {} : { tenantTable }), ...(o.tenantColumn === undefined ? {} : { tenantColumn: o.tenantColumn }), ...(o.appRole === undefined ? {} : { appRole: o.appRole }), ...(o.schema === undefined ? {} : { schemas: o.schema }) }, previous),
        { applicationName: 'tenantize init' },
      )
      if (o.appLogin !== undefined) await assertAppLogin(url, o.appLogin, config.roles?.app ?? 'tenantize_app')
      const full = { $schema: SCHEMA_URL, ...config, ...(o.appLogin === undefined ? {} : { roles: { ...config.roles, login: o.appLogin } }) }
      parseConfig(full, o.out)
      await writeFile(o.out, `${JSON.stringify(full, null, 2)}\n`)
      if (o.json) line(io.stdout, JSON.stringify({ file: o.out, config: full, notes }, null, 2))
      else {
        line(io.stdout, `${previous === undefined ? 'Wrote' : 'Updated'} ${o.out} (tenant table ${config.tenant.table}${config.tenant.create ? ', to be created' : ''}; tenant column ${config.tenant.column}; app role ${config.roles?.app ?? 'tenantize_app'}${o.appLogin === undefined ? '' : `, granted to the login ${o.appLogin} by apply`})`)
        const rows = Object.entries(config.tables).map(([k, t]) => [k, t.class, t.reason ?? ''])
        const w0 = Math.max(5, ...rows.map((r) => r[0]!.length))
        for (const r of rows) line(io.stdout, `  ${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(8)}  ${r[2]}`)
        for (const n of notes) line(io.stdout, `note: ${n}`)
        line(io.stdout, 'Next: review the classes (edit the file), then tenantize plan')
      }
      setExit(0)
    })
}

const planSchema = z.object({
  db: z.string().optional(),
  config: z.string().min(1).default(DEFAULT_CONFIG_FILE),
  format: z.enum(['text', 'json', 'sql', 'prisma']).default('text'),
  out: z.string().min(1).optional(),
  dataCheck: z.boolean().default(true),
  sql: z.boolean().default(false),
  json: z.boolean().default(false),
})

function registerPlan(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('plan')
    .description('show the ordered steps that convert the database: SQL, lock level, cost, manual steps; --format sql writes migration files for tenantize migrate')
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--config <file>', 'config file', DEFAULT_CONFIG_FILE)
    .option('--format <format>', 'text, json, sql (files for tenantize migrate) or prisma (a Prisma migrations folder)', 'text')
    .option('--out <dir>', 'with --format sql: where to write NNNN_step.up.sql / .down.sql (default: tenantize-plan); with prisma: the migrations folder (default: prisma/migrations)')
    .option('--sql', 'text format: show each step\'s SQL under it')
    .option('--json', 'the same as --format json')
    .option('--no-data-check', 'skip the read-only data check (text and json: after the steps, the rows each step would fail on, the privileges and invalid indexes apply would refuse on)')
    .action(async (raw: unknown) => {
      const parsed = parseOptions(planSchema, raw)
      const o = parsed.json ? { ...parsed, format: 'json' as const } : parsed
      const config = await readConfigFile(o.config)
      const url = resolveDatabaseUrl(o.db, io.env)
      const { plan, findings } = await withClient(url, async (client) => {
        // The same check apply makes before step 1: a path or scope naming a missing table or column is a TZ_CONFIG here too.
        await assertConfigMatchesCatalog(client, config)
        const plan = planConversion(await introspect(client), config)
        const findings: readonly Finding[] | undefined = o.dataCheck && (o.format === 'text' || o.format === 'json') ? (await checkData(client, plan)).findings : undefined
        return { plan, findings }
      }, { applicationName: 'tenantize plan' })
      if (o.format === 'json') line(io.stdout, JSON.stringify(findings === undefined ? plan : { ...plan, findings }, null, 2))
      else if (o.format === 'sql') {
        const dir = o.out ?? 'tenantize-plan'
        await mkdir(dir, { recursive: true })
        const files = planSqlFiles(plan)
        for (const f of files) {
          await writeFile(join(dir, `${f.name}.up.sql`), f.up)
          await writeFile(join(dir, `${f.name}.down.sql`), f.down)
        }
        line(io.stdout, `Wrote ${files.length * 2} files to ${dir}: run them with tenantize migrate up --dir ${dir}`)
      } else if (o.format === 'prisma') {
        const dir = o.out ?? join('prisma', 'migrations')
        const migrations = planPrismaMigrations(plan, new Date())
        for (const m of migrations) {
          await mkdir(join(dir, m.dir), { recursive: true })
          await writeFile(join(dir, m.dir, 'migration.sql'), m.sql)
        }
        line(io.stdout, `Wrote ${migrations.length} Prisma migrations to ${dir}: run them with prisma migrate deploy (Prisma has no down migrations: use --format sql to keep rollback)`)
      } else line(io.stdout, [renderPlanText(plan, { sql: o.sql }), ...(findings === undefined ? [] : ['', ...renderFindings(findings)])].join('\n'))
      setExit(0)
    })
}

const runFlags = (cmd: Command): Command =>
  cmd
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--config <file>', 'config file', DEFAULT_CONFIG_FILE)
    .option('--dry-run', 'print what would run; change nothing')
    .option('--yes', 'do not ask for confirmation; required without a terminal (scripts, CI)')
    .option('--force', 'run even when pre-flight checks find long transactions or locks on touched tables')
    .option('--lock-wait <duration>', 'wait this long for another runner instead of failing at once (e.g. 30s)')
    .option('--lock-timeout <duration>', 'lock_timeout for each statement', '1s')
    .option('--retries <n>', 'tries in all when a statement hits lock_timeout', '10')
    .option('--json', 'one JSON event per line')

const runSchema = z.object({
  db: z.string().optional(),
  config: z.string().min(1).default(DEFAULT_CONFIG_FILE),
  dryRun: z.boolean().default(false),
  yes: z.boolean().default(false),
  force: z.boolean().default(false),
  lockWait: duration.optional(),
  lockTimeout: duration.default(1000),
  retries: positiveInt.default(10),
  json: z.boolean().default(false),
})

/** The runner options every apply / rollback passes, from the shared flags. */
function runnerFlags(o: z.output<typeof runSchema>, io: CliIO, signal: AbortSignal, command: string) {
  return {
    dryRun: o.dryRun,
    force: o.force,
    ...(o.lockWait === undefined ? {} : { lockWaitMs: o.lockWait }),
    timeouts: { lockTimeoutMs: o.lockTimeout, tries: o.retries },
    onEvent: convertRenderer(io, o.json),
    signal,
    resumeHint: `run ${command} again`,
  }
}

/**
 * apply refused before its first step by the data check: every finding as a TZ_PREFLIGHT line on stderr (with
 * --json also one JSON object on stdout), exit 1. Resolves to false then, true when the run went ahead.
 */
async function refusedByDataCheck(io: CliIO, json: boolean, setExit: (code: number) => void, run: Promise<unknown>): Promise<boolean> {
  try {
    await run
    return true
  } catch (error) {
    if (!(error instanceof DataCheckError)) throw error
    if (json) line(io.stdout, JSON.stringify({ event: 'data-check', refused: true, findings: error.findings }))
    for (const l of error.toLines()) line(io.stderr, l)
    setExit(1)
    return false
  }
}

/**
 * Ask on the terminal. Without one (a script, CI, `</dev/null`) nobody can answer, so nothing is taken as a
 * yes: the command stops with TZ_USAGE (exit 2) before it connects, the way Atlas wants --auto-approve.
 */
async function confirm(io: CliIO, command: string, question: string): Promise<boolean> {
  if (io.stdout.isTTY !== true || !process.stdin.isTTY) {
    throw new TenantizeError(ErrorCodes.USAGE, `${command} changes the database and there is no terminal to confirm on; nothing was changed`, {
      object: command,
      fix: 'pass --yes to run it from a script or CI (or --dry-run to see what it would do)',
    })
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout })
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim())
  } finally {
    rl.close()
  }
}

/** `--tables a,b`: schema.table keys, comma-separated (spaces around them ignored). */
const tableList = z.string().transform((value, ctx) => {
  const tables = value.split(',').map((t) => t.trim()).filter((t) => t !== '')
  if (tables.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'names no table; write schema.table, several separated by commas' })
    return z.NEVER
  }
  return tables
})

const utc = (iso: string | null): string => (iso === null ? '-' : `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`)

/** With --ignore-readiness: the tables about to be enforced although writes without a tenant context were counted. */
async function reportForced(io: CliIO, json: boolean, databaseUrl: string, tables: readonly string[] | undefined): Promise<void> {
  const forced = (await readinessWindows(databaseUrl)).filter((r) => !r.enforced && r.withoutContext > 0 && (tables === undefined || tables.includes(r.table)))
  if (json) {
    line(io.stdout, JSON.stringify({ event: 'ignore-readiness', tables: forced.map((r) => ({ table: r.table, withoutContext: r.withoutContext, withContext: r.withContext, since: r.since })) }))
    return
  }
  if (forced.length === 0) return
  line(io.stdout, `⚠ --ignore-readiness: enforcing ${forced.length} table(s) that still get writes without a tenant context; those writes fail from now on:`)
  for (const l of table(['table', 'without context', 'total', 'since'], forced.map((r) => [r.table, String(r.withoutContext), String(r.withoutContext + r.withContext), utc(r.since)]))) line(io.stdout, `  ${l}`)
}

function registerApply(program: Command, io: CliIO, setExit: (code: number) => void): void {
  runFlags(program.command('apply').description('run the plan online through the migration runner: phase schema (the app keeps working), then enforce (RLS, policies, roles, grants)'))
    .option('--phase <phase>', 'schema, enforce or all', 'all')
    .option('--batch-size <n>', 'rows per backfill batch (default: the config batchSize)')
    .option('--batch-target <duration>', 'size backfill batches toward this long each, at most --batch-size rows (default: 100ms; 0: always --batch-size)')
    .option('--backup <file>', 'pg_dump -Fc the database into FILE first; a failed backup stops the run')
    .option('--app-login <role>', 'the login role your app connects with: checked before anything runs (not owner, superuser or BYPASSRLS), then granted the app role once RLS is on (default: roles.login of the config)')
    .option('--tables <list>', 'enforce only these tables, comma-separated schema.table (a canary cut-over); the other tables stay as they are for a later run')
    .option('--ignore-readiness', 'enforce although tables still get writes without a tenant context (tenantize status --readiness): those writes fail from then on; the tables and their counts are printed first')
    .addHelpText('after', `
Readiness: from the schema phase on, every write statement on a tenant table is counted with and without
a tenant context. Enforce refuses (TZ_PREFLIGHT, exit 2) while a table it would enforce has writes without
one in the window (see tenantize status --readiness): deploy the app with tenant context, start a new window
with tenantize status --readiness --reset, enforce the ready tables first with --tables, or pass
--ignore-readiness. --force is not an override for it: --force only skips the pre-flight of long
transactions and locks.`)
    .action(async (raw: unknown) => {
      const o = parseOptions(runSchema.extend({ phase: z.enum(['schema', 'enforce', 'all']).default('all'), batchSize: positiveInt.optional(), batchTarget: duration.optional(), backup: z.string().min(1).optional(), appLogin: z.string().min(1).max(63).optional(), tables: tableList.optional(), ignoreReadiness: z.boolean().default(false) }), raw)
      if (o.tables !== undefined && o.phase === 'schema') throw new TenantizeError(ErrorCodes.USAGE, '--tables chooses the tables to enforce: the schema phase always runs for every table', { object: '--tables', fix: 'use it with --phase enforce (or all), or leave it out' })
      const config = await readConfigFile(o.config)
      const databaseUrl = resolveDatabaseUrl(o.db, io.env)
      const login = o.appLogin ?? config.roles.login
      if (login !== undefined && !o.dryRun) await assertAppLogin(databaseUrl, login, config.roles.app)
      if (!o.dryRun && !o.yes && !(await confirm(io, 'apply', `Apply phase ${o.phase} of the conversion to this database?`))) {
        line(io.stdout, 'Nothing was changed.')
        setExit(0)
        return
      }
      if (o.ignoreReadiness && o.phase !== 'schema') await reportForced(io, o.json, databaseUrl, o.tables)
      const ran = await refusedByDataCheck(io, o.json, setExit, withInterrupts(io, 'apply', (signal) =>
        apply({
          databaseUrl,
          config,
          phase: o.phase,
          ...runnerFlags(o, io, signal, `tenantize apply${o.phase === 'all' ? '' : ` --phase ${o.phase}`}`),
          ...(o.batchSize === undefined ? {} : { batchSize: o.batchSize }),
          ...(o.batchTarget === undefined ? {} : { batchTargetMs: o.batchTarget }),
          ...(o.backup === undefined ? {} : { backupFile: o.backup }),
          ...(o.tables === undefined ? {} : { tables: o.tables }),
          ignoreReadiness: o.ignoreReadiness,
        }),
      ))
      if (!ran) return
      // Once the enforce phase ran, the app role exists: the app's login gets it, so the policies apply to its sessions.
      if (login !== undefined && !o.dryRun && o.phase !== 'schema') {
        await withClient(databaseUrl, (client) => grantAppLogin(client, login, config.roles.app), { applicationName: 'tenantize apply' })
        if (o.json) line(io.stdout, JSON.stringify({ event: 'app-login', login, appRole: config.roles.app }))
        else line(io.stdout, `✔ ${login} (the app's login) is a member of ${config.roles.app}: its sessions are bound by the tenant policies`)
      }
      setExit(0)
    })
}

/** Refuse an app login that would escape row-level security, before anything runs (TZ_CONFIG, exit 2). */
async function assertAppLogin(url: string, login: string, appRole: string): Promise<void> {
  const problems = await withClient(url, (client) => appLoginProblems(client, login, appRole), { applicationName: 'tenantize' })
  if (problems.length > 0) throw new TenantizeError(ErrorCodes.CONFIG, `the app login ${login} would not be bound by row-level security; nothing was changed`, { object: '--app-login', problems })
}

function registerRollback(program: Command, io: CliIO, setExit: (code: number) => void): void {
  runFlags(program.command('rollback').description('reverse applied steps, newest first; --phase enforce is the emergency RLS-off path; refuses to merge tenants unless --merge-tenants'))
    .option('--phase <phase>', 'enforce (RLS, policies, grants only) or all', 'all')
    .option('--merge-tenants', 'roll back even though rows belong to several tenants (they end up in one database, unseparated)')
    .option('--purge', 'with --phase all: also drop the schema tenantize (ledger, event log, frozen plan) once every step is reversed')
    .action(async (raw: unknown) => {
      const o = parseOptions(runSchema.extend({ phase: z.enum(['enforce', 'all']).default('all'), mergeTenants: z.boolean().default(false), purge: z.boolean().default(false) }), raw)
      if (o.purge && o.phase !== 'all') throw new TenantizeError(ErrorCodes.USAGE, '--purge needs --phase all', { object: '--purge', fix: 'leave --phase out (all is the default), or drop --purge' })
      const config = await readConfigFile(o.config)
      const databaseUrl = resolveDatabaseUrl(o.db, io.env)
      if (!o.dryRun && !o.yes && !(await confirm(io, 'rollback', `Roll back phase ${o.phase} of the conversion?`))) {
        line(io.stdout, 'Nothing was changed.')
        setExit(0)
        return
      }
      await withInterrupts(io, 'rollback', (signal) =>
        rollback({ databaseUrl, config, phase: o.phase, mergeTenants: o.mergeTenants, purge: o.purge, ...runnerFlags(o, io, signal, `tenantize rollback${o.phase === 'all' ? '' : ` --phase ${o.phase}`}${o.mergeTenants ? ' --merge-tenants' : ''}`) }),
      )
      setExit(0)
    })
}

/** The share of writes without a tenant context, in percent with one decimal; null when none was counted. */
const share = (r: ReadinessWindow): number | null => {
  const total = r.withContext + r.withoutContext
  return total === 0 ? null : Math.round((r.withoutContext / total) * 1000) / 10
}

/** `status --readiness [--reset]`: the counts per table, and whether enforce would go ahead. Resolves to the exit code. */
async function showReadiness(io: CliIO, url: string, json: boolean, reset: boolean): Promise<number> {
  if (reset) await resetReadiness(url)
  const rows = await readinessWindows(url)
  const waiting = rows.filter((r) => !r.enforced && r.withoutContext > 0)
  const ready = rows.length > 0 && waiting.length === 0
  if (json) {
    line(io.stdout, JSON.stringify({ ready, reset, tables: rows.map((r) => ({ table: r.table, withoutContext: r.withoutContext, withContext: r.withContext, total: r.withContext + r.withoutContext, share: share(r), since: r.since, enforced: r.enforced })) }, null, 2))
    return ready ? 0 : 1
  }
  if (rows.length === 0) {
    line(io.stdout, 'No readiness counters: they start with the schema phase (tenantize apply --phase schema) and count every write statement on a tenant table from then on.')
    return 1
  }
  if (reset) line(io.stdout, `Readiness window reset: every count starts again from 0.`)
  line(io.stdout, 'Write statements per table since its window started (the schema phase, or tenantize status --readiness --reset):')
  const cells = rows.map((r) => {
    const pct = share(r)
    return [r.table, String(r.withoutContext), String(r.withContext + r.withoutContext), pct === null ? '-' : `${pct.toFixed(1)}%`, utc(r.since), r.enforced ? 'enforced' : 'counting']
  })
  for (const l of table(['table', 'without context', 'total', 'share', 'since', 'state'], cells)) line(io.stdout, `  ${l}`)
  for (const r of waiting) line(io.stdout, `✖ ${r.table}: ${r.withoutContext} write statement(s) without a tenant context: each would fail once it is enforced — deploy the app with tenant context (withTenant) for it, then tenantize status --readiness --reset`)
  const open = rows.filter((r) => !r.enforced)
  if (ready) line(io.stdout, open.length === 0 ? '✔ every table is enforced.' : `✔ no write without a tenant context on the ${open.length} table(s) still to enforce: ready for tenantize apply --phase enforce`)
  else line(io.stdout, `${waiting.length} of ${open.length} table(s) still to enforce are not ready: apply --phase enforce refuses (enforce the ready ones with --tables, or override with --ignore-readiness)`)
  return ready ? 0 : 1
}

function registerStatus(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('status')
    .description('the conversion ledger and, per table, its class, tenant column, NOT NULL, RLS enabled/forced, policy and index (an INVALID index is shown as NO); exit 1 when a converted table lacks one of them')
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--readiness', 'instead: per table, the write statements without a tenant context and in all since its window started (the schema phase, or the last --reset), the share without, and when the window started; exit 0 when every table still to enforce is at 0, 1 otherwise (or when nothing is counted yet)')
    .option('--reset', 'with --readiness: start a new window (every count back to 0), e.g. once the app that sets the tenant context is deployed')
    .option('--json', 'JSON output (one object)')
    .action(async (raw: unknown) => {
      const o = parseOptions(z.object({ db: z.string().optional(), json: z.boolean().default(false), readiness: z.boolean().default(false), reset: z.boolean().default(false) }), raw)
      if (o.reset && !o.readiness) throw new TenantizeError(ErrorCodes.USAGE, '--reset starts a new readiness window', { object: '--reset', fix: 'use it with --readiness: tenantize status --readiness --reset' })
      if (o.readiness) {
        setExit(await showReadiness(io, resolveDatabaseUrl(o.db, io.env), o.json, o.reset))
        return
      }
      const status = await conversionStatus(resolveDatabaseUrl(o.db, io.env))
      if (o.json) line(io.stdout, JSON.stringify(status, null, 2))
      else {
        const applied = status.steps.filter((s) => s.applied).length
        line(io.stdout, status.steps.length === 0 ? 'No conversion has been applied.' : `${applied}/${status.steps.length} steps applied (schema: ${status.steps.filter((s) => s.phase === 'schema' && s.applied).length}/${status.steps.filter((s) => s.phase === 'schema').length}, enforce: ${status.steps.filter((s) => s.phase === 'enforce' && s.applied).length}/${status.steps.filter((s) => s.phase === 'enforce').length})`)
        const yn = (v: boolean | null): string => (v === null ? '-' : v ? 'yes' : 'NO')
        if (status.tables.length > 0) {
          const head = ['table', 'class', 'column', 'not null', 'rls', 'forced', 'policy', 'index']
          const rows = status.tables.map((t) => (t.tenantColumn === null ? [t.table, t.class, '-', '-', '-', '-', '-', '-'] : [t.table, t.class, t.tenantColumn, yn(t.tenantNotNull), yn(t.rlsEnabled), yn(t.rlsForced), yn(t.policyPresent), yn(t.tenantIndexPresent)]))
          for (const l of table(head, rows)) line(io.stdout, l)
        }
        for (const p of status.problems) line(io.stdout, `✖ ${p.table}: ${p.problem}`)
      }
      setExit(status.healthy ? 0 : 1)
    })
}

/** init, plan, apply, rollback, status. */
export function registerConvert(program: Command, io: CliIO, setExit: (code: number) => void): void {
  registerInit(program, io, setExit)
  registerPlan(program, io, setExit)
  registerApply(program, io, setExit)
  registerRollback(program, io, setExit)
  registerStatus(program, io, setExit)
}

