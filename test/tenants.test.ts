import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generate, TABLES } from '../examples/energy-billing/generate.js'
import { apply } from '../src/apply/index.js'
import { TenantizeError } from '../src/errors.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { createTenant, deleteTenant, listTenants, resumeTenant, showTenant, suspendTenant, TENANTS_SCOPE } from '../src/tenants/index.js'
import pg from 'pg'
import { createTenantHttp, HttpProblemError, sqlTenantStatus, type HttpRequestLike } from '../src/runtime/http/index.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { dataChecksums } from './helpers/conversion.js'
import { runCli } from './helpers/migrations.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { exampleConfig, fast, loadExample } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)
const TENANT_TABLES = [...TABLES.map((t) => `public.${t}`), 'public.organizations']

/** A small organization of its own: a client with a tariff, two customers, readings, a billed period. */
async function addRows(t: TestDatabase, org: string, code: string, readings: number): Promise<void> {
  const one = async (sql: string, values: unknown[]): Promise<number> => (await t.sql<{ id: number }>(sql, values))[0]!.id
  const client = await one(`INSERT INTO client (org_id, code, name) VALUES ($1, $2, 'Helios Utilities') RETURNING id`, [org, code])
  const tariff = await one(`INSERT INTO tariff_rate (org_id, client_id, name, rate_type, energy_rate, effective_from) VALUES ($1, $2, 'Tiered', 'tiered', 0.15, '2024-01-01') RETURNING id`, [org, client])
  await t.sql(`INSERT INTO tariff_block (org_id, tariff_rate_id, block_order, from_kwh, to_kwh, rate) VALUES ($1, $2, 1, 0, 500, 0.13), ($1, $2, 2, 500, NULL, 0.17)`, [org, tariff])
  for (const n of [1, 2]) {
    const customer = await one(`INSERT INTO customer (org_id, client_id, tariff_rate_id, account_number, meter_number, name, service_address, city, postal_code) VALUES ($1, $2, $3, $4, $5, 'Helios household', '1 Sun St', 'Helios', '00001') RETURNING id`, [org, client, tariff, `${code}-${n}`, `H-${code}-${n}`])
    await t.sql(`INSERT INTO users (org_id, email, name, password_hash, role, client_id, customer_id) VALUES ($1, $2, 'Helios customer', 'x', 'customer_user', $3, $4)`, [org, `home${n}@${code.toLowerCase()}.example`, client, customer])
    await t.sql(`INSERT INTO meter_reading (org_id, customer_id, meter_number, reading_at, kwh, tou_period) SELECT $1, $2, 'H-1', '2025-01-01T00:00:00Z'::timestamptz + g * interval '15 minutes', 0.5, 'off_peak' FROM generate_series(1, $3) g`, [org, customer, readings])
    const period = await one(`INSERT INTO billing_period (org_id, customer_id, tariff_rate_id, period_start, period_end, total_kwh) VALUES ($1, $2, $3, '2025-01-01', '2025-02-01', 48) RETURNING id`, [org, customer, tariff])
    const invoice = await one(`INSERT INTO invoice (org_id, invoice_number, customer_id, billing_period_id, issued_on, due_on, energy_charges, total) VALUES ($1, $2, $3, $4, '2025-02-03', '2025-03-05', 7.2, 7.2) RETURNING id`, [org, `INV-${code}-${n}`, customer, period])
    await t.sql(`INSERT INTO invoice_line (org_id, invoice_id, line_no, kind, description, quantity, unit, unit_price, amount) VALUES ($1, $2, 1, 'energy', 'Energy', 48, 'kWh', 0.15, 7.2)`, [org, invoice])
  }
}

/** md5 of every row per table, only the rows of `org` (the organizations row itself for the tenant table). */
function rowsOf(t: TestDatabase, org: string): Promise<Record<string, string>> {
  const where = Object.fromEntries(TENANT_TABLES.map((k) => [`"public"."${k.slice(7)}"`, k === 'public.organizations' ? `WHERE id = '${org}'` : `WHERE org_id = '${org}'`]))
  return dataChecksums(t.url, Object.keys(where), where)
}

