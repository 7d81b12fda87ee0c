import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants, createWriteStream, type WriteStream } from 'node:fs'
import { access, rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import type pg from 'pg'
import { introspect } from '../catalog/index.js'
import type { Catalog, Column } from '../catalog/types.js'
import { connect } from '../db/connect.js'
import { dropDatabase } from '../db/provision.js'
import { redactUrl, withDatabase } from '../db/url.js'
import { ErrorCodes, TenantizeError, isPgServerError, type Problem } from '../errors.js'
import { readLedger, type MigrateEvent } from '../migrate/index.js'
import { findPgDump } from '../migrate/backup.js'
import { tableKeyOf } from '../plan/config.js'
import type { Plan } from '../plan/steps.js'
import { qualifiedName, quoteIdent, quoteLiteral } from '../sql/quote.js'
import { tenantIdType, unknownTenancy, tenantModel, type TenantModel } from './model.js'
import type { TenantOptions } from './session.js'
import { assertSeesAllTenants, findTenant, type TenantRow } from './store.js'

const run = promisify(execFile)

export interface ExportTenantOptions extends TenantOptions {
  /** Id or slug. */
  readonly tenant: string
  /** An empty database (`postgres://…`) to fill, or a file to write (it must not exist) that `psql -f` loads. */
  readonly to: string
  /** Rows per batch (default: the config's batchSize; fewer when a table has many columns). */
  readonly batchSize?: number
  /** Progress per batch (`progress` events, as the migration runner emits them). */
  readonly onEvent?: (event: MigrateEvent) => void
}

export interface ExportedTable {
  readonly table: string
  /** `tenant`: the tenant's rows; `shared`: a table without tenant rows (global, excluded), exported in full. */
  readonly scope: 'tenant' | 'shared'
  readonly rows: number
  /** Rows of a shared table left out because they reference another tenant's rows (their foreign key would fail). */
  readonly leftOut: number
}

export interface ExportTenantResult {
  readonly tenant: TenantRow
  readonly target: 'database' | 'file'
  /** The target URL (password hidden) or the file. */
  readonly to: string
  readonly tables: readonly ExportedTable[]
  readonly rows: number
  /** Sequences set to the source's values. */
  readonly sequences: number
  readonly seconds: number
}

/** Ledger scope and unit names of `apply` (src/apply/frozen-plan.ts; the tenants layer does not import apply). */
const APPLY_SCOPE = 'apply'
const unitName = (index: number, id: string): string => `${String(index + 1).padStart(4, '0')}_${id}`

/**
 * Statements of the down path that act beyond the scratch database: roles and role membership, grants (the
 * schema is restored without privileges, so they have nothing to revoke), databases, tablespaces, the
 * server. They are skipped: the down path runs on a copy, and must not touch the live cluster.
 */
const CLUSTER_WIDE = /^\s*(?:(?:CREATE|ALTER|DROP)\s+(?:ROLE|USER|GROUP|DATABASE|TABLESPACE)\b|ALTER\s+SYSTEM\b|GRANT\b|REVOKE\b|ALTER\s+DEFAULT\s+PRIVILEGES\b|REASSIGN\b|DROP\s+OWNED\b|SECURITY\s+LABEL\b)/i

/** The plan steps `apply` recorded as done, in the order they ran. */
async function appliedSteps(client: pg.Client): Promise<{ id: string; down: readonly string[] }[]> {
  const exists = (await client.query<{ ok: boolean }>(`SELECT to_regclass('tenantize.plans') IS NOT NULL AS ok`)).rows[0]?.ok === true
  const plan = exists ? (await client.query<{ plan: Plan }>('SELECT plan FROM tenantize.plans ORDER BY id DESC LIMIT 1')).rows[0]?.plan : undefined
  if (plan === undefined) {
    throw new TenantizeError(ErrorCodes.TENANT, 'the database has no conversion plan in tenantize.plans, so the schema before the conversion is unknown', { object: 'tenantize.plans', fix: 'export from a database converted by tenantize apply' })
  }
  const applied = new Set((await readLedger(client, APPLY_SCOPE)).map((a) => a.name))
  return plan.steps.flatMap((step, index) => (applied.has(unitName(index, step.id)) ? [{ id: step.id, down: step.down }] : []))
}

async function pgDump(bin: string, url: string, args: readonly string[]): Promise<string> {
  const parsed = new URL(url)
  const password = decodeURIComponent(parsed.password)
  parsed.password = ''
  try {
    const { stdout } = await run(bin, ['--schema-only', '--no-owner', '--no-privileges', '--no-password', ...args, `--dbname=${parsed.toString()}`], {
      env: { ...process.env, ...(password === '' ? {} : { PGPASSWORD: password }) },
      maxBuffer: 512 * 1024 * 1024,
    })
    return stdout
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? (error as Error).message).trim().split('\n').at(-1) ?? ''
    throw new TenantizeError(ErrorCodes.BACKUP, `pg_dump failed: ${stderr.replaceAll(password === '' ? '\0' : password, '***')}`, { object: redactUrl(url), fix: 'fix the cause above (permissions, pg_dump version) and run again', cause: error })
  }
}

