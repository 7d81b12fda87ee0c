import { access } from 'node:fs/promises'
import type { Command } from 'commander'
import { z } from 'zod'
import { resolveDatabaseUrl } from '../../db/url.js'
import { doctor } from '../../doctor/doctor.js'
import { DEFAULT_CONFIG_FILE, readConfigFile } from '../config-file.js'
import { line, type CliIO } from '../io.js'
import { parseOptions } from '../options.js'

const schema = z.object({ db: z.string().optional(), config: z.string().min(1).optional(), json: z.boolean().default(false) })

const MARK = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const

/** `tenantize doctor`: server, roles, pooler, extensions, config, ledger and indexes, one line each. */
export function registerDoctor(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('doctor')
    .description('check what a conversion depends on — server version and missing security fixes, roles (migrator, app, app login, system) and their dangerous attributes, a pooler behind the URL, extensions, the config against the catalog, the ledger, invalid indexes — one line each: ok, warn or FAIL with the fix; exit 1 on a FAIL')
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--config <file>', 'config file (default: ./tenantize.config.json when it exists; without one, roles and tables are not checked)')
    .option('--json', 'one JSON object: { checks: [{ check, status, message, fix }], healthy }')
    .action(async (raw: unknown) => {
      const o = parseOptions(schema, raw)
      const file = o.config ?? ((await access(DEFAULT_CONFIG_FILE).then(() => true, () => false)) ? DEFAULT_CONFIG_FILE : undefined)
      const report = await doctor({ databaseUrl: resolveDatabaseUrl(o.db, io.env), config: file === undefined ? undefined : await readConfigFile(file) })
      if (o.json) line(io.stdout, JSON.stringify(report, null, 2))
      else {
        const width = Math.max(...report.checks.map((c) => c.check.length))
        for (const c of report.checks) line(io.stdout, `${MARK[c.status]}  ${c.check.padEnd(width)}  ${c.message}${c.fix === null ? '' : ` — fix: ${c.fix}`}`)
        if (file === undefined) line(io.stdout, `(no ${DEFAULT_CONFIG_FILE}: roles, tables and the config were not checked; pass --config FILE)`)
        const n = (s: string): number => report.checks.filter((c) => c.status === s).length
        line(io.stdout, `${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failed`)
      }
      setExit(report.healthy ? 0 : 1)
    })
}