test('tenant lifecycle on the converted energy-billing example: create, list, show, suspend, resume, delete', async (t) => {
  const counts = await loadExample(db, 'energy-billing', generate)
  const config = await exampleConfig(db, 'energy-billing')
  const DEFAULT = config.tenant.default.id
  await apply({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
  const base = { databaseUrl: db.url, config }
  let helios = ''

  await t.test('create: the tenant row with a validated, unique slug; the id is the table default', async () => {
    const created = await createTenant({ ...base, slug: 'helios', name: 'Helios Utilities' })
    assert.match(created.id, /^[0-9a-f-]{36}$/)
    assert.deepEqual({ slug: created.slug, name: created.name, status: created.status }, { slug: 'helios', name: 'Helios Utilities', status: 'active' })
    helios = created.id
    await assert.rejects(createTenant({ ...base, slug: 'Helios!', name: 'x' }), (e: unknown) => e instanceof TenantizeError && e.code === 'TZ_USAGE' && /slug/.test(e.object ?? ''))
    await assert.rejects(createTenant({ ...base, slug: 'helios', name: 'again' }), (e: unknown) => e instanceof TenantizeError && e.code === 'TZ_TENANT')
    await assert.rejects(createTenant({ ...base, slug: 'ghost', name: 'x', owner: '1' }), /no membership table/)
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM organizations WHERE slug = 'ghost'`), [{ n: 0 }], 'nothing of a refused create is left')
    await addRows(db, helios, 'HEL', 96)
  })

  await t.test('list and show: rows and bytes per tenant and table, exact with exact, estimated from statistics otherwise', async () => {
    const exact = await listTenants({ ...base, exact: true })
    assert.deepEqual(exact.map((x) => x.slug), [DEFAULT < helios ? 'eis-power' : 'helios', DEFAULT < helios ? 'helios' : 'eis-power'])
    const mine = exact.find((x) => x.id === DEFAULT)!
    const theirs = exact.find((x) => x.id === helios)!
    assert.ok(mine.exact && theirs.exact)
    for (const table of TABLES) assert.equal(mine.tables.find((u) => u.table === `public.${table}`)?.rows, counts[table], table)
    assert.equal(theirs.tables.find((u) => u.table === 'public.meter_reading')?.rows, 192)
    assert.equal(theirs.rows, 1 + 1 + 1 + 2 + 2 + 2 + 192 + 2 + 2 + 2, 'organization, client, tariff, two blocks, customers, users, readings, periods, invoices, lines')
    assert.ok(theirs.bytes > 0 && mine.bytes > theirs.bytes)
    assert.ok(mine.createdAt !== null && theirs.status === 'active')
    await db.sql('ANALYZE')
    const estimated = await listTenants(base)
    const estMine = estimated.find((x) => x.id === DEFAULT)!
    assert.deepEqual(estMine.tables.filter((u) => u.exact).map((u) => u.table), [], 'every table estimated')
    assert.equal(estMine.exact, false)
    assert.ok(Math.abs(estMine.rows - mine.rows) <= mine.rows * 0.1, `estimate ${estMine.rows} within 10% of ${mine.rows}`)
    const shown = await showTenant({ ...base, tenant: 'helios', exact: true })
    assert.equal(shown.id, helios)
    assert.deepEqual(shown.tables.map((u) => [u.table, u.rows]), theirs.tables.map((u) => [u.table, u.rows]))
    assert.equal((await showTenant({ ...base, tenant: helios.toUpperCase() })).id, helios, 'an id in capitals names the same tenant')
    await assert.rejects(showTenant({ ...base, tenant: 'nobody' }), /no tenant with this id or slug/)
  })

  await t.test('the HTTP middleware: 403 for a suspended tenant, 404 for an importing or deleting one, after suspend and resume', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    try {
      const http = createTenantHttp({ tenantHeader: true, tenantStatus: sqlTenantStatus({ pool }) })
      const request = (tenant: string): HttpRequestLike => ({ method: 'GET', hostname: 'localhost', header: (name) => (name === 'x-tenant-id' ? tenant : undefined) })
      const answer = async (tenant: string): Promise<string> => http.resolve(request(tenant)).then((auth) => `ok ${auth.tenantId}`, (e: unknown) => (e instanceof HttpProblemError ? `${e.status} ${e.code}` : String(e)))
      assert.equal(await answer(helios), `ok ${helios}`)
      await suspendTenant({ ...base, tenant: 'helios' })
      assert.equal(await answer(helios), '403 TZ_HTTP_TENANT_SUSPENDED')
      assert.equal(await answer(DEFAULT), `ok ${DEFAULT}`, 'other tenants are served')
      await resumeTenant({ ...base, tenant: 'helios' })
      assert.equal(await answer(helios), `ok ${helios}`)
      for (const status of ['importing', 'deleting']) {
        await db.sql(`UPDATE tenantize.tenant_status SET status = $2 WHERE tenant = $1`, [helios, status])
        assert.equal(await answer(helios), '404 TZ_HTTP_NOT_FOUND', status)
      }
      await db.sql(`UPDATE tenantize.tenant_status SET status = 'active' WHERE tenant = $1`, [helios])
    } finally {
      await pool.end()
    }
  })

  await t.test('suspend and resume: the status is recorded for the middleware and mirrored in the tenant table', async () => {
    assert.equal((await suspendTenant({ ...base, tenant: 'helios' })).status, 'suspended')
    assert.deepEqual(await db.sql(`SELECT status FROM tenantize.tenant_status WHERE tenant = $1`, [helios]), [{ status: 'suspended' }])
    assert.deepEqual(await db.sql(`SELECT status FROM organizations WHERE id = $1`, [helios]), [{ status: 'suspended' }])
    assert.equal((await suspendTenant({ ...base, tenant: 'helios' })).status, 'suspended', 'suspending twice is no error')
    assert.equal((await resumeTenant({ ...base, tenant: helios })).status, 'active')
    assert.deepEqual(await db.sql(`SELECT status FROM organizations WHERE id = $1`, [helios]), [{ status: 'active' }])
  })

  await t.test('delete: refuses the default tenant and rows of shared tables referencing the tenant; dry run counts', async () => {
    await assert.rejects(deleteTenant({ ...base, tenant: 'eis-power' }), /is the default tenant/)
    await db.sql(`CREATE TABLE shared_note (id serial PRIMARY KEY, client_id integer REFERENCES client (id), note text)`)
    await db.sql(`INSERT INTO shared_note (client_id, note) SELECT id, 'shared' FROM client WHERE org_id = $1`, [helios])
    const dry = await deleteTenant({ ...base, tenant: 'helios', dryRun: true })
    assert.equal(dry.dryRun, true)
    assert.deepEqual(dry.shared.map((s) => ({ table: s.table, rows: s.rows, references: s.references })), [{ table: 'public.shared_note', rows: 1, references: 'public.client' }])
    assert.equal(dry.tables.find((x) => x.table === 'public.meter_reading')?.rows, 192)
    assert.equal(dry.tables.at(-1)?.table, 'public.organizations', 'the tenant row last')
    const order = dry.tables.map((x) => x.table)
    assert.ok(order.indexOf('public.invoice_line') < order.indexOf('public.invoice') && order.indexOf('public.invoice') < order.indexOf('public.billing_period') && order.indexOf('public.customer') < order.indexOf('public.client'), `children before parents: ${order.join(', ')}`)
    await assert.rejects(deleteTenant({ ...base, tenant: 'helios' }), (e: unknown) => e instanceof TenantizeError && e.code === 'TZ_TENANT' && e.problems.some((p) => p.object === 'public.shared_note shared_note_client_id_fkey'))
    await assert.rejects(deleteTenant({ ...base, tenant: 'helios', allowShared: true }), (e: unknown) => e instanceof TenantizeError && e.problems.some((p) => p.fix === 'delete or re-point those rows first'), 'ON DELETE NO ACTION cannot be allowed')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM meter_reading WHERE org_id = $1`, [helios]), [{ n: 192 }], 'nothing was deleted')
    await db.sql(`DROP TABLE shared_note`)
  })

  await t.test('delete: in batches, resumable after a crash, every other tenant byte-identical, recorded in the ledger', async () => {
    const before = await rowsOf(db, DEFAULT)
    const events: MigrateEvent[] = []
    // The process "dies" after the second batch: the tenant is half deleted and marked deleting.
    let batches = 0
    await assert.rejects(
      deleteTenant({ ...base, tenant: 'helios', batchSize: 50, batchPauseMs: 0, timeouts: fast, onEvent: (e) => { if (e.event === 'progress' && ++batches === 2) throw new Error('crash') } }),
      /crash/,
    )
    assert.deepEqual(await db.sql(`SELECT status FROM tenantize.tenant_status WHERE tenant = $1`, [helios]), [{ status: 'deleting' }])
    assert.deepEqual(await db.sql(`SELECT status FROM organizations WHERE id = $1`, [helios]), [{ status: 'suspended' }], 'the tenant table shows it suspended meanwhile')
    const left = (await db.sql<{ n: number }>(TENANT_TABLES.map((k) => `SELECT count(*)::int AS n FROM ${k} WHERE ${k === 'public.organizations' ? 'id' : 'org_id'} = $1`).join(' UNION ALL ').replace(/^/, 'SELECT sum(n)::int AS n FROM (').concat(') AS x'), [helios]))[0]!.n
    assert.ok(left > 1 && left < 207, `stopped half way (${left} of 207 rows left)`)
    const result = await deleteTenant({ ...base, tenant: 'helios', batchSize: 50, batchPauseMs: 0, timeouts: fast, onEvent: (e) => events.push(e) })
    assert.equal(result.dryRun, false)
    const progress = events.filter((e): e is Extract<MigrateEvent, { event: 'progress' }> => e.event === 'progress')
    assert.ok(progress.length >= 3, 'progress after every batch')
    assert.equal(progress.at(-1)!.done, progress.at(-1)!.total)
    for (const table of TENANT_TABLES) {
      const column = table === 'public.organizations' ? 'id' : 'org_id'
      assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [helios]), [{ n: 0 }], `${table} holds nothing of the deleted tenant`)
    }
    assert.deepEqual(await rowsOf(db, DEFAULT), before, 'every row of the other tenant is byte-identical')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM tenantize.tenant_status WHERE tenant = $1`, [helios]), [{ n: 0 }])
    const ledger = await db.sql<{ name: string; applied_by: string; runner: string }>(`SELECT name, applied_by, runner FROM tenantize.migrations WHERE scope = $1`, [TENANTS_SCOPE])
    assert.deepEqual(ledger.map((l) => ({ name: l.name, by: l.applied_by })), [{ name: `delete:${helios}`, by: 'postgres' }])
    assert.match(ledger[0]!.runner, /pid \d+/)
    const runs = await db.sql<{ event: string }>(`SELECT event FROM tenantize.migration_events WHERE scope = $1 ORDER BY id`, [TENANTS_SCOPE])
    assert.deepEqual(runs.map((r) => r.event), ['start', 'fail', 'start', 'finish'], 'the crashed run and the one that finished')
    await assert.rejects(deleteTenant({ ...base, tenant: helios }), /no tenant with this id or slug/)
  })
  await t.test('the CLI: create prints the id, show --json, delete refuses the default tenant (exit 2, one line), a dry run counts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tz-tenants-'))
    after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'tenantize.config.json')
    await writeFile(file, JSON.stringify(config))
    const flags = ['--db', db.url, '--config', file]
    const created = await runCli(['tenant', 'create', '--slug', 'cli-co', '--name', 'CLI Co', ...flags])
    assert.equal(created.code, 0, created.stderr)
    const id = created.stdout.trim()
    assert.match(id, /^[0-9a-f-]{36}$/)
    const shown = await runCli(['tenant', 'show', 'cli-co', '--exact', '--json', ...flags])
    assert.equal(shown.code, 0, shown.stderr)
    assert.deepEqual((JSON.parse(shown.stdout) as { id: string; rows: number }), { ...(JSON.parse(shown.stdout) as object), id, rows: 1 })
    const refused = await runCli(['tenant', 'delete', 'eis-power', ...flags])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /^TZ_TENANT tenant eis-power: is the default tenant/)
    const dry = await runCli(['tenant', 'delete', 'cli-co', '--dry-run', ...flags])
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /^Would delete tenant cli-co: 1 row\(s\)/)
    const deleted = await runCli(['tenant', 'delete', id, '--lock-timeout', '500ms', ...flags])
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM organizations WHERE slug = 'cli-co'`), [{ n: 0 }])
  })
})
