import type { Command } from 'commander'
import { z } from 'zod'
import { resolveDatabaseUrl } from '../../db/url.js'
import { createMigration, migrateDown, migrateStatus, migrateUp, type MigrateEvent, type MigrationStatus } from '../../migrate/index.js'
import { line, table, type CliIO } from '../io.js'
import { duration, parseOptions, positiveInt } from '../options.js'

const common = {
  db: z.string().optional(),
  dir: z.string().min(1).default('migrations'),
  json: z.boolean().default(false),
}

const runSchema = z.object({
  ...common,
  dryRun: z.boolean().default(false),
  force: z.boolean().default(false),
  lockWait: duration.optional(),
  lockTimeout: duration.default(1000),
  statementTimeout: duration.default(0),
  retries: positiveInt.default(10),
  retryDelay: duration.default(500),
  backup: z.string().min(1).optional(),
  longTransaction: duration.default(60_000),
  to: z.string().min(1).optional(),
})
const upSchema = runSchema.extend({ allowChanged: z.boolean().default(false) })
const downSchema = runSchema.extend({ all: z.boolean().default(false) }).refine((o) => !(o.all && o.to !== undefined), { message: 'use either --to or --all, not both', path: ['all'] })
const statusSchema = z.object(common)
const createSchema = z.object({ dir: common.dir, json: common.json, noTransaction: z.boolean().default(false) })

type RunOptions = z.output<typeof runSchema>

function runnerOptions(o: RunOptions, io: CliIO, render: (e: MigrateEvent) => void) {
  return {
    databaseUrl: resolveDatabaseUrl(o.db, io.env),
    dir: o.dir,
    dryRun: o.dryRun,
    force: o.force,
    ...(o.lockWait === undefined ? {} : { lockWaitMs: o.lockWait }),
    ...(o.backup === undefined ? {} : { backupFile: o.backup }),
    ...(o.to === undefined ? {} : { to: o.to }),
    timeouts: { lockTimeoutMs: o.lockTimeout, statementTimeoutMs: o.statementTimeout, tries: o.retries, retryDelayMs: o.retryDelay },
    longTransactionSeconds: o.longTransaction / 1000,
    onEvent: render,
  }
}

