import { createHash } from 'node:crypto'
import type pg from 'pg'
import { introspect } from '../catalog/index.js'
import type { Catalog, Column, Table } from '../catalog/types.js'
import { connect } from '../db/connect.js'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { runUnits, sleep, type RunnerOptions, type UnitContext } from '../migrate/index.js'
import { splitKey, tableKeyOf } from '../plan/config.js'
import { qualifiedName, quoteIdent, quoteLiteral } from '../sql/quote.js'
import { insertTenant, validateSlug } from './create.js'
import { TENANTS_SCOPE } from './delete.js'
import { tenantIdType, type TenantModel, type TenantTable } from './model.js'
import { pacedBatch, pacer } from './pace.js'
import { transaction, withModel, type TenantOptions } from './session.js'
import { ensureTenantTables, findTenant, readTenants, writeStatus, type TenantRow } from './store.js'

/** One difference between the source database and the (pre-conversion) schema of the target, and what the import does about it. */
export interface DriftItem {
  readonly table: string
  readonly column?: string
  readonly kind: 'missing-table' | 'extra-table' | 'missing-column' | 'extra-column' | 'type'
  readonly source?: string
  readonly target?: string
  /** What happens to the rows. */
  readonly effect: string
  /** The import refuses to start because of it. */
  readonly blocking: boolean
}

/** How a table's rows are copied. */
interface ImportTable {
  readonly t: TenantTable
  readonly source: Table
  /** Target columns filled from the source (tenant column, generated columns and columns the source lacks left out). */
  readonly columns: readonly Column[]
  /**
   * The single-column primary key that gets new values where it collides, with how new values are made: from its
   * sequence, a new uuid, none (a colliding key refuses), or `parent`: the key is also the table's foreign key to
   * another imported table (`parent`, a one-to-one extension row) and takes that row's new key.
   */
  readonly key: { readonly column: string; readonly generator: 'sequence' | 'uuid' | 'none' | 'parent'; readonly parent?: string } | undefined
  /** Source key columns to page by (primary key), or none: by ctid. */
  readonly pageBy: readonly Column[]
  /** A foreign key of the table to itself or in a cycle: its rows go in in one statement. */
  readonly selfReferencing: boolean
}

export interface ImportPlan {
  readonly drift: readonly DriftItem[]
  readonly tables: readonly ImportTable[]
}

const GENERATED_KINDS = new Set(['always', 'by default'])

/**
 * PURE: compare the source's tables with the target's tenant tables as they were before the conversion
 * (the tenant column it added left out) and decide, per table, which columns are copied and which key is remapped.
 */
