import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { testDatabase } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'
import { schemaFingerprint } from './helpers/conversion.js'

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-convert-'))
after(() => rm(dir, { recursive: true, force: true }))

const SCHEMA = `
  CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);
  CREATE TABLE notes (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users, body text);
  INSERT INTO users (email) SELECT 'u' || g || '@x' FROM generate_series(1, 20) g;
  INSERT INTO notes (user_id, body) SELECT 1 + g % 20, 'n' || g FROM generate_series(1, 100) g;`

async function dropRole(role: string): Promise<void> {
  await db.sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined)
}

test('init → plan → apply → status → rollback through the CLI', async () => {
  const t = await db.another('cli_convert')
  await t.sql(SCHEMA)
  const role = `${t.name}_app`
  after(() => dropRole(role))
  const config = join(dir, 'a.json')
  const init = await runCli(['init', '--db', t.url, '--out', config, '--app-role', role])
  assert.equal(init.code, 0, init.stderr)
  assert.match(init.stdout, new RegExp(`^Wrote ${config.replace(/[.\\/]/g, '\\$&')} \\(tenant table public\\.organizations, to be created; tenant column org_id; app role ${role}\\)\\n`))
  assert.match(init.stdout, /public\.notes +child +reaches the tenant through notes_user_id_fkey/)
  const written = JSON.parse(await readFile(config, 'utf8')) as { $schema: string; tables: Record<string, { class: string; reason: string }> }
  assert.equal(written.$schema, './node_modules/tenantize/docs/config.schema.json')

  // The user's edit survives a second init.
  written.tables['public.users']!.reason = 'edited by hand'
  await writeFile(config, JSON.stringify(written))
  const again = await runCli(['init', '--db', t.url, '--out', config])
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /^Updated /)
  assert.equal((JSON.parse(await readFile(config, 'utf8')) as typeof written).tables['public.users']!.reason, 'edited by hand')

  const plan = await runCli(['plan', '--db', t.url, '--config', config])
  assert.equal(plan.code, 0, plan.stderr)
  assert.match(plan.stdout, /^Phase schema \(the application keeps working unchanged\)\n/)
  assert.match(plan.stdout, /\n\d+ steps \(\d+ schema, \d+ enforce\), 0 manual\.\n\nData check: no problem found; apply can run every step\.\n$/)

  const fingerprint = await schemaFingerprint(t.url)
  const applied = await runCli(['apply', '--db', t.url, '--config', config, '--yes', '--json'])
  assert.equal(applied.code, 0, applied.stderr)
  const events = applied.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string })
  assert.equal(events.at(-1)!.event, 'done')

  const status = await runCli(['status', '--db', t.url])
  assert.equal(status.code, 0, status.stderr)
  assert.match(status.stdout, /^(\d+)\/\1 steps applied \(schema: \d+\/\d+, enforce: \d+\/\d+\)\ntable +class +column +not null +rls +forced +policy +index\n/)
  assert.match(status.stdout, /\npublic\.notes +child +org_id +yes +yes +yes +yes +yes\n/)

  // Someone switches RLS off by hand: status exits 1.
  await t.sql('ALTER TABLE notes DISABLE ROW LEVEL SECURITY')
  const broken = await runCli(['status', '--db', t.url, '--json'])
  assert.equal(broken.code, 1)
  await t.sql('ALTER TABLE notes ENABLE ROW LEVEL SECURITY')

  assert.equal((await runCli(['rollback', '--db', t.url, '--config', config, '--yes', '--phase', 'enforce', '--purge'])).code, 2, '--purge needs --phase all')
  const back = await runCli(['rollback', '--db', t.url, '--config', config, '--yes', '--purge'])
  assert.equal(back.code, 0, back.stderr)
  assert.match(back.stdout, /Done: \d+ step\(s\) down/)
  assert.equal(await schemaFingerprint(t.url), fingerprint)
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') IS NULL AS gone`), [{ gone: true }], '--purge leaves nothing of Tenantize')
})

test('plan --format sql writes migration files that tenantize migrate runs up and down', async () => {
  const t = await db.another('cli_plan_sql')
  await t.sql(SCHEMA)
  const role = `${t.name}_app`
  after(() => dropRole(role))
  const config = join(dir, 'b.json')
  assert.equal((await runCli(['init', '--db', t.url, '--out', config, '--app-role', role])).code, 0)
  const out = join(dir, 'plan-sql')
  const plan = await runCli(['plan', '--db', t.url, '--config', config, '--format', 'sql', '--out', out])
  assert.equal(plan.code, 0, plan.stderr)
  const files = (await readdir(out)).sort()
  assert.match(plan.stdout, new RegExp(`^Wrote ${files.length} files to `))
  assert.equal(files[0], '0001_schema_helpers.down.sql')
  assert.match(await readFile(join(out, files.find((f) => f.includes('tenant_index') && f.endsWith('.up.sql'))!), 'utf8'), /^-- tenantize:no-transaction\n/)
  const fingerprint = await schemaFingerprint(t.url)
  const up = await runCli(['migrate', 'up', '--db', t.url, '--dir', out])
  assert.equal(up.code, 0, up.stderr)
  assert.deepEqual(await t.sql(`SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'notes'`), [{ relrowsecurity: true, relforcerowsecurity: true }])
  const down = await runCli(['migrate', 'down', '--db', t.url, '--dir', out, '--all'])
  assert.equal(down.code, 0, down.stderr)
  assert.equal(await schemaFingerprint(t.url), fingerprint)
})

test('config problems are listed at once with exit 2; a missing config says to run init', async () => {
  const missing = await runCli(['plan', '--db', db.url, '--config', join(dir, 'nope.json')])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /^TZ_CONFIG .*nope\.json: configuration file not found — fix: run tenantize init/)
  const bad = join(dir, 'bad.json')
  await writeFile(bad, JSON.stringify({ version: 1, tenant: { table: 'organizations', create: 'yes' }, tables: {} }))
  const r = await runCli(['plan', '--db', db.url, '--config', bad])
  assert.equal(r.code, 2)
  const lines = r.stderr.trim().split('\n')
  assert.match(lines[0]!, /^TZ_CONFIG .*bad\.json: 3 problems in the configuration$/)
  assert.ok(lines.some((l) => /tenant\.table: must be "schema\.table"/.test(l)))
  assert.ok(lines.some((l) => /tenant\.create:/.test(l)))
  assert.ok(lines.some((l) => /tenant\.default:/.test(l)))
})

test('plan --format prisma writes one migration folder per step, concurrent statements alone in theirs', async () => {
  const t = await db.another('cli_plan_prisma')
  await t.sql(SCHEMA)
  const role = `${t.name}_app`
  after(() => dropRole(role))
  const config = join(dir, 'c.json')
  assert.equal((await runCli(['init', '--db', t.url, '--out', config, '--app-role', role])).code, 0)
  const out = join(dir, 'prisma-migrations')
  const r = await runCli(['plan', '--db', t.url, '--config', config, '--format', 'prisma', '--out', out])
  assert.equal(r.code, 0, r.stderr)
  const dirs = (await readdir(out)).sort()
  assert.match(r.stdout, new RegExp(`^Wrote ${dirs.length} Prisma migrations to `))
  assert.match(dirs[0]!, /^\d{14}_tenantize_0001_helpers$/)
  for (const d of dirs) {
    const sql = await readFile(join(out, d, 'migration.sql'), 'utf8')
    if (/CONCURRENTLY/.test(sql)) assert.equal(sql.match(/;\n/g)?.length, 1, `${d} holds one statement`)
  }
})
