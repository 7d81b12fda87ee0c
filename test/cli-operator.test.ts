import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.js'
import { testDatabase } from './helpers/db.js'

// Issue #13, "the CLI a careful operator trusts": the real CLI in a child process (no terminal: stdin
// and stdout are pipes), run from a folder of its own so that ./tenantize.config.json is that folder's.

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-operator-'))
after(() => rm(dir, { recursive: true, force: true }))
const cli = (args: readonly string[]): ReturnType<typeof runCli> => runCli(dir, args)

/** Durations vary from run to run: the tests compare the text with them as `<t>`. */
const timeless = (s: string): string => s.replace(/\d+(\.\d)? (ms|s)\b/g, '<t>')

// users (the membership's users table), notes (a child of users), tags (global); never analyzed.
const t = await db.another('operator')
await t.sql(`
  CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
  CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
  CREATE TABLE notes (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, body text);
  INSERT INTO users (email) SELECT 'u' || g || '@x' FROM generate_series(1, 30) g;
  INSERT INTO notes (user_id, body) SELECT 1 + g % 30, 'n' || g FROM generate_series(1, 3000) g;`)
const app = t.role('app')
const login = t.role('web')
await t.sql(`CREATE ROLE "${login}" LOGIN`)
const config = join(dir, 'tenantize.config.json')

test('init --app-login: checked and saved as roles.login', async () => {
  const r = await cli(['init', '--db', t.url, '--app-role', app, '--app-login', login])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, new RegExp(`^Wrote tenantize\\.config\\.json \\(tenant table public\\.organizations, to be created; tenant column org_id; app role ${app}, granted to the login ${login} by apply\\)\\n`))
  const written = JSON.parse(await readFile(config, 'utf8')) as { roles: { login?: string } }
  assert.equal(written.roles.login, login)
})

test('init --app-login refuses a superuser login: exit 2, every problem named', async () => {
  const r = await cli(['init', '--db', t.url, '--app-role', app, '--app-login', 'postgres', '--out', join(dir, 'other.json')])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_CONFIG --app-login: the app login postgres would not be bound by row-level security; nothing was changed\nTZ_CONFIG role postgres: is a superuser: row-level security never applies to it — fix: ALTER ROLE "postgres" NOSUPERUSER \(and use another role for administration\)\n/)
})

test('plan on never-analyzed tables: rows unknown with the size on disk, and which steps scan; --sql shows the SQL', async () => {
  const r = await cli(['plan', '--db', t.url, '--no-data-check', '--sql'])
  assert.equal(r.code, 0, r.stderr)
  assert.doesNotMatch(r.stdout, /public\.notes[^]*?catalog only\n[^]*?public\.tags/)
  assert.match(r.stdout, /\n {9}lock SHARE UPDATE EXCLUSIVE \(scan without blocking writes\); rows unknown \(never analyzed; \d+ kB on disk; run ANALYZE for an estimate\); scans the table\n/)
  assert.match(r.stdout, /\n {9}ALTER TABLE "public"\."notes" VALIDATE CONSTRAINT /)
  assert.match(r.stdout, /recreate it with org_id first: CREATE UNIQUE INDEX CONCURRENTLY ON "public"\."users" \("org_id", lower\(email\)\); then drop "users_email_lower"/)
})

test('apply without a terminal and without --yes: exit 2, nothing done (rollback too)', async () => {
  for (const command of ['apply', 'rollback']) {
    const r = await cli([command, '--db', t.url])
    assert.equal(r.code, 2)
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, `TZ_USAGE ${command}: ${command} changes the database and there is no terminal to confirm on; nothing was changed — fix: pass --yes to run it from a script or CI (or --dry-run to see what it would do)\n`)
  }
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') AS s`), [{ s: null }])
})

test('apply --dry-run prints each step\'s SQL under one comment, no "-- line 1"', async () => {
  const r = await cli(['apply', '--db', t.url, '--dry-run', '--phase', 'schema'])
  assert.equal(r.code, 0, r.stderr)
  assert.doesNotMatch(r.stdout, /-- line/)
  assert.match(r.stdout, /^Would run \d+ step\(s\) up\n/m)
  assert.match(r.stdout, /\n-- ↑ 0001_[^\n]+ \(one transaction\)\nCREATE SCHEMA IF NOT EXISTS "tenantize";\n/)
})

