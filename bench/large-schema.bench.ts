/**
 * A large schema (goal 7 of issue #14): the CLI's `init`, `plan`, `apply --phase schema` and `verify` on a
 * generated schema of 1,000 tables — absolute times and each command's peak memory (its process's maximum
 * resident set, from /usr/bin/time, the Node process run through tsx).
 *
 * The schema: the tenant table `organizations` (two tenants); a third of the tables carry `org_id` (direct),
 * the rest reach the tenant through a foreign key to an earlier table (children, some grandchildren), each
 * with a primary key, a unique key, an index on its foreign key and 20 rows, so every kind of step runs
 * (column, backfill, checks, composite keys, indexes). Quick mode generates 100 tables (apply runs about 8 steps per table, each its own transaction with its ledger row: 250 tables took over 2 minutes on a loaded 2-core machine, beyond the quick budget of 5 minutes for all benchmarks together);
 * `--full` the 1,000.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type pg from 'pg'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer } from '../src/db/test-server.js'
import { quoteIdent } from '../src/sql/quote.js'
import type { BenchMeasure, BenchOptions } from './result.js'

const TENANTS = ['00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000c2'] as const
const ROWS = 20

/** The DDL and data of `tables` tables (plus the tenant table). */
export function schemaSql(tables: number): string {
  const name = (i: number): string => `t${String(i).padStart(4, '0')}`
  const out = [
    'CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);',
    `INSERT INTO organizations VALUES ('${TENANTS[0]}', 'a', 'A'), ('${TENANTS[1]}', 'b', 'B');`,
  ]
  for (let i = 1; i <= tables; i++) {
    const t = name(i)
    if (i <= 3 || i % 3 === 0) {
      out.push(`CREATE TABLE ${t} (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id), code text NOT NULL, note text, created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (code));`)
      out.push(`INSERT INTO ${t} (id, org_id, code) SELECT g, CASE WHEN g % 2 = 0 THEN '${TENANTS[0]}'::uuid ELSE '${TENANTS[1]}'::uuid END, 'c' || g FROM generate_series(1, ${ROWS}) g;`)
    } else {
      // A parent among the earlier tables: a direct one, or a child (a grandchild then).
      const parent = name(1 + ((i * 7919) % (i - 1)))
      out.push(`CREATE TABLE ${t} (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES ${parent} (id), code text NOT NULL, amount numeric, created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (parent_id, code));`)
      out.push(`CREATE INDEX ${t}_parent_id ON ${t} (parent_id);`)
      out.push(`INSERT INTO ${t} (id, parent_id, code) SELECT g, 1 + g % ${ROWS}, 'c' || g FROM generate_series(1, ${ROWS}) g;`)
    }
  }
  return out.join('\n')
}

interface Measured { readonly ms: number; readonly peakMiB: number; readonly code: number; readonly output: string }

/** Run one CLI command in its own Node process under /usr/bin/time. */
async function cli(args: readonly string[], env: NodeJS.ProcessEnv, dir: string): Promise<Measured> {
  const timeFile = join(dir, 'time.txt')
  const start = performance.now()
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', timeFile, process.execPath, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url)), ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (c) => resolve(c ?? 1))
  })
  const ms = performance.now() - start
  const kib = Number((await readFile(timeFile, 'utf8')).trim().split('\n').pop())
  return { ms, peakMiB: kib / 1024, code, output }
}

export default async function largeSchema(options: BenchOptions): Promise<BenchMeasure[]> {
  const tables = options.full ? 1000 : 100
  const server = await resolveTestServer()
  const db = await createScratchDatabase(server.url, 'bench_large')
  const role = `${db.name}_app`
  const dir = await mkdtemp(join(tmpdir(), 'tenantize-bench-large-'))
  try {
    await withClient(db.url, async (c: pg.Client) => {
      await c.query(schemaSql(tables))
      await c.query('ANALYZE')
    })
    const env = { ...process.env, DATABASE_URL: db.url, NO_COLOR: '1' }
    const steps: [string, string[]][] = [
      ['init', ['init', '--tenant-table', 'public.organizations', '--app-role', role]],
      ['plan', ['plan']],
      ['apply --phase schema', ['apply', '--phase', 'schema', '--yes']],
      ['verify', ['verify']],
    ]
    const out: BenchMeasure[] = []
    const mode = options.full ? '' : ` (quick mode: ${tables} tables; --full: 1,000)`
    for (const [label, args] of steps) {
      const m = await cli(args, env, dir)
      // verify after the schema phase alone finds the tables without row-level security: exit 1 is expected.
      if (m.code !== 0 && label !== 'verify') throw new Error(`${label} exited ${m.code}: ${m.output.slice(-2000)}`)
      if (label === 'verify' && m.code > 1) throw new Error(`verify exited ${m.code}: ${m.output.slice(-2000)}`)
      console.error(`# large-schema ${tables} tables: ${label} ${m.ms.toFixed(0)} ms, ${m.peakMiB.toFixed(0)} MiB`)
      out.push({ name: `${label}, ${(tables + 1).toLocaleString('en')} tables: time`, value: m.ms, unit: 'ms', note: `a process of its own, run through tsx${mode}` })
      out.push({ name: `${label}, ${(tables + 1).toLocaleString('en')} tables: peak memory`, value: m.peakMiB, unit: 'MiB', note: 'maximum resident set (/usr/bin/time)' })
    }
    const steps2 = await withClient(db.url, (c: pg.Client) => c.query<{ n: string }>(`SELECT count(*) AS n FROM tenantize.migrations WHERE scope = 'apply'`))
    out.push({ name: `steps applied by apply --phase schema`, value: Number(steps2.rows[0]?.n ?? 0), unit: 'steps', note: `${(tables * ROWS).toLocaleString('en')} rows; ${server.kind}` })
    return out
  } finally {
    await rm(dir, { recursive: true, force: true })
    await db.drop()
    await withClient(server.url, (c: pg.Client) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined)
    await server.stop()
  }
}
