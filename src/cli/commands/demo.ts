import type { Command } from 'commander'
import { z } from 'zod'
import { runDemo } from '../../demo/demo.js'
import { line, type CliIO } from '../io.js'
import { parseOptions } from '../options.js'

const schema = z.object({
  keep: z.boolean().default(false),
  db: z.string().optional(),
  out: z.string().min(1).default('.'),
})

/** `tenantize demo`: the whole job on an embedded PostgreSQL with the energy-billing example. */
export function registerDemo(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description('the whole job in one command: an embedded PostgreSQL (no server needed), the energy-billing example, init → plan → apply → verify, and the proof that tenants are isolated')
    .option('--keep', 'leave the server running and print how to connect; Ctrl-C stops it and cleans up')
    .option('--db <url>', 'run on an existing server instead, in a new database')
    .option('--out <dir>', 'where to write the HTML verify report', '.')
    .action(async (raw: unknown) => {
      const o = parseOptions(schema, raw)
      if (o.keep && o.db !== undefined) {
        line(io.stderr, 'TZ_USAGE --keep: only applies to the embedded server; with --db the demo database stays on your server')
        setExit(2)
        return
      }
      const result = await runDemo({ ...(o.db === undefined ? {} : { databaseUrl: o.db }), keep: o.keep, outDir: o.out, say: (l) => line(io.stdout, l) })
      if (o.keep && o.db === undefined) {
        line(io.stdout, `\nThe demo database is running: ${result.url}`)
        line(io.stdout, `  psql "${result.url}" -c 'SELECT * FROM tenantize.status'`)
        line(io.stdout, `  psql "${result.url}" -c "BEGIN; SET LOCAL ROLE <app role>; SELECT set_config('tenantize.tenant_id', '<tenant id>', true); SELECT count(*) FROM meter_reading; COMMIT"`)
        line(io.stdout, 'Press Ctrl-C to stop the server and remove its files.')
        await new Promise<void>((resolve) => {
          const done = (): void => resolve()
          process.once('SIGINT', done)
          process.once('SIGTERM', done)
        })
        await result.stop()
        line(io.stdout, 'Stopped.')
      }
      setExit(result.verifyErrors > 0 || result.proof.noContext > 0 || result.proof.crossTenantUpdate > 0 ? 1 : 0)
    })
}
