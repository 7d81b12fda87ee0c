import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { dropOrphanRoles } from '../src/db/provision.js'
import { testDatabase, testServer } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

function runTestFile(file: string, url: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    // A test file of its own, not a subtest of this run (node marks its children with NODE_TEST_CONTEXT).
    const env: NodeJS.ProcessEnv = { ...process.env, TENANTIZE_TEST_SERVER_URL: url }
    delete env['NODE_TEST_CONTEXT']
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout }))
  })
}

test('roles a test file creates, named after its databases, are dropped with them, also after a failing test and with rights in several databases', async () => {
  const server = await testServer()
  const r = await runTestFile('test/fixtures/harness/roles-left-behind.ts', server.url)
  assert.equal(r.code, 1, 'the fixture has one failing test')
  const tokens = /TOKENS ([0-9a-f]{8}) ([0-9a-f]{8})/.exec(r.stdout)
  assert.ok(tokens !== null, r.stdout)
  const left = await db.sql<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname ~ $1 OR rolname ~ $2 ORDER BY 1`, [tokens[1], tokens[2]])
  assert.deepEqual(left, [], 'no role is left behind')
  assert.deepEqual(await db.sql(`SELECT datname FROM pg_database WHERE datname ~ $1 OR datname ~ $2`, [tokens[1], tokens[2]]), [])
})

test('roles of killed test runs (their database is gone) are swept; roles of a live database are kept', async () => {
  const orphan = `tz_gone_${randomBytes(4).toString('hex')}_app`
  const live = db.role('live')
  await db.sql(`CREATE ROLE "${orphan}" NOLOGIN; CREATE ROLE "${live}" NOLOGIN`)
  const dropped = await dropOrphanRoles(db.adminUrl)
  // Every test file sweeps when it starts: one starting meanwhile may have swept the orphan first (seen on
  // embedded PostgreSQL 18), so it is gone either way; the live database's role is never swept.
  const gone = (await db.sql(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [orphan])).length === 0
  assert.ok(gone, `${orphan} swept (this call dropped: ${dropped.join(', ')})`)
  assert.ok(!dropped.includes(live))
  assert.deepEqual(await db.sql(`SELECT rolname FROM pg_roles WHERE rolname IN ($1, $2)`, [orphan, live]), [{ rolname: live }])
})
