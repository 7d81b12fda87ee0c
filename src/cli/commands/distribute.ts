import type { Command } from 'commander'
import { z } from 'zod'
import { distribute, type DistributeProgress } from '../../citus/distribute.js'
import { resolveDatabaseUrl } from '../../db/url.js'
import { DEFAULT_CONFIG_FILE, readConfigFile } from '../config-file.js'
import { line, type CliIO } from '../io.js'
import { duration, parseOptions } from '../options.js'

const distributeSchema = z.object({
  db: z.string().optional(),
  config: z.string().min(1).default(DEFAULT_CONFIG_FILE),
  dryRun: z.boolean().default(false),
  lockTimeout: duration.default(1000),
  json: z.boolean().default(false),
})

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

/**
 * `tenantize distribute`: a database converted on PostgreSQL (`tenantize apply`), now on a Citus coordinator,
 * distributed online by its tenant column (src/citus/distribute.ts). Register it: `registerDistribute(program, io, setExit)`.
 */
export function registerDistribute(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('distribute')
    .description('Citus: distribute a converted database online — policies in the shape Citus accepts, global tables and the tenant table as reference tables, tenant tables by the tenant column with create_distributed_table_concurrently (writes go on), colocated; resumable')
    .option('--db <url>', 'the Citus coordinator (default: $DATABASE_URL)')
    .option('--config <file>', 'the config the database was converted with', DEFAULT_CONFIG_FILE)
    .option('--dry-run', 'check the preconditions and list the steps (done or to do) with their locks; change nothing')
    .option('--lock-timeout <duration>', 'lock_timeout of the steps that lock briefly, retried with back-off (e.g. 1s, 500ms)', '1s')
    .option('--json', 'JSON output')
    .action(async (raw: unknown) => {
      const o = parseOptions(distributeSchema, raw)
      const config = await readConfigFile(o.config)
      const onProgress = o.json
        ? undefined
        : (e: DistributeProgress): void => {
            if (e.status === 'running') line(io.stdout, `${seconds(e.elapsedMs).padStart(6)}  ${e.step}: ${e.title} [${e.lock}; ${e.lockHeld}]`)
            else if (e.status === 'done') line(io.stdout, `${seconds(e.elapsedMs).padStart(6)}  ${e.step}: done in ${seconds(e.stepMs ?? 0)}`)
            else line(io.stdout, `${seconds(e.elapsedMs).padStart(6)}  ${e.step}: done already`)
          }
      const result = await distribute({ databaseUrl: resolveDatabaseUrl(o.db, io.env), config, dryRun: o.dryRun, timeouts: { lockTimeoutMs: o.lockTimeout }, ...(onProgress === undefined ? {} : { onProgress }) })
      if (o.json) line(io.stdout, JSON.stringify(result, null, 2))
      else if (o.dryRun) for (const s of result.steps) line(io.stdout, `${s.status === 'skipped' ? 'done   ' : 'to do  '} ${s.id}: ${s.title} [${s.lock}; ${s.lockHeld}]`)
      else {
        const applied = result.steps.filter((s) => s.status === 'applied').length
        line(io.stdout, applied === 0 ? `nothing to do: ${result.distributed.length} tenant table(s) distributed (colocation group ${result.colocationId ?? '-'}), ${result.reference.length} reference table(s)` : `distributed: ${applied} step(s) applied; ${result.distributed.length} tenant table(s) in colocation group ${result.colocationId ?? '-'}, ${result.reference.length} reference table(s)`)
      }
      setExit(0)
    })
}
