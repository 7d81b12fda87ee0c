/**
 * The test matrix every runtime adapter passes, on a real PostgreSQL (and through a real PgBouncer).
 *
 * A test file sets up the tenant schema once ({@link setupTenantSchema}), describes how to open its
 * adapter ({@link MatrixAdapter}) and calls {@link runMatrix}, which registers the same tests for every
 * adapter: 1,000 interleaved requests from 10 tenants on pools of 1, 2 and 4; errors roll back; nested
 * and sequential contexts; a reused connection carries no context (both strategies); no context and
 * invalid ids never reach the database.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import {
  createTenantContext,
  InvalidTenantIdError,
  TenantContextConflictError,
  TenantRuntimeError,
  TenantRuntimeErrorCodes,
  withTenant,
  type ContextStrategy,
} from '../../src/runtime/index.js'
import { quoteIdent } from '../../src/sql/index.js'
import { withClient } from '../../src/db/connect.js'
import type { TestDatabase } from './db.js'

/** The tenant schema of a test database: an app role, ten tenants and their rows in `items`. */
export interface TenantFixture {
  readonly db: TestDatabase
  /** The application role: not a superuser, no BYPASSRLS, not the owner of `items`. */
  readonly app: string
  readonly tenants: readonly string[]
  /** Tenant → its row ids, sorted. Tenant i owns i + 1 rows `t<i>-r<j>`. */
  readonly expected: ReadonlyMap<string, readonly string[]>
  readonly total: number
  readonly a: string
  readonly b: string
}

/**
 * Create the schema `tenantize apply` would (by hand): `tenantize.current_tenant_id()` (STABLE, pinned
 * search_path, fail-closed), `items` with RLS enabled and forced and a policy for the app role. The role
 * is cluster-wide, so unique per database, and dropped after the file (after the database).
 */