test('apply --yes without a terminal: one line per step, a short plan line, the app login granted', async () => {
  const r = await cli(['apply', '--db', t.url, '--yes'])
  assert.equal(r.code, 0, r.stderr)
  const lines = timeless(r.stdout).split('\n')
  const steps = lines.filter((l) => /^\[\d+\/\d+\] ↑ /.test(l))
  const total = Number(/^\[1\/(\d+)\]/.exec(steps[0]!)![1])
  assert.equal(steps.length, total, 'one line per step')
  assert.ok(lines.every((l) => l.length < 200), 'no 4,000-character line')
  assert.match(timeless(r.stdout), new RegExp(`Running ${total} step\\(s\\) up \\(↑ 0001_[^ ]+ … ${String(total).padStart(4, '0')}_[^ ]+\\)\\n`))
  assert.doesNotMatch(r.stdout, /started/)
  assert.match(steps[0]!, /^\[1\/\d+\] ↑ 0001_\S+ \(<t>\)$/)
  assert.match(r.stdout, new RegExp(`\\nDone: ${total} step\\(s\\) up in [\\d.]+ m?s\\.\\n✔ ${login} \\(the app's login\\) is a member of ${app}: its sessions are bound by the tenant policies\\n$`))
  assert.deepEqual(await t.sql(`SELECT pg_has_role($1, $2, 'MEMBER') AS m`, [login, app]), [{ m: true }])
})

test('verify reads ./tenantize.config.json by default: the config\'s classes, and no fk-not-tenant-scoped on the membership table', async () => {
  const r = await cli(['verify', '--db', t.url, '--no-probe', '--format', 'json'])
  assert.equal(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout) as { model: { appRole: string; tables: { table: string; class: string }[] }; findings: { rule: string; object: string }[] }
  assert.equal(report.model.appRole, app)
  assert.equal(report.model.tables.find((x) => x.table === 'public.notes')?.class, 'child')
  assert.deepEqual(report.findings.filter((f) => f.rule === 'fk-not-tenant-scoped').map((f) => f.object), [])
  // The membership table is not in tables (the plan creates it): verify counts it as the direct table it is.
  const text = await cli(['verify', '--db', t.url, '--no-probe'])
  const init = JSON.parse(await readFile(config, 'utf8')) as { tenant: { membership: { table: string } | null }; tables: Record<string, { class: string }> }
  assert.equal(init.tenant.membership?.table, 'public.organization_members', 'init proposed the membership table: users points at no tenant, a member row at another tenant\'s user')
  const count = (c: string): number => Object.values(init.tables).filter((x) => x.class === c).length
  assert.match(text.stdout, new RegExp(`\\ntables: 1 root, ${count('direct') + 1} direct, ${count('child')} child, 0 policy-scoped, \\d+ global\\n`))
})

test('verify.accept silences one finding on one object; the report lists it with its reason', async () => {
  const before = JSON.parse((await cli(['verify', '--db', t.url, '--no-probe', '--format', 'json'])).stdout) as { findings: { rule: string; object: string }[] }
  const target = before.findings[0]
  assert.ok(target !== undefined, 'a finding to accept')
  const c = JSON.parse(await readFile(config, 'utf8')) as Record<string, unknown>
  await writeFile(join(dir, 'accept.json'), JSON.stringify({ ...c, verify: { accept: [{ rule: target.rule, object: target.object, reason: 'reviewed with security, ticket SEC-12' }, { rule: 'rls-disabled', object: 'public.nothing', reason: 'stale' }] } }))
  const r = await cli(['verify', '--db', t.url, '--no-probe', '--config', 'accept.json'])
  assert.match(r.stdout, new RegExp(`\\nACCEPTED RISKS \\(1\\): not counted, listed so they stay deliberate\\n  ✓ ${target.rule} ${target.object.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(would be \\w+\\)\\n      reason: reviewed with security, ticket SEC-12 — verify\\.accept\\n`))
  assert.match(r.stdout, /note: accepted risk rls-disabled on public\.nothing \(verify\.accept\) matches no finding: remove it, or correct its rule or object/)
  const json = JSON.parse((await cli(['verify', '--db', t.url, '--no-probe', '--config', 'accept.json', '--format', 'json'])).stdout) as { findings: { object: string; rule: string }[]; accepted: { reason: string }[] }
  assert.ok(!json.findings.some((f) => f.rule === target.rule && f.object === target.object))
  assert.deepEqual(json.accepted.map((a) => a.reason), ['reviewed with security, ticket SEC-12'])
})

test('status: exit code and problems from conversionStatus (a table whose RLS is no longer forced)', async () => {
  const ok = await cli(['status', '--db', t.url])
  assert.equal(ok.code, 0, ok.stdout)
  await t.sql('ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY')
  const broken = await cli(['status', '--db', t.url])
  assert.equal(broken.code, 1)
  assert.match(broken.stdout, /\n✖ public\.notes: row-level security is not forced\n$/)
  const json = JSON.parse((await cli(['status', '--db', t.url, '--json'])).stdout) as { healthy: boolean; problems: unknown[] }
  assert.deepEqual([json.healthy, json.problems], [false, [{ table: 'public.notes', problem: 'row-level security is not forced' }]])
  await t.sql('ALTER TABLE public.notes FORCE ROW LEVEL SECURITY')
})
