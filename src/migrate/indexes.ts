import type pg from 'pg'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { qualifiedName } from '../sql/quote.js'
import { parseTrees } from './split.js'

type Queryable = Pick<pg.Client, 'query'>

export interface RelationName {
  readonly schema: string | undefined
  readonly name: string
}

/**
 * An index a statement builds (`CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON [ONLY] t`)
 * or attaches (`ALTER INDEX parent ATTACH PARTITION child`), as PostgreSQL's parser reads it.
 */
export type IndexOperation =
  | { readonly kind: 'build'; readonly index: string | undefined; readonly table: RelationName; readonly concurrent: boolean; readonly only: boolean }
  | { readonly kind: 'attach'; readonly parent: RelationName; readonly child: RelationName }
  /** `ALTER INDEX from RENAME TO to`, or `ADD CONSTRAINT to … USING INDEX from` (the index takes the constraint's name). */
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }

interface RangeVar {
  readonly schemaname?: string
  readonly relname?: string
  readonly inh?: boolean
}

const relation = (rv: RangeVar | undefined): RelationName | undefined =>
  rv?.relname === undefined ? undefined : { schema: rv.schemaname, name: rv.relname }

const sqlName = (r: RelationName): string => qualifiedName({ schema: r.schema, name: r.name })

/** The index builds and attachments of one statement (none when it builds no index or does not parse). */
export async function indexOperations(sql: string): Promise<IndexOperation[]> {
  const out: IndexOperation[] = []
  for (const tree of (await parseTrees(sql)) ?? []) {
    const index = tree['IndexStmt'] as { idxname?: string; relation?: RangeVar; concurrent?: boolean } | undefined
    const table = relation(index?.relation)
    if (index !== undefined && table !== undefined) {
      out.push({ kind: 'build', index: index.idxname, table, concurrent: index.concurrent === true, only: index.relation?.inh !== true })
    }
    const alter = tree['AlterTableStmt'] as { objtype?: string; relation?: RangeVar; cmds?: { AlterTableCmd?: { subtype?: string; def?: { PartitionCmd?: { name?: RangeVar }; Constraint?: { conname?: string; indexname?: string } } } }[] } | undefined
    const parent = relation(alter?.relation)
    for (const cmd of alter?.cmds ?? []) {
      const child = relation(cmd.AlterTableCmd?.def?.PartitionCmd?.name)
      if (alter?.objtype === 'OBJECT_INDEX' && parent !== undefined && cmd.AlterTableCmd?.subtype === 'AT_AttachPartition' && child !== undefined) out.push({ kind: 'attach', parent, child })
      const constraint = cmd.AlterTableCmd?.def?.Constraint
      if (cmd.AlterTableCmd?.subtype === 'AT_AddConstraint' && constraint?.indexname !== undefined && constraint.conname !== undefined) out.push({ kind: 'rename', from: constraint.indexname, to: constraint.conname })
    }
    const rename = tree['RenameStmt'] as { renameType?: string; relation?: RangeVar; newname?: string } | undefined
    if (rename?.renameType === 'OBJECT_INDEX' && rename.relation?.relname !== undefined && rename.newname !== undefined) out.push({ kind: 'rename', from: rename.relation.relname, to: rename.newname })
  }
  return out
}

/** What the runner did about an INVALID index before building it again. */
export interface IndexRepair {
  readonly index: string
  /** `drop`: dropped concurrently, the statement builds it anew; `reindex`: a partition's index (cannot be dropped), rebuilt concurrently. */
  readonly action: 'drop' | 'reindex'
}

interface Found {
  index: string
  on_table: boolean
  valid: boolean
  attached: boolean
  builders: string | null
}

/** The index `name` in the schema of `table` (index names are per schema), with its state. */
async function findIndex(client: Queryable, table: RelationName, name: string): Promise<Found | undefined> {
  const { rows } = await client.query<Found>(
    `SELECT c.oid::pg_catalog.regclass::text AS index, i.indrelid = t.oid AS on_table, i.indisvalid AND i.indisready AS valid, c.relispartition AS attached,
            (SELECT pg_catalog.string_agg(p.pid::text, ', ') FROM pg_catalog.pg_stat_progress_create_index p
              WHERE p.index_relid = c.oid AND p.pid <> pg_catalog.pg_backend_pid()
                AND p.datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())) AS builders
       FROM pg_catalog.pg_class t
       JOIN pg_catalog.pg_class c ON c.relnamespace = t.relnamespace AND c.relname = $2 AND c.relkind IN ('i', 'I')
       JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
      WHERE t.oid = pg_catalog.to_regclass($1)`,
    [sqlName(table), name],
  )
  return rows[0]
}

/**
 * Before a concurrent build: an index of that name left INVALID on that table by an interrupted build
 * (crash, cancel, lock_timeout while old transactions ran) is dropped concurrently, so that the build
 * (`IF NOT EXISTS` or not) makes a valid one instead of skipping it or failing on the name.
 * An index attached to a partitioned index cannot be dropped: it is rebuilt with REINDEX CONCURRENTLY.
 * Refuses when another session is building that very index right now.
 */
