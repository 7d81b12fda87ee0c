import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { z } from 'zod'
import { isolateTenant, type IsolateProgress } from '../../citus/isolate.js'
import { resolveDatabaseUrl } from '../../db/url.js'
import { DEFAULT_CONFIG_FILE, readConfigFile } from '../config-file.js'
import { line, type CliIO } from '../io.js'
import { parseOptions } from '../options.js'

const isolateSchema = z.object({
  db: z.string().optional(),
  config: z.string().min(1).optional(),
  json: z.boolean().default(false),
  moveTo: z.string().regex(/^.+:\d{1,5}$/, 'write it as host:port (a node of pg_dist_node)').optional(),
  transferMode: z.enum(['auto', 'block_writes', 'force_logical']).default('auto'),
  table: z.string().min(1).optional(),
})

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

/**
 * `tenantize tenant isolate <tenant> [--move-to host:port]` on a Citus coordinator: the tenant's rows get
 * shards of their own in every colocated table, optionally moved to another node (src/citus/isolate.ts).
 * Register it on the `tenant` command: `registerTenantIsolate(tenant, io, setExit)`.
 */
export function registerTenantIsolate(tenant: Command, io: CliIO, setExit: (code: number) => void): void {
  tenant
    .command('isolate')
    .description('Citus: give a tenant shards of its own in every colocated table (isolate_tenant_to_new_shard), optionally move them to another node; online (writes to its shards wait while they are copied with block_writes)')
    .argument('<tenant>', 'id, or slug (with the config)')
    .option('--db <url>', 'the Citus coordinator (default: $DATABASE_URL)')
    .option('--config <file>', `config file (default: ${DEFAULT_CONFIG_FILE} when it exists): resolves a slug, picks the tenant tables`)
    .option('--move-to <host:port>', 'move the tenant\'s shards to this node (as pg_dist_node names it)')
    .option('--transfer-mode <mode>', 'auto (logical replication when every node has wal_level = logical, else block_writes), block_writes or force_logical', 'auto')
    .option('--table <schema.table>', 'a distributed table of the tenant\'s colocation group (default: from the config, or the only group)')
    .option('--json', 'JSON output')
    .action(async (ref: string, raw: unknown) => {
      const o = parseOptions(isolateSchema, raw)
      const file = o.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined)
      const config = file === undefined ? undefined : await readConfigFile(file)
      const onProgress = o.json ? undefined : (e: IsolateProgress): void => line(io.stdout, `${seconds(e.elapsedMs).padStart(6)}  ${e.phase}: ${e.detail}`)
      const result = await isolateTenant({
        databaseUrl: resolveDatabaseUrl(o.db, io.env),
        tenant: ref,
        transferMode: o.transferMode,
        ...(config === undefined ? {} : { config }),
        ...(o.moveTo === undefined ? {} : { moveTo: o.moveTo }),
        ...(o.table === undefined ? {} : { table: o.table }),
        ...(onProgress === undefined ? {} : { onProgress }),
      })
      if (o.json) line(io.stdout, JSON.stringify(result, null, 2))
      else {
        const split = result.isolated ? `isolated in ${seconds(result.isolateMs)} (${result.transferMode})` : 'already alone in its shard'
        const moved = result.movedFrom === null ? `on ${result.node}` : `moved ${result.movedFrom} → ${result.node} in ${seconds(result.moveMs ?? 0)}`
        line(io.stdout, `tenant ${result.tenant}: shard ${result.shardId} of ${result.table} and its colocated shards (${result.tables.length} table(s)) ${split}; ${moved}`)
      }
      setExit(0)
    })
}
