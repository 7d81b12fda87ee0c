import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import pg from 'pg'
import { apply, rollback } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { TenantizeError } from '../src/errors.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { qualifiedName, quoteIdent } from '../src/sql/quote.js'
import { testDatabase } from './helpers/db.js'
import { dataChecksums, schemaFingerprint } from './helpers/conversion.js'
import { SOAK, assertClean, fast, finish, fixture } from './helpers/crash.js'

/**
 * Property tests on a real server (issue #12): odd identifiers through init → plan → apply → rollback, random
 * bad configs, random tenant context values as the app role. `npm run test:soak` runs many more cases.
 */
const db = await testDatabase(import.meta.url)
const RUNS = { identifiers: SOAK ? 60 : 4, configs: SOAK ? 400 : 40, contexts: SOAK ? 5000 : 300 }
const seed = Number(process.env['TENANTIZE_TEST_SEED'] ?? Date.now() % 100_000)
console.log(`# fast-check seed ${seed} (TENANTIZE_TEST_SEED=${seed} repeats this run)`)

/** Pieces an identifier is made of: quotes, dots, spaces, backslashes, %, non-ASCII letters, an emoji. */
const piece = fc.constantFrom('a', 'Z', 'x1', '"', "'", '.', ' ', '\\', '%', '$', '-', 'é', 'ß', '日本', 'Ω', '🙂', 'select', 'ORDER')
const ident = (maxBytes: number): fc.Arbitrary<string> =>
  fc.array(piece, { minLength: 1, maxLength: 6 }).map((p) => p.join('')).filter((s) => s.trim() !== '' && Buffer.byteLength(s) <= maxBytes)

const clearError = (error: unknown): TenantizeError => {
  assert.ok(error instanceof TenantizeError, `a TenantizeError, not ${String((error as Error | undefined)?.stack ?? error)}`)
  assert.match(error.code, /^TZ_[A-Z_]+$/)
  const located = (error.object !== undefined && error.fix !== undefined) || (error.problems.length > 0 && error.problems.every((p) => p.object !== '' && p.fix !== undefined))
  assert.ok(located, `names the object and the fix: ${error.toLines().join('\n')}`)
  return error
}

test(`identifiers of quotes, dots, spaces and unicode through init, plan, apply and rollback (${RUNS.identifiers} cases)`, async () => {
  const t = await db.another('fuzz_ident')
  let n = 0
  await fc.assert(
    fc.asyncProperty(ident(24), fc.uniqueArray(ident(24), { minLength: 2, maxLength: 2 }), fc.uniqueArray(ident(20), { minLength: 2, maxLength: 2 }), async (schema, [parent, child], [column, ref]) => {
      n++
      const s = (name: string): string => qualifiedName(schema, name)
      await t.sql(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE; CREATE SCHEMA ${quoteIdent(schema)};
        CREATE TABLE ${s(parent!)} (id bigint PRIMARY KEY, ${quoteIdent(column!)} text UNIQUE);
        CREATE TABLE ${s(child!)} (id bigint PRIMARY KEY, ${quoteIdent(ref!)} bigint NOT NULL REFERENCES ${s(parent!)}, ${quoteIdent(column!)} text);
        INSERT INTO ${s(parent!)} SELECT g, 'v' || g FROM generate_series(1, 30) g;
        INSERT INTO ${s(child!)} SELECT g, 1 + g % 30, 'c' || g FROM generate_series(1, 200) g;`)
      const tables = [s(parent!), s(child!)]
      const start = { schema: await schemaFingerprint(t.url), data: await dataChecksums(t.url, tables) }
      const client = new pg.Client(t.url)
      await client.connect()
      let init: ReturnType<typeof proposeConfig>
      try {
        init = proposeConfig(await introspect(client), { defaultTenantId: '0d5e6f00-0000-4000-8000-000000000001', appRole: t.role('app'), schemas: [schema] })
      } finally {
        await client.end()
      }
      const config = parseConfig(JSON.parse(JSON.stringify(init.config)))
      // A dot in a schema name makes "schema.table" config keys ambiguous: init leaves such tables alone, saying so.
      const convertible = !schema.includes('.')
      if (!convertible) {
        assert.deepEqual(Object.keys(config.tables), [])
        assert.ok(init.notes.some((note) => note.includes('schema names containing a dot')), 'init says why the tables are left alone')
      }
      try {
        await apply({ databaseUrl: t.url, config, phase: 'all', timeouts: fast })
        await assertClean(t)
        if (convertible) assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM ${s(child!)} WHERE org_id IS NULL`), [{ n: 0 }])
        await rollback({ databaseUrl: t.url, config, phase: 'all', timeouts: fast, purge: true })
      } catch (error) {
        throw new Error(`schema ${JSON.stringify(schema)}, tables ${JSON.stringify([parent, child])}, columns ${JSON.stringify([column, ref])}: ${error instanceof TenantizeError ? error.toLines().join('\n') : String((error as Error).stack)}`, { cause: error })
      }
      assert.equal(await schemaFingerprint(t.url), start.schema, 'rollback restores the schema')
      assert.deepEqual(await dataChecksums(t.url, tables), start.data, 'rollback restores every row')
      await t.sql(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`)
    }),
    { numRuns: RUNS.identifiers, seed, endOnFailure: true },
  )
  console.log(`# identifier cases: ${n}`)
})

test(`random bad configs: a TenantizeError with code, object and fix, and nothing changed — never a TypeError (${RUNS.configs} cases)`, async () => {
  const f = await fixture(db, 'fuzz_config')
  const valid = JSON.parse(JSON.stringify(f.config)) as Record<string, unknown>
  const before = await schemaFingerprint(f.t.url)
  const paths = ['tenant', 'tenant.table', 'tenant.column', 'tenant.idType', 'tenant.setting', 'tenant.default', 'tenant.default.id', 'tenant.create', 'tenant.membership', 'roles', 'roles.app', 'tables', 'tables.public.tasks', 'tables.public.tasks.class', 'tables.public.tasks.path', 'tables.public.notes.class', 'tables.public.clients.class', 'batchSize', 'scopes', 'version']
  const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('', 'public.nope', 'no_such_column', 'root', 'child', 'direct', 'global', 'uuid', 'text', -1, 0, 1e12, 'x"y', 'public.tasks'), ident(40))
  let n = 0
  let refused = 0
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...paths), fc.option(value, { nil: undefined })), { minLength: 1, maxLength: 3 }), async (edits) => {
      n++
      const raw = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>
      for (const [path, v] of edits) {
        // Table keys hold a dot: "tables.public.tasks.class" is tables → "public.tasks" → class.
        const keys = path.startsWith('tables.') ? ['tables', ...(path.split('.').length > 3 ? [path.split('.').slice(1, 3).join('.'), ...path.split('.').slice(3)] : [path.split('.').slice(1).join('.')])] : path.split('.')
        let node = raw
        for (const k of keys.slice(0, -1)) {
          if (typeof node[k] !== 'object' || node[k] === null) node[k] = {}
          node = node[k] as Record<string, unknown>
        }
        if (v === undefined) delete node[keys.at(-1)!]
        else node[keys.at(-1)!] = v
      }
      try {
        const config = parseConfig(raw)
        await apply({ databaseUrl: f.t.url, config, phase: 'all', dryRun: true, timeouts: fast })
      } catch (error) {
        clearError(error)
        refused++
      }
      assert.equal(await schemaFingerprint(f.t.url), before, 'nothing changed')
    }),
    { numRuns: RUNS.configs, seed, endOnFailure: true },
  )
  console.log(`# config cases: ${n}, refused with a TenantizeError: ${refused}`)
  assert.ok(refused > n / 2, 'most random edits are refused')
})

