/**
 * Isolate a large tenant on Citus: its rows get shards of their own in every colocated table
 * (`isolate_tenant_to_new_shard(…, 'CASCADE')`), optionally moved to another node
 * (`citus_move_shard_placement`). Both online in Citus's sense:
 * - `block_writes`: the tenant's shard group is copied while writes to the shards being split (and then
 *   moved) wait; reads go on. Works everywhere.
 * - `force_logical` / `auto`: logical replication copies the rows while writes go on, with a short block at
 *   the switch. Needs `wal_level = logical` on every node (and a replica identity — every table converted by
 *   tenantize has its primary key).
 * `auto` (the default here) takes logical replication when every node has `wal_level = logical`, else `block_writes`.
 */
import type pg from 'pg'
import { connect } from '../db/connect.js'
import { ErrorCodes, TenantizeError } from '../errors.js'
import type { TenantizeConfig } from '../plan/config.js'
import { splitKey } from '../plan/config.js'
import { qualifiedName } from '../sql/quote.js'

export type ShardTransferMode = 'auto' | 'block_writes' | 'force_logical'

export interface IsolateOptions {
  /** The Citus coordinator. */
  readonly databaseUrl: string
  /** The tenant: its id (the value of the distribution column), or its slug when `config` is given. */
  readonly tenant: string
  /** Move the tenant's new shards to this node, `host:port` as in pg_dist_node. */
  readonly moveTo?: string | undefined
  /** Default `auto` (see the module comment). */
  readonly transferMode?: ShardTransferMode | undefined
  /** The conversion's config: resolves a slug through the tenant table, and picks the tenant tables. */
  readonly config?: TenantizeConfig | undefined
  /** A distributed table of the colocation group to isolate (default: the one group of hash-distributed tables). */
  readonly table?: string | undefined
  /** Called at each phase, with the time since the start. */
  readonly onProgress?: ((event: IsolateProgress) => void) | undefined
}

export interface IsolateProgress {
  readonly phase: 'isolating' | 'isolated' | 'moving' | 'moved'
  readonly elapsedMs: number
  readonly detail: string
}

export interface IsolateResult {
  readonly tenant: string
  /** The table the isolation was asked for (the colocated ones follow it). */
  readonly table: string
  /** The tenant's shard of `table`, and whether it holds only this tenant now. */
  readonly shardId: number
  /** false: the tenant had a shard of its own already; nothing was split. */
  readonly isolated: boolean
  /** The colocated tables whose shards were split with it. */
  readonly tables: readonly string[]
  readonly transferMode: 'block_writes' | 'force_logical'
  /** Where the tenant's shards are now (`host:port`), and where they were when moved. */
  readonly node: string
  readonly movedFrom: string | null
  readonly isolateMs: number
  readonly moveMs: number | null
}

interface DistributedTable {
  readonly oid: number
  /** `schema.table`, unquoted, as config keys are written. */
  readonly name: string
  readonly column: string
  readonly colocation: number
}

async function distributedTables(client: pg.ClientBase): Promise<DistributedTable[]> {
  const { rows } = await client.query<{ oid: string; name: string; column: string; colocation: number }>(
    `SELECT p.logicalrelid::oid::int8 AS oid, n.nspname || '.' || c.relname AS name,
            pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) AS column, p.colocationid AS colocation
       FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE p.partmethod = 'h' ORDER BY 2`,
  )
  return rows.map((r) => ({ oid: Number(r.oid), name: r.name, column: r.column, colocation: r.colocation }))
}