export async function setupTenantSchema(db: TestDatabase): Promise<TenantFixture> {
  const app = `${db.name}_app`
  after(async () => {
    await db.drop() // first, so the role owns nothing and holds no privileges any more
    await withClient(db.adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(app)}`))
  })
  await db.sql(`
    CREATE ROLE ${quoteIdent(app)} NOLOGIN;
    CREATE SCHEMA tenantize;
    CREATE FUNCTION tenantize.current_tenant_id() RETURNS uuid
      LANGUAGE sql STABLE SET search_path = pg_catalog
      AS $$ SELECT nullif(current_setting('tenantize.tenant_id', true), '')::uuid $$;
    GRANT USAGE ON SCHEMA tenantize TO ${quoteIdent(app)};
    CREATE TABLE items (org_id uuid NOT NULL, id text PRIMARY KEY, body text NOT NULL);
    ALTER TABLE items ENABLE ROW LEVEL SECURITY;
    ALTER TABLE items FORCE ROW LEVEL SECURITY;
    CREATE POLICY items_tenant ON items TO ${quoteIdent(app)}
      USING (org_id = (SELECT tenantize.current_tenant_id()))
      WITH CHECK (org_id = (SELECT tenantize.current_tenant_id()));
    GRANT SELECT, INSERT, UPDATE, DELETE ON items TO ${quoteIdent(app)};
  `)
  const tenants = Array.from({ length: 10 }, () => randomUUID())
  const expected = new Map(tenants.map((org, i) => [org, Array.from({ length: i + 1 }, (_, j) => `t${i}-r${j}`).sort()]))
  const rows = [...expected].flatMap(([org, ids]) => ids.map((id) => [org, id]))
  await db.sql(
    'INSERT INTO items (org_id, id, body) SELECT o, i, $3 || i FROM unnest($1::uuid[], $2::text[]) AS r(o, i)',
    [rows.map((r) => r[0]), rows.map((r) => r[1]), 'body of '],
  )
  return { db, app, tenants, expected, total: rows.length, a: tenants[0]!, b: tenants[1]! }
}

/** What a query through the adapter sees of `items`: the tenants and the row ids (sorted). */
export interface Listing {
  orgs: string[]
  ids: string[]
}

export function listing(rows: readonly { org_id: string; id: string }[]): Listing {
  const sorted = [...rows].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
  return { orgs: [...new Set(sorted.map((r) => r.org_id))], ids: sorted.map((r) => r.id) }
}

/** Work through the adapter, in a tenant transaction of its own or inside {@link MatrixClient.transaction}. */
export interface MatrixScope {
  /** Every row of `items` the tenant sees, through the adapter's query builder. */
  ids(): Promise<Listing>
  /** Insert a row (with bound parameters), through the adapter's query builder. */
  insert(org: string, id: string): Promise<void>
  /** Raw SQL without parameters; rows as objects. */
  query<R extends object>(text: string): Promise<R[]>
}

export interface MatrixClient extends MatrixScope {
  /** Several statements in one tenant transaction, the adapter's way. */
  transaction<T>(fn: (tx: MatrixScope) => Promise<T>): Promise<T>
}

export interface OpenOptions {
  readonly url: string
  /** Connections in the pool. */
  readonly max: number
  /** Connect as this role (`-c role=…` at connection start); absent when the URL's user already runs as the app role. */
  readonly role?: string
  readonly strategy?: ContextStrategy
}

export interface OpenedAdapter {
  readonly client: MatrixClient
  /** The same pool without tenantize: raw SQL straight to the connections the adapter uses. */
  rawQuery<R extends object>(text: string): Promise<R[]>
  /** What the client side saw so far: connections opened, and checkouts or statements sent. */
  activity(): { connections: number; requests: number }
  /** Connections checked out now (every one should be back once requests settle), when the driver tells. */
  checkedOut?(): number
  close(): Promise<void>
}

export interface MatrixAdapter {
  readonly name: string
  open(options: OpenOptions): Promise<OpenedAdapter>
  /** The SQLSTATE of a database error as the adapter surfaces it. */
  sqlState(error: unknown): string | undefined
  /**
   * The `TZ_…` code of a tenantize error as the adapter surfaces it (ORMs wrap errors: Drizzle as the
   * `cause`, Prisma copies the `code`). Default: the code of a TenantRuntimeError itself.
   */
  tenantizeCode?(error: unknown): string | undefined
  /**
   * What a statement on a transaction handle does under another tenant: `checked` (default) throws
   * TenantContextConflictError; `bound` runs as the tenant the transaction was begun for (Prisma, which
   * may run a transaction's statements from another request's async context).
   */
  readonly transactionTenant?: 'checked' | 'bound'
}

export interface MatrixOptions {
  /** The server to connect to; default the test database itself. */
  readonly url?: string
  /** Whether to pass `role` to {@link MatrixAdapter.open}; false behind PgBouncer, where the database's default role is the app role. */
  readonly setRole?: boolean
  /** Prefix of the test names. */
  readonly label?: string
  /** Pool sizes for the interleaved run. Default 1, 2, 4. */
  readonly sizes?: readonly number[]
}

/** Deterministic pseudo-random numbers in [0, 1), so a failing run can be repeated. */
export function random(seed: number): () => number {
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

const PROBE = "SELECT pg_backend_pid() AS pid, current_setting('tenantize.tenant_id', true) AS setting, (SELECT count(*)::int FROM items) AS n"
interface Probe {
  pid: number
  setting: string | null
  n: number
}

/** Register the matrix's tests for `adapter` against the tenant schema of `fixture`. */
export function runMatrix(adapter: MatrixAdapter, fixture: TenantFixture, options: MatrixOptions = {}): void {
  const { db, app, tenants, expected, total, a, b } = fixture
  const url = options.url ?? db.url
  const name = (what: string): string => `${options.label ?? adapter.name}: ${what}`
  const code = (error: unknown): string | undefined =>
    adapter.tenantizeCode !== undefined ? adapter.tenantizeCode(error) : error instanceof TenantRuntimeError ? error.code : undefined
  const missing = (error: unknown): boolean => code(error) === TenantRuntimeErrorCodes.CONTEXT_MISSING
  const conflict = (error: unknown): boolean => code(error) === TenantRuntimeErrorCodes.CONTEXT_CONFLICT

  async function using<T>(max: number, fn: (opened: OpenedAdapter) => Promise<T>, strategy?: ContextStrategy): Promise<T> {
    const opened = await adapter.open({
      url,
      max,
      ...(options.setRole === false ? {} : { role: app }),
      ...(strategy === undefined ? {} : { strategy }),
    })
    try {
      return await fn(opened)
    } finally {
      await opened.close()
    }
  }

  for (const size of options.sizes ?? [1, 2, 4]) {
    test(name(`1000 interleaved requests from 10 tenants on a pool of size ${size}: each sees only its own rows`), async () => {
      await using(size, async (opened) => {
        const { client } = opened
        const rnd = random(size)
        const requests = Array.from({ length: 1000 }, (_, r) => {
          const org = tenants[Math.floor(rnd() * tenants.length)]!
          const mine = expected.get(org)!
          const before = Math.floor(rnd() * 4)
          const inside = Math.floor(rnd() * 3)
          return withTenant(org, async () => {
            await sleep(before)
            if (r % 2 === 0) {
              assert.deepEqual(await client.ids(), { orgs: [org], ids: mine })
              return
            }
            // Insert a row of its own, see it with exactly its tenant's rows, then roll back.
            await client
              .transaction(async (tx) => {
                await tx.insert(org, `tmp-${r}`)
                await sleep(inside)
                assert.deepEqual(await tx.ids(), { orgs: [org], ids: [...mine, `tmp-${r}`].sort() })
                throw new Rollback()
              })
              .catch((error: unknown) => {
                if (!(error instanceof Rollback)) throw error
              })
          })
        })
        const results = await Promise.allSettled(requests)
        const failures = results.flatMap((r) => (r.status === 'rejected' ? [inspect(r.reason)] : []))
        assert.deepEqual(failures.slice(0, 3), [])
        assert.equal(results.length, 1000)
        if (opened.checkedOut !== undefined) assert.equal(opened.checkedOut(), 0, 'every connection went back to the pool')
        const { connections } = opened.activity()
        assert.ok(connections >= 1 && connections <= size, `${connections} connections for a pool of ${size}`)
      })
      assert.deepEqual(await db.sql('SELECT count(*)::int AS n FROM items'), [{ n: total }], 'every insert was rolled back')
    })
  }

  test(name('an error inside withTenant rolls back the transaction and is rethrown'), async () => {
    await using(1, async ({ client, activity }) => {
      const boom = new Error('boom')
      await assert.rejects(
        withTenant(a, () => client.transaction(async (tx) => {
          await tx.insert(a, 'rolled-back')
          throw boom
        })),
        (error: unknown) => error === boom,
      )
      // A failing statement (WITH CHECK refuses another tenant's row) rolls back what ran before it too.
      await assert.rejects(
        withTenant(a, () => client.transaction(async (tx) => {
          await tx.insert(a, 'also-rolled-back')
          await tx.insert(b, 'cross-tenant')
        })),
        (error: unknown) => adapter.sqlState(error) === '42501',
      )
      // So does a failing statement outside an explicit transaction.
      await assert.rejects(withTenant(a, () => client.insert(b, 'cross-tenant-alone')), (error: unknown) => adapter.sqlState(error) === '42501')
      assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id IN ('rolled-back', 'also-rolled-back', 'cross-tenant', 'cross-tenant-alone')`), [])
      // The same connection is healthy, and work that succeeds commits.
      await withTenant(a, () => client.insert(a, 'committed'))
      assert.deepEqual(await db.sql(`SELECT org_id FROM items WHERE id = 'committed'`), [{ org_id: a }])
      assert.equal(activity().connections, 1)
    })
    await db.sql(`DELETE FROM items WHERE id = 'committed'`)
  })

  test(name('nested same tenant is fine, nested other tenant throws, sequential contexts are independent'), async () => {
    await using(2, async ({ client }) => {
      await withTenant(a, async () => {
        assert.deepEqual(await withTenant(a, () => client.ids()), { orgs: [a], ids: expected.get(a) })
        assert.throws(() => withTenant(b, () => client.ids()), TenantContextConflictError)
        assert.deepEqual(await withTenant(b, () => client.ids(), { allowNested: true }), { orgs: [b], ids: expected.get(b) })
        assert.deepEqual(await client.ids(), { orgs: [a], ids: expected.get(a) })
        // A transaction belongs to the tenant it was begun for.
        const underB = client.transaction((tx) => withTenant(b, () => tx.ids(), { allowNested: true }))
        if (adapter.transactionTenant === 'bound') assert.deepEqual(await underB, { orgs: [a], ids: expected.get(a) })
        else await assert.rejects(underB, conflict)
      })
      for (const org of tenants) {
        assert.deepEqual(await withTenant(org, () => client.ids()), { orgs: [org], ids: expected.get(org) })
      }
    })
  })

  for (const strategy of ['set_config', 'set-local'] as const) {
    test(name(`${strategy}: the context is transaction-local, and a reused connection carries none`), async () => {
      await using(1, async ({ client, rawQuery, activity }) => {
        const inside = (await withTenant(a, () => client.query<Probe>(PROBE)))[0]!
        assert.deepEqual({ setting: inside.setting, n: inside.n }, { setting: a, n: expected.get(a)!.length })
        const inTransaction = await withTenant(b, () => client.transaction(async (tx) => (await tx.query<Probe>(PROBE))[0]!))
        assert.deepEqual({ pid: inTransaction.pid, setting: inTransaction.setting, n: inTransaction.n }, { pid: inside.pid, setting: b, n: expected.get(b)!.length })
        await assert.rejects(withTenant(b, () => client.transaction(async (tx) => {
          await tx.query(PROBE)
          throw new Rollback()
        })), Rollback)
        const raw = (await rawQuery<Probe>(PROBE))[0]!
        assert.equal(raw.pid, inside.pid, 'the same connection was reused')
        assert.ok(raw.setting === '' || raw.setting === null, `setting left on the connection: ${String(raw.setting)}`)
        assert.equal(raw.n, 0, 'without context the app role sees no rows')
        assert.equal(activity().connections, 1)
      }, strategy)
    })
  }

  test(name('set-local isolates every tenant'), async () => {
    await using(2, async ({ client }) => {
      const seen = await Promise.all(tenants.map((org) => withTenant(org, () => client.ids())))
      assert.deepEqual(seen, tenants.map((org) => ({ orgs: [org], ids: expected.get(org) })))
    }, 'set-local')
  })

  test(name('outside any context every call throws TenantContextMissingError and nothing reaches the server'), async () => {
    await using(1, async ({ client, activity }) => {
      await assert.rejects(client.ids(), missing)
      await assert.rejects(client.insert(a, 'no-context'), missing)
      await assert.rejects(client.query('SELECT 1'), missing)
      let ran = false
      await assert.rejects(client.transaction(async () => { ran = true }), missing)
      assert.equal(ran, false)
      assert.deepEqual(activity(), { connections: 0, requests: 0 })
    })
  })

  test(name('invalid tenant ids throw InvalidTenantIdError, reach nothing and do not appear in the error'), async () => {
    await using(1, async ({ client, activity }) => {
      const cases: [ReturnType<typeof createTenantContext>, unknown][] = [
        [createTenantContext(), "x'); DROP TABLE items; --"],
        [createTenantContext(), `${a}'; SET ROLE postgres; --`],
        [createTenantContext(), 42],
        [createTenantContext({ idType: 'bigint' }), "1'); DROP TABLE items; --"],
        [createTenantContext({ idType: 'text' }), 'nul\0inside'],
      ]
      for (const [context, id] of cases) {
        assert.throws(
          () => context.withTenant(id as string, () => client.ids()),
          (error: unknown) => {
            assert.ok(error instanceof InvalidTenantIdError, inspect(error))
            if (typeof id === 'string') assert.ok(!`${error.message}${error.stack ?? ''}${JSON.stringify(error)}`.includes(id))
            return true
          },
        )
      }
      assert.deepEqual(activity(), { connections: 0, requests: 0 })
    })
    assert.deepEqual(await db.sql('SELECT count(*)::int AS n FROM items'), [{ n: total }])
  })

  test(name('a hostile text id arrives verbatim as the setting'), async () => {
    await using(1, async ({ client }) => {
      const hostile = "x'); DROP TABLE items; -- \\' $$ \""
      const rows = await createTenantContext({ idType: 'text' }).withTenant(hostile, () =>
        client.query<{ v: string }>("SELECT current_setting('tenantize.tenant_id') AS v"),
      )
      assert.deepEqual(rows, [{ v: hostile }])
    })
    assert.deepEqual(await db.sql(`SELECT to_regclass('items') IS NOT NULL AS exists`), [{ exists: true }])
  })
}