/**
 * pg_dump 17.6+/16.10+/15.14+ wraps its output in psql's `\restrict KEY` … `\unrestrict KEY`: the driver
 * cannot run them, and the file gets one pair of its own around everything instead.
 */
const RESTRICT = /^\\(?:un)?restrict\b.*$/gm
const forDriver = (sql: string): string => sql.replace(RESTRICT, '')

/** The schema as it was before the conversion, as pg_dump text: everything that precedes the rows, and what follows them. */
interface OriginalSchema {
  readonly preData: string
  readonly postData: string
  readonly catalog: Catalog
  /** pg_dump wrote `\restrict` lines: the file gets its own pair. */
  readonly restrict: boolean
}

/**
 * Build the pre-conversion schema: dump the converted schema (no rows, owners or privileges), restore it
 * into a temporary database on the same server, run the down path of every applied plan step there (the
 * path `rollback` takes, checked by its round-trip tests), drop the `tenantize` schema, and dump the
 * result in pg_dump's two sections. The live database is only read.
 */
async function originalSchema(source: pg.Client, sourceUrl: string, steps: readonly { id: string; down: readonly string[] }[]): Promise<OriginalSchema> {
  const major = Math.floor(Number((await source.query<{ v: string }>(`SELECT pg_catalog.current_setting('server_version_num') AS v`)).rows[0]!.v) / 10000)
  const bin = await findPgDump(major)
  const converted = await pgDump(bin, sourceUrl, [])
  const name = `tenantize_export_${randomBytes(4).toString('hex')}`
  try {
    await source.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`)
  } catch (error) {
    if (isPgServerError(error) && error.code === '42501') {
      throw new TenantizeError(ErrorCodes.TENANT, 'may not create the temporary database the export rebuilds the original schema in', { object: name, fix: 'run the export as a role WITH CREATEDB (or a superuser)', cause: error })
    }
    throw error
  }
  const scratchUrl = withDatabase(sourceUrl, name)
  try {
    const scratch = await connect(scratchUrl, { applicationName: 'tenantize tenant export (schema)' })
    try {
      await scratch.query(forDriver(converted))
      await scratch.query(`SELECT pg_catalog.set_config('search_path', '', false)`)
      for (const step of [...steps].reverse()) {
        for (const sql of step.down) {
          if (CLUSTER_WIDE.test(sql)) continue
          try {
            await scratch.query(sql)
          } catch (error) {
            throw new TenantizeError(ErrorCodes.TENANT, `reversing plan step ${step.id} on the copy of the schema failed: ${(error as Error).message}`, { object: step.id, fix: 'the schema changed in a way the plan\'s down path does not expect: run tenantize status, then report it', cause: error })
          }
        }
      }
      await scratch.query('DROP SCHEMA IF EXISTS tenantize CASCADE')
      const catalog = await introspect(scratch)
      const preData = await pgDump(bin, scratchUrl, ['--section=pre-data'])
      const postData = await pgDump(bin, scratchUrl, ['--section=post-data'])
      return { preData, postData, catalog, restrict: /^\\restrict\b/m.test(preData) }
    } finally {
      await scratch.end().catch(() => undefined)
    }
  } finally {
    await dropDatabase(sourceUrl, name).catch(() => undefined)
  }
}

/**
 * PURE: foreign keys of tables the conversion did not know (created after it: not in the config) into what
 * its down path removes — the tenant table Tenantize created, its membership table, or a tenant column the
 * conversion added. The schema before the conversion has no place for such a table's rows (its foreign key
 * cannot be restored): the export is refused before anything is written, rather than lose them. With them,
 * the later tables whose rows' tenant is unknown ({@link unknownTenancy}).
 */
export function laterReferences(catalog: Catalog, model: TenantModel, tenantId: string): Problem[] {
  const created = new Set(model.ownsTenantTable ? model.tables.filter((t) => t.role === 'root' || t.role === 'membership').map((t) => t.key) : [])
  const known = new Set([...Object.keys(model.config.tables), ...model.tables.filter((t) => t.role === 'root' || t.role === 'membership').map((t) => t.key)])
  const problems: (Problem & { readonly table: string })[] = []
  for (const table of catalog.tables) {
    const key = tableKeyOf(table)
    if (table.kind === 'partition' || table.schema === 'tenantize' || known.has(key)) continue
    for (const c of table.constraints) {
      if (c.type !== 'foreign key' || c.parentOid !== null) continue
      const to = model.tables.find((t) => t.table.oid === c.references.table.oid)
      if (to === undefined) continue
      const what = created.has(to.key) ? `${to.key}, a table the conversion created` : to.added && c.references.columns.includes(to.column) ? `${to.key}.${to.column}, a column the conversion added` : undefined
      if (what === undefined) continue
      const own = model.table(key)
      const where = own === undefined ? '' : ` WHERE ${quoteIdent(own.column)} = ${quoteLiteral(tenantId)}`
      problems.push({
        table: key,
        object: `${key} ${c.name}`,
        message: `was created after the conversion and references ${what}: the export rebuilds the schema as it was before the conversion, which has no place for this table's rows`,
        fix: `copy the tenant's rows of this table yourself (psql -c "\\copy (SELECT * FROM ${qualifiedName(table.schema, table.name)}${where}) TO '${table.name}.csv' CSV HEADER"), then export from a copy of the database without the table`,
      })
    }
  }
  const reported = new Set(problems.map((p) => p.table))
  return [...problems.map(({ table: _, ...p }) => p), ...unknownTenancy(catalog, model, 'export').filter((p) => !reported.has(p.object))]
}

