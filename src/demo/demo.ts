import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type pg from 'pg'
import { apply, conversionStatus } from '../apply/index.js'
import { introspect } from '../catalog/index.js'
import { withClient } from '../db/connect.js'
import { startEmbeddedPostgres, type EmbeddedServer } from '../db/embedded.js'
import { createScratchDatabase } from '../db/provision.js'
import { redactUrl, withDatabase } from '../db/url.js'
import type { MigrateEvent } from '../migrate/index.js'
import { packageRoot } from '../package-info.js'
import { proposeConfig } from '../plan/classify.js'
import { parseConfig, splitKey, type TenantizeConfig } from '../plan/config.js'
import { planConversion } from '../plan/plan.js'
import { qualifiedName, quoteIdent } from '../sql/quote.js'
import { renderHtml } from '../verify/report/index.js'
import { verify } from '../verify/verify.js'

export interface DemoOptions {
  /** Use this server (a new database is created on it) instead of an embedded one. */
  readonly databaseUrl?: string
  /** Leave the embedded server running (the caller stops it). */
  readonly keep?: boolean
  /** Where to write the HTML verify report (default: a new folder under the system temp dir). */
  readonly outDir?: string
  readonly say: (line: string) => void
  /** Called once the embedded server runs, with what stops it and removes its files (for Ctrl-C). */
  readonly onServer?: (server: { readonly dataDir: string; stop(): Promise<void> }) => void
}

export interface DemoProof {
  readonly tenantA: { readonly id: string; readonly readings: number }
  readonly tenantB: { readonly id: string; readonly readings: number }
  readonly crossTenantUpdate: number
  readonly noContext: number
}

export interface DemoResult {
  /** URL of the demo database (no password: the embedded server trusts local connections). */
  readonly url: string
  readonly reportFile: string
  readonly verifyErrors: number
  readonly proof: DemoProof
  /** The app role the demo created, and the tenant that owns the example's rows (for --keep's psql lines). */
  readonly appRole: string
  readonly setting: string
  /**
   * With `databaseUrl`: the demo's database on that server and the statements that remove it and the demo's app
   * role (they stay for inspection; the role only has privileges in that database). Undefined on the embedded server.
   */
  readonly left?: { readonly database: string; readonly cleanup: readonly string[] }
  /** Stops the embedded server (a no-op for --db). */
  stop(): Promise<void>
}

const TENANT_B = '00000000-0000-4000-8000-00000000000b'
const ms = (t: number): string => `${((performance.now() - t) / 1000).toFixed(1)} s`

async function count(client: pg.Client, sql: string): Promise<number> {
  return Number((await client.query<{ n: string }>(sql)).rows[0]?.n ?? 0)
}

/** Run `fn` as the app role with a tenant context (or none), in a transaction that commits. */
async function asApp<T>(url: string, role: string, tenant: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withClient(url, async (c) => {
    await c.query('BEGIN')
    try {
      await c.query(`SET LOCAL ROLE ${quoteIdent(role)}`)
      if (tenant !== null) await c.query(`SELECT set_config('tenantize.tenant_id', $1, true)`, [tenant])
      const result = await fn(c)
      await c.query('COMMIT')
      return result
    } catch (error) {
      await c.query('ROLLBACK').catch(() => undefined)
      throw error
    }
  })
}

