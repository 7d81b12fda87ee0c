import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import pg from 'pg'
import {
  createTenantContext,
  InvalidTenantIdError,
  SystemContextError,
  TenantContextConflictError,
  TenantContextMissingError,
  tenantPool,
  withTenant,
  type ContextStrategy,
  type Queryable,
} from '../src/runtime/index.js'
import { quoteIdent } from '../src/sql/index.js'
import { testDatabase } from './helpers/db.js'
import { setupTenantSchema } from './helpers/runtime-matrix.js'

const db = await testDatabase(import.meta.url)

// The tenant schema the matrix uses too: items with RLS enabled, forced, a policy for the app role.
const fixture = await setupTenantSchema(db)
const APP = fixture.app
const TENANTS = fixture.tenants
const EXPECTED = fixture.expected
const TOTAL = fixture.total
const [A, B] = [TENANTS[0]!, TENANTS[1]!]

interface Tracked {
  readonly pool: pg.Pool
  /** Connections opened and client checkouts so far. */
  readonly counts: { connect: number; acquire: number }
}

/** A pool connected as the app role (the admin user with `role` set at connection start). */
function appPool(max: number): Tracked {
  return track(new pg.Pool({ connectionString: db.url, max, options: `-c role=${APP}` }))
}

/** A pool as the admin (superuser: bypasses RLS) — the system pool. */
function adminPool(): Tracked {
  return track(new pg.Pool({ connectionString: db.url, max: 2 }))
}

function track(pool: pg.Pool): Tracked {
  const counts = { connect: 0, acquire: 0 }
  pool.on('connect', () => counts.connect++)
  pool.on('acquire', () => counts.acquire++)
  pool.on('error', () => undefined) // idle clients dropped by the server; the next checkout reconnects
  return { pool, counts }
}

async function using<T>(pools: Tracked[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } finally {
    for (const { pool } of pools) await pool.end()
  }
}

async function ids(q: Queryable): Promise<{ orgs: string[]; ids: string[] }> {
  const { rows } = await q.query<{ org_id: string; id: string }>('SELECT org_id, id FROM items ORDER BY id')
  return { orgs: [...new Set(rows.map((r) => r.org_id))], ids: rows.map((r) => r.id) }
}

/** Deterministic pseudo-random numbers in [0, 1), so a failing run can be repeated. */
function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Rollback extends Error {}

for (const size of [1, 2, 4]) {
  test(`1000 interleaved requests from 10 tenants on a pool of size ${size}: each sees only its own rows`, async () => {
    const app = appPool(size)
    await using([app], async () => {
      const db1 = tenantPool(app.pool)
      const rnd = random(size)
      const requests = Array.from({ length: 1000 }, (_, r) => {
        const org = TENANTS[Math.floor(rnd() * TENANTS.length)]!
        const expected = EXPECTED.get(org)!
        const before = Math.floor(rnd() * 4)
        const inside = Math.floor(rnd() * 3)
        const writes = r % 2 === 1
        return withTenant(org, async () => {
          await sleep(before)
          if (!writes) {
            assert.deepEqual(await ids(db1), { orgs: [org], ids: expected })
            return 'read'
          }
          // Insert a row of its own, see it with exactly its tenant's rows, then roll back.
          await db1.transaction(async (tx) => {
            await tx.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [org, `tmp-${r}`, 'tmp'])
            await sleep(inside)
            assert.deepEqual(await ids(tx), { orgs: [org], ids: [...expected, `tmp-${r}`].sort() })
            throw new Rollback()
          }).catch((error: unknown) => {
            if (!(error instanceof Rollback)) throw error
          })
          return 'wrote'
        })
      })
      const results = await Promise.allSettled(requests)
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [inspect(r.reason)] : []))
      assert.deepEqual(failures, [])
      assert.equal(results.length, 1000)
      assert.ok(app.pool.totalCount <= size && app.pool.totalCount >= 1)
      assert.equal(app.pool.idleCount, app.pool.totalCount, 'every client went back to the pool')
      assert.equal(app.counts.acquire, 1000)
    })
    assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM items`), [{ n: TOTAL }], 'every insert was rolled back')
  })
}

test('an error inside withTenant rolls back its insert and rethrows it', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    const boom = new Error('boom')
    await assert.rejects(
      withTenant(A, () => tdb.transaction(async (tx) => {
        await tx.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [A, 'rolled-back', 'x'])
        throw boom
      })),
      (error: unknown) => error === boom,
    )
    // A failing statement (WITH CHECK refuses another tenant's row) rolls back what ran before it too.
    await assert.rejects(
      withTenant(A, () => tdb.transaction(async (tx) => {
        await tx.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [A, 'also-rolled-back', 'x'])
        await tx.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [B, 'cross-tenant', 'x'])
      })),
      (error: unknown) => (error as { code?: string }).code === '42501',
    )
    assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id IN ('rolled-back', 'also-rolled-back', 'cross-tenant')`), [])
    // The same connection is healthy and the work that succeeds commits.
    await withTenant(A, () => tdb.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [A, 'committed', 'x']))
    assert.deepEqual(await db.sql(`SELECT org_id FROM items WHERE id = 'committed'`), [{ org_id: A }])
    assert.equal(app.counts.connect, 1)
  })
  await db.sql(`DELETE FROM items WHERE id = 'committed'`)
})

