import type { Command } from 'commander'
import { z } from 'zod'
import { runDemo } from '../../demo/demo.js'
import { redactUrl } from '../../db/url.js'
import { SIGNAL_EXIT } from '../interrupt.js'
import { line, type CliIO } from '../io.js'
import { parseOptions } from '../options.js'

const schema = z.object({
  keep: z.boolean().default(false),
  db: z.string().optional(),
  out: z.string().min(1).optional(),
  json: z.boolean().default(false),
})

/** `tenantize demo`: the whole job on an embedded PostgreSQL with the energy-billing example. */
export function registerDemo(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description('the whole job in one command: an embedded PostgreSQL (no server needed), the energy-billing example, init → plan → apply → verify, and the proof that tenants are isolated')
    .option('--keep', 'leave the server running and print how to connect; Ctrl-C stops it and cleans up')
    .option('--db <url>', 'run on an existing server instead, in a new database')
    .option('--json', 'progress on stderr; one JSON object on stdout: database URL, report file, verify errors, the proof')
    .option('--out <dir>', 'where to write the HTML verify report (default: a new folder under the system temp dir, printed)')
    .action(async (raw: unknown) => {
      const o = parseOptions(schema, raw)
      if (o.keep && o.db !== undefined) {
        line(io.stderr, 'TZ_USAGE --keep: only applies to the embedded server; with --db the demo database stays on your server')
        setExit(2)
        return
      }
      // Ctrl-C while the embedded server runs: stop it, remove its files, and say so.
      let server: { readonly dataDir: string; stop(): Promise<void> } | undefined
      const onSignal = (name: 'SIGINT' | 'SIGTERM'): void => {
        void (async () => {
          if (server !== undefined) {
            await server.stop()
            line(io.stderr, `${name}: stopped the embedded PostgreSQL and removed its files (${server.dataDir})`)
          } else line(io.stderr, `${name}: stopped`)
          process.exit(SIGNAL_EXIT[name])
        })()
      }
      const onInt = (): void => onSignal('SIGINT')
      const onTerm = (): void => onSignal('SIGTERM')
      process.on('SIGINT', onInt)
      process.on('SIGTERM', onTerm)
      let result: Awaited<ReturnType<typeof runDemo>>
      try {
        result = await runDemo({ ...(o.db === undefined ? {} : { databaseUrl: o.db }), keep: o.keep, ...(o.out === undefined ? {} : { outDir: o.out }), say: (l) => line(o.json ? io.stderr : io.stdout, l), onServer: (s) => (server = s) })
      } finally {
        process.off('SIGINT', onInt)
        process.off('SIGTERM', onTerm)
      }
      if (o.json) line(io.stdout, JSON.stringify({ url: result.url, reportFile: result.reportFile, verifyErrors: result.verifyErrors, appRole: result.appRole, proof: result.proof, ...(result.left === undefined ? {} : { left: result.left }) }))
      else if (result.left !== undefined) {
        // The database and the app role stay on the user's server for inspection: say how to remove them.
        line(io.stdout, `\nThe demo database stays on your server: ${result.url}`)
        line(io.stdout, `Remove it and the demo's app role ${result.appRole} (in this order; the role has privileges only there):`)
        line(io.stdout, `  psql "${redactUrl(o.db!)}" ${result.left.cleanup.map((s) => `-c '${s}'`).join(' ')}`)
      }
      if (o.keep && o.db === undefined) {
        const tenant = result.proof.tenantA.id
        line(io.stdout, `\nThe demo database is running: ${result.url}`)
        line(io.stdout, `  psql "${result.url}" -c 'SELECT * FROM tenantize.status'`)
        line(io.stdout, `  psql "${result.url}" -c "BEGIN; SET LOCAL ROLE ${result.appRole}; SELECT set_config('${result.setting}', '${tenant}', true); SELECT count(*) FROM meter_reading; COMMIT"`)
        line(io.stdout, 'Press Ctrl-C to stop the server and remove its files.')
        await new Promise<void>((resolve) => {
          const done = (): void => resolve()
          process.once('SIGINT', done)
          process.once('SIGTERM', done)
        })
        await result.stop()
        line(io.stdout, `Stopped; removed ${server?.dataDir ?? 'its files'}.`)
      }
      setExit(result.verifyErrors > 0 || result.proof.noContext > 0 || result.proof.crossTenantUpdate > 0 ? 1 : 0)
    })
}
