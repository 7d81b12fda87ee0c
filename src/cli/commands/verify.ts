import type { Command } from 'commander'
import { access, writeFile } from 'node:fs/promises'
import { z } from 'zod'
import { resolveDatabaseUrl } from '../../db/url.js'
import { ErrorCodes, TenantizeError } from '../../errors.js'
import type { TenantizeConfig } from '../../plan/config.js'
import { exitCodeFor, renderReport, verify, type ModelOptions } from '../../verify/index.js'
import { configAcceptances, sharedReferenceAcceptances } from '../../verify/lints/index.js'
import { DEFAULT_CONFIG_FILE, readConfigFile } from '../config-file.js'
import { line, type CliIO } from '../io.js'
import { duration, parseOptions } from '../options.js'

const identifier = z.string().min(1).max(63)
const settingName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)+$/, 'expected "prefix.name", e.g. tenantize.tenant_id')

export const verifySchema = z.object({
  db: z.string().optional(),
  config: z.string().min(1).optional(),
  /** commander's --no-config: false when given. */
  useConfig: z.boolean().default(true),
  appRole: identifier.optional(),
  tenantColumn: identifier.optional(),
  setting: settingName.optional(),
  format: z.enum(['text', 'json', 'junit', 'html']).default('text'),
  out: z.string().min(1).optional(),
  failOn: z.enum(['error', 'warn']).default('error'),
  poolerUrl: z.string().min(1).optional(),
  probe: z.boolean().default(true),
  allowUnprobed: z.boolean().default(false),
  statementTimeout: duration.default(30_000),
  json: z.boolean().default(false),
})

export type VerifyCliOptions = z.output<typeof verifySchema>

/**
 * What a config file tells verify: the tenant model, each table's class, the tables to leave out, the unique
 * keys meant to be global, the membership table, and the accepted risks (verify.accept, sharedReferences).
 */
export function modelOptionsFrom(config: TenantizeConfig): ModelOptions {
  const tables = Object.entries(config.tables)
  return {
    classes: Object.fromEntries(tables.map(([key, t]) => [key, t.class])),
    ...(config.tenant.membership === null ? {} : { membershipTable: config.tenant.membership.table }),
    accept: [...configAcceptances(config.verify.accept), ...sharedReferenceAcceptances(config.tables)],
    tenantTable: config.tenant.table,
    tenantColumn: config.tenant.column,
    setting: config.tenant.setting,
    appRole: config.roles.app,
    tableColumns: Object.fromEntries(tables.filter(([, t]) => t.class === 'direct' && t.column !== undefined).map(([key, t]) => [key, t.column!])),
    exclude: tables.filter(([, t]) => t.class === 'excluded').map(([key]) => key),
    globalUniques: Object.fromEntries(tables.filter(([, t]) => t.keepGlobalUnique.length > 0).map(([key, t]) => [key, t.keepGlobalUnique])),
  }
}

/** `tenantize verify`: lints + live probe (+ pooler probe); report in a format; exit 0/1 per --fail-on. */
export function registerVerify(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('verify')
    .description('prove tenant isolation: lint the catalog, probe as the app role inside BEGIN … ROLLBACK, optionally probe a pooler; exit 1 when findings reach --fail-on')
    .option('--db <url>', 'database URL of an admin role that may SET ROLE to the app role (default: $DATABASE_URL)')
    .option('--config <file>', 'read the tenant model, table classes, excluded tables and accepted risks from this config (default: ./tenantize.config.json when it exists; flags override it)')
    .option('--no-config', 'do not read ./tenantize.config.json: infer the tenant model from the catalog')
    .option('--app-role <name>', 'the role the application uses (default: inferred from policies, then grants)')
    .option('--tenant-column <name>', 'the tenant id column (default: inferred from policies, then org_id/organization_id/tenant_id)')
    .option('--setting <name>', 'the setting that carries the tenant (default: inferred from current_setting() in policies, else tenantize.tenant_id)')
    .option('--format <format>', 'text, json, junit or html', 'text')
    .option('--json', 'the same as --format json')
    .option('--out <file>', 'write the report to FILE (a one-line summary goes to stdout)')
    .option('--fail-on <severity>', 'exit 1 when a finding is at least this severe: error or warn', 'error')
    .option('--pooler-url <url>', 'a PgBouncer (transaction mode) in front of the same database: check whether tenant context leaks between its clients')
    .option('--no-probe', 'lints only: do not run the live probe')
    .option('--allow-unprobed', 'report tenant tables the probe could not fill with rows as warnings instead of errors (they are still listed)')
    .option('--statement-timeout <duration>', 'statement_timeout for each probe statement', '30s')
    .addHelpText(
      'after',
      `
The probe runs inside one transaction that is always rolled back: it creates two throw-away tenants with
a row in every tenant table and checks, as the app role, that neither can reach the other; a tenant
table it cannot fill is an error (probe-unprobed) unless --allow-unprobed. It needs a
session role that bypasses row-level security (superuser or BYPASSRLS) and may SET ROLE to the app role.
Rules and checks: docs/rules.md. Report formats and the JSON schema: docs/verify.md.`,
    )
    .action(async (raw: unknown) => {
      // commander's --no-config sets config: false; --config FILE sets it to the file.
      const r = raw as Record<string, unknown>
      const parsed = parseOptions(verifySchema, { ...r, config: typeof r['config'] === 'string' ? r['config'] : undefined, useConfig: r['config'] !== false })
      const o = parsed.json ? { ...parsed, format: 'json' as const } : parsed
      // ./tenantize.config.json is read when it exists, as plan and apply read it; --no-config leaves it out.
      const configFile = o.config ?? (o.useConfig && (await access(DEFAULT_CONFIG_FILE).then(() => true, () => false)) ? DEFAULT_CONFIG_FILE : undefined)
      const fromConfig = configFile === undefined ? {} : modelOptionsFrom(await readConfigFile(configFile))
      const report = await verify({
        databaseUrl: resolveDatabaseUrl(o.db, io.env),
        ...fromConfig,
        ...(o.appRole === undefined ? {} : { appRole: o.appRole }),
        ...(o.tenantColumn === undefined ? {} : { tenantColumn: o.tenantColumn }),
        ...(o.setting === undefined ? {} : { setting: o.setting }),
        probe: o.probe,
        allowUnprobed: o.allowUnprobed,
        poolerUrl: o.poolerUrl,
        statementTimeoutMs: o.statementTimeout,
      })
      const color = o.format === 'text' && o.out === undefined && io.stdout.isTTY === true && (io.env['NO_COLOR'] ?? '') === ''
      const text = renderReport(report, o.format, { color, failOn: o.failOn })
      const code = exitCodeFor(report, o.failOn)
      if (o.out === undefined) io.stdout.write(text)
      else {
        try {
          await writeFile(o.out, text)
        } catch (error) {
          throw new TenantizeError(ErrorCodes.USAGE, `cannot write the report: ${(error as Error).message}`, { object: o.out, fix: 'pass a writable path to --out', cause: error })
        }
        const s = report.summary
        line(io.stdout, `${o.format} report written to ${o.out}: ${s.error} error(s), ${s.warn} warning(s), ${s.info} info; probe ${s.checks.pass} passed, ${s.checks.fail} failed${s.unprobed > 0 ? `, ${s.unprobed} tenant table(s) not probed` : ''}`)
      }
      setExit(code)
    })
}