test('nested same tenant is fine, nested other tenant throws, sequential contexts are independent', async () => {
  const app = appPool(2)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    await withTenant(A, async () => {
      assert.deepEqual(await withTenant(A, () => ids(tdb)), { orgs: [A], ids: EXPECTED.get(A) })
      assert.throws(() => withTenant(B, () => ids(tdb)), TenantContextConflictError)
      assert.deepEqual(await withTenant(B, () => ids(tdb), { allowNested: true }), { orgs: [B], ids: EXPECTED.get(B) })
      assert.deepEqual(await ids(tdb), { orgs: [A], ids: EXPECTED.get(A) })
    })
    for (const org of TENANTS) {
      assert.deepEqual(await withTenant(org, () => ids(tdb)), { orgs: [org], ids: EXPECTED.get(org) })
    }
  })
})

test('a transaction handle refuses to run under another tenant or after its transaction ended', async () => {
  const app = appPool(2)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    let escaped: Queryable | undefined
    await withTenant(A, () => tdb.transaction(async (tx) => {
      escaped = tx
      await assert.rejects(withTenant(B, () => tx.query('SELECT 1'), { allowNested: true }), TenantContextConflictError)
      assert.deepEqual(await ids(tx), { orgs: [A], ids: EXPECTED.get(A) })
    }))
    assert.ok(escaped !== undefined)
    await assert.rejects(withTenant(A, () => escaped!.query('SELECT 1')), TenantContextMissingError)
  })
})

for (const strategy of ['set_config', 'set-local'] as const satisfies readonly ContextStrategy[]) {
  test(`${strategy}: a connection reused after a tenant's transaction carries no context`, async () => {
    const app = appPool(1)
    await using([app], async () => {
      const tdb = tenantPool(app.pool, { strategy })
      const sql = "SELECT pg_backend_pid() AS pid, current_setting('tenantize.tenant_id', true) AS setting, (SELECT count(*)::int FROM items) AS n"
      type Row = { pid: number; setting: string | null; n: number }
      const inside = (await withTenant(A, () => tdb.query<Row>(sql))).rows[0]!
      assert.equal(inside.setting, A)
      assert.equal(inside.n, EXPECTED.get(A)!.length)
      await assert.rejects(withTenant(B, () => tdb.transaction(async (tx) => {
        await tx.query(sql)
        throw new Rollback()
      })), Rollback)
      const raw = (await app.pool.query<Row>(sql)).rows[0]!
      assert.equal(raw.pid, inside.pid, 'the same connection was reused')
      assert.ok(raw.setting === '' || raw.setting === null, `setting left on the connection: ${String(raw.setting)}`)
      assert.equal(raw.n, 0, 'without context the app role sees no rows')
      assert.equal(app.counts.connect, 1)
    })
  })
}

test('set-local isolates tenants end to end', async () => {
  const app = appPool(2)
  await using([app], async () => {
    const tdb = tenantPool(app.pool, { strategy: 'set-local' })
    const seen = await Promise.all(TENANTS.map((org) => withTenant(org, () => ids(tdb))))
    assert.deepEqual(seen, TENANTS.map((org) => ({ orgs: [org], ids: EXPECTED.get(org) })))
  })
})

