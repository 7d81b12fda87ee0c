import { test } from 'node:test'
import assert from 'node:assert/strict'
import { testDatabase } from './helpers/db.js'
import { runCli } from './helpers/migrations.js'

const db = await testDatabase(import.meta.url)
await db.sql(`
  CREATE SCHEMA app;
  CREATE TABLE app.orgs (id uuid PRIMARY KEY);
  CREATE TABLE app."Invoice Lines" (id bigint PRIMARY KEY, org_id uuid REFERENCES app.orgs);
  ALTER TABLE app."Invoice Lines" ENABLE ROW LEVEL SECURITY;
  ALTER TABLE app."Invoice Lines" FORCE ROW LEVEL SECURITY;
  CREATE POLICY p ON app."Invoice Lines" USING (true);
  ANALYZE app.orgs;
`)

test('inspect prints a per-table summary with RLS state', async () => {
  const r = await runCli(['inspect', '--db', db.url, '--schema', 'app'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^PostgreSQL \d+\.\d+.* · database tz_cli_inspect_\w+ · as \w+\n1 schema\(s\), 2 table\(s\), 0 view\(s\), 0 function\(s\), 0 sequence\(s\), \d+ role\(s\)\n\n/)
  assert.match(r.stdout, /\napp\.Invoice Lines +ordinary +\? +enabled\+forced +1\n/)
  assert.match(r.stdout, /\napp\.orgs +ordinary +0 +off +0\n/)
})

test('inspect --json emits the whole snapshot', async () => {
  const r = await runCli(['inspect', '--json'], { DATABASE_URL: db.url })
  assert.equal(r.code, 0, r.stderr)
  const snapshot = JSON.parse(r.stdout) as { tables: { schema: string; name: string; policies: { name: string; using: string }[] }[] }
  const lines = snapshot.tables.find((t) => t.schema === 'app' && t.name === 'Invoice Lines')
  assert.deepEqual(lines?.policies.map((p) => [p.name, p.using]), [['p', 'true']])
})

test('inspect without a database URL: TZ_CONFIG, exit 2', async () => {
  const r = await runCli(['inspect'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^TZ_CONFIG --db: no database URL given/)
})
