import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TenantizeError } from '../src/errors.js'
import { createMigration, loadMigrations, migrationStatus, planDown, planUp, type AppliedMigration } from '../src/migrate/index.js'
import { splitStatements } from '../src/migrate/split.js'
import { migrationsDir } from './helpers/migrations.js'

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: string): Promise<TenantizeError> {
  try {
    await (typeof promise === 'function' ? promise() : promise)
  } catch (error) {
    assert.ok(error instanceof TenantizeError, `expected TenantizeError, got ${String(error)}`)
    assert.equal(error.code, code, error.toLines().join('\n'))
    return error
  }
  assert.fail(`expected ${code}`)
}

const applied = (name: string, checksum: string): AppliedMigration => ({ name, version: name.slice(0, 4), checksum, appliedAt: new Date('2026-01-01T00:00:00Z'), durationMs: 5, appliedBy: 'postgres' })

test('loadMigrations pairs up and down files in number order, with checksums and the no-transaction header', async () => {
  const dir = await migrationsDir({
    '0002_b.up.sql': '-- tenantize:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);',
    '0001_a.up.sql': 'CREATE TABLE t (x int);',
    '0001_a.down.sql': 'DROP TABLE t;',
    'README.md': 'ignored',
  })
  const ms = await loadMigrations(dir)
  assert.deepEqual(ms.map((m) => [m.name, m.version, m.up.noTransaction, m.down !== undefined]), [
    ['0001_a', '0001', false, true],
    ['0002_b', '0002', true, false],
  ])
  assert.equal(ms[0]!.checksum, 'be338388444fc7dcc5efb51722e82e1104869e23540fbe781754a7d70efa52d6') // sha256 of the up file
  assert.notEqual(ms[0]!.checksum, ms[1]!.checksum)
})

test('loadMigrations reports every bad file at once, one line each', async () => {
  const dir = await migrationsDir({
    '1_short.up.sql': 'SELECT 1;',
    '0001_Bad Name.up.sql': 'SELECT 1;',
    '0002_x.up.sql': 'SELECT 1;',
    '0002_y.up.sql': 'SELECT 1;',
    '0003_empty.up.sql': '  \n-- only a comment\n',
    '0004_orphan.down.sql': 'SELECT 1;',
  })
  const error = await rejectsWith(loadMigrations(dir), 'TZ_MIGRATION_NAME')
  const lines = error.toLines()
  assert.match(lines[0]!, /5 problems in the migrations directory, nothing was run/)
  assert.deepEqual(lines.slice(1).map((l) => l.split(' ')[0]), ['TZ_MIGRATION_NAME', 'TZ_MIGRATION_DUPLICATE', 'TZ_MIGRATION_NAME', 'TZ_MIGRATION_EMPTY', 'TZ_MIGRATION_NAME'])
  assert.ok(lines.some((l) => l.includes('0001_Bad Name.up.sql') && l.includes('does not match')))
  assert.ok(lines.some((l) => l.includes('1_short.up.sql')))
  assert.ok(lines.some((l) => l.includes('0002_y.up.sql') && l.includes('also used by 0002_x')))
  assert.ok(lines.some((l) => l.includes('0003_empty.up.sql') && l.includes('empty')))
  assert.ok(lines.some((l) => l.includes('0004_orphan.down.sql') && l.includes('without an up file')))
})

test('loadMigrations: a missing directory is one clear error', async () => {
  const error = await rejectsWith(loadMigrations('/nonexistent/tz-migrations'), 'TZ_MIGRATION_DIR')
  assert.equal(error.toLines()[0], 'TZ_MIGRATION_DIR /nonexistent/tz-migrations: migrations directory does not exist — fix: create it with `tenantize migrate create <name>` or pass the right --dir')
})

test('migrationStatus merges files and ledger: applied, changed, missing, pending', async () => {
  const dir = await migrationsDir({ '0001_a.up.sql': 'SELECT 1;', '0002_b.up.sql': 'SELECT 2;', '0004_d.up.sql': 'SELECT 4;' })
  const files = await loadMigrations(dir)
  const rows = migrationStatus(files, [applied('0001_a', files[0]!.checksum), applied('0002_b', 'f'.repeat(64)), applied('0003_c', 'e'.repeat(64))])
  assert.deepEqual(rows.map((r) => [r.name, r.state]), [
    ['0001_a', 'applied'],
    ['0002_b', 'changed'],
    ['0003_c', 'missing'],
    ['0004_d', 'pending'],
  ])
})