test('parallel workers see the tenant: a parallel plan counts exactly its rows, with and without parameters and in a transaction', async () => {
  // The helper and policy as \`tenantize apply\` makes them (src/plan: STABLE PARALLEL SAFE, SQL-standard
  // body); the shared fixture's helper is PARALLEL UNSAFE, which keeps every plan over \`items\` serial.
  await db.sql(`
    CREATE FUNCTION tenantize.current_tenant_id_applied() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE
      RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) ''
        THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
    CREATE TABLE parallel_items (org_id uuid NOT NULL, id text PRIMARY KEY);
    INSERT INTO parallel_items SELECT org_id, id FROM items;
    ALTER TABLE parallel_items ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
    CREATE POLICY parallel_items_tenant ON parallel_items TO ${quoteIdent(APP)}
      USING (org_id OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id_applied()));
    GRANT SELECT ON parallel_items TO ${quoteIdent(APP)};`)
  // Costs that make even this small table scan in parallel; the leader only gathers (when a worker starts).
  const parallel = ['parallel_setup_cost=0', 'parallel_tuple_cost=0', 'min_parallel_table_scan_size=0', 'parallel_leader_participation=off']
  const app = track(new pg.Pool({ connectionString: db.url, max: 1, options: `-c role=${APP} ${parallel.map((s) => `-c ${s}`).join(' ')}` }))
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    const count = 'SELECT count(*)::int AS n FROM parallel_items'
    const plan = await withTenant(A, () => tdb.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${count} WHERE id <> $1`, ['none']))
    assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /Gather/, 'the plan is parallel')
    for (const org of [A, B]) {
      const n = EXPECTED.get(org)!.length
      assert.deepEqual((await withTenant(org, () => tdb.query(`${count} WHERE id <> $1`, ['none']))).rows, [{ n }], 'one statement with a parameter (extended protocol)')
      assert.deepEqual((await withTenant(org, () => tdb.query(count))).rows, [{ n }], 'one statement without (simple protocol)')
      assert.deepEqual((await withTenant(org, () => tdb.transaction((tx) => tx.query(count)))).rows, [{ n }], 'a transaction (BEGIN; SET LOCAL)')
    }
  })
})

test('a custom setting name is used', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool, { setting: 'app.current_organization_id' })
    const { rows } = await withTenant(A, () => tdb.query("SELECT current_setting('app.current_organization_id') AS v, (SELECT count(*)::int FROM items) AS n"))
    assert.deepEqual(rows, [{ v: A, n: 0 }], 'the policy reads tenantize.tenant_id, which stays unset: fails closed')
  })
})

test('bigint and text ids reach the server in canonical form', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    const setting = "SELECT current_setting('tenantize.tenant_id') AS v"
    assert.deepEqual((await createTenantContext({ idType: 'bigint' }).withTenant('0042', () => tdb.query(setting))).rows, [{ v: '42' }])
    const hostile = "x'); DROP TABLE items; --"
    assert.deepEqual((await createTenantContext({ idType: 'text' }).withTenant(hostile, () => tdb.query(setting))).rows, [{ v: hostile }])
  })
  assert.deepEqual(await db.sql(`SELECT to_regclass('items') IS NOT NULL AS exists`), [{ exists: true }])
})

test('outside any context, query and transaction throw TenantContextMissingError and never reach the server', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    await assert.rejects(tdb.query('SELECT 1'), (error: unknown) => error instanceof TenantContextMissingError && error.code === 'TZ_TENANT_CONTEXT_MISSING')
    let ran = false
    await assert.rejects(tdb.transaction(async () => { ran = true }), TenantContextMissingError)
    assert.equal(ran, false)
    assert.deepEqual(app.counts, { connect: 0, acquire: 0 })
    assert.equal(app.pool.totalCount, 0, 'no connection was ever opened')
  })
})

test('invalid tenant ids throw InvalidTenantIdError, send no SQL and do not appear in the error', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    const cases: [ReturnType<typeof createTenantContext>, unknown][] = [
      [createTenantContext(), "x'); DROP TABLE items; --"],
      [createTenantContext(), `${A}'; SET ROLE postgres; --`],
      [createTenantContext(), 'definitely-not-a-uuid'],
      [createTenantContext(), 42],
      [createTenantContext(), null],
      [createTenantContext({ idType: 'bigint' }), "1'); DROP TABLE items; --"],
      [createTenantContext({ idType: 'bigint' }), '9223372036854775808'],
      [createTenantContext({ idType: 'bigint' }), A],
      [createTenantContext({ idType: 'text' }), "x'); DROP TABLE items;\n--"],
      [createTenantContext({ idType: 'text' }), 'nul\0inside'],
      [createTenantContext({ idType: 'text' }), 'z'.repeat(257)],
    ]
    for (const [context, id] of cases) {
      assert.throws(
        () => context.withTenant(id as string, () => tdb.query('SELECT 1')),
        (error: unknown) => {
          assert.ok(error instanceof InvalidTenantIdError, inspect(error))
          if (typeof id === 'string') {
            for (const text of [error.message, String(error), error.stack ?? '', inspect(error), JSON.stringify(error)]) {
              assert.ok(!text.includes(id), `the error shows the id ${JSON.stringify(id)}`)
            }
          }
          return true
        },
        `${context.idType}: ${inspect(id)}`,
      )
    }
    assert.deepEqual(app.counts, { connect: 0, acquire: 0 })
    assert.equal(app.pool.totalCount, 0)
  })
  assert.deepEqual(await db.sql(`SELECT count(*)::int AS n FROM items`), [{ n: TOTAL }])
})

