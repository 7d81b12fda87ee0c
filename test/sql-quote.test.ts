import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { identList, parseQualifiedName, qualifiedName, quoteIdent, quoteLiteral, roleName } from '../src/sql/index.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

const NAMES = [
  'plain',
  'Upper Case',
  'with"quote',
  '""',
  'dot.ted',
  'space and\ttab',
  'select',
  'user',
  'ünïcödé_表_🚀',
  'x"; DROP TABLE victims; --',
  "o'hara",
  'back\\slash',
  '$1',
]

test('quoteIdent produces the exact text', () => {
  assert.equal(quoteIdent('plain'), '"plain"')
  assert.equal(quoteIdent('Upper Case'), '"Upper Case"')
  assert.equal(quoteIdent('with"quote'), '"with""quote"')
  assert.equal(quoteIdent('x"; DROP TABLE victims; --'), '"x""; DROP TABLE victims; --"')
  assert.throws(() => quoteIdent(''), /non-empty/)
  assert.throws(() => quoteIdent('a\0b'), /NUL/)
})

test('quoteLiteral produces the exact text', () => {
  assert.equal(quoteLiteral("o'hara"), "'o''hara'")
  assert.equal(quoteLiteral('back\\slash'), "E'back\\\\slash'")
  assert.equal(quoteLiteral("it's\\"), "E'it''s\\\\'")
  assert.equal(quoteLiteral(null), 'NULL')
  assert.equal(quoteLiteral(true), 'true')
  assert.equal(quoteLiteral(42), "'42'")
  assert.equal(quoteLiteral(12345678901234567890n), "'12345678901234567890'")
  assert.throws(() => quoteLiteral(Number.NaN), /finite/)
  assert.throws(() => quoteLiteral('a\0'), /NUL/)
})

test('qualifiedName, roleName and identList', () => {
  assert.equal(qualifiedName('s', 't'), '"s"."t"')
  assert.equal(qualifiedName({ schema: 'My.Schema', name: 'T' }), '"My.Schema"."T"')
  assert.equal(qualifiedName({ name: 't' }), '"t"')
  assert.equal(roleName('PUBLIC'), 'PUBLIC')
  assert.equal(roleName('public'), '"public"')
  assert.equal(roleName('app_user'), '"app_user"')
  assert.equal(identList(['a', 'B']), '"a", "B"')
  assert.throws(() => identList([]), /empty/)
})

test('parseQualifiedName reads what users type', () => {
  assert.deepEqual(parseQualifiedName('orgs'), { schema: 'public', name: 'orgs' })
  assert.deepEqual(parseQualifiedName('App.Orgs'), { schema: 'app', name: 'orgs' })
  assert.deepEqual(parseQualifiedName('"My.Schema"."Big ""T"""'), { schema: 'My.Schema', name: 'Big "T"' })
  assert.throws(() => parseQualifiedName('a.b.c'), /schema\.table/)
  assert.throws(() => parseQualifiedName('"open'), /unterminated/)
  assert.throws(() => parseQualifiedName('a.'), /ends with/)
})

test('every awkward identifier round-trips through a real server: schema, table, column, role', async () => {
  for (const [i, name] of NAMES.entries()) {
    const schema = `${name}_s${i}`
    const role = `${name}_r${i}`
    const table = qualifiedName(schema, name)
    await db.sql(`CREATE SCHEMA ${quoteIdent(schema)}`)
    await db.sql(`CREATE TABLE ${table} (${quoteIdent(name)} text)`)
    await db.sql(`INSERT INTO ${table} (${quoteIdent(name)}) VALUES (${quoteLiteral(name)})`)
    const rows = await db.sql<{ v: string }>(`SELECT ${quoteIdent(name)} AS v FROM ${table}`)
    assert.deepEqual(rows, [{ v: name }], `value of ${JSON.stringify(name)}`)
    const cat = await db.sql<{ nspname: string; relname: string; attname: string }>(
      `SELECT n.nspname, c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1 WHERE c.oid = $1::regclass`,
      [table],
    )
    assert.deepEqual(cat, [{ nspname: schema, relname: name, attname: name }], `catalog names of ${JSON.stringify(name)}`)
    await db.sql(`DROP ROLE IF EXISTS ${roleName(role)}`)
    await db.sql(`CREATE ROLE ${roleName(role)} NOLOGIN`)
    try {
      await db.sql(`GRANT SELECT ON ${table} TO ${roleName(role)}`)
      const granted = await db.sql<{ ok: boolean }>(`SELECT has_table_privilege($1, $2::regclass, 'SELECT') AS ok`, [role, table])
      assert.deepEqual(granted, [{ ok: true }])
      await db.sql(`REVOKE ALL ON ${table} FROM ${roleName(role)}`)
    } finally {
      await db.sql(`DROP ROLE ${roleName(role)}`)
    }
  }
  // The injection attempt created no extra table.
  const victims = await db.sql(`SELECT 1 FROM pg_class WHERE relname = 'victims'`)
  assert.equal(victims.length, 0)
})

test('quoteLiteral round-trips hostile strings under both standard_conforming_strings settings', async () => {
  const values = ["o'hara", 'back\\slash', "\\'; SELECT 1; --", 'ünï\n\r\t', "''''", '\\\\\\']
  const client = new pg.Client(db.url)
  await client.connect()
  try {
    for (const scs of ['on', 'off']) {
      await client.query(`SET standard_conforming_strings = ${scs}`)
      for (const value of values) {
        const { rows } = await client.query(`SELECT ${quoteLiteral(value)}::text AS v`)
        assert.deepEqual(rows, [{ v: value }], `${scs}: ${JSON.stringify(value)}`)
      }
    }
  } finally {
    await client.end()
  }
})