export async function repairInvalidIndex(client: Queryable, op: IndexOperation): Promise<IndexRepair | undefined> {
  if (op.kind !== 'build' || !op.concurrent || op.index === undefined) return undefined
  const found = await findIndex(client, op.table, op.index)
  if (found === undefined || !found.on_table || found.valid) return undefined
  if (found.builders !== null) {
    throw new TenantizeError(ErrorCodes.INVALID_INDEX, `index ${found.index} is being built by another session (pid ${found.builders})`, {
      object: found.index,
      fix: 'wait for that build to finish (pg_stat_progress_create_index), or cancel it with pg_cancel_backend, then run again',
    })
  }
  if (!found.attached) {
    await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${found.index}`)
    return { index: found.index, action: 'drop' }
  }
  try {
    await client.query(`REINDEX INDEX CONCURRENTLY ${found.index}`)
  } catch (error) {
    // A cut-short REINDEX CONCURRENTLY leaves its own INVALID copy (<name>_ccnew…): drop it, keep the error.
    const copies = (await client.query<{ index: string }>(
      `SELECT c.oid::pg_catalog.regclass::text AS index FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass($1)) AND NOT i.indisvalid
          AND c.relname LIKE $2 || '\\_ccnew%'`,
      [found.index, op.index],
    ).catch(() => ({ rows: [] }))).rows
    for (const c of copies) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${c.index}`).catch(() => undefined)
    throw error
  }
  return { index: found.index, action: 'reindex' }
}

/** INVALID indexes on the tables that unnamed builds of `ops` target, by oid: a baseline for {@link assertIndexesValid}. */
export async function invalidIndexesOn(client: Queryable, ops: readonly IndexOperation[]): Promise<Set<number>> {
  const tables = [...new Set(ops.flatMap((o) => (o.kind === 'build' && o.index === undefined ? [sqlName(o.table)] : [])))]
  if (tables.length === 0) return new Set()
  const { rows } = await client.query<{ oid: number }>(
    `SELECT i.indexrelid::int8 AS oid FROM pg_catalog.pg_index i
      WHERE NOT (i.indisvalid AND i.indisready) AND i.indrelid IN (SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest($1::text[]) AS t)`,
    [tables],
  )
  return new Set(rows.map((r) => Number(r.oid)))
}

const WHY_INVALID = 'left INVALID (a concurrent build was cut short: crash, cancel, lock_timeout or a failed check)'

/**
 * After a no-transaction unit, before it is recorded as done: every index it built exists on its table
 * and is valid, and every partitioned index it attached to is valid (each partition has a valid index
 * attached). `before` is {@link invalidIndexesOn} taken before the unit ran, for builds without a name.
 */
export async function assertIndexesValid(client: Queryable, ops: readonly IndexOperation[], before: ReadonlySet<number>, source: string): Promise<void> {
  const problems: Problem[] = []
  const again = 'run again: the runner drops an INVALID index of the same name and builds it anew'
  // A build's index under the name it has at the end (a later statement may rename it).
  const final = ops.map((op, i) => {
    if (op.kind !== 'build' || op.index === undefined) return op
    let name = op.index
    for (const later of ops.slice(i + 1)) if (later.kind === 'rename' && later.from === name) name = later.to
    return { ...op, index: name }
  })
  for (const op of final) {
    if (op.kind === 'rename') continue
    if (op.kind === 'build' && op.index !== undefined) {
      const found = await findIndex(client, op.table, op.index)
      if (found === undefined) problems.push({ object: `${op.index} on ${sqlName(op.table)}`, message: 'was not created', fix: again })
      else if (!found.on_table) problems.push({ object: found.index, message: `exists on another table, not on ${sqlName(op.table)}; the build was skipped (IF NOT EXISTS)`, fix: 'rename one of the two indexes, then run again' })
      // `ON ONLY` a partitioned table is INVALID until each partition's index is attached: the attachments say.
      else if (!found.valid && !(op.only && !op.concurrent)) problems.push({ object: found.index, message: `is ${WHY_INVALID}`, fix: again })
    } else if (op.kind === 'build') {
      const { rows } = await client.query<{ oid: number; index: string }>(
        `SELECT i.indexrelid::int8 AS oid, i.indexrelid::pg_catalog.regclass::text AS index FROM pg_catalog.pg_index i
          WHERE NOT (i.indisvalid AND i.indisready) AND i.indrelid = pg_catalog.to_regclass($1)`,
        [sqlName(op.table)],
      )
      for (const r of rows.filter((x) => !before.has(Number(x.oid)))) problems.push({ object: r.index, message: `is ${WHY_INVALID}`, fix: `DROP INDEX CONCURRENTLY ${r.index}; then run again` })
    } else {
      const { rows } = await client.query<{ index: string; valid: boolean; missing: string | null }>(
        `SELECT x.indexrelid::pg_catalog.regclass::text AS index, x.indisvalid AS valid,
                (SELECT pg_catalog.string_agg(p.inhrelid::pg_catalog.regclass::text, ', ' ORDER BY p.inhrelid::pg_catalog.regclass::text)
                   FROM pg_catalog.pg_inherits p
                  WHERE p.inhparent = x.indrelid AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_inherits ci JOIN pg_catalog.pg_index c ON c.indexrelid = ci.inhrelid
                     WHERE ci.inhparent = x.indexrelid AND c.indrelid = p.inhrelid AND c.indisvalid)) AS missing
           FROM pg_catalog.pg_index x WHERE x.indexrelid = pg_catalog.to_regclass($1)`,
        [sqlName(op.parent)],
      )
      const r = rows[0]
      if (r === undefined) problems.push({ object: sqlName(op.parent), message: 'does not exist', fix: again })
      else if (!r.valid && !problems.some((p) => p.object === r.index)) {
        problems.push({ object: r.index, message: `is INVALID: ${r.missing === null ? 'a partition has no valid index attached' : `no valid index is attached for partition(s) ${r.missing}`}`, fix: `build a valid index on each and ALTER INDEX ${r.index} ATTACH PARTITION it, or ${again}` })
      }
    }
  }
  if (problems.length > 0) {
    throw new TenantizeError(ErrorCodes.INVALID_INDEX, `${problems.length} index(es) built by ${source} are not valid; it is not recorded as done`, { object: source, problems })
  }
}
