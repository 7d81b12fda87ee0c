/**
 * `isolateTenant` (src/citus/isolate.ts) on a real Citus cluster: a tenant converted with target citus
 * gets shards of its own in every colocated table, then moves to the other worker; its rows stay as
 * they were and row-level security still holds.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import pg from 'pg'
import { apply, resetReadiness } from '../src/apply/index.js'
import { isolateTenant, type IsolateProgress } from '../src/citus/isolate.js'
import { registerTenantIsolate } from '../src/cli/commands/tenant-isolate.js'
import { TenantizeError } from '../src/errors.js'
import { parseConfig } from '../src/plan/config.js'
import { contextSql } from '../src/runtime/context-sql.js'
import { citusDatabase } from './helpers/citus.js'
import { dataChecksums } from './helpers/conversion.js'
import { fast } from './helpers/examples.js'

const citus = await citusDatabase(import.meta.url)
const skip = 'unavailable' in citus ? citus.unavailable : false
const BIG = 'b16b16b1-0000-4000-8000-000000000002'
const TABLES = ['public.account', 'public.project', 'public."task item"']

test('tenant isolate on Citus: own shards in every colocated table, moved to the other worker, rows and isolation intact', { skip }, async (t) => {
  if ('unavailable' in citus) return
  const db = citus
  await db.sql(await readFile('test/fixtures/citus/schema.sql', 'utf8'))
  await db.sql(`INSERT INTO currency VALUES ('EUR', 'Euro')`)
  await db.sql(`INSERT INTO account (code, currency) SELECT 'A' || g, 'EUR' FROM generate_series(1, 50) g`)
  await db.sql(`INSERT INTO project (account_id, title) SELECT id, 'p' FROM account`)
  await db.sql(`INSERT INTO "task item" (project_id) SELECT id FROM project`)
  const app = db.role('app')
  const input = {
    version: 1 as const,
    target: 'citus',
    tenant: { table: 'public.organizations', create: true, default: { id: '5e0f0c1a-0000-4000-8000-000000000001' } },
    roles: { app, system: null },
    tables: {
      'public.currency': { class: 'global' },
      'public.account': { class: 'direct' },
      'public.project': { class: 'child', path: { columns: ['account_id'], parent: 'public.account', parentColumns: ['id'] } },
      'public.task item': { class: 'child', path: { columns: ['project_id'], parent: 'public.project', parentColumns: ['id'] } },
    },
  }
  const config = parseConfig(input)
  const dir = await mkdtemp(join(tmpdir(), 'tz-isolate-'))
  after(() => rm(dir, { recursive: true, force: true }))
  const configFile = join(dir, 'tenantize.config.json')
  await writeFile(configFile, JSON.stringify(input))
  await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
  await resetReadiness(db.url)
  await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
  // A big tenant beside the default one.
  await db.sql(`INSERT INTO organizations (id, slug, name) VALUES ($1, 'big', 'Big Co')`, [BIG])
  await db.sql(`INSERT INTO account (org_id, code, currency) SELECT $1, 'B' || g, 'EUR' FROM generate_series(1, 200) g`, [BIG])
  await db.sql(`INSERT INTO project (org_id, account_id, title) SELECT org_id, id, 'big' FROM account WHERE org_id = $1`, [BIG])
  await db.sql(`INSERT INTO "task item" (org_id, project_id) SELECT org_id, id FROM project WHERE org_id = $1`, [BIG])
  const before = await dataChecksums(db.url, TABLES)
  const shardOf = async (table: string) =>
    (await db.sql<{ shardid: string; alone: boolean; port: number }>(
      `SELECT s.shardid::text, s.shardminvalue = s.shardmaxvalue AS alone, n.nodeport AS port
         FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
        WHERE s.shardid = get_shard_id_for_distribution_column($1::regclass, $2::uuid)`,
      [table, BIG],
    ))[0]!
  const appCount = async (tenant: string, table: string): Promise<number> => {
    const url = new URL(db.url)
    url.username = app
    const client = new pg.Client(url.toString())
    await client.connect()
    try {
      await client.query('BEGIN')
      await client.query(contextSql({ strategy: 'set-local' }).statement(tenant))
      return (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n
    } finally {
      await client.query('ROLLBACK').catch(() => undefined)
      await client.end()
    }
  }

  let firstNode = 0
  await t.test('isolate by slug: the tenant alone in a new shard of each colocated table (CASCADE), rows unchanged', async () => {
    const shared = await shardOf('account')
    assert.equal(shared.alone, false, 'before: the tenant shares its shard with others')
    const events: IsolateProgress[] = []
    const result = await isolateTenant({ databaseUrl: db.url, tenant: 'big', config, onProgress: (e) => events.push(e) })
    assert.equal(result.tenant, BIG)
    assert.equal(result.isolated, true)
    assert.deepEqual([...result.tables].sort(), ['public.account', 'public.project', 'public.task item'])
    assert.equal(result.transferMode, 'block_writes', 'the test cluster runs with wal_level = replica: auto takes block_writes')
    assert.deepEqual(events.map((e) => e.phase), ['isolating', 'isolated'])
    for (const table of TABLES) {
      const s = await shardOf(table)
      assert.equal(s.alone, true, `${table}: the tenant's shard holds only its hash value`)
      assert.notEqual(s.shardid, shared.shardid)
    }
    assert.equal(String(result.shardId), (await shardOf('account')).shardid)
    assert.deepEqual(await dataChecksums(db.url, TABLES), before, 'every row as it was')
    firstNode = (await shardOf('account')).port
    console.log(`# isolate: ${Math.round(result.isolateMs)} ms (${result.transferMode})`)
  })

  await t.test('again: nothing to split', async () => {
    const result = await isolateTenant({ databaseUrl: db.url, tenant: BIG })
    assert.equal(result.isolated, false)
  })

  await t.test('--move-to the other worker: all colocated shards of the tenant move; rows and isolation intact', async () => {
    const target = firstNode === 9701 ? 9702 : 9701
    const result = await isolateTenant({ databaseUrl: db.url, tenant: BIG, moveTo: `127.0.0.1:${target}` })
    assert.equal(result.movedFrom, `127.0.0.1:${firstNode}`)
    assert.equal(result.node, `127.0.0.1:${target}`)
    for (const table of TABLES) assert.equal((await shardOf(table)).port, target, `${table}: moved`)
    assert.deepEqual(await dataChecksums(db.url, TABLES), before)
    assert.equal(await appCount(BIG, 'account'), 200, 'the tenant sees its rows on the new node')
    assert.equal(await appCount(BIG, '"task item"'), 200)
    assert.equal(await appCount(config.tenant.default.id, 'account'), 50, 'the other tenant still sees only its own')
    console.log(`# move: ${Math.round(result.moveMs ?? 0)} ms (${result.transferMode})`)
    const shards = await db.sql<{ result: string }>(`SELECT DISTINCT result FROM run_command_on_shards('account', $$SELECT c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) FROM pg_class c WHERE c.oid = '%s'::regclass$$)`)
    assert.deepEqual(shards, [{ result: 't' }], 'the split and moved shards have row-level security, forced, and the policy')
  })

  await t.test('the CLI command (registerTenantIsolate): tenant isolate big --move-to back to the first worker, one line per phase', async () => {
    const program = new Command().exitOverride()
    const out: string[] = []
    let exit = -1
    registerTenantIsolate(program.command('tenant'), { stdout: { write: (s: string) => out.push(s) }, stderr: { write: () => true }, env: {} }, (code) => (exit = code))
    await program.parseAsync(['tenant', 'isolate', 'big', '--db', db.url, '--config', configFile, '--move-to', `127.0.0.1:${firstNode}`], { from: 'user' })
    assert.equal(exit, 0)
    const text = out.join('')
    assert.match(text, /isolated: shard \d+ holds only this tenant/)
    assert.match(text, new RegExp(`moving: moving shard \\d+ and its colocated shards from 127.0.0.1:\\d+ to 127.0.0.1:${firstNode} \\(block_writes\\)`))
    assert.match(text, new RegExp(`tenant ${BIG}: shard \\d+ of public.account and its colocated shards \\(3 table\\(s\\)\\) already alone in its shard; moved 127.0.0.1:\\d+ → 127.0.0.1:${firstNode}`))
    assert.equal((await shardOf('account')).port, firstNode)
    assert.deepEqual(await dataChecksums(db.url, TABLES), before)
  })

  await t.test('refused with the reason: an unknown tenant, a node that is not in the cluster, force_logical without wal_level = logical', async () => {
    await assert.rejects(isolateTenant({ databaseUrl: db.url, tenant: 'nobody', config }), (e: unknown) => e instanceof TenantizeError && /no tenant nobody in public.organizations/.test(e.message))
    await assert.rejects(isolateTenant({ databaseUrl: db.url, tenant: BIG, moveTo: '127.0.0.1:9999' }), (e: unknown) => e instanceof TenantizeError && /127.0.0.1:9999 is not an active node/.test(e.message) && /127.0.0.1:9701/.test(e.fix ?? ''))
    await assert.rejects(isolateTenant({ databaseUrl: db.url, tenant: BIG, transferMode: 'force_logical' }), (e: unknown) => e instanceof TenantizeError && /force_logical needs wal_level = logical on every node/.test(e.message))
  })
})
