import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { startPgBouncer } from '../src/db/pgbouncer.js'
import { probePooler } from '../src/verify/pooler.js'
import { renderJunit } from '../src/verify/report/junit.js'
import { exitCodeFor, verify } from '../src/verify/verify.js'
import { testDatabase } from './helpers/db.js'
import { createVerifyFixture } from './helpers/verify-fixture.js'

const db = await testDatabase(import.meta.url)
const fx = await createVerifyFixture(db)

// A real PgBouncer in transaction mode with one server connection: every client gets the same backend.
const bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 1 })
after(() => bouncer.stop())

test('through PgBouncer in transaction mode a session-scope context leaks to the next client; a transaction-local one does not', async () => {
  const report = await probePooler(bouncer.url, 'tenantize.tenant_id')
  assert.equal(report.sessionScope.status, 'fail', report.sessionScope.detail)
  assert.match(report.sessionScope.detail, /was seen by another client/)
  assert.equal(report.transactionScope.status, 'pass', report.transactionScope.detail)
  assert.equal(report.backends.length, 1)
  assert.equal(report.cleaned, true)
  assert.doesNotMatch(report.url, /password/)
})

test('after the pooler probe no client of the pool sees its marker', async () => {
  await probePooler(bouncer.url, 'tenantize.tenant_id')
  const client = new pg.Client(bouncer.url)
  await client.connect()
  try {
    const { rows } = await client.query<{ v: string | null }>("SELECT current_setting('tenantize.tenant_id', true) AS v")
    assert.ok(rows[0]!.v === null || rows[0]!.v === '', `left behind: ${rows[0]!.v}`)
  } finally {
    await client.end()
  }
})

test('verify --pooler-url reports the session-scope leak as a warning, with a JUnit testcase per pooler check', async () => {
  const report = await verify({ databaseUrl: db.url, appRole: fx.app, poolerUrl: bouncer.url, probe: false })
  const leaks = report.findings.filter((f) => f.source === 'pooler')
  assert.deepEqual(leaks.map((f) => [f.rule, f.severity]), [['pooler-session-context-leaks', 'warn']])
  assert.equal(report.pooler?.transactionScope.status, 'pass')
  assert.equal(exitCodeFor(report, 'error'), 0)
  assert.equal(exitCodeFor(report, 'warn'), 1)
  const xml = renderJunit(report)
  assert.match(xml, /<testcase classname="pooler\.[^"]+" name="session-context-leaks">\s*<failure type="warn"/)
  assert.match(xml, /<testcase classname="pooler\.[^"]+" name="transaction-context-leaks">\s*<system-out>/)
})

test('an unreachable pooler is a connection error (TZ_CONNECTION)', async () => {
  await assert.rejects(verify({ databaseUrl: db.url, appRole: fx.app, poolerUrl: 'postgres://nobody@127.0.0.1:1/none', probe: false }), { code: 'TZ_CONNECTION' })
})