/**
 * The whole job on the energy-billing example: an embedded PostgreSQL (or a new database on `--db`), the
 * example's schema and data, init → plan → apply → verify, and the proof that tenants are isolated.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const say = options.say
  const root = packageRoot()
  const example = join(root, 'examples', 'energy-billing')
  let server: EmbeddedServer | undefined
  const started = performance.now()
  let url: string
  let database: string | undefined
  if (options.databaseUrl === undefined) {
    say('▸ starting an embedded PostgreSQL (no server needed)…')
    const t = performance.now()
    server = await startEmbeddedPostgres({ trustLocal: true })
    options.onServer?.(server)
    say(`  PostgreSQL 18 on 127.0.0.1:${server.port} (${ms(t)})`)
    await withClient(server.url, (c) => c.query('CREATE DATABASE tenantize_demo'))
    url = withDatabase(server.url, 'tenantize_demo')
  } else {
    const scratch = await createScratchDatabase(options.databaseUrl, 'demo')
    url = scratch.url
    database = scratch.name
    say(`▸ using ${redactUrl(url)}`)
  }
  const stop = async (): Promise<void> => {
    await server?.stop()
  }
  try {
    say('▸ loading the energy-billing example (single-tenant, small scale)…')
    let t = performance.now()
    // From the build the compiled generator sits under dist/; from source (tsx) it is the .ts file.
    const built = fileURLToPath(import.meta.url).includes(`${sep}dist${sep}`)
    const generatorFile = built ? join(root, 'dist', 'examples', 'energy-billing', 'generate.js') : join(example, 'generate.ts')
    const generator = (await import(pathToFileURL(generatorFile).href)) as { generate(c: pg.Client, o: { scale: 'small' }): Promise<Record<string, number>> }
    const rows = await withClient(url, async (c) => {
      await c.query(await readFile(join(example, 'schema.sql'), 'utf8'))
      return generator.generate(c, { scale: 'small' })
    })
    say(`  ${Object.entries(rows).map(([k, v]) => `${k} ${v}`).join(', ')} (${ms(t)})`)

    say('▸ tenantize init: classifying every table…')
    const reviewed = JSON.parse(await readFile(join(example, 'tenantize.config.json'), 'utf8')) as Record<string, unknown>
    const role = `tenantize_demo_app_${Math.random().toString(36).slice(2, 8)}`
    const config: TenantizeConfig = parseConfig({ ...reviewed, roles: { app: role, system: null } }, 'examples/energy-billing/tenantize.config.json')
    const catalog = await withClient(url, (c) => introspect(c))
    const proposed = proposeConfig(catalog, { defaultTenantId: config.tenant.default.id, appRole: role })
    const classes = Object.values(proposed.config.tables).reduce<Record<string, number>>((acc, x) => ({ ...acc, [x.class]: (acc[x.class] ?? 0) + 1 }), {})
    say(`  ${Object.entries(classes).map(([k, v]) => `${v} ${k}`).join(', ')}; using the reviewed examples/energy-billing/tenantize.config.json with app role ${role}`)

    say('▸ tenantize plan')
    const plan = planConversion(catalog, config)
    const schemaSteps = plan.steps.filter((s) => s.phase === 'schema').length
    say(`  ${plan.steps.length} steps: ${schemaSteps} schema (online), ${plan.steps.length - schemaSteps} enforce; ${plan.manual.length} manual`)

    for (const phase of ['schema', 'enforce'] as const) {
      say(`▸ tenantize apply --phase ${phase}`)
      t = performance.now()
      let last = ''
      await apply({
        databaseUrl: url,
        config,
        phase,
        onEvent: (e: MigrateEvent) => {
          if (e.event === 'finish' && (e.index % 10 === 0 || e.index === e.total)) say(`  ${e.index}/${e.total} steps`)
          if (e.event === 'progress' && e.migration !== last) {
            last = e.migration
            say(`  backfill ${e.migration.replace(/^\d+_/, '')}: ${e.done}/${e.total} rows`)
          }
        },
      })
      say(`  done (${ms(t)})`)
    }
    const status = await conversionStatus(url)
    const protectedTables = status.tables.filter((x) => x.policyPresent === true && x.rlsForced === true).length
    say(`  ${protectedTables} tables with RLS enabled + forced and a tenant policy`)

    say('▸ tenantize verify (lints + live probe as the app role)')
    t = performance.now()
    const report = await verify({ databaseUrl: url, appRole: role, tenantColumn: config.tenant.column, setting: config.tenant.setting })
    const outDir = options.outDir ?? (await mkdtemp(join(tmpdir(), 'tenantize-demo-')))
    await mkdir(outDir, { recursive: true })
    const reportFile = resolve(outDir, 'tenantize-verify.html')
    await writeFile(reportFile, renderHtml(report))
    const probe = report.summary.checks
    say(`  ${report.summary.error} errors, ${report.summary.warn} warnings, ${report.summary.info} notes; probe ${probe.pass} passed, ${probe.fail} failed (${ms(t)})`)
    say(`  HTML report: ${reportFile}`)

    say('▸ the proof')
    const tenantA = config.tenant.default.id
    const tenantTable = splitKey(config.tenant.table)
    await withClient(url, (c) => c.query(`INSERT INTO ${qualifiedName(tenantTable.schema, tenantTable.name)} (id, slug, name) VALUES ($1, 'demo-b', 'Demo tenant B')`, [TENANT_B]))
    await asApp(url, role, TENANT_B, async (c) => {
      const client = (await c.query<{ id: number }>(`INSERT INTO client (code, name) VALUES ('DEMOB', 'Tenant B Energy') RETURNING id`)).rows[0]!.id
      const customer = (await c.query<{ id: number }>(`INSERT INTO customer (client_id, account_number, meter_number, name, service_address, city, postal_code) VALUES ($1, 'B-0001', 'MB-0001', 'B customer', '1 B Street', 'Bville', '00001') RETURNING id`, [client])).rows[0]!.id
      await c.query(`INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, tou_period) SELECT $1, 'MB-0001', timestamptz '2025-01-01' + g * interval '15 minutes', 1.5, 'off_peak' FROM generate_series(0, 95) g`, [customer])
    })
    const proof: DemoProof = {
      tenantA: { id: tenantA, readings: await asApp(url, role, tenantA, (c) => count(c, 'SELECT count(*) AS n FROM meter_reading')) },
      tenantB: { id: TENANT_B, readings: await asApp(url, role, TENANT_B, (c) => count(c, 'SELECT count(*) AS n FROM meter_reading')) },
      crossTenantUpdate: await asApp(url, role, TENANT_B, async (c) => (await c.query(`UPDATE meter_reading SET kwh = 0 WHERE org_id = $1`, [tenantA])).rowCount ?? 0),
      noContext: await asApp(url, role, null, (c) => count(c, 'SELECT count(*) AS n FROM meter_reading')),
    }
    say(`  tenant A sees ${proof.tenantA.readings} meter readings`)
    say(`  tenant B sees ${proof.tenantB.readings} meter readings`)
    say(`  tenant B updating tenant A's readings: ${proof.crossTenantUpdate} rows affected`)
    say(`  no tenant context: ${proof.noContext} rows visible`)
    say(`✔ done in ${ms(started)}`)
    const left = database === undefined ? {} : { left: { database, cleanup: [`DROP DATABASE ${quoteIdent(database)} WITH (FORCE)`, `DROP ROLE ${quoteIdent(role)}`] } }
    return { url: server === undefined ? redactUrl(url) : url, reportFile, verifyErrors: report.summary.error, proof, appRole: role, setting: config.tenant.setting, ...left, stop }
  } finally {
    if (options.keep !== true) await stop()
  }
}
