import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { withClient } from '../src/db/connect.js'
import { dropDatabase } from '../src/db/provision.js'
import { quoteIdent } from '../src/sql/quote.js'
import { testServer } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'

const out = await mkdtemp(join(tmpdir(), 'tz-demo-'))
after(() => rm(out, { recursive: true, force: true }))

function checkProof(stdout: string, last = true): void {
  assert.match(stdout, /▸ tenantize init: classifying every table…\n/)
  assert.match(stdout, /▸ tenantize plan\n {2}\d+ steps: \d+ schema \(online\), \d+ enforce; 0 manual\n/)
  assert.match(stdout, /▸ tenantize apply --phase schema\n/)
  assert.match(stdout, /▸ tenantize apply --phase enforce\n/)
  assert.match(stdout, / {2}0 errors, \d+ warnings, \d+ notes; probe \d+ passed, 0 failed/)
  const a = /tenant A sees (\d+) meter readings/.exec(stdout)
  const b = /tenant B sees (\d+) meter readings/.exec(stdout)
  assert.ok(a !== null && Number(a[1]) > 1000, 'tenant A sees its readings')
  assert.ok(b !== null && Number(b[1]) === 96, 'tenant B sees its own 96')
  assert.match(stdout, /tenant B updating tenant A's readings: 0 rows affected/)
  assert.match(stdout, /no tenant context: 0 rows visible/)
  assert.match(stdout, last ? /✔ done in \d+\.\d s\n$/ : /✔ done in \d+\.\d s\n/)
}

test('tenantize demo runs the whole job on an embedded PostgreSQL, non-interactively, and writes the HTML report', async () => {
  const r = await runCli(['demo', '--out', out], { CI: 'true' })
  assert.equal(r.code, 0, r.stderr + r.stdout)
  assert.match(r.stdout, /^▸ starting an embedded PostgreSQL \(no server needed\)…\n {2}PostgreSQL 18 on 127\.0\.0\.1:\d+ \(\d+\.\d s\)\n/)
  checkProof(r.stdout)
  const file = join(out, 'tenantize-verify.html')
  assert.match(r.stdout, new RegExp(`HTML report: ${file.replace(/[.\\/]/g, '\\$&')}\n`))
  const html = await readFile(file, 'utf8')
  assert.match(html, /^<!doctype html>/i)
  assert.match(html, /meter_reading/)
  assert.doesNotMatch(html, /<script src=|<link [^>]*href="http/i, 'self-contained')
})

test('tenantize demo --db runs on an existing server in a new database; the password is never printed', async () => {
  const server = await testServer()
  const r = await runCli(['demo', '--db', server.url, '--out', out], { CI: 'true' })
  assert.equal(r.code, 0, r.stderr + r.stdout)
  assert.match(r.stdout, /^▸ using postgres:\/\/[^ ]*\/tz_demo_[0-9a-f]+\n/)
  checkProof(r.stdout, false)
  const database = /^▸ using postgres:\/\/[^ ]*\/(tz_demo_[0-9a-f]+)\n/.exec(r.stdout)![1]!
  const role = /with app role (tenantize_demo_app_\w+)\n/.exec(r.stdout)![1]!
  after(async () => {
    await dropDatabase(server.url, database)
    await withClient(server.url, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`))
  })
  const password = new URL(server.url).password
  if (password !== '') assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password))
  // The database and the role stay, and the demo says how to remove them; the printed statements do.
  const exists = () => withClient(server.url, async (c) => (await c.query<{ db: boolean; role: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS db, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) AS role', [database, role])).rows[0])
  assert.deepEqual(await exists(), { db: true, role: true })
  const cleanup = new RegExp(`The demo database stays on your server: postgres://[^ ]*/${database}\\nRemove it and the demo's app role ${role} \\(in this order; the role has privileges only there\\):\\n {2}psql "([^"]+)" -c '([^']+)' -c '([^']+)'\\n$`).exec(r.stdout)
  assert.ok(cleanup !== null, r.stdout.slice(-600))
  assert.deepEqual(cleanup.slice(2), [`DROP DATABASE "${database}" WITH (FORCE)`, `DROP ROLE "${role}"`])
  for (const sql of cleanup.slice(2)) await withClient(server.url, (c) => c.query(sql))
  assert.deepEqual(await exists(), { db: false, role: false })
})

test('tenantize demo --keep with --db is a usage error', async () => {
  const r = await runCli(['demo', '--keep', '--db', 'postgres://x@127.0.0.1:1/x'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_USAGE --keep:/)
})