/** One table to export: the columns of the original table, and which rows of the live one. */
interface TablePlan {
  readonly key: string
  readonly sql: string
  /** `ONLY "schema"."table"` (an inheritance parent's rows without its children's, which are exported as tables of their own), or the partitioned table with its partitions. */
  readonly from: string
  readonly columns: readonly Column[]
  readonly scope: 'tenant' | 'shared'
  /** SQL over alias `x`, `$1` the tenant id. */
  readonly where: string
}

function tablePlans(model: TenantModel, original: Catalog): TablePlan[] {
  const idType = tenantIdType(model.config)
  const parentsFirst = [...model.childrenFirst].reverse()
  const rank = (key: string): number => {
    const i = parentsFirst.indexOf(key)
    return i < 0 ? -1 : i
  }
  const plans: TablePlan[] = []
  for (const table of original.tables) {
    if (table.kind === 'partition' || table.foreign || table.extension !== null) continue
    const key = tableKeyOf(table)
    const columns = table.columns.filter((c) => c.generated === null)
    const t = model.table(key)
    const sql = qualifiedName(table.schema, table.name)
    const from = table.kind === 'partitioned' ? sql : `ONLY ${sql}`
    if (t !== undefined) {
      plans.push({ key, sql, from, columns, scope: 'tenant', where: `x.${quoteIdent(t.column)} = $1::${idType}` })
      continue
    }
    // A shared table's rows that reference another tenant's rows would break their foreign key in the export.
    const conditions = model.shared
      .filter((s) => tableKeyOf(s.from) === key)
      .map((s) => {
        const to = model.table(s.to)!
        const nulls = s.fk.columns.map((c) => `x.${quoteIdent(c)} IS NULL`)
        const match = s.fk.columns.map((c, i) => `p.${quoteIdent(s.fk.references.columns[i]!)} = x.${quoteIdent(c)}`).join(' AND ')
        return `(${[...nulls, `EXISTS (SELECT 1 FROM ${to.sql} AS p WHERE p.${quoteIdent(to.column)} = $1::${idType} AND ${match})`].join(' OR ')})`
      })
    plans.push({ key, sql, from, columns, scope: 'shared', where: conditions.length === 0 ? 'true' : conditions.join(' AND ') })
  }
  return plans.sort((a, b) => (a.scope === b.scope ? rank(a.key) - rank(b.key) || a.key.localeCompare(b.key) : a.scope === 'shared' ? -1 : 1))
}