/** The distributed table to isolate by: `table`, a tenant table of the config, or the only colocation group. */
function chooseTable(tables: readonly DistributedTable[], options: IsolateOptions): DistributedTable {
  const fail = (message: string, fix: string): never => {
    throw new TenantizeError(ErrorCodes.USAGE, message, { object: options.table ?? 'tenant isolate', fix })
  }
  if (tables.length === 0) return fail('no table is hash-distributed in this database: there is nothing to isolate', 'run tenantize apply with "target": "citus" first (or create_distributed_table)')
  if (options.table !== undefined) {
    const t = tables.find((x) => x.name === options.table)
    return t ?? fail(`${options.table} is not a hash-distributed table`, `name one of: ${tables.map((x) => x.name).join(', ')}`)
  }
  const tenantKeys = options.config === undefined ? [] : Object.entries(options.config.tables).filter(([, c]) => c.class === 'direct' || c.class === 'child').map(([k]) => k)
  const fromConfig = tables.find((t) => tenantKeys.includes(t.name))
  if (fromConfig !== undefined) return fromConfig
  const groups = [...new Set(tables.map((t) => t.colocation))]
  if (groups.length > 1) return fail(`the distributed tables form ${groups.length} colocation groups: which one holds the tenant?`, 'pass --table schema.table (a distributed table of the tenant\'s group), or --config')
  return tables[0]!
}

/** A slug becomes the tenant's id through the config's tenant table; an id stays as it is. */
async function tenantId(client: pg.ClientBase, options: IsolateOptions): Promise<string> {
  if (options.config === undefined) return options.tenant
  const { schema, name } = splitKey(options.config.tenant.table)
  const hasSlug = (await client.query(`SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass($1) AND attname = 'slug' AND NOT attisdropped`, [qualifiedName(schema, name)])).rowCount === 1
  const { rows } = await client.query<{ id: string }>(`SELECT id::text AS id FROM ${qualifiedName(schema, name)} WHERE id::text = $1${hasSlug ? ' OR slug = $1' : ''}`, [options.tenant])
  if (rows.length === 0) throw new TenantizeError(ErrorCodes.USAGE, `no tenant ${options.tenant} in ${options.config.tenant.table}`, { object: options.tenant, fix: 'pass the tenant\'s id or slug (tenantize tenant list)' })
  return rows[0]!.id
}

interface ShardFacts {
  readonly shardId: number
  readonly alone: boolean
  readonly node: string
}

async function shardOf(client: pg.ClientBase, table: DistributedTable, tenant: string): Promise<ShardFacts> {
  const { rows } = await client.query<{ shardid: string; alone: boolean; node: string }>(
    `SELECT s.shardid::text, s.shardminvalue = s.shardmaxvalue AS alone, n.nodename || ':' || n.nodeport AS node
       FROM pg_catalog.pg_dist_shard s
       JOIN pg_catalog.pg_dist_placement p USING (shardid)
       JOIN pg_catalog.pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary'
      WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column($1::oid::pg_catalog.regclass, $2::text)`,
    [table.oid, tenant],
  )
  const row = rows[0]
  if (row === undefined) throw new TenantizeError(ErrorCodes.MIGRATION_FAILED, `no shard placement of ${table.name} for tenant ${tenant}`, { object: table.name, fix: 'check pg_dist_placement: every shard needs a placement on an active node' })
  return { shardId: Number(row.shardid), alone: row.alone, node: row.node }
}

/** `block_writes` or `force_logical` for `auto`; an explicit logical mode without wal_level = logical is refused. */
async function transferMode(client: pg.ClientBase, wanted: ShardTransferMode): Promise<'block_writes' | 'force_logical'> {
  if (wanted === 'block_writes') return wanted
  const { rows } = await client.query<{ node: string; wal: string; ok: boolean }>(
    `SELECT nodename || ':' || nodeport AS node, result AS wal, success AS ok FROM pg_catalog.run_command_on_all_nodes($$SELECT pg_catalog.current_setting('wal_level')$$) JOIN pg_catalog.pg_dist_node USING (nodeid)`,
  )
  const notLogical = rows.filter((r) => !r.ok || r.wal !== 'logical')
  if (notLogical.length === 0) return 'force_logical'
  if (wanted === 'auto') return 'block_writes'
  throw new TenantizeError(ErrorCodes.PREFLIGHT, `force_logical needs wal_level = logical on every node; ${notLogical.map((r) => `${r.node} has ${r.wal}`).join(', ')}`, {
    object: 'tenant isolate --transfer-mode',
    fix: "ALTER SYSTEM SET wal_level = 'logical' on every node and restart them, or use --transfer-mode block_writes (writes to the tenant's shards wait while they are copied)",
  })
}

