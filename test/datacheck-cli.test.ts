import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { testDatabase } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'
import { schemaFingerprint } from './helpers/conversion.js'

const db = await testDatabase(import.meta.url)
const dir = await mkdtemp(join(tmpdir(), 'tz-datacheck-cli-'))
after(() => rm(dir, { recursive: true, force: true }))

test('plan prints the data check after the steps (and in JSON), --no-data-check skips it; apply refuses with exit 1 and every finding, nothing changed', async () => {
  const t = await db.another('dc_cli')
  const role = `${t.name}_app`
  after(() => db.sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined))
  await t.sql(`
    CREATE TABLE clients (id bigint PRIMARY KEY);
    CREATE TABLE projects (id bigint PRIMARY KEY, client_id bigint NOT NULL REFERENCES clients);
    CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects);
    INSERT INTO clients VALUES (1);
    INSERT INTO projects VALUES (10, 1);
    INSERT INTO tasks VALUES (1, 10), (2, NULL);`)
  const config = join(dir, 'config.json')
  const init = await runCli(['init', '--db', t.url, '--out', config, '--tenant-table', 'clients', '--app-role', role])
  assert.equal(init.code, 0, init.stderr)

  const text = await runCli(['plan', '--db', t.url, '--config', config])
  assert.equal(text.code, 0, text.stderr)
  const tail = text.stdout.slice(text.stdout.indexOf('\nData check:') + 1)
  assert.equal(tail, [
    'Data check: 1 problem(s) would stop apply part-way; it refuses to start until they are fixed:',
    '  ✖ public.tasks: 1 row(s) break: every row of public.tasks has a public.projects row (project_id → id) to take its tenant from: the foreign key is neither NULL nor dangling (e.g. id=2: project_id=NULL)',
    '      fix: classify public.tasks as global in the config if its rows are shared by every tenant (read-only to the app), or as direct if they all belong to the default tenant',
    '      fix: give those rows a parent, or delete them: SELECT * FROM "public"."tasks" AS t0 WHERE t0."project_id" IS NULL OR NOT EXISTS (SELECT 1 FROM "public"."projects" AS t1 WHERE t1."id" = t0."project_id"); DELETE FROM "public"."tasks" AS t0 WHERE t0."project_id" IS NULL OR NOT EXISTS (SELECT 1 FROM "public"."projects" AS t1 WHERE t1."id" = t0."project_id")',
    '',
  ].join('\n'))
  assert.ok(text.stdout.indexOf('Data check:') > text.stdout.indexOf(' steps ('), 'after the steps')

  const json = await runCli(['plan', '--db', t.url, '--config', config, '--format', 'json'])
  assert.equal(json.code, 0, json.stderr)
  const parsed = JSON.parse(json.stdout) as { steps: unknown[]; findings: { id: string; table: string; count: number; samples: string[] }[] }
  assert.ok(parsed.steps.length > 0)
  assert.deepEqual(parsed.findings.map((f) => [f.id, f.table, f.count, f.samples]), [['orphans:public.tasks', 'public.tasks', 1, ['id=2: project_id=NULL']]])

  const skipped = await runCli(['plan', '--db', t.url, '--config', config, '--no-data-check'])
  assert.equal(skipped.code, 0, skipped.stderr)
  assert.doesNotMatch(skipped.stdout, /Data check/)
  const skippedJson = JSON.parse((await runCli(['plan', '--db', t.url, '--config', config, '--format', 'json', '--no-data-check'])).stdout) as Record<string, unknown>
  assert.equal('findings' in skippedJson, false)

  const before = await schemaFingerprint(t.url)
  const refused = await runCli(['apply', '--db', t.url, '--config', config, '--yes'])
  assert.equal(refused.code, 1, refused.stderr)
  const lines = refused.stderr.split('\n')
  assert.equal(lines.length, 3)
  assert.match(lines[0]!, /^TZ_PREFLIGHT data check: the data check found 1 problem\(s\) that would stop the conversion part-way; nothing was changed — fix: /)
  assert.match(lines[1]!, /^TZ_PREFLIGHT public\.tasks: 1 row\(s\) break: every row of public\.tasks has a public\.projects row/)
  assert.match(refused.stderr, /\(e\.g\. id=2: project_id=NULL\) — fix: classify public\.tasks as global/)
  assert.equal(await schemaFingerprint(t.url), before)
  assert.deepEqual(await t.sql(`SELECT to_regnamespace('tenantize') AS ns`), [{ ns: null }])
  const dry = await runCli(['apply', '--db', t.url, '--config', config, '--dry-run', '--json'])
  assert.equal(dry.code, 1, dry.stderr)
  assert.deepEqual((JSON.parse(dry.stdout.trim().split('\n').at(-1)!) as { findings: { id: string }[] }).findings.map((f) => f.id), ['orphans:public.tasks'])

  await t.sql(`UPDATE tasks SET project_id = 10 WHERE project_id IS NULL`)
  const clean = await runCli(['plan', '--db', t.url, '--config', config])
  assert.match(clean.stdout, /\nData check: no problem found; apply can run every step\.\n$/)
  const applied = await runCli(['apply', '--db', t.url, '--config', config, '--yes'])
  assert.equal(applied.code, 0, applied.stderr)
})
