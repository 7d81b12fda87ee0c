import { test } from 'node:test'
import assert from 'node:assert/strict'
import { actorOf, AUDIT_SETTINGS, createAuditLog } from '../src/runtime/audit.js'
import { runWithAuth, type TenantAuth } from '../src/runtime/http/index.js'
import { TenantContextMissingError, tenantPool, withTenant } from '../src/runtime/index.js'
import { quoteIdent } from '../src/sql/index.js'
import { blockDatabase } from './helpers/blocks.js'

const { db, app: APP, appPool, systemPool, a: A, b: B } = await blockDatabase(import.meta.url, 'audit')
// An application table with the audit trigger: row id column "code", column "secret" left out.
await db.sql(`
  CREATE TABLE invoice (org_id uuid NOT NULL DEFAULT tenantize.current_tenant_id(), code text PRIMARY KEY, amount int NOT NULL, secret text);
  ALTER TABLE invoice ENABLE ROW LEVEL SECURITY;
  ALTER TABLE invoice FORCE ROW LEVEL SECURITY;
  CREATE POLICY invoice_tenant ON invoice TO ${quoteIdent(APP)}
    USING (org_id = (SELECT tenantize.current_tenant_id())) WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()));
  GRANT SELECT, INSERT, UPDATE, DELETE ON invoice TO ${quoteIdent(APP)};
  CREATE TRIGGER invoice_audit AFTER INSERT OR UPDATE OR DELETE ON invoice
    FOR EACH ROW EXECUTE FUNCTION audit_log_row_change('code', 'secret');
`)

const app = tenantPool(appPool)
const audit = createAuditLog({ db: app, system: systemPool })

const request = (tenantId: string, userId: string): TenantAuth => ({
  tenantId,
  principal: { kind: 'user', userId, role: 'admin', claims: {} },
  source: 'token',
  requestId: `req-${userId}`,
})

interface Row {
  org_id: string
  actor: string | null
  action: string
  table_name: string | null
  row_id: string | null
  before: unknown
  after: unknown
  request_id: string | null
}
const rowsOf = async (org: string): Promise<Row[]> =>
  db.sql<Row>('SELECT org_id, actor, action, table_name, row_id, before, after, request_id FROM audit_log WHERE org_id = $1 ORDER BY id', [org])

test('the trigger records insert, update and delete with actor, tenant, row id, before/after and request id', async () => {
  await withTenant(A, () =>
    runWithAuth(request(A, 'alice'), () =>
      audit.transaction(async (tx) => {
        await tx.query(`INSERT INTO invoice (code, amount, secret) VALUES ('INV-1', 100, 'hunter2')`)
        await tx.query(`UPDATE invoice SET amount = 120 WHERE code = 'INV-1'`)
        await tx.query(`UPDATE invoice SET amount = 120 WHERE code = 'INV-1'`) // no change: no row
        await tx.query(`UPDATE invoice SET secret = 'other' WHERE code = 'INV-1'`) // only an excluded column: no row
        await tx.query(`DELETE FROM invoice WHERE code = 'INV-1'`)
      }),
    ),
  )
  const base = { org_id: A, actor: 'user:alice', table_name: 'public.invoice', row_id: 'INV-1', request_id: 'req-alice' }
  assert.deepEqual(await rowsOf(A), [
    { ...base, action: 'insert', before: null, after: { org_id: A, code: 'INV-1', amount: 100 } },
    { ...base, action: 'update', before: { org_id: A, code: 'INV-1', amount: 100 }, after: { org_id: A, code: 'INV-1', amount: 120 } },
    { ...base, action: 'delete', before: { org_id: A, code: 'INV-1', amount: 120 }, after: null },
  ])
})

test('the actor and request id are transaction-local: a later transaction on the same pool has none', async () => {
  await withTenant(B, () => runWithAuth(request(B, 'bob'), () => audit.transaction((tx) => tx.query(`INSERT INTO invoice (code, amount) VALUES ('INV-2', 1)`))))
  await withTenant(B, () => app.query(`UPDATE invoice SET amount = 2 WHERE code = 'INV-2'`))
  assert.deepEqual((await rowsOf(B)).map((r) => [r.action, r.actor, r.request_id]), [['insert', 'user:bob', 'req-bob'], ['update', null, null]])
  const settings = await withTenant(B, () => app.query(`SELECT coalesce(current_setting($1, true), '') AS actor, coalesce(current_setting($2, true), '') AS request`, [AUDIT_SETTINGS.actor, AUDIT_SETTINGS.requestId]))
  assert.deepEqual(settings.rows, [{ actor: '', request: '' }])
})

