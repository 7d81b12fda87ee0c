import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after } from 'node:test'
import pg from 'pg'
import type { Generate } from '../../examples/shared/generator.js'
import { conversionStatus, type ConversionStatus } from '../../src/apply/index.js'
import { introspect } from '../../src/catalog/index.js'
import { proposeConfig } from '../../src/plan/classify.js'
import { parseConfig, splitKey, type TenantizeConfig } from '../../src/plan/config.js'
import { planConversion } from '../../src/plan/plan.js'
import type { Plan } from '../../src/plan/steps.js'
import { tenantPool, type TenantPool } from '../../src/runtime/pg.js'
import { qualifiedName, quoteIdent } from '../../src/sql/quote.js'
import { exitCodeFor, verify } from '../../src/verify/index.js'
import type { TestDatabase } from './db.js'

/** Short lock timeouts and quick retries: the examples' writers hold their locks for milliseconds. */
export const fast = { lockTimeoutMs: 500, retryDelayMs: 50, tries: 20 }

const exampleFile = (example: string, file: string): URL => new URL(`../../examples/${example}/${file}`, import.meta.url)

/** Load the example's schema.sql, then its generator's `small` data, then ANALYZE (for the plan's estimates). */
export async function loadExample(t: TestDatabase, example: string, generate: Generate): Promise<Record<string, number>> {
  await t.sql(await readFile(exampleFile(example, 'schema.sql'), 'utf8'))
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    const counts = await generate(client, { scale: 'small' })
    await client.query('ANALYZE')
    return counts
  } finally {
    await client.end()
  }
}

/**
 * The example's committed tenantize.config.json with `roles.app` replaced by a role unique to this
 * database (roles are cluster-wide and tests run in parallel); the role is dropped after the file.
 */
export async function exampleConfig(t: TestDatabase, example: string): Promise<TenantizeConfig> {
  const raw = JSON.parse(await readFile(exampleFile(example, 'tenantize.config.json'), 'utf8')) as { roles: Record<string, unknown> }
  const role = `${t.name}_app`
  after(async () => {
    // Its privileges first (when the test database is still there), then the role, from the admin database.
    await t.sql(`DROP OWNED BY ${quoteIdent(role)}`).catch(() => undefined)
    const client = new pg.Client(t.adminUrl)
    await client.connect()
    try {
      await client.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => undefined)
    } finally {
      await client.end()
    }
  })
  return parseConfig({ ...raw, roles: { ...raw.roles, app: role } }, `examples/${example}/tenantize.config.json`)
}

/** init's proposal for `t` as it is (defaults, a tenant table init creates, default tenant …0a), with the file's app role. */
export async function proposedConfig(t: TestDatabase): Promise<TenantizeConfig> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    return parseConfig(proposeConfig(await introspect(client), { defaultTenantId: '00000000-0000-4000-8000-00000000000a', appRole: t.role('app') }).config)
  } finally {
    await client.end()
  }
}

/** `"schema"."table"` of a config key. */
export function tableSql(key: string): string {
  const { schema, name } = splitKey(key)
  return qualifiedName(schema, name)
}

/** Every table of the config that exists before the conversion (the tenant table only when it is not created). */
export function existingTables(config: TenantizeConfig): string[] {
  return Object.keys(config.tables).sort().map(tableSql)
}

/** The plan `apply` would run now. */
export async function planFor(url: string, config: TenantizeConfig): Promise<Plan> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return planConversion(await introspect(client), config)
  } finally {
    await client.end()
  }
}

/** An app of the old kind (no tenant context, no tenant column) that keeps writing until stopped, `pauseMs` between writes. */
export function oldAppWriter(url: string, statement: (i: number) => { text: string; values?: unknown[] }, options: { pauseMs?: number } = {}): { stop(): Promise<number> } {
  let running = true
  let written = 0
  const done = (async () => {
    const client = new pg.Client(url)
    await client.connect()
    try {
      while (running) {
        const { text, values } = statement(written)
        await client.query(text, values)
        written++
        if (options.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.pauseMs))
      }
    } finally {
      await client.end()
    }
  })()
  return {
    async stop() {
      running = false
      await done
      return written
    },
  }
}

/** The application's view of the database: a pg.Pool whose connections `SET ROLE` to the app role, wrapped by `tenantPool`. */
export interface AppDatabase {
  readonly pool: pg.Pool
  readonly db: TenantPool
  end(): Promise<void>
}

export function appDatabase(url: string, role: string): AppDatabase {
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  pool.on('connect', (client) => {
    client.query(`SET ROLE ${quoteIdent(role)}`).catch((error: unknown) => client.emit('error', error))
  })
  return { pool, db: tenantPool(pool), end: () => pool.end() }
}

/** Every step applied, and every tenant table NOT NULL + RLS enabled + forced + policy + tenant index. */
export async function assertEnforced(url: string, config: TenantizeConfig): Promise<ConversionStatus> {
  const status = await conversionStatus(url)
  assert.ok(status.steps.length > 0 && status.steps.every((s) => s.applied), 'every plan step is applied')
  const tenantTables = Object.entries(config.tables).filter(([, t]) => t.class === 'direct' || t.class === 'child' || t.class === 'root').map(([k]) => k)
  if (config.tenant.create) tenantTables.push(config.tenant.table)
  if (config.tenant.membership !== null) tenantTables.push(config.tenant.membership.table)
  const rows = status.tables.filter((s) => s.class !== 'global' && s.class !== 'excluded')
  assert.deepEqual(rows.map((s) => s.table).sort(), tenantTables.sort(), 'tenantize.status lists every tenant table')
  for (const s of rows) {
    assert.deepEqual(
      { table: s.table, notNull: s.tenantNotNull, rls: s.rlsEnabled, forced: s.rlsForced, policy: s.policyPresent, index: s.tenantIndexPresent },
      { table: s.table, notNull: true, rls: true, forced: true, policy: true, index: true },
    )
  }
  // And tenantize verify agrees: no finding at error level, every live probe check passes.
  const report = await verify({ databaseUrl: url, appRole: config.roles.app, tenantColumn: config.tenant.column, setting: config.tenant.setting })
  assert.deepEqual(report.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.object}`), [], 'verify finds no error')
  assert.equal(exitCodeFor(report, 'error'), 0)
  assert.equal(report.summary.checks.fail + report.summary.checks.error, 0, 'every probe check passes')
  assert.ok(report.summary.checks.pass > 50, 'the probe ran')
  return status
}

/** Row counts per tenant of `table`'s tenant column, as the admin sees them. */
export async function countsByTenant(t: TestDatabase, table: string, column: string): Promise<Map<string, number>> {
  const rows = await t.sql<{ tenant: string; n: string }>(`SELECT ${quoteIdent(column)}::text AS tenant, count(*) AS n FROM ${table} GROUP BY 1`)
  return new Map(rows.map((r) => [r.tenant, Number(r.n)]))
}
