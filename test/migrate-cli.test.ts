import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from '../src/db/embedded.js'
import { testDatabase } from './helpers/db.js'
import { migrationsDir, runCli } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)

const stderrLines = (s: string): string[] => s.trim().split('\n')

test('--help and --version exit 0 and list the commands and exit codes', async () => {
  const help = await runCli(['--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /Usage: tenantize \[options\] \[command\]/)
  assert.match(help.stdout, /migrate +run SQL migrations/)
  assert.match(help.stdout, /Exit codes:\n {2}0 {2}ok\n {2}1 {2}findings/)
  const sub = await runCli(['migrate', 'up', '--help'])
  assert.equal(sub.code, 0)
  assert.match(sub.stdout, /--lock-timeout <duration>/)
  const version = await runCli(['--version'])
  assert.equal(version.code, 0)
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
})

test('usage errors: unknown command, unknown option, bad values — one line each, exit 2', async () => {
  const unknown = await runCli(['migrat'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /TZ_USAGE unknown command 'migrat'/)
  const badFlag = await runCli(['migrate', 'up', '--nope'])
  assert.equal(badFlag.code, 2)
  assert.match(badFlag.stderr, /TZ_USAGE unknown option '--nope'/)
  const values = await runCli(['migrate', 'up', '--db', db.url, '--lock-timeout', 'soon', '--retries', '0'])
  assert.equal(values.code, 2)
  assert.deepEqual(stderrLines(values.stderr), [
    'TZ_USAGE 2 invalid options',
    'TZ_USAGE --lock-timeout: "soon" is not a duration; use e.g. 500ms, 2s or 1m',
    'TZ_USAGE --retries: must be at least 1',
  ])
  const both = await runCli(['migrate', 'down', '--db', db.url, '--to', '0001', '--all'])
  assert.equal(both.code, 2)
  assert.match(both.stderr, /TZ_USAGE --all: use either --to or --all, not both/)
})

test('no database URL, unreachable server, wrong password: one clear line, exit 2, no password printed', async () => {
  const dir = await migrationsDir({ '0001_a.up.sql': 'CREATE TABLE a (id int);' })
  const none = await runCli(['migrate', 'up', '--dir', dir])
  assert.equal(none.code, 2)
  assert.equal(none.stderr, 'TZ_CONFIG --db: no database URL given — fix: pass --db postgres://user@host:5432/dbname or set DATABASE_URL\n')

  const port = await freePort()
  const refused = await runCli(['migrate', 'up', '--dir', dir], { DATABASE_URL: `postgres://postgres:s3cr3t-pw@127.0.0.1:${port}/x` })
  assert.equal(refused.code, 2)
  assert.equal(stderrLines(refused.stderr).length, 1)
  assert.match(refused.stderr, new RegExp(`^TZ_CONNECTION postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x: cannot connect: .*ECONNREFUSED.* — fix: start the server or correct host/port`))
  assert.doesNotMatch(refused.stderr + refused.stdout, /s3cr3t-pw/)

  // With a password the server rejects (scram) or, on a trust server, a role that does not exist.
  const url = new URL(db.url)
  url.password = 'wrong-s3cr3t'
  const probe = new pg.Client(url.toString())
  const trust = await probe.connect().then(() => true, () => false)
  await probe.end().catch(() => undefined)
  if (trust) url.username = 'tz_no_such_role'
  const bad = await runCli(['migrate', 'up', '--dir', dir, '--db', url.toString()])
  assert.equal(bad.code, 2)
  assert.equal(stderrLines(bad.stderr).length, 1)
  assert.match(bad.stderr, /^TZ_CONNECTION postgres:\/\/\w+:\*\*\*@.*cannot connect: (password authentication failed|role "tz_no_such_role" does not exist)/)
  assert.doesNotMatch(bad.stderr, /wrong-s3cr3t/)
  assert.deepEqual(await db.sql(`SELECT to_regclass('a') AS a`), [{ a: null }])
})

test('bad migration directories: missing, malformed names, duplicate numbers, empty files — every problem listed, exit 2, nothing changed', async () => {
  const missing = await runCli(['migrate', 'up', '--db', db.url, '--dir', '/nonexistent/dir'])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /^TZ_MIGRATION_DIR \/nonexistent\/dir: migrations directory does not exist/)
  const dir = await migrationsDir({
    '0001_ok.up.sql': 'CREATE TABLE ok (id int);',
    '001_short.up.sql': 'SELECT 1;',
    '0002_a.up.sql': 'SELECT 1;',
    '0002_b.up.sql': 'SELECT 1;',
    '0003_empty.up.sql': '\n',
  })
  const bad = await runCli(['migrate', 'up', '--db', db.url, '--dir', dir])
  assert.equal(bad.code, 2)
  const lines = stderrLines(bad.stderr)
  assert.equal(lines.length, 4)
  assert.match(lines[0]!, /3 problems in the migrations directory, nothing was run/)
  assert.match(lines[1]!, /^TZ_MIGRATION_DUPLICATE .*0002_b\.up\.sql: number 0002 is also used by 0002_a/)
  assert.match(lines[2]!, /^TZ_MIGRATION_NAME .*001_short\.up\.sql: file name does not match/)
  assert.match(lines[3]!, /^TZ_MIGRATION_EMPTY .*0003_empty\.up\.sql: file is empty/)
  assert.deepEqual(await db.sql(`SELECT to_regclass('ok') AS ok, to_regnamespace('tenantize') AS s`), [{ ok: null, s: null }])
})

test('create, up, status (exit 1 on changed files), down — text and --json output', async () => {
  const t = await db.another('cli_flow')
  const parent = await mkdtemp(join(tmpdir(), 'tz-cli-'))
  const dir = join(parent, 'migrations')
  try {
    const created = await runCli(['migrate', 'create', 'add users', '--dir', dir])
    assert.equal(created.code, 0, created.stderr)
    assert.match(created.stdout, /Created .*0001_add_users\.up\.sql\nCreated .*0001_add_users\.down\.sql\n/)
    const json = await runCli(['migrate', 'create', 'idx', '--dir', dir, '--no-transaction', '--json'])
    assert.equal(JSON.parse(json.stdout).name, '0002_idx')
    assert.deepEqual((await readdir(dir)).sort(), ['0001_add_users.down.sql', '0001_add_users.up.sql', '0002_idx.down.sql', '0002_idx.up.sql'])
    const { writeFile } = await import('node:fs/promises')
    await writeFile(join(dir, '0001_add_users.up.sql'), 'CREATE TABLE users (id int);')
    await writeFile(join(dir, '0001_add_users.down.sql'), 'DROP TABLE users;')
    await writeFile(join(dir, '0002_idx.up.sql'), '-- tenantize:no-transaction\nCREATE INDEX CONCURRENTLY users_id ON users (id);')
    await writeFile(join(dir, '0002_idx.down.sql'), '-- tenantize:no-transaction\nDROP INDEX CONCURRENTLY users_id;')

    const up = await runCli(['migrate', 'up', '--db', t.url, '--dir', dir, '--json'])
    assert.equal(up.code, 0, up.stderr)
    const events = up.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; migration?: string })
    assert.deepEqual(events.filter((e) => e.event !== 'preflight').map((e) => `${e.event}${e.migration ? ` ${e.migration}` : ''}`), ['plan', 'start 0001_add_users', 'finish 0001_add_users', 'start 0002_idx', 'finish 0002_idx', 'done'])

    const status = await runCli(['migrate', 'status', '--db', t.url, '--dir', dir])
    assert.equal(status.code, 0)
    assert.match(status.stdout, /^migration +state +applied at +by\n0001_add_users +applied +\d{4}-.*\n0002_idx +applied .*no-transaction\n2 applied, 0 pending, 0 changed, 0 missing\n$/)

    await writeFile(join(dir, '0001_add_users.up.sql'), 'CREATE TABLE users (id bigint);')
    const changed = await runCli(['migrate', 'status', '--db', t.url, '--dir', dir, '--json'])
    assert.equal(changed.code, 1)
    assert.deepEqual((JSON.parse(changed.stdout) as { migrations: { name: string; state: string }[] }).migrations.map((m) => m.state), ['changed', 'applied'])
    const refused = await runCli(['migrate', 'up', '--db', t.url, '--dir', dir])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /TZ_MIGRATION_CHANGED .*0001_add_users\.up\.sql: changed since it was applied/)

    const down = await runCli(['migrate', 'down', '--db', t.url, '--dir', dir, '--all', '--allow-changed'].filter((a) => a !== '--allow-changed'))
    assert.equal(down.code, 0, down.stderr)
    assert.match(down.stdout, /\[1\/2\] ↓ 0002_idx done in .*\n.*\n\[2\/2\] ↓ 0001_add_users done in /s)
    assert.deepEqual(await t.sql(`SELECT to_regclass('users') AS u, (SELECT count(*)::int FROM tenantize.migrations) AS n`), [{ u: null, n: 0 }])
  } finally {
    await rm(parent, { recursive: true, force: true })
  }
})
