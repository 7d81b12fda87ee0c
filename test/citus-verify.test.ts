/**
 * `tenantize verify` on a real Citus cluster (test/helpers/citus.ts): a database converted with
 * target citus verifies clean through the coordinator; breaking a protection — on the shards, where
 * Citus runs the queries — is caught.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { apply, resetReadiness } from '../src/apply/index.js'
import { parseConfig } from '../src/plan/config.js'
import { quoteIdent } from '../src/sql/quote.js'
import { verify } from '../src/verify/index.js'
import { citusDatabase } from './helpers/citus.js'
import { fast } from './helpers/examples.js'

const citus = await citusDatabase(import.meta.url)
const skip = 'unavailable' in citus ? citus.unavailable : false

test('verify on Citus', { skip }, async (t) => {
  if ('unavailable' in citus) return
  const db = citus
  await db.sql(await readFile('test/fixtures/citus/schema.sql', 'utf8'))
  await db.sql(`INSERT INTO currency VALUES ('EUR', 'Euro'); INSERT INTO account (code, currency) SELECT 'A' || g, 'EUR' FROM generate_series(1, 20) g; INSERT INTO project (account_id, title) SELECT id, 'p' FROM account; INSERT INTO "task item" (project_id) SELECT id FROM project`)
  const app = db.role('app')
  const config = parseConfig({
    version: 1,
    target: 'citus',
    tenant: { table: 'public.organizations', create: true, default: { id: '5e0f0c1a-0000-4000-8000-000000000001' } },
    roles: { app, system: null },
    tables: {
      'public.currency': { class: 'global' },
      'public.account': { class: 'direct' },
      'public.project': { class: 'child', path: { columns: ['account_id'], parent: 'public.account', parentColumns: ['id'] } },
      'public.task item': { class: 'child', path: { columns: ['project_id'], parent: 'public.project', parentColumns: ['id'] } },
    },
  })
  await apply({ databaseUrl: db.url, config, phase: 'schema', timeouts: fast })
  await resetReadiness(db.url)
  await apply({ databaseUrl: db.url, config, phase: 'enforce', timeouts: fast })
  const run = () => verify({ databaseUrl: db.url, appRole: app, tenantColumn: 'org_id', setting: config.tenant.setting })

  const errors = (r: Awaited<ReturnType<typeof run>>): string[] => r.findings.filter((f) => f.severity === 'error').map((f) => `${f.rule} ${f.table ?? f.object}`).sort()
  const checksOf = (r: Awaited<ReturnType<typeof run>>, table: string): string[] => (r.probe?.checks ?? []).filter((c) => c.table === table).map((c) => `${c.check} ${c.status}`)

  await t.test('the converted database verifies clean through the coordinator: Citus checks instead of the ctid-based probe, every one passing', async () => {
    const report = await run()
    assert.deepEqual(errors(report), [])
    assert.deepEqual(report.findings.filter((f) => f.severity === 'warn').map((f) => f.rule), [], 'no warning either: policy-unwrapped-context does not apply on Citus (the wrapped form is the one Citus refuses)')
    assert.deepEqual(checksOf(report, 'public.account'), ['shards pass', 'no-context pass', 'other-tenant pass', 'own-rows pass'])
    assert.deepEqual(checksOf(report, 'public.organizations'), ['shards pass', 'no-context pass', 'other-tenant pass', 'own-rows pass'], 'the reference table too')
    assert.equal(report.summary.checks.fail + report.summary.checks.error, 0)
  })

  /** The shard of account that holds the default tenant's rows, and the worker it is on. */
  const shardOf = async (table: string): Promise<{ shard: string; worker: number }> => {
    const [row] = await db.sql<{ shard: string; port: number }>(
      `SELECT shard_name($1::regclass, s.shardid) AS shard, p.nodeport AS port FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
        WHERE s.shardid = get_shard_id_for_distribution_column($1::regclass, $2::uuid)`,
      [table, config.tenant.default.id],
    )
    return { shard: row!.shard, worker: row!.port === 9701 ? 0 : 1 }
  }

  await t.test('row-level security switched off on one shard, on its worker: the shards check and the other-tenant check fail', async () => {
    const { shard, worker } = await shardOf('account')
    await db.workerSql(worker, `ALTER TABLE ${shard} DISABLE ROW LEVEL SECURITY`)
    try {
      const report = await run()
      assert.deepEqual(errors(report), ['citus-no-context public.account', 'citus-other-tenant public.account', 'citus-shards public.account'])
      assert.match(report.findings.find((f) => f.rule === 'citus-shards')!.message, /1 of 32 shard\(s\) differ from the coordinator .* rls=false/)
    } finally {
      await db.workerSql(worker, `ALTER TABLE ${shard} ENABLE ROW LEVEL SECURITY`)
    }
  })

  await t.test('row-level security switched off on a distributed table (Citus passes it on to every shard): an error from the lint and the live checks', async () => {
    await db.sql('ALTER TABLE "task item" DISABLE ROW LEVEL SECURITY')
    try {
      const report = await run()
      const found = errors(report)
      assert.ok(found.includes('citus-no-context public.task item') && found.includes('citus-other-tenant public.task item'), found.join(', '))
      assert.ok(found.some((f) => f.endsWith('public.task item') && !f.startsWith('citus-')), `a lint rule of its own names it too: ${found.join(', ')}`)
    } finally {
      await db.sql('ALTER TABLE "task item" ENABLE ROW LEVEL SECURITY')
    }
  })

  await t.test('a RESTRICTIVE policy reaches the shards as PERMISSIVE: caught by the lint, the shards check and the other-tenant check', async () => {
    await db.sql(`CREATE POLICY narrow ON project AS RESTRICTIVE TO ${quoteIdent(app)} USING (title <> 'hidden')`)
    try {
      const report = await run()
      assert.deepEqual(errors(report), ['citus-no-context public.project', 'citus-other-tenant public.project', 'citus-restrictive-policy public.project', 'citus-shards public.project'], 'on the shards USING (true) is OR-ed with the tenant policy: every row, also without context')
    } finally {
      await db.sql('DROP POLICY narrow ON project')
    }
  })

  await t.test('a sub-select policy: Citus refuses it on a distributed table; on a tenant table still local the lint says why it will not distribute, with the fix', async () => {
    await assert.rejects(db.sql(`CREATE POLICY sub ON account TO ${quoteIdent(app)} USING (org_id = (SELECT tenantize.current_tenant_id()))`), /unexpected non-SELECT command in SubLink|Subqueries are not supported in policies/)
    // No foreign key to organizations: one to a reference table would make it a Citus local table, where Citus refuses the policy too.
    await db.sql('CREATE TABLE note (org_id uuid NOT NULL, id bigint, body text, PRIMARY KEY (org_id, id))')
    await db.sql('ALTER TABLE note ENABLE ROW LEVEL SECURITY')
    await db.sql('ALTER TABLE note FORCE ROW LEVEL SECURITY')
    await db.sql(`CREATE POLICY tenant_isolation ON note TO ${quoteIdent(app)} USING (org_id = (SELECT tenantize.current_tenant_id())) WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()))`)
    await db.sql(`GRANT SELECT ON note TO ${quoteIdent(app)}`)
    try {
      const report = await run()
      const sub = report.findings.find((f) => f.rule === 'citus-policy-subquery')
      assert.equal(sub?.object, 'policy "tenant_isolation" on "public"."note"')
      assert.equal(sub?.fix, 'ALTER POLICY "tenant_isolation" ON "public"."note" USING ((org_id = tenantize.current_tenant_id())) WITH CHECK ((org_id = tenantize.current_tenant_id()));')
      await db.sql(sub!.fix)
      await db.sql(`SELECT create_distributed_table('note', 'org_id', colocate_with => 'account')`)
      assert.deepEqual(errors(await run()), [], 'after the fix the table distributes and verifies clean')
    } finally {
      await db.sql('DROP TABLE note')
    }
  })

  await t.test('the app role without citus.propagate_set_commands: a warning (its context does not reach the workers; fails closed), and own-rows fails', async () => {
    await db.sql(`ALTER ROLE ${quoteIdent(app)} RESET citus.propagate_set_commands`)
    try {
      const report = await run()
      assert.deepEqual(report.findings.filter((f) => f.rule.startsWith('citus-')).map((f) => `${f.severity} ${f.rule}`), ['warn citus-context-not-propagated'])
    } finally {
      await db.sql(`ALTER ROLE ${quoteIdent(app)} SET citus.propagate_set_commands = 'local'`)
    }
  })
})
