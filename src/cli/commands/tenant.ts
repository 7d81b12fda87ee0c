import type { Command } from 'commander'
import { z } from 'zod'
import { resolveDatabaseUrl } from '../../db/url.js'
import { ErrorCodes, TenantizeError } from '../../errors.js'
import { createTenant, deleteTenant, exportTenant, importTenant, listTenants, resumeTenant, showTenant, suspendTenant, type TenantRow, type TenantUsage } from '../../tenants/index.js'
import { DEFAULT_CONFIG_FILE, readConfigFile } from '../config-file.js'
import { line, table, type CliIO } from '../io.js'
import { registerTenantIsolate } from './tenant-isolate.js'
import { duration, parseOptions, positiveInt } from '../options.js'
import { eventRenderer } from './migrate.js'

const common = {
  db: z.string().optional(),
  config: z.string().min(1).default(DEFAULT_CONFIG_FILE),
  json: z.boolean().default(false),
}
const createSchema = z.object({
  ...common,
  slug: z.string().min(1),
  name: z.string().min(1),
  id: z.string().min(1).optional(),
  owner: z.string().min(1).optional(),
  set: z.array(z.string().regex(/^[^=]+=/, 'write it as column=value')).default([]),
})
const usageSchema = z.object({ ...common, exact: z.boolean().default(false) })
const statusSchema = z.object(common)
const runSchema = {
  ...common,
  dryRun: z.boolean().default(false),
  batchSize: positiveInt.optional(),
  lockWait: duration.optional(),
  lockTimeout: duration.default(1000),
  retries: positiveInt.default(10),
}
const deleteSchema = z.object({ ...runSchema, allowShared: z.boolean().default(false) })
const exportSchema = z.object({ ...common, to: z.string().min(1), batchSize: positiveInt.optional() })
const importSchema = z.object({ ...runSchema, from: z.string().min(1), slug: z.string().min(1), name: z.string().min(1).optional(), id: z.string().min(1).optional() })

async function base(o: { db?: string | undefined; config: string }, io: CliIO): Promise<{ databaseUrl: string; config: Awaited<ReturnType<typeof readConfigFile>> }> {
  const config = await readConfigFile(o.config)
  return { databaseUrl: resolveDatabaseUrl(o.db, io.env), config }
}

function runnerFlags(o: { lockWait?: number | undefined; lockTimeout: number; retries: number; batchSize?: number | undefined }): { lockWaitMs?: number; timeouts: { lockTimeoutMs: number; tries: number }; batchSize?: number } {
  return { ...(o.lockWait === undefined ? {} : { lockWaitMs: o.lockWait }), timeouts: { lockTimeoutMs: o.lockTimeout, tries: o.retries }, ...(o.batchSize === undefined ? {} : { batchSize: o.batchSize }) }
}