test(`random tenant context values as the app role: never a row of another tenant, errors only 22P02/22003 (${RUNS.contexts} cases)`, async () => {
  const f = await fixture(db, 'fuzz_context')
  await finish(f, 'apply')
  const own = new Map((await f.t.sql<{ org: string; n: number }>(`SELECT org_id::text AS org, count(*)::int AS n FROM tasks GROUP BY 1`)).map((r) => [r.org, r.n]))
  assert.deepEqual([...own.keys()].sort(), ['1', '2'])
  const client = new pg.Client(f.t.url)
  await client.connect()
  const errors = new Map<string, number>()
  let n = 0
  try {
    const numeric = fc.oneof(fc.constantFrom('1', '2', ' 2', '2 ', '+2', '02', '-1', '0', '1e0', '9223372036854775807', '9223372036854775808', '1.0', '0x2', '２'), fc.bigInt().map(String))
    const text = fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => !s.includes('\0'))
    await fc.assert(
      fc.asyncProperty(fc.oneof(numeric, text, fc.tuple(numeric, text).map(([a, b]) => a + b)), async (value) => {
        n++
        await client.query('BEGIN')
        try {
          await client.query(`SET LOCAL ROLE ${quoteIdent(f.config.roles.app)}`)
          await client.query(`SELECT set_config('tenantize.tenant_id', $1, true)`, [value])
          let rows: { org: string; n: number }[] = []
          try {
            rows = (await client.query<{ org: string; n: number }>(`SELECT org_id::text AS org, count(*)::int AS n FROM tasks GROUP BY 1`)).rows
          } catch (error) {
            const code = (error as { code?: string }).code ?? 'none'
            assert.ok(code === '22P02' || code === '22003', `context ${JSON.stringify(value)}: unexpected error ${code} ${(error as Error).message}`)
            errors.set(code, (errors.get(code) ?? 0) + 1)
            return
          }
          assert.ok(rows.length <= 1, `context ${JSON.stringify(value)} sees rows of ${rows.length} tenants`)
          for (const r of rows) {
            assert.equal(r.n, own.get(r.org), `context ${JSON.stringify(value)}: all of tenant ${r.org}'s rows, no more`)
            // The tenant it sees is the one PostgreSQL reads the value as.
            const meant = (await client.query<{ v: string }>(`SELECT $1::bigint::text AS v`, [value])).rows
            assert.equal(meant[0]!.v, r.org, `context ${JSON.stringify(value)} is read as tenant ${meant[0]!.v}`)
          }
        } finally {
          await client.query('ROLLBACK')
        }
      }),
      { numRuns: RUNS.contexts, seed, endOnFailure: true },
    )
  } finally {
    await client.end()
  }
  console.log(`# context cases: ${n}; errors ${JSON.stringify(Object.fromEntries(errors))}`)
})
