import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generate, TABLES } from '../examples/impact-cockpit/generate.js'
import { apply, resetReadiness, rollback } from '../src/apply/index.js'
import type { MigrateEvent } from '../src/migrate/index.js'
import { withTenant } from '../src/runtime/index.js'
import { testDatabase } from './helpers/db.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { appDatabase, assertEnforced, countsByTenant, exampleConfig, existingTables, fast, loadExample, oldAppWriter, planFor, tableSql } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)
const NEW_COMPANY = 'c0000000-0000-4000-8000-00000000000c'
const LIVE = '/api/v1/live' // the old app's usage rows

test('generate: the same rows on every run', async () => {
  const [a, b] = [await db.another('ic_gen_a'), await db.another('ic_gen_b')]
  const counts = await loadExample(a, 'impact-cockpit', generate)
  await loadExample(b, 'impact-cockpit', generate)
  assert.equal(counts['weight_override_history'], 2 * counts['weight_overrides']!, 'the trigger kept both changes of every override')
  const tables = TABLES.map((t) => `public.${t}`)
  assert.deepEqual(await dataChecksums(a.url, tables), await dataChecksums(b.url, tables))
})

test('impact cockpit: companies become tenants — children backfilled while API keys are in use, RBAC global, history trigger under RLS; rolled back to what it was', async (t) => {
  const counts = await loadExample(db, 'impact-cockpit', generate)
  const config = await exampleConfig(db, 'impact-cockpit')
  const app = config.roles.app
  assert.equal(config.tenant.table, 'public.companies')
  const tables = existingTables(config)
  const fingerprint = await schemaFingerprint(db.url)
  const startData = await dataChecksums(db.url, tables)
  const keys = await db.sql<{ id: string; company_id: string }>('SELECT id, company_id FROM api_keys ORDER BY id')
  const companies = await db.sql<{ id: string; slug: string }>('SELECT id, slug FROM companies ORDER BY slug')
  let written = 0

  await t.test('plan: company_id derived for sessions and API-key usage, composite keys, tokens and key hashes stay globally unique', async () => {
    const plan = await planFor(db.url, config)
    const ids = plan.steps.map((s) => s.id)
    for (const id of [
      'backfill:public.sessions',
      'backfill:public.api_key_usage',
      'tenant-fk:public.weight_override_history',
      'tenant-fk:public.integration_delivery_log',
      'composite-fk:public.weight_override_history:weight_override_history_weight_override_id_fkey',
      'composite-fk:public.api_key_usage:api_key_usage_api_key_id_fkey',
      'tenant-unique:public.users:users_email_key',
      'rls:public.companies',
      'view:public.company_overview',
    ]) assert.ok(ids.includes(id), `the plan has ${id}`)
    assert.ok(!ids.some((id) => id.includes('key_hash') || id.includes('token_hash')), 'keepGlobalUnique: API keys and sessions are found before their company is known')
    assert.ok(!ids.some((id) => /role_hierarchy|permissions/.test(id)), 'the RBAC matrix is global')
    assert.ok(!ids.includes('add-column:public.users') && !ids.includes('tenant-table:public.companies'), 'companies and company_id exist already')
  })

  await t.test('schema phase while the unchanged app records API-key usage', async () => {
    // Paced: the backfill keeps taking batches for as long as rows keep arriving behind it (reported).
    const writer = oldAppWriter(db.url, (i) => ({ text: `INSERT INTO api_key_usage (api_key_id, endpoint, request_count) VALUES ($1, $2, 1)`, values: [keys[i % keys.length]!.id, LIVE] }))
    const events: MigrateEvent[] = []
    await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast, batchSize: 200, batchPauseMs: 5, onEvent: (e) => events.push(e) })
    written = await writer.stop()
    assert.ok(written > 0, 'the app kept recording usage during the schema phase')
    assert.ok(events.filter((e) => e.event === 'progress' && e.migration.includes('api_key_usage')).length >= 7, 'api_key_usage was filled in batches of 200')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM api_key_usage u JOIN api_keys k ON k.id = u.api_key_id WHERE u.company_id IS DISTINCT FROM k.company_id`), [{ n: 0 }], 'every usage row has its key\'s company, the live ones included')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.company_id IS DISTINCT FROM u.company_id`), [{ n: 0 }])
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM api_key_usage WHERE endpoint = $1`, [LIVE]), [{ n: written }])
  })

  await t.test('enforce phase: every tenant table NOT NULL, RLS enabled and forced, policy, tenant index', async () => {
    // The app that sets the tenant context is deployed: a new readiness window, no context-less writes since.
    await resetReadiness(db.url)
    await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
    await assertEnforced(db.url, config)
  })

  await t.test('an operator adds a company with the same user e-mail', async () => {
    await db.sql(`INSERT INTO companies (id, name, slug) VALUES ($1, 'Orbit Energy', 'orbit-energy')`, [NEW_COMPANY])
    await db.sql(`INSERT INTO users (company_id, email, name, role) SELECT $1, email, 'Orbit admin', 'ADMIN' FROM users WHERE company_id = $2 AND role = 'ADMIN'`, [NEW_COMPANY, companies[0]!.id])
    await db.sql(`INSERT INTO sessions (user_id, company_id, token_hash, tenant_slug, expires_at) SELECT id, company_id, md5(id::text) || md5(email), 'orbit-energy', now() + interval '1 hour' FROM users WHERE company_id = $1`, [NEW_COMPANY])
    await db.sql(`INSERT INTO api_keys (company_id, name, key_hash, key_prefix) VALUES ($1, 'Orbit export', md5('orbit') || md5('key'), 'tz_orbit')`, [NEW_COMPANY])
    await db.sql(`INSERT INTO api_key_usage (api_key_id, company_id, endpoint) SELECT id, company_id, '/api/v1/metrics/sroi' FROM api_keys WHERE company_id = $1`, [NEW_COMPANY])
    await db.sql(`INSERT INTO audit_log (company_id, action, resource) VALUES ($1, 'COMPANY_CREATED', 'company')`, [NEW_COMPANY])
    await db.sql(`INSERT INTO weight_overrides (company_id, category, weights) VALUES ($1, 'sroi', '{"volunteer_hour_value": 31}')`, [NEW_COMPANY])
    await db.sql(`INSERT INTO integration_configs (company_id, platform, enabled) VALUES ($1, 'goodera', true)`, [NEW_COMPANY])
    await db.sql(`INSERT INTO integration_delivery_log (integration_config_id, company_id, platform, status) SELECT id, company_id, platform, 'queued' FROM integration_configs WHERE company_id = $1`, [NEW_COMPANY])
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM users WHERE email = (SELECT email FROM users WHERE company_id = $1)`, [NEW_COMPANY]), [{ n: 2 }], 'the e-mail is unique per company now')
    await assert.rejects(db.sql(`INSERT INTO users (company_id, email, name) SELECT company_id, email, 'twice' FROM users WHERE company_id = $1`, [NEW_COMPANY]), /duplicate key value violates unique constraint "users_email_key"/)
    await assert.rejects(db.sql(`INSERT INTO api_keys (company_id, name, key_hash, key_prefix) SELECT $1, 'copy', key_hash, 'tz_copy' FROM api_keys WHERE company_id <> $1 LIMIT 1`, [NEW_COMPANY]), /duplicate key value violates unique constraint "api_keys_key_hash_key"/, 'key hashes stay unique across companies')
  })

  await t.test('through tenantPool as the app role: slug routing, each company sees only its rows, writes across fail, the history trigger works under RLS', async () => {
    const { db: tenantDb, end } = appDatabase(db.url, app)
    try {
      // Tenant routing: the slug is resolved by the system side (the app role sees no company without a context).
      const [bank] = await db.sql<{ id: string }>(`SELECT id FROM companies WHERE slug = 'blue-harbor-bank'`)
      const bankId = bank!.id
      for (const table of ['users', 'sessions', 'api_keys', 'api_key_usage', 'audit_log', 'weight_overrides', 'weight_override_history', 'integration_configs', 'integration_delivery_log']) {
        const expected = await countsByTenant(db, table, 'company_id')
        for (const company of [bankId, NEW_COMPANY]) {
          const seen = await withTenant(company, () => tenantDb.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))
          assert.equal(Number(seen.rows[0]!.n), expected.get(company) ?? 0, `${table}: only the company's own rows`)
        }
      }
      await withTenant(bankId, async () => {
        assert.deepEqual((await tenantDb.query('SELECT slug FROM companies')).rows, [{ slug: 'blue-harbor-bank' }])
        assert.equal(Number((await tenantDb.query<{ n: string }>('SELECT count(*) AS n FROM role_permissions')).rows[0]!.n), counts['role_permissions'], 'the RBAC matrix is readable by every company')
        await assert.rejects(tenantDb.query(`INSERT INTO permissions (name, resource, action) VALUES ('x:y', 'x', 'y')`), /permission denied for table permissions/)
        assert.equal((await tenantDb.query(`UPDATE api_keys SET revoked_at = now() WHERE company_id = $1`, [NEW_COMPANY])).rowCount, 0, 'another company\'s keys cannot be revoked')
        assert.equal((await tenantDb.query(`DELETE FROM audit_log WHERE company_id = $1`, [NEW_COMPANY])).rowCount, 0)
        await assert.rejects(tenantDb.query(`INSERT INTO audit_log (company_id, action, resource) VALUES ($1, 'X', 'x')`, [NEW_COMPANY]), /new row violates row-level security policy/)
        const foreignKey = keys.find((k) => k.company_id !== bankId)!.id
        await assert.rejects(tenantDb.query(`INSERT INTO api_key_usage (api_key_id, company_id, endpoint) VALUES ($1, $2, '/x')`, [foreignKey, bankId]), /violates foreign key constraint "api_key_usage_company_id_api_key_id_tenant_fkey"/, 'usage cannot be booked on another company\'s key')
      })
      await withTenant(NEW_COMPANY, async () => {
        const changed = await tenantDb.transaction(async (tx) => {
          await tx.query(`UPDATE weight_overrides SET weights = '{"volunteer_hour_value": 33}', updated_at = now() WHERE category = 'sroi'`)
          return (await tx.query<{ company_id: string; new_weights: unknown }>('SELECT company_id, new_weights FROM weight_override_history')).rows
        })
        assert.deepEqual(changed, [{ company_id: NEW_COMPANY, new_weights: { volunteer_hour_value: 33 } }], 'the trigger writes the history row as the company')
      })
      await withTenant(bankId, async () => {
        assert.equal(Number((await tenantDb.query<{ n: string }>('SELECT count(*) AS n FROM weight_override_history WHERE company_id = $1', [NEW_COMPANY])).rows[0]!.n), 0)
      })
    } finally {
      await end()
    }
  })

  await t.test('the new company is removed; rollback restores the schema and every row', async () => {
    // The app's own ON DELETE CASCADE chains still work: the added tenant keys are checked at commit.
    await db.sql(`DELETE FROM companies WHERE id = $1`, [NEW_COMPANY])
    // The companies existed before the conversion: the company_id columns the plan added are derived
    // from them, so rolling back merges nothing and needs no --merge-tenants.
    await rollback({ databaseUrl: db.url, config, phase: 'all', timeouts: fast })
    assert.equal(await schemaFingerprint(db.url), fingerprint, 'schema identical to the start')
    assert.deepEqual(await dataChecksums(db.url, tables, { [tableSql('public.api_key_usage')]: `WHERE endpoint <> '${LIVE}'` }), startData, 'every row as it was')
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM api_key_usage WHERE endpoint = $1`, [LIVE]), [{ n: written }], 'and the app\'s usage rows are all still there')
  })
})