/** `1.2 MB`, `834 kB`, `512 B`. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let v = n
  let u = -1
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000
    u++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`
}

const approx = (exact: boolean): string => (exact ? '' : '~')
const who = (t: TenantRow): string => t.slug ?? t.id

function renderList(io: CliIO, tenants: readonly TenantUsage[]): void {
  if (tenants.length === 0) {
    line(io.stdout, 'No tenants.')
    return
  }
  const rows = tenants.map((t) => [t.id, t.slug ?? '', t.name ?? '', t.status, t.createdAt ?? '', `${approx(t.exact)}${t.rows}`, `${approx(t.exact)}${formatBytes(t.bytes)}`])
  for (const l of table(['id', 'slug', 'name', 'status', 'created at', 'rows', 'bytes'], rows)) line(io.stdout, l)
  if (tenants.some((t) => !t.exact)) line(io.stdout, '~ estimated from the planner\'s statistics; --exact counts')
}

function renderShow(io: CliIO, t: TenantUsage): void {
  line(io.stdout, `${t.slug ?? t.id}${t.name === null ? '' : ` (${t.name})`}: ${t.status}, id ${t.id}${t.createdAt === null ? '' : `, created ${t.createdAt}`}`)
  const rows = t.tables.map((u) => [u.table, `${approx(u.exact)}${u.rows}`, `${approx(u.exact)}${formatBytes(u.bytes)}`])
  rows.push(['total', `${approx(t.exact)}${t.rows}`, `${approx(t.exact)}${formatBytes(t.bytes)}`])
  for (const l of table(['table', 'rows', 'bytes'], rows)) line(io.stdout, `  ${l}`)
  if (!t.exact) line(io.stdout, '~ estimated from the planner\'s statistics; --exact counts')
}

function withCommon(cmd: Command): Command {
  return cmd.option('--db <url>', 'database URL (default: $DATABASE_URL)').option('--config <file>', 'config file', DEFAULT_CONFIG_FILE).option('--json', 'JSON output')
}

function withRunner(cmd: Command): Command {
  return withCommon(cmd)
    .option('--dry-run', 'print the rows per table that would move; change nothing')
    .option('--batch-size <n>', 'the largest batch in rows (default: the config batchSize); each batch is sized to write about 1 MB of WAL')
    .option('--lock-wait <duration>', 'wait this long for another runner instead of failing at once (e.g. 30s)')
    .option('--lock-timeout <duration>', 'lock_timeout for each statement', '1s')
    .option('--retries <n>', 'tries in all when a statement hits lock_timeout', '10')
}

/** `tenantize tenant create|list|show|suspend|resume|delete|import|export`. */
export function registerTenant(program: Command, io: CliIO, setExit: (code: number) => void): void {
  const tenant = program.command('tenant').description('tenant lifecycle on a converted database: create, list, show, suspend, resume, delete, export and import tenants; isolate one on its own shards (Citus)')

  withCommon(tenant.command('create').description('create a tenant (and its first member as owner, when a membership table exists); prints its id'))
    .requiredOption('--slug <slug>', 'lower-case letters, digits and inner hyphens, unique')
    .requiredOption('--name <name>', 'display name')
    .option('--id <id>', 'the tenant id (default: the tenant table\'s default)')
    .option('--owner <user>', 'a user id to add as the owner in the membership table')
    .option('--set <column=value...>', 'values for further NOT NULL columns of an existing tenant table')
    .action(async (raw: unknown) => {
      const o = parseOptions(createSchema, raw)
      const values = Object.fromEntries(o.set.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
      const created = await createTenant({ ...(await base(o, io)), slug: o.slug, name: o.name, values, ...(o.id === undefined ? {} : { id: o.id }), ...(o.owner === undefined ? {} : { owner: o.owner }) })
      line(io.stdout, o.json ? JSON.stringify(created) : created.id)
      setExit(0)
    })

  withCommon(tenant.command('list').description('every tenant: status, created at, rows and bytes (estimated from statistics; exact with --exact)'))
    .option('--exact', 'count rows and measure them (scans every tenant table)')
    .action(async (raw: unknown) => {
      const o = parseOptions(usageSchema, raw)
      const tenants = await listTenants({ ...(await base(o, io)), exact: o.exact })
      if (o.json) line(io.stdout, JSON.stringify({ tenants }, null, 2))
      else renderList(io, tenants)
      setExit(0)
    })

  withCommon(tenant.command('show').description('one tenant by id or slug: status, created at, rows and bytes per table').argument('<tenant>', 'id or slug'))
    .option('--exact', 'count rows and measure them (scans the tenant\'s rows of every table)')
    .action(async (ref: string, raw: unknown) => {
      const o = parseOptions(usageSchema, raw)
      const shown = await showTenant({ ...(await base(o, io)), tenant: ref, exact: o.exact })
      if (o.json) line(io.stdout, JSON.stringify(shown, null, 2))
      else renderShow(io, shown)
      setExit(0)
    })

  for (const [name, fn, text] of [
    ['suspend', suspendTenant, 'suspend a tenant: the HTTP middleware answers its requests with 403 until it is resumed'],
    ['resume', resumeTenant, 'resume a suspended tenant'],
  ] as const) {
    withCommon(tenant.command(name).description(text).argument('<tenant>', 'id or slug')).action(async (ref: string, raw: unknown) => {
      const o = parseOptions(statusSchema, raw)
      const result = await fn({ ...(await base(o, io)), tenant: ref })
      line(io.stdout, o.json ? JSON.stringify(result) : `${who(result)}: ${result.status}`)
      setExit(0)
    })
  }

  withRunner(tenant.command('delete').description('delete a tenant and all its rows online: in batches, children before parents, resumable, recorded in the ledger; refuses the default tenant').argument('<tenant>', 'id or slug'))
    .option('--allow-shared', 'delete even though rows of shared tables reference the tenant\'s rows (their foreign keys\' ON DELETE actions apply)')
    .action(async (ref: string, raw: unknown) => {
      const o = parseOptions(deleteSchema, raw)
      const result = await deleteTenant({ ...(await base(o, io)), ...runnerFlags(o), tenant: ref, dryRun: o.dryRun, allowShared: o.allowShared, onEvent: eventRenderer(io, o.json) })
      if (o.json) line(io.stdout, JSON.stringify(result))
      else {
        line(io.stdout, `${result.dryRun ? 'Would delete' : 'Deleted'} tenant ${who(result.tenant)}: ${result.tables.reduce((a, t) => a + t.rows, 0)} row(s)`)
        for (const l of table(['table', 'rows'], result.tables.map((t) => [t.table, String(t.rows)]))) line(io.stdout, `  ${l}`)
        for (const s of result.shared) line(io.stdout, `⚠ ${s.rows} row(s) of shared table ${s.table} reference its rows in ${s.references} (${s.foreignKey}, ON DELETE ${s.onDelete.toUpperCase()})`)
      }
      if (result.dryRun && result.shared.length > 0 && !o.allowShared) {
        throw new TenantizeError(ErrorCodes.TENANT, 'rows of shared tables reference this tenant\'s rows: delete would refuse', { object: `tenant ${who(result.tenant)}`, fix: 'delete or re-point those rows, or pass --allow-shared' })
      }
      setExit(0)
    })

  withRunner(tenant.command('import').description('copy every row of another database with the same (pre-conversion) schema in as a new tenant: drift reported first, colliding ids remapped (tenantize.id_map), in batches, resumable; invisible to the app until complete'))
    .requiredOption('--from <url>', 'the single-tenant source database')
    .requiredOption('--slug <slug>', 'the new tenant\'s slug')
    .option('--name <name>', 'the new tenant\'s name (default: the slug)')
    .option('--id <id>', 'the new tenant\'s id (default: the tenant table\'s default)')
    .action(async (raw: unknown) => {
      const o = parseOptions(importSchema, raw)
      const result = await importTenant({ ...(await base(o, io)), ...runnerFlags(o), from: o.from, slug: o.slug, name: o.name ?? o.slug, dryRun: o.dryRun, ...(o.id === undefined ? {} : { id: o.id }), onEvent: eventRenderer(io, o.json) })
      if (o.json) line(io.stdout, JSON.stringify(result))
      else {
        for (const d of result.drift) line(io.stdout, `${d.blocking ? '✖' : '⚠'} ${d.kind} ${d.table}${d.column === undefined ? '' : `.${d.column}`}${d.source === undefined && d.target === undefined ? '' : ` (${d.source ?? '–'} → ${d.target ?? '–'})`}: ${d.effect}`)
        line(io.stdout, `${result.dryRun ? 'Would import' : 'Imported'} ${result.tables.reduce((a, t) => a + t.rows, 0)} row(s)${result.tenant === undefined ? '' : ` as tenant ${who(result.tenant)} (${result.tenant.id})`}`)
        for (const l of table(['table', 'rows', 'new ids'], result.tables.map((t) => [t.table, String(t.rows), result.dryRun ? '' : String(t.remapped)]))) line(io.stdout, `  ${l}`)
      }
      setExit(0)
    })

  withCommon(tenant.command('export').description('write a tenant as a standalone single-tenant database with the schema before the conversion (tenant columns, composite keys and policies removed): into an empty database, or a file psql -f loads; shared tables in full').argument('<tenant>', 'id or slug'))
    .requiredOption('--to <url|file>', 'an empty database (postgres://…) or a new .sql file')
    .option('--batch-size <n>', 'rows per batch (default: the config batchSize)')
    .action(async (ref: string, raw: unknown) => {
      const o = parseOptions(exportSchema, raw)
      const result = await exportTenant({ ...(await base(o, io)), tenant: ref, to: o.to, ...(o.batchSize === undefined ? {} : { batchSize: o.batchSize }), onEvent: eventRenderer(io, o.json) })
      if (o.json) line(io.stdout, JSON.stringify(result))
      else {
        line(io.stdout, `Exported tenant ${who(result.tenant)} to ${result.to}: ${result.rows} row(s) in ${result.tables.length} table(s), ${result.sequences} sequence(s) set, in ${result.seconds.toFixed(1)} s`)
        for (const l of table(['table', 'rows', 'scope'], result.tables.map((t) => [t.table, String(t.rows), t.scope === 'tenant' ? 'tenant rows' : `shared, in full${t.leftOut > 0 ? ` but ${t.leftOut} row(s) referencing other tenants` : ''}`]))) line(io.stdout, `  ${l}`)
      }
      setExit(0)
    })

  registerTenantIsolate(tenant, io, setExit)
}
