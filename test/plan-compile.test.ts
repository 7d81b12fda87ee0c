import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compile, lockOf, needsOwnTransaction, raiseText, strongest } from '../src/plan/compile.js'
import { literal, sqlText, type Operation } from '../src/plan/operations.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)
const odd = { schema: 'my "schema"', name: '50%_off\'s tåble' }

test('every identifier is quoted, including quotes, spaces, % and unicode', () => {
  assert.equal(compile({ op: 'addColumn', table: odd, column: 'org "id"', type: 'uuid', notNull: true, default: literal("it's") }), `ALTER TABLE "my ""schema"""."50%_off's tåble" ADD COLUMN "org ""id""" uuid NOT NULL DEFAULT 'it''s'`)
  assert.equal(compile({ op: 'addForeignKey', table: odd, name: 'fk"1', columns: ['a b', 'c'], references: { schema: 'public', name: 'Parent' }, refColumns: ['x', 'y'], deferred: true, notValid: true }), `ALTER TABLE "my ""schema"""."50%_off's tåble" ADD CONSTRAINT "fk""1" FOREIGN KEY ("a b", "c") REFERENCES "public"."Parent" ("x", "y") DEFERRABLE INITIALLY DEFERRED NOT VALID`)
  assert.equal(compile({ op: 'createPolicy', table: odd, name: 'p', mode: 'PERMISSIVE', command: 'ALL', roles: ['app "role"', 'public'], using: sqlText('(true)'), withCheck: null }), `CREATE POLICY "p" ON "my ""schema"""."50%_off's tåble" AS PERMISSIVE FOR ALL TO "app ""role""", PUBLIC USING (true)`)
  assert.equal(compile({ op: 'grant', privileges: ['USAGE'], on: { kind: 'schema', names: ['a"b', 'c'] }, role: 'r' }), 'GRANT USAGE ON SCHEMA "a""b", "c" TO "r"')
  assert.equal(compile({ op: 'insert', table: odd, columns: ['id'], values: [literal('back\\slash')] }), `INSERT INTO "my ""schema"""."50%_off's tåble" ("id") VALUES (E'back\\\\slash')`)
})

test('drops say IF EXISTS, builds IF NOT EXISTS; concurrent statements run outside a transaction', () => {
  const drops: Operation[] = [
    { op: 'dropColumn', table: odd, column: 'c' },
    { op: 'dropFunction', name: { schema: 'tenantize', name: 'f' }, args: '' },
    { op: 'dropTrigger', table: odd, name: 't' },
    { op: 'dropPolicy', table: odd, name: 'p' },
    { op: 'dropView', view: odd },
    { op: 'dropTable', table: odd },
    { op: 'dropRole', role: 'r' },
    { op: 'dropIndex', index: odd, concurrently: true, ifExists: true },
  ]
  for (const d of drops) assert.match(compile(d), /IF EXISTS/, d.op)
  const build: Operation = { op: 'createIndex', table: odd, name: 'i', columns: ['org_id', 'id'], unique: true, concurrently: true, only: false }
  assert.equal(compile(build), `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "i" ON "my ""schema"""."50%_off's tåble" ("org_id", "id")`)
  assert.equal(needsOwnTransaction(build), true)
  assert.equal(needsOwnTransaction({ ...build, concurrently: false }), false)
})

test('the declared lock is the strongest a step\'s statements take', () => {
  const build: Operation = { op: 'createIndex', table: odd, name: 'i', columns: ['a'], unique: false, concurrently: true, only: false }
  assert.equal(lockOf(build), 'SHARE UPDATE EXCLUSIVE')
  assert.equal(lockOf({ ...build, concurrently: false, only: true }), 'SHARE')
  assert.equal(lockOf({ op: 'validateConstraint', table: odd, name: 'c' }), 'SHARE UPDATE EXCLUSIVE')
  assert.equal(lockOf({ op: 'addForeignKey', table: odd, name: 'f', columns: ['a'], references: odd, refColumns: ['b'], deferred: false, notValid: true }), 'SHARE ROW EXCLUSIVE')
  assert.equal(strongest(['none', 'SHARE UPDATE EXCLUSIVE', 'ROW EXCLUSIVE']), 'SHARE UPDATE EXCLUSIVE')
  assert.equal(strongest([lockOf(build), lockOf({ op: 'swapUniqueConstraint', table: odd, name: 'u', index: 'i', deferrable: 'no' })]), 'ACCESS EXCLUSIVE')
})

test('RAISE texts with %, quotes and backslashes run as written on a real server', async () => {
  assert.equal(raiseText('50% off'), '50%% off')
  const t = await db.another('compile_raise')
  await t.sql(`CREATE TABLE "50%_off's tåble" (id int); INSERT INTO "50%_off's tåble" VALUES (1), (2)`)
  const sql = compile({ op: 'raiseIfRows', from: sqlText(`FROM "50%_off's tåble"`), message: `row(s) of public.50%_off's tåble \\ cross a tenant`, hint: `fix 100% of them, it's \\ easy` })
  await assert.rejects(t.sql(sql), (e: Error & { hint?: string }) => {
    assert.equal(e.message, `2 row(s) of public.50%_off's tåble \\ cross a tenant`)
    assert.equal(e.hint, `fix 100% of them, it's \\ easy`)
    return true
  })
  await t.sql(`DELETE FROM "50%_off's tåble"`)
  await t.sql(sql)
})
