/**
 * What row-level security costs in the database (goals 1 and 5 of issue #14), measured as the issue did —
 * pgbench -M prepared, one client, each transaction `BEGIN; SET LOCAL ROLE app; set_config(…); <query>;
 * COMMIT` — but with every variant of a query in ONE pgbench run (one script each, picked at random
 * transaction by transaction), so they share whatever else the machine is doing; the value is the ratio
 * of their average latencies.
 *
 * Five copies of the same table — 200,000 rows over two tenants, indexes (org_id, id) and (org_id, grp):
 * `items_plain` without row-level security, queried hand-filtered (`WHERE org_id = '<A>' AND …`), and one
 * per policy shape, queried without the filter:
 * - tenantize: `org_id OPERATOR(pg_catalog.=) (SELECT CASE WHEN pg_catalog.current_setting(…) … END)`, the
 *   helper's body written out, as `plan` writes it (goal ≤ 1.03; ≤ 1.10 for the sequential scan);
 * - helper in a sub-select: `(SELECT tenantize.current_tenant_id())` with the same SQL-standard body, which
 *   the planner inlines (what `plan` wrote before);
 * - pinned helper: the same with a helper that has `SET search_path` (what `plan` wrote before that);
 * - seed: unwrapped `current_setting(…)::uuid`, and a VOLATILE plpgsql helper — what the seeds did.
 * The primary-key lookup once more with every statement planned, as node-postgres, Kysely, Drizzle and
 * Prisma send them (unnamed statements), so the policy's planning cost shows: measured as the backend's
 * CPU time per statement (/proc/<pid>/schedstat), which waiting for a CPU on a loaded machine does not
 * change, where the server runs on this machine.
 * Inserts (goal 5): rows whose tenant comes from the context (column default, WITH CHECK) into a table
 * with the tenantize policy ÷ plain inserts with the tenant written out, as throughput (≥ 0.9 one row,
 * ≥ 0.8 for 1,000 rows).
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { connect, withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer } from '../src/db/test-server.js'
import { quoteIdent } from '../src/sql/index.js'
import type { BenchMeasure } from './result.js'

const ROWS = 200_000
const A = '00000000-0000-4000-8000-00000000000a'
const SECONDS = 12

const POLICIES = {
  // Keep in step with policyExpr in src/plan/plan.ts (test/policy-shape.test.ts asserts that text).
  tenantize: "org_id OPERATOR(pg_catalog.=) (SELECT CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END)",
  'helper in a sub-select': 'org_id OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id())',
  'pinned helper': 'org_id = (SELECT tenantize.current_tenant_id_pinned())',
  'seed: unwrapped current_setting': "org_id = current_setting('tenantize.tenant_id')::uuid",
  'seed: volatile plpgsql helper': 'org_id = tenantize.seed_tenant()',
} as const
type Shape = keyof typeof POLICIES
const SHAPES = Object.keys(POLICIES) as Shape[]
const tableOf = (shape: Shape): string => `items_${SHAPES.indexOf(shape)}`

/** Query shapes: `rls` over the policy's table `T`, and the same hand-filtered over `items_plain`. */
const QUERIES: readonly { name: string; limit: number; rls: string; hand: string }[] = [
  { name: 'primary-key lookup', limit: 1.03, rls: 'SELECT id, body FROM T WHERE id = :id', hand: `SELECT id, body FROM items_plain WHERE org_id = '${A}' AND id = :id` },
  { name: 'list page (50 rows by key)', limit: 1.03, rls: 'SELECT id, body FROM T WHERE id > :id ORDER BY id LIMIT 50', hand: `SELECT id, body FROM items_plain WHERE org_id = '${A}' AND id > :id ORDER BY id LIMIT 50` },
  { name: 'count (1,000 rows)', limit: 1.03, rls: 'SELECT count(*) FROM T WHERE grp = :g', hand: `SELECT count(*) FROM items_plain WHERE org_id = '${A}' AND grp = :g` },
  {
    // The row and the row its group points at, as a child joins its parent (b.id = a.grp). A join clause
    // with an expression that is not LEAKPROOF (b.id = a.id + 1: int8pl can raise an error) cannot be an
    // index condition under a policy: PostgreSQL falls back to a hash join over the tenant (15× here).
    name: 'join by key',
    limit: 1.03,
    rls: 'SELECT a.id, b.body FROM T a JOIN T b ON b.id = a.grp WHERE a.id = :id',
    hand: `SELECT a.id, b.body FROM items_plain a JOIN items_plain b ON b.id = a.grp AND b.org_id = '${A}' WHERE a.org_id = '${A}' AND a.id = :id`,
  },
  { name: 'sequential scan (LIKE over the tenant)', limit: 1.1, rls: "SELECT count(*) FROM T WHERE body LIKE '%ab%'", hand: `SELECT count(*) FROM items_plain WHERE org_id = '${A}' AND body LIKE '%ab%'` },
]