const ms = (n: number): string => (n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(1)} s`)
const mark: Record<string, string> = { ok: '✔', info: 'ℹ', warn: '⚠', block: '✖', fatal: '✖' }

/** Text rendering of runner events: progress lines on a TTY, plain lines otherwise; JSON lines with --json. */
export function eventRenderer(io: CliIO, json: boolean): (e: MigrateEvent) => void {
  if (json) return (e) => line(io.stdout, JSON.stringify(e))
  const tty = io.stdout.isTTY === true
  const arrow = (d: string): string => (d === 'up' ? '↑' : '↓')
  return (e) => {
    switch (e.event) {
      case 'preflight':
        if (e.status !== 'ok') line(io.stdout, `${mark[e.status]} pre-flight ${e.check}: ${e.message}${e.fix ? ` (fix: ${e.fix})` : ''}`)
        else line(io.stdout, `${mark.ok} pre-flight ${e.check}: ${e.message}`)
        return
      case 'backup':
        line(io.stdout, `✔ backup written to ${e.file} (${e.bytes} bytes, ${ms(e.durationMs)})`)
        return
      case 'plan':
        line(io.stdout, e.migrations.length === 0 ? 'Nothing to run: the database is up to date.' : `${e.dryRun ? 'Would run' : 'Running'} ${e.migrations.length} migration(s) ${e.direction}: ${e.migrations.join(', ')}`)
        return
      case 'would-run':
        line(io.stdout, `\n-- ${arrow(e.direction)} ${e.migration}${e.noTransaction ? ' (no transaction: statement by statement)' : ' (one transaction)'}`)
        for (const s of e.statements) line(io.stdout, `-- line ${s.line}\n${s.sql};`)
        return
      case 'start':
        if (tty) io.stdout.write(`  [${e.index}/${e.total}] ${arrow(e.direction)} ${e.migration} …`)
        else line(io.stdout, `[${e.index}/${e.total}] ${arrow(e.direction)} ${e.migration} started${e.noTransaction ? ' (no transaction)' : ''}`)
        return
      case 'retry':
        line(io.stdout, `${tty ? '\n' : ''}  ⟳ ${e.migration}: lock timeout, try ${e.attempt} in ${ms(e.delayMs)}${e.blockers.length > 0 ? ` (blocked by pid ${e.blockers.join(', ')})` : ''}`)
        return
      case 'finish':
        if (tty) io.stdout.write(`\r✔ [${e.index}/${e.total}] ${arrow(e.direction)} ${e.migration} (${ms(e.durationMs)})\x1b[K\n`)
        else line(io.stdout, `[${e.index}/${e.total}] ${arrow(e.direction)} ${e.migration} done in ${ms(e.durationMs)}`)
        return
      case 'fail':
        line(io.stdout, `${tty ? '\n' : ''}✖ ${e.migration} failed${e.sqlstate ? ` (SQLSTATE ${e.sqlstate})` : ''}`)
        return
      case 'progress': {
        const pct = e.total > 0 ? Math.min(100, Math.floor((e.done / e.total) * 100)) : 100
        const eta = e.etaSeconds === null ? '' : `, ETA ${Math.ceil(e.etaSeconds)} s`
        const text = `    ${e.migration}: ${e.done}/${e.total} rows (${pct}%, ${Math.round(e.rowsPerSecond)} rows/s${eta})`
        if (tty) io.stdout.write(`\r${text}\x1b[K`)
        else line(io.stdout, text)
        return
      }
      case 'done':
        if (e.migrations.length > 0) line(io.stdout, `${e.dryRun ? 'Dry run: nothing was changed.' : `Done: ${e.migrations.length} migration(s) ${e.direction} in ${ms(e.durationMs)}.`}`)
        return
    }
  }
}

function renderStatus(io: CliIO, rows: readonly MigrationStatus[]): void {
  if (rows.length === 0) {
    line(io.stdout, 'No migrations.')
    return
  }
  const cells = rows.map((r) => [r.name, r.state, r.appliedAt?.toISOString() ?? '', r.appliedBy ?? '', r.noTransaction ? 'no-transaction' : '', r.hasDown || r.state === 'missing' ? '' : 'no down file'])
  for (const l of table(['migration', 'state', 'applied at', 'by', '', ''], cells)) line(io.stdout, l)
  const counts = ['applied', 'pending', 'changed', 'missing'].map((s) => `${rows.filter((r) => r.state === s).length} ${s}`)
  line(io.stdout, counts.join(', '))
}

/** Shared flags of `up` and `down`. */
function runFlags(cmd: Command): Command {
  return cmd
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--dir <path>', 'migrations directory', 'migrations')
    .option('--dry-run', 'print what would run; change nothing')
    .option('--force', 'run even when pre-flight checks find long transactions or locks on touched tables')
    .option('--lock-wait <duration>', 'wait this long for another runner instead of failing at once (e.g. 30s)')
    .option('--lock-timeout <duration>', 'lock_timeout for each statement', '1s')
    .option('--statement-timeout <duration>', 'statement_timeout for each statement (0 = none)', '0')
    .option('--retries <n>', 'tries in all when a statement hits lock_timeout', '10')
    .option('--retry-delay <duration>', 'first back-off delay between tries, doubled each time (max 10s)', '500ms')
    .option('--long-transaction <duration>', 'pre-flight: a transaction open longer than this blocks the run', '60s')
    .option('--backup <file>', 'pg_dump -Fc the database into FILE first; a failed backup stops the run')
    .option('--json', 'one JSON event per line')
}

/** `tenantize migrate up|down|status|create`. Returns the exit code through `setExit`. */
export function registerMigrate(program: Command, io: CliIO, setExit: (code: number) => void): void {
  const migrate = program
    .command('migrate')
    .description('run SQL migrations from a directory of NNNN_name.up.sql / NNNN_name.down.sql files, with a ledger, a lock and lock-timeout retries')

  runFlags(migrate.command('up').description('apply pending migrations in order, each in its own transaction (or statement by statement with -- tenantize:no-transaction)'))
    .option('--to <migration>', 'stop after this migration (version or name)')
    .option('--allow-changed', 'run even though an applied file changed since it was applied')
    .action(async (raw: unknown) => {
      const o = parseOptions(upSchema, raw)
      await migrateUp({ ...runnerOptions(o, io, eventRenderer(io, o.json)), allowChanged: o.allowChanged })
      setExit(0)
    })

  runFlags(migrate.command('down').description('reverse applied migrations, newest first (the last one by default)'))
    .option('--to <migration>', 'reverse down to this migration, which stays applied')
    .option('--all', 'reverse every applied migration')
    .action(async (raw: unknown) => {
      const o = parseOptions(downSchema, raw)
      await migrateDown({ ...runnerOptions(o, io, eventRenderer(io, o.json)), all: o.all })
      setExit(0)
    })

  migrate
    .command('status')
    .description('list every migration: applied, pending, changed (file edited after it was applied) or missing (file gone); exit 1 when any is changed or missing')
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--dir <path>', 'migrations directory', 'migrations')
    .option('--json', 'JSON output')
    .action(async (raw: unknown) => {
      const o = parseOptions(statusSchema, raw)
      const rows = await migrateStatus({ databaseUrl: resolveDatabaseUrl(o.db, io.env), dir: o.dir })
      if (o.json) line(io.stdout, JSON.stringify({ migrations: rows }, null, 2))
      else renderStatus(io, rows)
      setExit(rows.some((r) => r.state === 'changed' || r.state === 'missing') ? 1 : 0)
    })

  migrate
    .command('create')
    .description('write the next-numbered empty NNNN_name.up.sql and NNNN_name.down.sql')
    .argument('<name>', 'what the migration does, e.g. add_org_id')
    .option('--dir <path>', 'migrations directory', 'migrations')
    .option('--no-transaction', 'mark the files -- tenantize:no-transaction (for CREATE INDEX CONCURRENTLY)')
    .option('--json', 'JSON output')
    .action(async (name: string, raw: Record<string, unknown>) => {
      // commander turns --no-transaction into transaction: false
      const o = parseOptions(createSchema, { ...raw, noTransaction: raw['transaction'] === false })
      const created = await createMigration({ dir: o.dir, name, noTransaction: o.noTransaction })
      if (o.json) line(io.stdout, JSON.stringify(created))
      else line(io.stdout, `Created ${created.up}\nCreated ${created.down}`)
      setExit(0)
    })
}