test('asSystem without a systemPool throws TZ_SYSTEM_CONTEXT and touches nothing', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    let ran = false
    await assert.rejects(
      tdb.asSystem(async () => { ran = true }),
      (error: unknown) => error instanceof SystemContextError && error.code === 'TZ_SYSTEM_CONTEXT',
    )
    await assert.rejects(withTenant(A, () => tdb.asSystem(async () => { ran = true })), SystemContextError)
    assert.equal(ran, false)
    assert.deepEqual(app.counts, { connect: 0, acquire: 0 })
    assert.throws(() => tenantPool(app.pool, { systemPool: app.pool }), SystemContextError)
  })
})

test('asSystem with a systemPool runs unscoped through that pool only', async () => {
  const app = appPool(1)
  const admin = adminPool()
  await using([app, admin], async () => {
    const tdb = tenantPool(app.pool, { systemPool: admin.pool })
    const count = 'SELECT count(*)::int AS n FROM items'
    assert.deepEqual((await tdb.asSystem((system) => system.query(count))).rows, [{ n: TOTAL }])
    await assert.rejects(
      tdb.asSystem((system) => system.transaction(async (tx) => {
        await tx.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [B, 'system-rolled-back', 'x'])
        assert.deepEqual((await tx.query(count)).rows, [{ n: TOTAL + 1 }])
        throw new Rollback()
      })),
      Rollback,
    )
    // Inside a tenant context, asSystem is still explicit and separate; the tenant pool stays scoped.
    const both = await withTenant(A, async () => ({
      system: (await tdb.asSystem((system) => system.query(count))).rows,
      tenant: (await tdb.query(count)).rows,
    }))
    assert.deepEqual(both, { system: [{ n: TOTAL }], tenant: [{ n: EXPECTED.get(A)!.length }] })
    assert.equal(app.counts.acquire, 1, 'only the tenant query used the app pool')
    assert.ok(admin.counts.acquire >= 3)
  })
  assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id = 'system-rolled-back'`), [])
})

test('a client that fails mid-transaction is discarded, not returned to the pool', async () => {
  const app = appPool(1)
  await using([app], async () => {
    const tdb = tenantPool(app.pool)
    let pid = 0
    await assert.rejects(withTenant(A, () => tdb.transaction(async (tx) => {
      pid = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
      await db.sql('SELECT pg_terminate_backend($1)', [pid])
      await sleep(50) // let the termination arrive; the handle must not crash the process meanwhile
      await tx.query('SELECT 1')
    })))
    assert.equal(app.pool.totalCount, 0, 'the broken client was removed')
    const next = await withTenant(A, () => tdb.query<{ pid: number; n: number }>('SELECT pg_backend_pid() AS pid, (SELECT count(*)::int FROM items) AS n'))
    assert.notEqual(next.rows[0]!.pid, pid)
    assert.equal(next.rows[0]!.n, EXPECTED.get(A)!.length)
    assert.equal(app.counts.connect, 2)
  })
})
