import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serverCheck } from '../src/doctor/doctor.js'
import { testDatabase } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'

// `tenantize doctor` (issue #13 item 11): one line per check, ok / warn / FAIL with the fix; exit 1 on a FAIL.

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-doctor-'))
after(() => rm(dir, { recursive: true, force: true }))
const config = join(dir, 'tenantize.config.json')
const app = db.role('app')
const login = db.role('web')
await db.sql(`
  CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
  CREATE TABLE notes (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users, body text);
  INSERT INTO users (email) VALUES ('a@x'), ('b@x');
  CREATE ROLE "${login}" LOGIN;`)

/** Versions and sizes differ between servers: compare lines with them as <v>. */
const stable = (s: string): string => s.replace(/PostgreSQL [\d.]+[^:]*:/, 'PostgreSQL <v>:').replace(/plpgsql [\d.]+/, 'plpgsql <v>').replace(/connected as \S+/, 'connected as <me>')

test('before apply: the app role does not exist yet and the login is no member (warnings), the rest ok', async () => {
  assert.equal((await runCli(['init', '--db', db.url, '--out', config, '--app-role', app, '--app-login', login])).code, 0)
  const r = await runCli(['doctor', '--db', db.url, '--config', config])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(stable(r.stdout), `ok    server         PostgreSQL <v>: no known row-level security fix missing
ok    role:migrator  connected as <me> (superuser: apply and verify can do everything they need)
warn  role:app       ${app} does not exist yet — fix: tenantize apply creates it (NOLOGIN) in the enforce phase
warn  role:login     ${login} is not a member of ${app}: the tenant policies do not apply to its sessions — fix: tenantize apply (it grants it), or GRANT "${app}" TO "${login}";
ok    pooler         direct session (or a session-mode pool): apply and migrate can hold their lock
ok    extensions     plpgsql <v>
ok    config         every table, path and column the config names exists
ok    indexes        no INVALID index
ok    ledger         no conversion applied yet
7 ok, 2 warning(s), 0 failed
`)
})

test('after apply: all ok; a BYPASSRLS login and an INVALID index are FAILs with their fix, exit 1; --json', async () => {
  assert.equal((await runCli(['apply', '--db', db.url, '--config', config, '--yes'])).code, 0)
  const good = await runCli(['doctor', '--db', db.url, '--config', config])
  assert.equal(good.code, 0, good.stdout)
  assert.match(stable(good.stdout), new RegExp(`\\nok    role:app       ${app}: not superuser, not BYPASSRLS, owns no table\\nok    role:login     ${login} logs in, is a member of ${app}, and escapes no policy\\n`))
  assert.match(good.stdout, /\nok {4}ledger {9}(\d+)\/\1 steps applied\n/)
  await db.sql(`ALTER ROLE "${login}" BYPASSRLS; CREATE INDEX notes_body_idx ON notes (body); UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'notes_body_idx'::regclass`)
  const bad = await runCli(['doctor', '--db', db.url, '--config', config])
  assert.equal(bad.code, 1)
  assert.match(bad.stdout, new RegExp(`\\nFAIL  role:login     ${login} has BYPASSRLS: row-level security never applies to it — fix: ALTER ROLE "${login}" NOBYPASSRLS\\n`))
  assert.match(bad.stdout, /\nFAIL {2}indexes {8}notes_body_idx on notes is INVALID \(a concurrent build was cut short\): maintained on every write, used by no query — fix: DROP INDEX CONCURRENTLY notes_body_idx; then run tenantize apply again \(or build it again\)\n/)
  const json = JSON.parse((await runCli(['doctor', '--db', db.url, '--config', config, '--json'])).stdout) as { healthy: boolean; checks: { check: string; status: string }[] }
  assert.equal(json.healthy, false)
  assert.deepEqual(json.checks.filter((c) => c.status === 'fail').map((c) => c.check), ['role:login', 'indexes'])
  await db.sql(`ALTER ROLE "${login}" NOBYPASSRLS; DROP INDEX notes_body_idx`)
})

test('a server missing row-level security fixes is a warning naming the CVEs and the release to upgrade to', () => {
  assert.deepEqual(serverCheck('15.2', 150002), { check: 'server', status: 'warn', message: 'PostgreSQL 15.2 lacks CVE-2023-2455, CVE-2023-39418, CVE-2024-10976, CVE-2025-8713', fix: 'upgrade to 15.9 or later' })
})