test('record writes an application event for the current tenant; each tenant reads only its own rows', async () => {
  await withTenant(A, () => runWithAuth(request(A, 'alice'), () => audit.record({ action: 'report.export', table: 'invoice', after: { format: 'csv', rows: 3 } })))
  await withTenant(A, () => audit.record({ action: 'job.run', actor: 'system:nightly', requestId: 'job-7' }))
  const seenByB = await withTenant(B, () => app.query('SELECT DISTINCT org_id FROM audit_log'))
  assert.deepEqual(seenByB.rows, [{ org_id: B }])
  const last = (await rowsOf(A)).slice(-2)
  assert.deepEqual(last, [
    { org_id: A, actor: 'user:alice', action: 'report.export', table_name: 'invoice', row_id: null, before: null, after: { format: 'csv', rows: 3 }, request_id: 'req-alice' },
    { org_id: A, actor: 'system:nightly', action: 'job.run', table_name: null, row_id: null, before: null, after: null, request_id: 'job-7' },
  ])
  await assert.rejects(audit.record({ action: 'x' }), TenantContextMissingError)
})

test('a change made without tenant context (a system job) is recorded under the row\'s own tenant', async () => {
  await db.sql(`INSERT INTO invoice (org_id, code, amount) VALUES ($1, 'SYS-1', 5)`, [B])
  assert.deepEqual((await rowsOf(B)).at(-1), { org_id: B, actor: null, action: 'insert', table_name: 'public.invoice', row_id: 'SYS-1', before: null, after: { org_id: B, code: 'SYS-1', amount: 5 }, request_id: null })
})

test('the trigger function is SECURITY INVOKER with a pinned search_path, and only the owner may prune', async () => {
  const functions = await db.sql(`SELECT proname, prosecdef, proconfig FROM pg_proc WHERE proname IN ('audit_log_row_change', 'audit_log_prune') ORDER BY proname`)
  assert.deepEqual(functions, [
    { proname: 'audit_log_prune', prosecdef: false, proconfig: ['search_path=pg_catalog, pg_temp'] },
    { proname: 'audit_log_row_change', prosecdef: false, proconfig: ['search_path=pg_catalog, pg_temp'] },
  ])
  await assert.rejects(withTenant(A, () => app.query(`SELECT audit_log_prune('1 day')`)), { code: '42501' })
})

test('prune deletes rows older than the interval in batches, across tenants, and keeps the rest', async () => {
  await db.sql(`INSERT INTO audit_log (org_id, action, occurred_at) SELECT CASE WHEN i % 2 = 0 THEN $1::uuid ELSE $2::uuid END, 'old', now() - interval '100 days' FROM generate_series(1, 25) i`, [A, B])
  const recent = (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_log WHERE occurred_at > now() - interval \'90 days\''))[0]!.n
  const calls: unknown[] = []
  const counting = { query: (text: string, values?: unknown[]) => (calls.push(values), systemPool.query(text, values)) }
  const deleted = await createAuditLog({ db: app, system: counting }).prune({ olderThan: '90 days', batchSize: 10 })
  assert.equal(deleted, 25)
  assert.equal(calls.length, 3, 'batches of 10, 10 and 5')
  assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM audit_log`), [{ n: recent }])
  assert.equal(await audit.prune({ olderThan: '90 days' }), 0)
  await assert.rejects(audit.prune({ olderThan: '-1 day' }), { code: '22023' })
  await assert.rejects(audit.prune({ olderThan: "1 day'; DELETE FROM audit_log; --" }), { code: '22007' })
  await assert.rejects(audit.prune({ olderThan: '1 day', batchSize: 0 }), TypeError)
  await assert.rejects(createAuditLog({ db: app }).prune({ olderThan: '1 day' }), /system/)
  assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM audit_log`), [{ n: recent }])
})

test('actorOf names users, API keys and anonymous requests', () => {
  assert.equal(actorOf({ kind: 'user', userId: 'u1', role: undefined, claims: {} }), 'user:u1')
  assert.equal(actorOf({ kind: 'api-key', keyId: 'k1', scopes: [] }), 'api-key:k1')
  assert.equal(actorOf({ kind: 'anonymous' }), 'anonymous')
})
