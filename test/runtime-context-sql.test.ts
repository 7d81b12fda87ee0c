import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { contextSql, validateContextSetting, type ContextStrategy } from '../src/runtime/index.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

test('set_config (default) produces the exact transaction-local statement', () => {
  const sql = contextSql()
  assert.equal(sql.strategy, 'set_config')
  assert.equal(sql.setting, 'tenantize.tenant_id')
  assert.equal(sql.statement('acme'), "SELECT pg_catalog.set_config('tenantize.tenant_id', 'acme', true)")
  assert.equal(sql.statement("o'hara"), "SELECT pg_catalog.set_config('tenantize.tenant_id', 'o''hara', true)")
  assert.equal(sql.statement('back\\slash'), "SELECT pg_catalog.set_config('tenantize.tenant_id', E'back\\\\slash', true)")
})

test('set_config also has a prepared form: the id as $1, under a name derived from the text; set-local has none', () => {
  const sql = contextSql()
  assert.equal(sql.prepared?.text, "SELECT pg_catalog.set_config('tenantize.tenant_id', $1, true)")
  assert.match(sql.prepared?.name ?? '', /^tenantize_context_[0-9a-f]{16}$/)
  assert.equal(contextSql().prepared?.name, sql.prepared?.name, 'the same text, the same name')
  const custom = contextSql({ setting: 'app.org_id' })
  assert.equal(custom.prepared?.text, "SELECT pg_catalog.set_config('app.org_id', $1, true)")
  assert.notEqual(custom.prepared?.name, sql.prepared?.name, 'another text, another name')
  assert.equal(contextSql({ strategy: 'set-local' }).prepared, undefined)
})

test('set-local produces SET LOCAL with a quoted name and a quoted literal', () => {
  const sql = contextSql({ strategy: 'set-local', setting: 'App.Current_Organization_Id' })
  assert.equal(sql.setting, 'app.current_organization_id')
  assert.equal(sql.statement("x'); DROP TABLE t; --"), `SET LOCAL "app"."current_organization_id" = 'x''); DROP TABLE t; --'`)
})

test('local: SET LOCAL for inside a transaction block, whichever the strategy (not planned by the server, unlike SELECT set_config)', () => {
  assert.equal(contextSql().local("o'hara"), `SET LOCAL "tenantize"."tenant_id" = 'o''hara'`)
  assert.equal(contextSql({ setting: 'App.Org_Id' }).local('back\\slash'), `SET LOCAL "app"."org_id" = E'back\\\\slash'`)
  const setLocal = contextSql({ strategy: 'set-local' })
  assert.equal(setLocal.local('acme'), setLocal.statement('acme'))
  assert.throws(() => contextSql().local(''), TypeError)
  assert.throws(() => contextSql().local('a\0b'), /NUL/)
})

test('invalid setting names, unknown strategies and empty or NUL ids are refused', () => {
  for (const name of ['tenant_id', '', '.x', 'x.', 'a..b', 'role', 'search_path', 'a.b c', 'a.b;drop', "a.b'", 'a."b"', '1a.b', 'ä.b']) {
    assert.throws(() => validateContextSetting(name), TypeError, JSON.stringify(name))
    assert.throws(() => contextSql({ setting: name }), TypeError, JSON.stringify(name))
  }
  assert.equal(validateContextSetting('a.b.c_$1'), 'a.b.c_$1')
  assert.throws(() => contextSql({ strategy: 'set' as ContextStrategy }), /unknown context strategy "set"/)
  assert.throws(() => contextSql().statement(''), TypeError)
  assert.throws(() => contextSql().statement('a\0b'), /NUL/)
})

const HOSTILE = ["x'); DROP TABLE victims; --", "o'hara", 'back\\slash', "\\'; SELECT 1; --", 'ünïcödé 表 🚀', '$1', "''''", '6f1c2a4e-1b7d-4c3e-9a55-0d2f9e8b7a61']

for (const strategy of ['set_config', 'set-local'] as const) {
  test(`${strategy}: hostile ids reach the server exactly, only for the transaction, under both standard_conforming_strings`, async () => {
    await db.sql('CREATE TABLE IF NOT EXISTS victims (x int)')
    const client = new pg.Client(db.url)
    await client.connect()
    try {
      for (const setting of ['tenantize.tenant_id', 'app.current_organization_id']) {
        const sql = contextSql({ strategy, setting })
        for (const scs of ['on', 'off']) {
          await client.query(`SET standard_conforming_strings = ${scs}`)
          for (const id of HOSTILE) {
            for (const form of ['statement', 'local'] as const) {
              await client.query(`BEGIN; ${sql[form](id)}`)
              const inside = await client.query<{ v: string }>('SELECT current_setting($1) AS v', [setting])
              await client.query('COMMIT')
              const outside = await client.query<{ v: string | null }>('SELECT current_setting($1, true) AS v', [setting])
              assert.deepEqual(inside.rows, [{ v: id }], `${form} ${setting} ${scs}: ${JSON.stringify(id)}`)
              assert.ok(outside.rows[0]?.v === '' || outside.rows[0]?.v === null, 'the setting is gone after COMMIT')
            }
          }
        }
      }
    } finally {
      await client.end()
    }
    assert.deepEqual(await db.sql(`SELECT to_regclass('victims') IS NOT NULL AS exists`), [{ exists: true }])
  })
}
