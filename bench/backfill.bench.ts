/**
 * Backfill throughput (goal 4 of issue #14): the plan's batched keyset backfill of a child table's tenant
 * column ÷ one big UPDATE of the same rows, as rows per second (goal ≥ 0.5).
 *
 * `organizations` (the tenant table, two tenants), `projects` (1,000 rows with `org_id`) and `tasks` (500,000
 * rows, child of projects: its `org_id` is derived from the project's). The plan's steps up to the
 * backfill of `tasks` run first; then the backfill runs as `apply` runs it — batches of the configured
 * size, each its own transaction, with apply's default 10 ms pause between them (its progress row left
 * out). Then the column is emptied again, the table vacuumed, and one `UPDATE … FROM projects` fills it.
 */
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { withClient } from '../src/db/connect.js'
import { createScratchDatabase } from '../src/db/provision.js'
import { resolveTestServer } from '../src/db/test-server.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import type { BenchMeasure } from './result.js'

const ROWS = 500_000
const PAUSE_MS = 10
const DEFAULT_TENANT = '00000000-0000-4000-8000-0000000000b1'

export default async function backfillBench(): Promise<readonly BenchMeasure[]> {
  const server = await resolveTestServer()
  try {
    const db = await createScratchDatabase(server.url, 'bench_backfill')
    const client = new pg.Client(db.url)
    await client.connect()
    try {
      await client.query(`
        CREATE TABLE organizations (id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, name text NOT NULL);
        INSERT INTO organizations VALUES ('${DEFAULT_TENANT}', 'default', 'Default'), ('00000000-0000-4000-8000-0000000000b2', 'other', 'Other');
        CREATE TABLE projects (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations (id), name text NOT NULL);
        CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects (id), body text NOT NULL);
        CREATE INDEX tasks_project_id ON tasks (project_id);
        INSERT INTO projects SELECT g, CASE WHEN g % 2 = 0 THEN '${DEFAULT_TENANT}'::uuid ELSE '00000000-0000-4000-8000-0000000000b2' END, 'project ' || g FROM generate_series(1, 1000) g;
        INSERT INTO tasks SELECT g, 1 + g % 1000, md5(g::text) FROM generate_series(1, ${ROWS}) g;`)
      await client.query('VACUUM ANALYZE tasks')
      const catalog = await introspect(client)
      // The tenant table exists: the plan derives each child's tenant from its parent (the backfill).
      const config = parseConfig(proposeConfig(catalog, { defaultTenantId: DEFAULT_TENANT, appRole: `${db.name}_app`, tenantTable: { schema: 'public', name: 'organizations' } }).config)
      const steps = planConversion(catalog, config).steps
      const at = steps.findIndex((s) => s.backfill !== undefined && s.table === 'public.tasks')
      if (at < 0) throw new Error(`no backfill of public.tasks in the plan: ${steps.map((s) => s.id).join(', ')}`)
      for (const s of steps.slice(0, at)) {
        if (s.backfill !== undefined) throw new Error(`unexpected backfill before tasks: ${s.id}`)
        if (s.transactional) await client.query('BEGIN')
        for (const sql of s.up) await client.query(sql)
        if (s.transactional) await client.query('COMMIT')
      }
      const spec = steps[at]!.backfill!
      const size = config.batchSize
      const upper = Object.values((await client.query<Record<string, string>>(spec.upperKeySql)).rows[0] ?? {})
      let last: (string | null)[] = spec.keyColumns.map(() => null)
      let filled = 0
      let batches = 0
      const t0 = performance.now()
      for (;;) {
        await client.query('BEGIN')
        const row = (await client.query<Record<string, string | number>>(spec.batchSql, [...last, size, ...upper])).rows[0]
        await client.query('COMMIT')
        if (row === undefined) break
        filled += Number(row['updated'])
        batches++
        last = spec.keyColumns.map((_, i) => String(row[`k${i + 1}`]))
        await new Promise((resolve) => setTimeout(resolve, PAUSE_MS))
      }
      const backfillMs = performance.now() - t0
      if (filled !== ROWS) throw new Error(`the backfill filled ${filled} rows, expected ${ROWS}`)

      const column = config.tenant.column
      await client.query(`UPDATE tasks SET ${pg.escapeIdentifier(column)} = NULL`)
      await client.query('VACUUM ANALYZE tasks')
      const t1 = performance.now()
      const big = await client.query(`UPDATE tasks AS c SET ${pg.escapeIdentifier(column)} = p.${pg.escapeIdentifier(column)} FROM projects AS p WHERE p.id = c.project_id`)
      const bigMs = performance.now() - t1
      if (big.rowCount !== ROWS) throw new Error(`the big UPDATE changed ${big.rowCount} rows`)
      const version = (await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '?'
      const rate = (ms: number): string => `${Math.round(ROWS / (ms / 1000)).toLocaleString('en')} rows/s`
      console.error(`# backfill: batched ${rate(backfillMs)} (${batches} batches of ${size}), one UPDATE ${rate(bigMs)}`)
      return [
        {
          name: `batched backfill ÷ one big UPDATE, ${ROWS.toLocaleString('en')} rows (throughput)`,
          value: bigMs / backfillMs,
          unit: '×',
          min: 0.5,
          note: `${rate(backfillMs)} (${batches} batches of ${size.toLocaleString('en')}, ${PAUSE_MS} ms pauses) vs ${rate(bigMs)}; PostgreSQL ${version} (${server.kind})`,
        },
      ]
    } finally {
      await client.end()
      await db.drop()
      await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(`${db.name}_app`)}`)).catch(() => undefined)
    }
  } finally {
    await server.stop()
  }
}