function parseNode(node: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(node)
  if (m === null) throw new TenantizeError(ErrorCodes.USAGE, `--move-to ${node}: expected host:port`, { object: '--move-to', fix: 'name a node as pg_dist_node has it, e.g. 10.0.0.5:5432' })
  return { host: m[1]!, port: Number(m[2]) }
}

/**
 * Give a tenant shards of its own in every colocated table, and optionally move them to another node.
 * Idempotent: a tenant already alone in its shard is not split again; shards already on `moveTo` stay.
 *
 * @throws TenantizeError `TZ_USAGE` for an unknown tenant, table or node; `TZ_PREFLIGHT` when the transfer
 * mode cannot work on this cluster; Citus's own errors (e.g. a concurrent rebalance) as they are.
 */
export async function isolateTenant(options: IsolateOptions): Promise<IsolateResult> {
  const client = await connect(options.databaseUrl, { applicationName: 'tenantize tenant isolate' })
  const started = performance.now()
  const progress = (phase: IsolateProgress['phase'], detail: string): void => options.onProgress?.({ phase, elapsedMs: performance.now() - started, detail })
  try {
    const citus = (await client.query<{ v: string | null }>(`SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus') AS v`)).rows[0]?.v
    if (citus === null || citus === undefined) {
      throw new TenantizeError(ErrorCodes.USAGE, 'this database is not a Citus coordinator (no citus extension): a tenant can only be isolated on Citus', { object: 'tenant isolate', fix: 'connect to the Citus coordinator (--db)' })
    }
    const tables = await distributedTables(client)
    const table = chooseTable(tables, options)
    const tenant = await tenantId(client, options)
    const colocated = tables.filter((t) => t.colocation === table.colocation).map((t) => t.name)
    const mode = await transferMode(client, options.transferMode ?? 'auto')
    const before = await shardOf(client, table, tenant)
    let isolated = false
    let isolateMs = 0
    if (!before.alone) {
      progress('isolating', `splitting shard ${before.shardId} of ${colocated.length} colocated table(s) on ${before.node} (${mode})`)
      const t0 = performance.now()
      await client.query(`SELECT pg_catalog.isolate_tenant_to_new_shard($1::oid::pg_catalog.regclass, $2::text, 'CASCADE', shard_transfer_mode => $3::citus.shard_transfer_mode)`, [table.oid, tenant, mode])
      isolateMs = performance.now() - t0
      isolated = true
    }
    const after = await shardOf(client, table, tenant)
    progress('isolated', `shard ${after.shardId} holds only this tenant, on ${after.node}`)
    let movedFrom: string | null = null
    let moveMs: number | null = null
    let node = after.node
    if (options.moveTo !== undefined) {
      const target = parseNode(options.moveTo)
      const known = (await client.query(`SELECT 1 FROM pg_catalog.pg_dist_node WHERE nodename = $1 AND nodeport = $2 AND noderole = 'primary' AND isactive AND shouldhaveshards`, [target.host, target.port])).rowCount === 1
      if (!known) {
        const nodes = (await client.query<{ n: string }>(`SELECT nodename || ':' || nodeport AS n FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive AND shouldhaveshards ORDER BY 1`)).rows.map((r) => r.n)
        throw new TenantizeError(ErrorCodes.USAGE, `${options.moveTo} is not an active node that may have shards`, { object: '--move-to', fix: `name one of: ${nodes.join(', ')}` })
      }
      if (`${target.host}:${target.port}` !== after.node) {
        const source = parseNode(after.node)
        progress('moving', `moving shard ${after.shardId} and its colocated shards from ${after.node} to ${options.moveTo} (${mode})`)
        const t0 = performance.now()
        await client.query('SELECT pg_catalog.citus_move_shard_placement($1::bigint, $2, $3, $4, $5, shard_transfer_mode => $6::citus.shard_transfer_mode)', [after.shardId, source.host, source.port, target.host, target.port, mode])
        moveMs = performance.now() - t0
        movedFrom = after.node
        node = `${target.host}:${target.port}`
        progress('moved', `on ${node}`)
      }
    }
    return { tenant, table: table.name, shardId: after.shardId, isolated, tables: colocated, transferMode: mode, node, movedFrom, isolateMs, moveMs }
  } finally {
    await client.end().catch(() => undefined)
  }
}