export function planImport(source: Catalog, model: TenantModel): ImportPlan {
  const drift: DriftItem[] = []
  const tables: ImportTable[] = []
  const order = [...model.childrenFirst].reverse()
  for (const key of order) {
    const t = model.table(key)!
    if (t.role === 'membership' || t.role === 'attached' || (t.role === 'root' && model.ownsTenantTable)) continue
    const { schema, name } = splitKey(key)
    const src = source.table(schema, name)
    if (src === undefined) {
      drift.push({ table: key, kind: 'missing-table', effect: 'not in the source: no rows are imported into it', blocking: false })
      continue
    }
    const columns: Column[] = []
    for (const c of t.table.columns) {
      if (c.name === t.column && t.role !== 'root') continue
      if (c.generated !== null) continue
      const s = src.columns.find((x) => x.name === c.name)
      if (s === undefined) {
        const fillable = c.nullable || c.default !== null || (c.identity !== null && GENERATED_KINDS.has(c.identity))
        drift.push({ table: key, column: c.name, kind: 'missing-column', target: c.type, effect: fillable ? (c.default !== null || c.identity !== null ? 'not in the source: takes the column default' : 'not in the source: NULL') : 'not in the source, NOT NULL without a default: no row could be inserted', blocking: !fillable })
        continue
      }
      if (s.type !== c.type) drift.push({ table: key, column: c.name, kind: 'type', source: s.type, target: c.type, effect: `values are cast to ${c.type}; a value that does not fit stops the import at its batch`, blocking: false })
      columns.push(c)
    }
    for (const s of src.columns) {
      if (!t.table.columns.some((c) => c.name === s.name) && s.generated === null) drift.push({ table: key, column: s.name, kind: 'extra-column', source: s.type, effect: 'not in the target: its values are not imported', blocking: false })
    }
    const pk = t.table.constraints.find((c) => c.type === 'primary key')
    // The key that is remapped: a single-column primary key, or in a composite one the single column the database
    // draws (a partitioned table's key is (partition key, id): pagila's payments) — a new value from its sequence
    // keeps the whole key unique.
    const drawn = (pk?.columns ?? []).filter((n) => n !== t.column).map((n) => t.table.columns.find((c) => c.name === n)!).filter((c) => c.identity !== null || /^nextval\(/.test(c.default ?? ''))
    const pkColumn = pk !== undefined && pk.columns.length === 1 && pk.columns[0] !== t.column ? t.table.columns.find((c) => c.name === pk.columns[0])
      : pk !== undefined && pk.columns.length > 1 && drawn.length === 1 ? drawn[0]
      : t.role === 'root' ? t.table.columns.find((c) => c.name === t.column) : undefined
    const keyCol = pkColumn !== undefined && columns.includes(pkColumn) ? pkColumn : undefined
    let generator: NonNullable<ImportTable['key']>['generator'] = keyCol === undefined ? 'none' : keyCol.identity !== null || /^nextval\(/.test(keyCol.default ?? '') ? 'sequence' : keyCol.type === 'uuid' ? 'uuid' : 'none'
    // A key that is also the foreign key to another imported table's key (Lemmy's federation_allowlist.instance_id → instance.id, F24).
    const parentEdge = generator === 'none' && keyCol !== undefined
      ? model.edges.find((e) => e.from === key && e.to !== key && e.to !== model.root.key && order.indexOf(e.to) < order.indexOf(key) && e.fk.columns.filter((c) => c !== t.column).join(',') === keyCol.name)
      : undefined
    if (parentEdge !== undefined) generator = 'parent'
    const srcPk = src.constraints.find((c) => c.type === 'primary key')
    const pageBy = srcPk === undefined ? [] : srcPk.columns.map((n) => src.columns.find((c) => c.name === n)!)
    const selfReferencing = model.edges.some((e) => e.from === key && e.to === key && e.fk.columns.some((c) => c !== t.column))
    tables.push({ t, source: src, columns, key: keyCol === undefined ? undefined : { column: keyCol.name, generator, ...(parentEdge === undefined ? {} : { parent: parentEdge.to }) }, pageBy, selfReferencing })
  }
  const known = new Set([...Object.keys(model.config.tables), ...model.tables.map((t) => t.key)])
  for (const s of source.tables) {
    const key = tableKeyOf(s)
    if (!known.has(key) && s.kind !== 'partition') drift.push({ table: key, kind: 'extra-table', effect: 'not in the configuration: not imported', blocking: false })
  }
  return { drift, tables }
}

export interface ImportTenantOptions extends TenantOptions, Omit<RunnerOptions, 'databaseUrl' | 'dryRun' | 'backupFile'> {
  /** The single-tenant source database (same schema as the target before its conversion). It should not change during the import. */
  readonly from: string
  readonly slug: string
  readonly name: string
  /** The new tenant's id (default: the tenant table's default). */
  readonly id?: string
  /** Report the drift and the rows per table; move nothing. */
  readonly dryRun?: boolean
  /** The largest batch in rows (default: the config's batchSize); each batch is sized to write about 1 MB of WAL. */
  readonly batchSize?: number
  readonly batchPauseMs?: number
}

export interface ImportTenantResult {
  readonly tenant: TenantRow | undefined
  readonly drift: readonly DriftItem[]
  /** Rows per table in the source, and how many keys got a new value. */
  readonly tables: readonly { readonly table: string; readonly rows: number; readonly remapped: number }[]
  readonly dryRun: boolean
}

/** Text of a key list, for `WHERE (k) > (…)`: each parameter cast back to the column's type in SQL. */
function keyset(columns: readonly Column[], alias: string, offset: number): { after: string; order: string; select: string } {
  const cols = columns.map((c) => `${alias}.${quoteIdent(c.name)}`)
  return {
    after: `(${cols.join(', ')}) > (${columns.map((c, i) => `$${offset + i}::${c.type}`).join(', ')})`,
    order: cols.join(', '),
    select: cols.map((c, i) => `${c}::text AS k${i}`).join(', '),
  }
}

type Progress = { last: (string | null)[] | null; done: number }

async function readProgress(client: pg.Client, step: string): Promise<Progress> {
  const row = (await client.query<{ last_key: { last: (string | null)[] | null } | null; rows_done: string }>('SELECT last_key, rows_done FROM tenantize.backfill_progress WHERE scope = $1 AND step = $2', [TENANTS_SCOPE, step])).rows[0]
  return { last: row?.last_key?.last ?? null, done: Number(row?.rows_done ?? 0) }
}

async function saveProgress(client: pg.Client, step: string, p: Progress): Promise<void> {
  await client.query(
    `INSERT INTO tenantize.backfill_progress (scope, step, last_key, rows_done) VALUES ($1, $2, $3, $4)
     ON CONFLICT (scope, step) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = clock_timestamp()`,
    [TENANTS_SCOPE, step, JSON.stringify({ last: p.last }), p.done],
  )
}

/**
 * Copy one source table into `tenantize.import_rows` as jsonb, in keyset batches; resumes after the last
 * committed batch. A batch crosses this process as one text, a row a line (jsonb's text has no raw line
 * break), with its last key beside it: the rows never become JavaScript values, so a batch keeps this
 * process's event loop for the time of one string copy (a row per array element, parsed and escaped into a
 * parameter: up to 874 ms per batch of 5,000 at load 15–25).
 */
async function stage(ctx: UnitContext, source: pg.Client, it: ImportTable, tenantId: string, size: number, pause: number, tick: (n: number) => void): Promise<void> {
  const client = ctx.client
  const step = `import:${tenantId}:stage:${it.t.key}`
  const progress = await readProgress(client, step)
  if (progress.last !== null && progress.last.length === 0) return
  const src = qualifiedName(it.source.schema, it.source.name)
  const byKey = it.pageBy.length > 0
  const ks = byKey ? keyset(it.pageBy, 'x', 1) : { after: 'x.ctid > $1::tid', order: 'x.ctid', select: 'x.ctid::text AS k0' }
  const width = byKey ? it.pageBy.length : 1
  const lastKey = Array.from({ length: width }, (_, i) => `(pg_catalog.array_agg(b.k${i} ORDER BY b.ord DESC))[1] AS k${i}`).join(', ')
  const pace = pacer(size)
  for (;;) {
    const params: unknown[] = progress.last === null ? [] : [...progress.last]
    const where = progress.last === null ? '' : `WHERE ${ks.after}`
    const limit = pace.size
    const { rows } = await source.query<{ data: string | null; n: number; [k: string]: string | number | null }>(
      `SELECT pg_catalog.string_agg(b.data, E'\\n' ORDER BY b.ord) AS data, count(*)::int AS n, ${lastKey}
         FROM (SELECT pg_catalog.to_jsonb(x)::text AS data, ${ks.select}, pg_catalog.row_number() OVER (ORDER BY ${ks.order}) AS ord FROM ${src} AS x ${where} ORDER BY ${ks.order} LIMIT ${Number(limit)}) AS b`,
      params,
    )
    const batch = rows[0]
    const n = batch?.n ?? 0
    if (batch === undefined || n === 0) break
    const last = Array.from({ length: width }, (_, i) => (batch[`k${i}`] ?? null) as string | null)
    // The rows and the progress in one statement: one round trip, atomic. The WAL position once both are written.
    const { waitMs } = await pacedBatch(client, pace, pause, async () => {
      let lsn = ''
      await ctx.retrying(`${it.t.key} import`, async () => {
        lsn = (await client.query<{ lsn: string }>(
        `WITH staged AS (
           INSERT INTO tenantize.import_rows (tenant, "table", seq, data)
           SELECT $1, $2, $3::bigint + u.ord, u.d::jsonb FROM unnest(pg_catalog.string_to_array($4::text, E'\\n')) WITH ORDINALITY AS u(d, ord)
           RETURNING 1
         ), saved AS (
           INSERT INTO tenantize.backfill_progress (scope, step, last_key, rows_done) VALUES ($5, $6, $7, $8)
           ON CONFLICT (scope, step) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = clock_timestamp()
           RETURNING 1
         )
         SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn FROM (SELECT count(*) FROM staged) AS s, (SELECT count(*) FROM saved) AS p`,
        [tenantId, it.t.key, progress.done, batch.data, TENANTS_SCOPE, step, JSON.stringify({ last }), progress.done + n],
        )).rows[0]!.lsn
      })
      return { rows: n, lsn }
    })
    progress.last = last
    progress.done += n
    tick(n)
    if (n < limit) break
    if (waitMs > 0) await sleep(waitMs)
  }
  // An empty key list marks the table as staged completely.
  await saveProgress(client, step, { last: [], done: progress.done })
}

/**
 * Give every staged key its value in the target: a new one from the key's sequence (in the source's order),
 * else kept unless it collides (uuids: a new gen_random_uuid()). In batches of staged rows, each its own
 * transaction: one statement for a whole table wrote its map in one burst of WAL, and the app's commits
 * waited behind it (LWLock WALWrite, IO WALInitWrite: 300–700 ms at 100,000 rows in the tenants bench).
 * A key already in the map is skipped (ON CONFLICT on the map's primary key, not NOT EXISTS: the map has no
 * statistics while it fills, and the planner scanned a table's whole map for each key — 276 s for one batch
 * of 5,000 at 100,000 rows), so a run after a crash completes it.
 */
async function mapKeys(ctx: UnitContext, it: ImportTable, tenantId: string, forcedRootId: string | undefined, size: number, pause: number): Promise<number> {
  const client = ctx.client
  const key = it.key!
  const col = quoteIdent(key.column)
  const type = it.t.table.columns.find((c) => c.name === key.column)!.type
  const collides = `EXISTS (SELECT 1 FROM ${it.t.sql} AS t WHERE t.${col} = s.old::${type})`
  let keep = `NOT ${collides}`
  let fresh = 'NULL::text'
  let generator = key.generator
  const values: unknown[] = [tenantId, it.t.key]
  if (it.t.role === 'root' && forcedRootId !== undefined) {
    values.push(forcedRootId)
    keep = 'false'
    fresh = `$${values.length}::text`
  } else if (generator === 'sequence') {
    const seq = await sequenceOf(client, it.t.sql, key.column)
    if (seq === null) generator = 'none'
    else {
      // Every key gets a new value from the sequence: one at or below its position may belong to an insert of the
      // app not committed yet (invisible here, it would collide later), one beyond it is the sequence's to hand out.
      values.push(seq)
      keep = 'false'
      fresh = `pg_catalog.nextval($${values.length}::pg_catalog.regclass)::text`
    }
  } else if (generator === 'uuid') fresh = 'pg_catalog.gen_random_uuid()::text'
  else if (generator === 'parent') {
    // The parent's keys were mapped first (parents first): its new key, or the old one for a row it does not have.
    values.push(key.parent!)
    keep = 'false'
    fresh = `coalesce((SELECT p.new_id FROM tenantize.id_map AS p WHERE p.tenant = $1 AND p."table" = $${values.length} AND p.old_id = s.old), s.old)`
  }
  if (generator === 'none' && keep !== 'false') {
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(DISTINCT r.data ->> ${quoteLiteral(key.column)})::text AS n FROM tenantize.import_rows r
        WHERE r.tenant = $1 AND r."table" = $2 AND EXISTS (SELECT 1 FROM ${it.t.sql} AS t WHERE t.${col} = (r.data ->> ${quoteLiteral(key.column)})::${type})`,
      [tenantId, it.t.key],
    )
    const n = Number(rows[0]?.n ?? 0)
    if (n > 0) {
      throw new TenantizeError(ErrorCodes.TENANT, `${n} key(s) collide with rows already in the target, and ${key.column} has no sequence or uuid default to draw new values from`, {
        object: `${it.t.key}.${key.column}`,
        fix: 'give the column a default (a sequence, or gen_random_uuid() for uuid keys), or change the colliding keys in the source; then run the import again (it resumes)',
      })
    }
  }
  const range = (await client.query<{ lo: string | null; hi: string | null }>('SELECT min(seq)::text AS lo, max(seq)::text AS hi FROM tenantize.import_rows WHERE tenant = $1 AND "table" = $2', [tenantId, it.t.key])).rows[0]
  const sql = `WITH mapped AS (
     INSERT INTO tenantize.id_map (tenant, "table", old_id, new_id)
     SELECT $1, $2, s.old, CASE WHEN ${keep} THEN s.old ELSE ${fresh} END
       FROM (SELECT r.seq, r.data ->> ${quoteLiteral(key.column)} AS old FROM tenantize.import_rows r WHERE r.tenant = $1 AND r."table" = $2 AND r.seq >= $${values.length + 1}::bigint AND r.seq < $${values.length + 2}::bigint) AS s
      WHERE s.old IS NOT NULL
      ORDER BY s.seq
     ON CONFLICT (tenant, "table", old_id) DO NOTHING
     RETURNING 1
   )
   SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn FROM (SELECT count(*) FROM mapped) AS m`
  if (range?.lo != null && range.hi != null) {
    const pace = pacer(size)
    for (let lo = Number(range.lo); lo <= Number(range.hi);) {
      const n = pace.size
      const { waitMs } = await pacedBatch(client, pace, pause, async () => {
        let lsn = ''
        await ctx.retrying(`${it.t.key} id map`, async () => { lsn = (await client.query<{ lsn: string }>(sql, [...values, String(lo), String(lo + n)])).rows[0]!.lsn })
        return { rows: n, lsn }
      })
      lo += n
      if (waitMs > 0) await sleep(waitMs)
    }
  }
  const remapped = (await client.query<{ n: string }>(`SELECT count(*) FILTER (WHERE m.old_id <> m.new_id)::text AS n FROM tenantize.id_map m WHERE m.tenant = $1 AND m."table" = $2`, [tenantId, it.t.key])).rows[0]
  return Number(remapped?.n ?? 0)
}

/**
 * Refuse (TZ_TENANT, naming each foreign key, the rows and sample values) when staged rows reference rows of a
 * table the import does not fill — shared data such as a global lookup table — that the target does not have:
 * their insert would fail on the foreign key after other tables were filled. The tenant stays `importing` with its
 * staged rows; once the target has those rows (or the source is fixed), running the import again resumes it.
 */
async function refuseMissingReferences(client: pg.ClientBase, model: TenantModel, plan: ImportPlan, label: string): Promise<void> {
  const imported = new Set(plan.tables.map((it) => it.t.key))
  const problems: Problem[] = []
  for (const it of plan.tables) {
    for (const fk of it.t.table.constraints) {
      if (fk.type !== 'foreign key' || fk.parentOid !== null) continue
      const target = tableKeyOf(fk.references.table)
      if (imported.has(target) || target === model.root.key || fk.columns.includes(it.t.column)) continue
      const columns = fk.columns.map((n) => it.columns.find((c) => c.name === n))
      if (columns.some((c) => c === undefined)) continue
      const value = (c: Column): string => `(r.data ->> ${quoteLiteral(c.name)})::${c.type}`
      const { rows } = await client.query<{ n: string; sample: string | null }>(
        `SELECT count(*)::text AS n, pg_catalog.string_agg(DISTINCT concat_ws(', ', ${columns.map((c) => `r.data ->> ${quoteLiteral(c!.name)}`).join(', ')}), '; ') AS sample
           FROM tenantize.import_rows AS r
          WHERE r.tenant = $1 AND r."table" = $2 AND ${columns.map((c) => `r.data ->> ${quoteLiteral(c!.name)} IS NOT NULL`).join(' AND ')}
            AND NOT EXISTS (SELECT 1 FROM ${qualifiedName(fk.references.table.schema, fk.references.table.name)} AS g WHERE ${fk.references.columns.map((rc, i) => `g.${quoteIdent(rc)} = ${value(columns[i]!)}`).join(' AND ')})`,
        [label, it.t.key],
      )
      const n = Number(rows[0]?.n ?? 0)
      if (n > 0) {
        const sample = (rows[0]?.sample ?? '').split('; ').slice(0, 5).join('; ')
        problems.push({ object: `${it.t.key} ${fk.name}`, message: `${n} row(s) reference ${target} rows the target does not have (${fk.columns.join(', ')} = ${sample})`, fix: `add those rows to ${target} in the target (shared data the two databases should agree on), or correct the source; then run the import again (it resumes)` })
      }
    }
  }
  if (problems.length > 0) throw new TenantizeError(ErrorCodes.TENANT, `the source's rows reference shared rows the target does not have: ${problems.length} foreign key(s); none of them was inserted`, { object: 'tenant import', problems })
}

/**
 * The sequence a key column's default draws from, as `schema.name` text, or null: the serial / identity sequence
 * (`pg_get_serial_sequence`), else the sequence its default expression depends on — `DEFAULT nextval('s')` with
 * `s` not OWNED BY the column (pagila's keys, many dumps) has no serial sequence, and `nextval(NULL)` is NULL.
 */
async function sequenceOf(client: pg.ClientBase, table: string, column: string): Promise<string | null> {
  const { rows } = await client.query<{ seq: string | null }>(
    `SELECT coalesce(
       pg_catalog.pg_get_serial_sequence($1, $2),
       (SELECT d.refobjid::pg_catalog.regclass::text
          FROM pg_catalog.pg_attrdef ad
          JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
          JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
         WHERE ad.adrelid = $1::pg_catalog.regclass AND a.attname = $2
         LIMIT 1)) AS seq`,
    [table, column],
  )
  return rows[0]?.seq ?? null
}

/**
 * The SQL expression for a column of a staged row (alias `b`, jsonb in `b.data`; the populated record in
 * `x`): read through the id map where it is a remapped key or references one. Each such column gets one
 * LEFT JOIN on tenantize.id_map's primary key (tenant, table, old_id), pushed to `joins`: the batch is
 * remapped as a set, not row by row.
 */
function columnExpr(model: TenantModel, it: ImportTable, c: Column, remapped: ReadonlyMap<string, string>, tenantParam: string, joins: string[]): string {
  const raw = `b.data ->> ${quoteLiteral(c.name)}`
  const through = (table: string, type: string): string => {
    const alias = `m${joins.length}`
    joins.push(`LEFT JOIN tenantize.id_map AS ${alias} ON ${alias}.tenant = $1 AND ${alias}."table" = ${quoteLiteral(table)} AND ${alias}.old_id = ${raw}`)
    return `coalesce(${alias}.new_id, ${raw})::${type}`
  }
  if (it.t.role === 'root' && c.name === it.t.column) return `${tenantParam}::${c.type}`
  if (it.key !== undefined && c.name === it.key.column) return through(it.t.key, c.type)
  // Single-column keys and their tenant-scoped twins (tenant, key) → (tenant, id) alike: after enforce only the twin is left.
  for (const e of model.edges) {
    if (e.from !== it.t.key || c.name === it.t.column) continue
    const i = e.fk.columns.indexOf(c.name)
    if (i < 0) continue
    const target = remapped.get(e.to)
    if (target !== undefined && target === e.fk.references.columns[i]) return through(e.to, c.type)
  }
  return `x.${quoteIdent(c.name)}`
}

/**
 * Insert one table's staged rows in batches (parents were inserted before), resumable by staged sequence
 * number. One statement per batch — read the staged rows, remap them with joins, insert them, record the
 * progress — so one round trip, atomic without BEGIN/COMMIT.
 */
async function insertRows(ctx: UnitContext, model: TenantModel, it: ImportTable, tenantId: string, newTenant: string, remapped: ReadonlyMap<string, string>, size: number, pause: number, tick: (n: number) => void): Promise<void> {
  const client = ctx.client
  const step = `import:${tenantId}:insert:${it.t.key}`
  const progress = await readProgress(client, step)
  const names = it.columns.map((c) => quoteIdent(c.name))
  const joins: string[] = []
  const exprs = it.columns.map((c) => columnExpr(model, it, c, remapped, '$3', joins))
  if (it.t.role !== 'root') {
    names.push(quoteIdent(it.t.column))
    exprs.push(`$3::${tenantIdType(model.config)}`)
  }
  const sql = `WITH b AS MATERIALIZED (
  SELECT r.seq, r.data FROM tenantize.import_rows r WHERE r.tenant = $1 AND r."table" = $2 AND r.seq > $4::bigint ORDER BY r.seq LIMIT $8::bigint
), ins AS (
  INSERT INTO ${it.t.sql} (${names.join(', ')}) OVERRIDING SYSTEM VALUE
  SELECT ${exprs.join(', ')}
    FROM b CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::${it.t.sql}, b.data) AS x
    ${joins.join('\n    ')}
   ORDER BY b.seq
  RETURNING 1
), done AS MATERIALIZED (
  SELECT (SELECT count(*) FROM ins) AS n, (SELECT max(b.seq) FROM b) AS last
), saved AS (
  INSERT INTO tenantize.backfill_progress (scope, step, last_key, rows_done)
  SELECT $5, $6, pg_catalog.jsonb_build_object('last', pg_catalog.jsonb_build_array(d.last::text)), $7::bigint + d.n FROM done d WHERE d.last IS NOT NULL
  ON CONFLICT (scope, step) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, updated_at = clock_timestamp()
)
SELECT d.n::int AS n, d.last::text AS last, pg_catalog.pg_current_wal_insert_lsn()::text AS lsn FROM done d`
  // A table referencing itself goes in in one statement (LIMIT NULL: every row), its references resolved by the one INSERT.
  const pace = pacer(size)
  for (;;) {
    let last: string | null = null
    const { rows: n, waitMs } = await pacedBatch(client, pace, pause, async () => {
      let batch = { rows: 0, lsn: '' }
      await ctx.retrying(`${it.t.key} import`, async () => {
        const row = (await client.query<{ n: number; last: string | null; lsn: string }>(sql, [tenantId, it.t.key, newTenant, progress.last?.[0] ?? '0', TENANTS_SCOPE, step, progress.done, it.selfReferencing ? null : String(pace.size)])).rows[0]!
        last = row.last
        batch = { rows: row.n, lsn: row.lsn }
      })
      return batch
    })
    if (last === null) break
    progress.last = [last]
    progress.done += n
    tick(n)
    if (waitMs > 0) await sleep(waitMs)
  }
}

/**
 * `tenantize.import_rows` is UNLOGGED (an import from an earlier version finds it logged and changes it,
 * staged rows kept): the staged rows are a copy of the source written once and read once, and their WAL
 * (the rows, then their deletion) was most of an import's. Crash recovery empties an unlogged table, so a
 * run that finds fewer staged rows of a table than its staging recorded, and not every one of them
 * inserted yet, stages that table again from its first row. The same keyset order gives each row the same
 * sequence number, so the id map (ON CONFLICT DO NOTHING) and the inserts (after the last inserted sequence
 * number) go on where they stopped — the source must not change during the import, as before.
 */
async function restageLost(client: pg.Client, plan: ImportPlan, tenantId: string): Promise<void> {
  await client.query(`DO $$ BEGIN
    IF (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid = 'tenantize.import_rows'::regclass) = 'p' THEN ALTER TABLE tenantize.import_rows SET UNLOGGED; END IF;
  END $$`)
  if ((await readProgress(client, `import:${tenantId}:inserted`)).last !== null) return
  for (const it of plan.tables) {
    const step = `import:${tenantId}:stage:${it.t.key}`
    const staged = await readProgress(client, step)
    if (staged.done === 0) continue
    if ((await readProgress(client, `import:${tenantId}:insert:${it.t.key}`)).done >= staged.done) continue
    const held = Number((await client.query<{ n: string }>('SELECT count(*)::text AS n FROM tenantize.import_rows WHERE tenant = $1 AND "table" = $2', [tenantId, it.t.key])).rows[0]?.n ?? 0)
    if (held >= staged.done) continue
    await transaction(client, async () => {
      await client.query('DELETE FROM tenantize.import_rows WHERE tenant = $1 AND "table" = $2', [tenantId, it.t.key])
      await client.query('DELETE FROM tenantize.backfill_progress WHERE scope = $1 AND step = $2', [TENANTS_SCOPE, step])
    })
  }
}

async function countSource(source: pg.Client, it: ImportTable): Promise<number> {
  return Number((await source.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${qualifiedName(it.source.schema, it.source.name)}`)).rows[0]?.n ?? 0)
}

/**
 * Import every row of another database with the same (pre-conversion) schema as a new tenant. The drift
 * between the two schemas is reported before any row moves (blocking drift refuses). The tenant is
 * created `importing` (the middleware answers 404 for it), rows are copied into the target in batches
 * (`tenantize.import_rows`), each key drawn from a sequence gets a new value from the target's sequence
 * (the app may hold a value it drew but has not committed yet), each other key that collides a new
 * gen_random_uuid() (`tenantize.id_map`, old → new as text), every column referencing it is rewritten
 * through the foreign-key graph, and rows are inserted parents first in batches. Runs through the
 * migration runner (lock, ledger scope `tenants`); running it again after a crash resumes it. Keys never
 * pass through JavaScript values: they travel as text and are cast back in SQL.
 */
export async function importTenant(options: ImportTenantOptions): Promise<ImportTenantResult> {
  validateSlug(options.slug)
  const source = await connect(options.from, { applicationName: 'tenantize tenant import (source)' })
  try {
    const sourceCatalog = await introspect(source)
    const prepared = await withModel(options, 'import', async (client, model) => {
      const plan = planImport(sourceCatalog, model)
      const counts = new Map<string, number>()
      for (const it of plan.tables) counts.set(it.t.key, await countSource(source, it))
      const roots = plan.tables.find((it) => it.t.role === 'root')
      const problems: Problem[] = plan.drift.filter((d) => d.blocking).map((d) => ({ object: `${d.table}${d.column === undefined ? '' : `.${d.column}`}`, message: d.effect, fix: 'give the column a default in the target, or add it to the source' }))
      if (roots !== undefined && counts.get(roots.t.key) !== 1) problems.push({ object: roots.t.key, message: `the source holds ${counts.get(roots.t.key)} tenant row(s); a single-tenant source holds one`, fix: 'import from a database with exactly one row in the tenant table' })
      const existing = model.slugColumn === null ? [] : await readTenants(client, model, `r.${quoteIdent(model.slugColumn)}::text = $1`, [options.slug])
      if (existing.length > 0 && existing[0]!.status !== 'importing') problems.push({ object: `slug ${options.slug}`, message: 'a tenant with this slug exists already', fix: 'choose another slug' })
      if (problems.length > 0 && options.dryRun !== true) throw new TenantizeError(ErrorCodes.TENANT, `the source cannot be imported: ${problems.length} problem(s); nothing was changed`, { object: 'tenant import', problems })
      return { model, plan, counts, resume: existing[0] }
    })
    const { model, plan, counts } = prepared
    const tables = plan.tables.map((it) => ({ table: it.t.key, rows: counts.get(it.t.key) ?? 0, remapped: 0 }))
    if (options.dryRun === true) return { tenant: prepared.resume, drift: plan.drift, tables, dryRun: true }

    // The tenant row first (status importing): the app cannot see it until the import completes.
    let tenant = prepared.resume
    if (tenant === undefined && model.ownsTenantTable) {
      tenant = await withModel(options, 'import', (client, m) => insertTenant(client, m, { slug: options.slug, name: options.name, status: 'importing', ...(options.id === undefined ? {} : { id: options.id }) }))
    }
    // Without a tenant table of Tenantize's, the source's own tenant row becomes the new tenant: its key is the tenant id.
    const label = tenant?.id ?? `${options.slug}`
    const name = `import:${label}`
    const size = options.batchSize ?? model.config.batchSize
    const pause = options.batchPauseMs ?? 10
    const total = tables.reduce((a, t) => a + t.rows, 0) * 2
    let done = 0
    const started = performance.now()
    const remappedCounts = new Map<string, number>()
    let finalTenant: TenantRow | undefined
    await runUnits('up', { ...options, scope: TENANTS_SCOPE }, async () => [
      {
        name,
        version: String(Date.now()),
        checksum: createHash('sha256').update(name).digest('hex'),
        source: `tenant import ${options.slug}`,
        noTransaction: true,
        statements: [],
        custom: async (ctx: UnitContext) => {
          const client = ctx.client
          await ensureTenantTables(client)
          await restageLost(client, plan, label)
          const tick = (n: number): void => {
            done += n
            const seconds = (performance.now() - started) / 1000
            const rate = seconds > 0 ? done / seconds : 0
            ctx.emit({ event: 'progress', migration: name, done, total, rowsPerSecond: rate, etaSeconds: rate > 0 ? Math.max(0, total - done) / rate : null })
          }
          for (const it of plan.tables) await stage(ctx, source, it, label, size, pause, tick)
          // Fresh statistics for the tables just filled: without them the planner reads a whole table's map per row.
          await client.query('ANALYZE tenantize.import_rows')
          // Before any key is drawn or row inserted: a staged row naming a row of a table the import does not fill
          // (shared data, e.g. chinook's media types) that the target lacks would stop the inserts part-way.
          await refuseMissingReferences(client, model, plan, label)
          // Keys: tables parents first, so the tenant table's row (own tenant table) is mapped before its id is needed.
          const remapped = new Map<string, string>()
          for (const it of plan.tables) {
            if (it.key === undefined) continue
            remapped.set(it.t.key, it.key.column)
            remappedCounts.set(it.t.key, await mapKeys(ctx, it, label, it.t.role === 'root' ? options.id : undefined, size, pause))
          }
          await client.query('ANALYZE tenantize.id_map')
          let newTenant = tenant?.id
          if (newTenant === undefined) {
            const root = plan.tables.find((it) => it.t.role === 'root')!
            newTenant = (await client.query<{ id: string }>(`SELECT new_id AS id FROM tenantize.id_map WHERE tenant = $1 AND "table" = $2`, [label, root.t.key])).rows[0]!.id
          }
          // Invisible to the app until the last row is in (with the app's own tenant table, its row is imported like any other).
          await transaction(client, () => writeStatus(client, model, newTenant, 'importing'))
          // The new tenant's context while its rows go in, as when the app inserts: rows that triggers of the schema
          // write on their own (Lemmy's *_combined tables) take the tenant column's default from it (F26).
          const setting = model.config.tenant.setting
          await client.query('SELECT pg_catalog.set_config($1, $2, false)', [setting, newTenant])
          try {
            for (const it of plan.tables) await insertRows(ctx, model, it, label, newTenant, remapped, size, pause, tick)
          } finally {
            await client.query("SELECT pg_catalog.set_config($1, '', false)", [setting]).catch(() => undefined)
          }
          // Every row is in: staged rows lost from here on (a crash during the cleanup) are not staged again.
          await saveProgress(client, `import:${label}:inserted`, { last: [], done: 0 })
          // The staged rows go in batches too (every row is in, so a run after a crash finds nothing left to insert):
          // one DELETE of them all is a burst of WAL the app's commits would wait behind.
          for (;;) {
            let n = 0
            await ctx.retrying('tenantize.import_rows cleanup', async () => {
              n = (await client.query(`DELETE FROM tenantize.import_rows WHERE (tenant, "table", seq) IN (SELECT tenant, "table", seq FROM tenantize.import_rows WHERE tenant = $1 LIMIT $2)`, [label, size])).rowCount ?? 0
            })
            if (n === 0) break
            if (pause > 0) await sleep(pause)
          }
          await transaction(client, async () => {
            if (label !== newTenant) await client.query('UPDATE tenantize.id_map SET tenant = $2 WHERE tenant = $1', [label, newTenant])
            await writeStatus(client, model, newTenant, 'active')
            await client.query('DELETE FROM tenantize.import_rows WHERE tenant = $1', [label])
            await client.query(`DELETE FROM tenantize.backfill_progress WHERE scope = $1 AND step LIKE $2`, [TENANTS_SCOPE, `import:${label}:%`])
          })
          finalTenant = await findTenant(client, model, newTenant)
        },
      },
    ])
    return { tenant: finalTenant, drift: plan.drift, tables: tables.map((t) => ({ ...t, remapped: remappedCounts.get(t.table) ?? 0 })), dryRun: false }
  } finally {
    await source.end().catch(() => undefined)
  }
}