const INSERTS: readonly { name: string; min: number; rls: string; plain: string }[] = [
  { name: 'one row', min: 0.9, rls: "INSERT INTO ins (body) VALUES ('x')", plain: `INSERT INTO ins_plain (org_id, body) VALUES ('${A}', 'x')` },
  { name: '1,000 rows', min: 0.8, rls: "INSERT INTO ins (body) SELECT 'x' FROM generate_series(1, 1000)", plain: `INSERT INTO ins_plain (org_id, body) SELECT '${A}', 'x' FROM generate_series(1, 1000)` },
]

const run = promisify(execFile)

export default async function policyShapeBench(): Promise<readonly BenchMeasure[]> {
  try {
    await run('pgbench', ['--version'])
  } catch {
    return [{ name: 'skipped: pgbench is not installed', value: 0, unit: '' }]
  }
  const server = await resolveTestServer()
  const dir = await mkdtemp(join(tmpdir(), 'tenantize-bench-'))
  try {
    const db = await createScratchDatabase(server.url, 'bench_policy')
    const app = `${db.name}_app`
    try {
      const version = await withClient(db.url, async (c) => {
        await c.query(`
          CREATE ROLE ${quoteIdent(app)} NOLOGIN;
          CREATE SCHEMA tenantize;
          GRANT USAGE ON SCHEMA tenantize TO ${quoteIdent(app)};
          CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE
            RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) ''
              THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
          CREATE FUNCTION tenantize.current_tenant_id_pinned() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog
            AS $$ SELECT NULLIF(pg_catalog.current_setting('tenantize.tenant_id', true), '')::uuid $$;
          CREATE FUNCTION tenantize.seed_tenant() RETURNS uuid LANGUAGE plpgsql
            AS $$ BEGIN RETURN current_setting('tenantize.tenant_id')::uuid; END $$;
          CREATE TABLE items_plain (org_id uuid NOT NULL, id bigint PRIMARY KEY, grp int NOT NULL, body text NOT NULL);
          CREATE INDEX items_plain_org_id_id ON items_plain (org_id, id);
          CREATE INDEX items_plain_org_id_grp ON items_plain (org_id, grp);
          INSERT INTO items_plain SELECT CASE WHEN g <= ${ROWS / 2} THEN '${A}'::uuid ELSE '00000000-0000-4000-8000-00000000000b' END, g, g % 100, md5(g::text) FROM generate_series(1, ${ROWS}) g;
          GRANT SELECT ON items_plain TO ${quoteIdent(app)};
          ${SHAPES.map((shape) => `
          CREATE TABLE ${tableOf(shape)} (LIKE items_plain INCLUDING ALL);
          INSERT INTO ${tableOf(shape)} SELECT * FROM items_plain;
          ALTER TABLE ${tableOf(shape)} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
          CREATE POLICY tenant_isolation ON ${tableOf(shape)} TO ${quoteIdent(app)} USING (${POLICIES[shape]}) WITH CHECK (${POLICIES[shape]});
          GRANT SELECT ON ${tableOf(shape)} TO ${quoteIdent(app)};`).join('')}
          CREATE TABLE ins (org_id uuid NOT NULL DEFAULT tenantize.current_tenant_id(), id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
          CREATE INDEX ins_org_id_id ON ins (org_id, id);
          CREATE TABLE ins_plain (LIKE ins INCLUDING ALL);
          ALTER TABLE ins_plain ALTER COLUMN org_id DROP DEFAULT;
          ALTER TABLE ins ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
          CREATE POLICY tenant_isolation ON ins TO ${quoteIdent(app)} USING (${POLICIES.tenantize}) WITH CHECK (${POLICIES.tenantize});
          GRANT SELECT, INSERT ON ins, ins_plain TO ${quoteIdent(app)};`)
        for (const t of ['items_plain', ...SHAPES.map(tableOf)]) await c.query(`VACUUM ANALYZE ${t}`)
        return (await withClient(db.url, (d) => d.query<{ v: string }>(`SELECT current_setting('server_version') AS v`))).rows[0]?.v ?? '?'
      })

      let scripts = 0
      /** One pgbench run, one script per statement picked at random per transaction: each one's average latency (ms). */
      const latencies = async (statements: readonly string[], seconds = SECONDS): Promise<number[]> => {
        const files: string[] = []
        for (const statement of statements) {
          const file = join(dir, `s${scripts++}.sql`)
          await writeFile(file, `\\set id random(1, ${ROWS / 2 - 60})\n\\set g random(0, 99)\nBEGIN;\nSET LOCAL ROLE ${quoteIdent(app)};\nSELECT set_config('tenantize.tenant_id', '${A}', true);\n${statement};\nCOMMIT;\n`)
          files.push('-f', `${file}@1`)
        }
        const { stdout } = await run('pgbench', ['-n', '-M', 'prepared', '-c', '1', '-T', String(seconds), ...files, db.url])
        const found = [...stdout.matchAll(/SQL script \d+:[\s\S]*?latency average = ([\d.]+) ms/g)].map((m) => Number(m[1]))
        if (found.length !== statements.length) throw new Error(`pgbench printed ${found.length} latencies for ${statements.length} scripts: ${stdout}`)
        return found
      }

      const measures: BenchMeasure[] = []
      for (const q of QUERIES) {
        const statements = [q.hand, ...SHAPES.map((shape) => q.rls.replaceAll(' T', ` ${tableOf(shape)}`))]
        const [handMs, ...shapeMs] = await latencies(statements)
        for (const [i, shape] of SHAPES.entries()) {
          const value = shapeMs[i]! / handMs!
          console.error(`# policy-shape: ${q.name}: ${shape} ${value.toFixed(3)}× (${shapeMs[i]!.toFixed(3)} vs ${handMs!.toFixed(3)} ms)`)
          measures.push({
            name: `${q.name}: ${shape} ÷ hand-filtered`,
            value,
            unit: '×',
            ...(shape === 'tenantize' ? { limit: q.limit } : {}),
            note: `${shapeMs[i]!.toFixed(3)} vs ${handMs!.toFixed(3)} ms per transaction, one pgbench -M prepared run of ${SECONDS} s; PostgreSQL ${version}`,
          })
        }
      }
      measures.push(...(await plannedEachTime(db.url, app)))
      for (const ins of INSERTS) {
        const [plainMs, rlsMs] = await latencies([ins.plain, ins.rls])
        const value = plainMs! / rlsMs!
        console.error(`# policy-shape: insert ${ins.name}: ${value.toFixed(3)} (${rlsMs!.toFixed(3)} vs ${plainMs!.toFixed(3)} ms)`)
        measures.push({
          name: `insert ${ins.name}, tenant from context under RLS ÷ plain insert (throughput)`,
          value,
          unit: '×',
          min: ins.min,
          note: `${rlsMs!.toFixed(3)} vs ${plainMs!.toFixed(3)} ms per transaction, one pgbench -M prepared run of ${SECONDS} s`,
        })
      }
      return measures
    } finally {
      await db.drop()
      await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(app)}`))
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
    await server.stop()
  }
}

/**
 * The primary-key lookup planned every time (one unnamed statement each, simple protocol), per policy shape
 * and hand-filtered: the backend's CPU per statement, from /proc/<pid>/schedstat (the server must run on
 * this machine; otherwise nothing is measured), in alternating rounds, the median round of each.
 */
async function plannedEachTime(url: string, app: string): Promise<BenchMeasure[]> {
  const PER_ROUND = 2000
  const ROUNDS = 7
  const shapes = SHAPES.slice(0, 3)
  const client = await connect(url)
  try {
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    const cpuNs = async (): Promise<number> => Number((await readFile(`/proc/${pid}/schedstat`, 'utf8')).split(' ')[0])
    try {
      await cpuNs()
    } catch {
      return [{ name: 'primary-key lookup, planned each time: skipped (the server does not run on this machine: no /proc/<pid>/schedstat)', value: 0, unit: '' }]
    }
    const round = async (table: string | null): Promise<number> => {
      await client.query('BEGIN')
      await client.query(`SET LOCAL ROLE ${quoteIdent(app)}`)
      await client.query(`SELECT set_config('tenantize.tenant_id', '${A}', true)`)
      const before = await cpuNs()
      for (let i = 0; i < PER_ROUND; i++) {
        const id = 1 + ((i * 7919) % (ROWS / 2))
        await client.query(table === null ? `SELECT id, body FROM items_plain WHERE org_id = '${A}' AND id = ${id}` : `SELECT id, body FROM ${table} WHERE id = ${id}`)
      }
      const used = (await cpuNs()) - before
      await client.query('COMMIT')
      return used / PER_ROUND / 1000
    }
    const samples = new Map<string, number[]>([['hand', []], ...shapes.map((s): [string, number[]] => [s, []])])
    for (let r = 0; r < ROUNDS; r++) {
      samples.get('hand')!.push(await round(null))
      for (const shape of shapes) samples.get(shape)!.push(await round(tableOf(shape)))
    }
    const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
    const hand = median(samples.get('hand')!)
    return shapes.map((shape) => {
      const us = median(samples.get(shape)!)
      console.error(`# policy-shape: primary-key lookup, planned each time, backend CPU: ${shape} ${(us / hand).toFixed(3)}× (${us.toFixed(1)} vs ${hand.toFixed(1)} µs)`)
      return {
        name: `primary-key lookup, planned each time (unnamed statements): ${shape} ÷ hand-filtered, backend CPU`,
        value: us / hand,
        unit: '×',
        note: `${us.toFixed(1)} vs ${hand.toFixed(1)} µs of the backend's CPU per statement, median of ${ROUNDS} alternating rounds of ${PER_ROUND}`,
      }
    })
  } finally {
    await client.end()
  }
}