/** A value in COPY's text format. */
function copyText(v: string | null): string {
  if (v === null) return '\\N'
  return v.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'))
}

/** Where the rows go: the target database (batched parameterized inserts) or the file (COPY blocks). */
interface Sink {
  begin(sql: string, columns: readonly Column[]): Promise<void>
  rows(rows: readonly (string | null)[][]): Promise<void>
  end(): Promise<void>
  sql(text: string): Promise<void>
}

function write(out: WriteStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.write(text)) resolve()
    else {
      out.once('drain', resolve)
      out.once('error', reject)
    }
  })
}

function fileSink(out: WriteStream): Sink {
  return {
    begin: (sql, columns) => write(out, `COPY ${sql} (${columns.map((c) => quoteIdent(c.name)).join(', ')}) FROM stdin;\n`),
    rows: (rows) => write(out, rows.map((r) => `${r.map(copyText).join('\t')}\n`).join('')),
    end: () => write(out, '\\.\n\n'),
    sql: (text) => write(out, text.endsWith('\n') ? text : `${text}\n`),
  }
}

function databaseSink(target: pg.Client): Sink {
  let table = ''
  let names = ''
  let width = 0
  return {
    async begin(sql, columns) {
      table = sql
      names = columns.map((c) => quoteIdent(c.name)).join(', ')
      width = columns.length
    },
    async rows(rows) {
      if (rows.length === 0 || width === 0) return
      // Parameters without types: each takes its column's type, through the type's own input function.
      const values = rows.map((_, r) => `(${Array.from({ length: width }, (__, c) => `$${r * width + c + 1}`).join(', ')})`).join(', ')
      await target.query(`INSERT INTO ${table} (${names}) OVERRIDING SYSTEM VALUE VALUES ${values}`, rows.flat())
    },
    async end() {},
    async sql(text) {
      await target.query(forDriver(text))
    },
  }
}

/** Settings under which every value's text means the same value when read back. */
const STABLE_TEXT = `SELECT pg_catalog.set_config('DateStyle', 'ISO, YMD', true), pg_catalog.set_config('IntervalStyle', 'postgres', true), pg_catalog.set_config('extra_float_digits', '3', true), pg_catalog.set_config('bytea_output', 'hex', true)`