test('planUp refuses changed files (unless allowed) and out-of-order pending files, naming each', async () => {
  const dir = await migrationsDir({ '0001_a.up.sql': 'SELECT 1;', '0002_b.up.sql': 'SELECT 2;', '0003_c.up.sql': 'SELECT 3;' })
  const files = await loadMigrations(dir)
  const changed = await rejectsWith(() => planUp(files, [applied('0001_a', 'f'.repeat(64))]), 'TZ_MIGRATION_CHANGED')
  assert.match(changed.toLines()[1]!, /^TZ_MIGRATION_CHANGED 0001_a\.up\.sql: changed since it was applied on 2026-01-01T00:00:00\.000Z — fix: .*--allow-changed/)
  assert.deepEqual(planUp(files, [applied('0001_a', 'f'.repeat(64))], { allowChanged: true }).map((m) => m.name), ['0002_b', '0003_c'])
  const order = await rejectsWith(() => planUp(files, [applied('0001_a', files[0]!.checksum), applied('0003_c', files[2]!.checksum)]), 'TZ_MIGRATION_ORDER')
  assert.match(order.toLines()[1]!, /0002_b\.up\.sql: is pending but numbered before/)
  assert.deepEqual(planUp(files, [], { to: '0002' }).map((m) => m.name), ['0001_a', '0002_b'])
  await rejectsWith(() => planUp(files, [], { to: '0009' }), 'TZ_USAGE')
})

test('planDown: newest first, --to keeps the target, and a missing down file refuses before anything runs', async () => {
  const dir = await migrationsDir({
    '0001_a.up.sql': 'SELECT 1;', '0001_a.down.sql': 'SELECT 1;',
    '0002_b.up.sql': 'SELECT 2;',
    '0003_c.up.sql': 'SELECT 3;', '0003_c.down.sql': 'SELECT 3;',
  })
  const files = await loadMigrations(dir)
  const all = files.map((f) => applied(f.name, f.checksum))
  assert.deepEqual(planDown(files, all).map((m) => m.name), ['0003_c'])
  assert.deepEqual(planDown(files, all, { to: '0002_b' }).map((m) => m.name), ['0003_c'])
  const noDown = await rejectsWith(() => planDown(files, all, { all: true }), 'TZ_MIGRATION_NO_DOWN')
  assert.match(noDown.toLines()[1]!, /0002_b\.down\.sql: does not exist/)
  await rejectsWith(() => planDown(files, all, { to: '0007' }), 'TZ_USAGE')
  assert.deepEqual(planDown(files, []).map((m) => m.name), [])
})

test('splitStatements uses the PostgreSQL parser: dollar quotes, comments, strings, lines', async () => {
  const sql = "CREATE TABLE t (x int);\n\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n-- a; comment\nINSERT INTO s.t VALUES (';')"
  const stmts = await splitStatements(sql, 'x.sql')
  assert.deepEqual(stmts.map((s) => [s.line, s.text]), [
    [1, 'CREATE TABLE t (x int)'],
    [3, 'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$'],
    [5, "INSERT INTO s.t VALUES (';')"],
  ])
  assert.deepEqual(stmts.map((s) => s.relations), [['"t"'], [], ['"s"."t"']])
  const error = await rejectsWith(splitStatements('SELECT 1;\nCREAT TABLE x ();', 'bad.sql'), 'TZ_MIGRATION_SYNTAX')
  assert.equal(error.object, 'bad.sql:2:1')
  assert.match(error.message, /syntax error at or near "CREAT"\nCREAT TABLE x \(\);\n\^/)
})

test('createMigration writes the next-numbered pair and refuses bad names', async () => {
  const dir = await migrationsDir({ '0007_x.up.sql': 'SELECT 1;' })
  const created = await createMigration({ dir, name: 'Add org-id', noTransaction: true })
  assert.equal(created.name, '0008_add_org_id')
  assert.deepEqual((await readdir(dir)).sort(), ['0007_x.up.sql', '0008_add_org_id.down.sql', '0008_add_org_id.up.sql'])
  assert.match(await readFile(join(dir, '0008_add_org_id.up.sql'), 'utf8'), /^-- tenantize:no-transaction\n/)
  await rejectsWith(createMigration({ dir, name: 'drop; table' }), 'TZ_USAGE')
})