/**
 * Export a tenant as a standalone single-tenant database with the schema as it was before the conversion:
 * the tenant columns the conversion added, its composite keys, policies, triggers and the tenant table it
 * created are gone (the plan's own down path, run on a temporary copy of the schema — see
 * {@link originalSchema}). The tenant's rows of every tenant table, and every row of the shared tables
 * (global, excluded: they belong to no tenant) but those referencing another tenant's rows, are read in
 * one consistent snapshot, in batches, parents first, and written to an empty database (`to` a
 * `postgres://` URL: schema, rows, then keys, indexes, foreign keys and triggers) or to a file `psql -f`
 * loads (the same order, rows as COPY). Sequences get the source's values. The live database is only read.
 */
export async function exportTenant(options: ExportTenantOptions): Promise<ExportTenantResult> {
  const started = performance.now()
  const toDatabase = /^postgres(?:ql)?:\/\//.test(options.to)
  if (!toDatabase && (await access(options.to, constants.F_OK).then(() => true, () => false))) {
    throw new TenantizeError(ErrorCodes.EXISTS, 'the export file already exists', { object: options.to, fix: 'choose a new file name or move the old one away' })
  }
  const source = await connect(options.databaseUrl, { applicationName: 'tenantize tenant export' })
  let target: pg.Client | undefined
  let out: WriteStream | undefined
  let complete = false
  try {
    const catalog = await introspect(source)
    const model = tenantModel(catalog, options.config)
    await assertSeesAllTenants(source, model)
    const tenant = await findTenant(source, model, options.tenant)
    if (tenant.status === 'importing' || tenant.status === 'deleting') {
      throw new TenantizeError(ErrorCodes.TENANT, `is ${tenant.status}: its rows are incomplete`, { object: `tenant ${tenant.slug ?? tenant.id}`, fix: tenant.status === 'importing' ? 'let the import finish (run tenantize tenant import again), then export' : 'run tenantize tenant delete again to finish deleting it' })
    }
    const later = laterReferences(catalog, model, tenant.id)
    if (later.length > 0) {
      throw new TenantizeError(ErrorCodes.TENANT, `${later.length} table(s) created after the conversion reference what the export removes; nothing was exported`, { object: `tenant ${tenant.slug ?? tenant.id}`, problems: later })
    }
    if (toDatabase) {
      target = await connect(options.to, { applicationName: 'tenantize tenant export (target)' })
      const { rows } = await target.query<{ name: string }>(
        `SELECT n.nspname || '.' || c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
          ORDER BY 1 LIMIT 5`,
      )
      if (rows.length > 0) throw new TenantizeError(ErrorCodes.TENANT, `the target database is not empty (${rows.map((r) => r.name).join(', ')}${rows.length === 5 ? ', …' : ''})`, { object: redactUrl(options.to), fix: 'export into a new, empty database: createdb NAME' })
    }
    const schema = await originalSchema(source, options.databaseUrl, await appliedSteps(source))
    const plans = tablePlans(model, schema.catalog)

    // One snapshot for every table and sequence: the export is consistent, as pg_dump's is.
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    await source.query(STABLE_TEXT)
    const params = (p: TablePlan): string[] => (p.where.includes('$1') ? [tenant.id] : [])
    const counts = new Map<string, { rows: number; all: number }>()
    for (const p of plans) {
      const { rows } = await source.query<{ n: string; all: string }>(`SELECT count(*) FILTER (WHERE ${p.where})::text AS n, count(*)::text AS all FROM ${p.from} AS x`, params(p))
      counts.set(p.key, { rows: Number(rows[0]!.n), all: Number(rows[0]!.all) })
    }
    const sequences: { sql: string; value: string; called: boolean }[] = []
    for (const s of schema.catalog.sequences) {
      if (s.extension !== null) continue
      const sql = qualifiedName(s.schema, s.name)
      const { rows } = await source.query<{ v: string; called: boolean }>(`SELECT last_value::text AS v, is_called AS called FROM ${sql}`)
      sequences.push({ sql, value: rows[0]!.v, called: rows[0]!.called })
    }

    const restrictKey = randomBytes(16).toString('hex')
    let sink: Sink
    if (target !== undefined) sink = databaseSink(target)
    else {
      out = createWriteStream(options.to, { flags: 'wx' })
      // Write errors surface where the file is ended (and through a write waiting for 'drain').
      out.on('error', () => undefined)
      sink = fileSink(out)
      await sink.sql(`${schema.restrict ? `\\restrict ${restrictKey}\n` : ''}-- Tenant ${tenant.slug ?? tenant.id} (${tenant.id}) exported by tenantize with the schema before the conversion.\n-- Load it into an empty database: psql -v ON_ERROR_STOP=1 -f FILE\n`)
    }
    await sink.sql(forDriver(schema.preData))
    await sink.sql(`SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSET DateStyle = 'ISO, YMD';\nSET IntervalStyle = 'postgres';\nSET extra_float_digits = 3;\n`)

    const total = [...counts.values()].reduce((a, c) => a + c.rows, 0)
    let done = 0
    // Rows per second of the copy itself, not of the schema work before it.
    const copyStarted = performance.now()
    const progress = (): void => {
      const seconds = (performance.now() - copyStarted) / 1000
      const rate = seconds > 0 ? done / seconds : 0
      options.onEvent?.({ event: 'progress', migration: `export:${tenant.id}`, done, total, rowsPerSecond: rate, etaSeconds: rate > 0 ? Math.max(0, total - done) / rate : null })
    }
    const size = Math.max(1, Math.min(options.batchSize ?? model.config.batchSize, Math.floor(60000 / Math.max(1, ...plans.map((p) => p.columns.length)))))
    for (const [i, p] of plans.entries()) {
      if (counts.get(p.key)!.rows === 0 || p.columns.length === 0) continue
      const cursor = quoteIdent(`tenantize_export_${i}`)
      await source.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${p.columns.map((c) => `x.${quoteIdent(c.name)}::text`).join(', ')} FROM ${p.from} AS x WHERE ${p.where}`, params(p))
      await sink.begin(p.sql, p.columns)
      for (;;) {
        const { rows } = await source.query<(string | null)[]>({ text: `FETCH ${size} FROM ${cursor}`, rowMode: 'array' })
        if (rows.length === 0) break
        await sink.rows(rows)
        done += rows.length
        progress()
        if (rows.length < size) break
      }
      await sink.end()
      await source.query(`CLOSE ${cursor}`)
    }
    await source.query('COMMIT')
    if (sequences.length > 0) await sink.sql(sequences.map((s) => `SELECT pg_catalog.setval(${quoteLiteral(s.sql)}, ${quoteLiteral(s.value)}::bigint, ${s.called});`).join('\n'))
    await sink.sql(forDriver(schema.postData))
    const matviews = schema.catalog.views.filter((v) => v.kind === 'materialized view' && v.populated && v.extension === null)
    if (matviews.length > 0) await sink.sql(matviews.map((v) => `REFRESH MATERIALIZED VIEW ${qualifiedName(v.schema, v.name)};`).join('\n'))
    if (out !== undefined) {
      if (schema.restrict) await sink.sql(`\\unrestrict ${restrictKey}`)
      await new Promise<void>((resolve, reject) => out!.end((error?: Error | null) => (error ? reject(error) : resolve())))
    }
    complete = true
    const tables = plans.map((p) => ({ table: p.key, scope: p.scope, rows: counts.get(p.key)!.rows, leftOut: p.scope === 'shared' ? counts.get(p.key)!.all - counts.get(p.key)!.rows : 0 }))
    return { tenant, target: toDatabase ? 'database' : 'file', to: toDatabase ? redactUrl(options.to) : options.to, tables, rows: total, sequences: sequences.length, seconds: (performance.now() - started) / 1000 }
  } finally {
    await source.end().catch(() => undefined)
    await target?.end().catch(() => undefined)
    if (out !== undefined && !complete) {
      out.destroy()
      await rm(options.to, { force: true })
    }
  }
}
