/**
 * The `observe` option (issue #12, readiness): statements outside any `withTenant` context run unscoped
 * — as the app ran before tenantize — and are reported with their call site (the first frame outside
 * tenantize, the driver and the ORM); scoped statements are never reported. Every adapter, on a real
 * PostgreSQL; the table's policies are enforced here, so the unscoped statement sees no rows (the
 * database fails closed once enforce has run).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import postgres from 'postgres'
import { Kysely, PostgresDialect } from 'kysely'
import { drizzle } from 'drizzle-orm/node-postgres'
import { eq } from 'drizzle-orm'
import { PrismaPg } from '@prisma/adapter-pg'
import { TenantContextMissingError, tenantPool, withTenant, type UnscopedQueryEvent } from '../src/runtime/index.js'
import { tenantSql } from '../src/runtime/postgres.js'
import { tenantDialect } from '../src/runtime/kysely.js'
import { tenantDrizzlePool } from '../src/runtime/drizzle.js'
import { tenantPrisma, tenantPrismaAdapter } from '../src/runtime/prisma.js'
import { callSiteOf } from '../src/runtime/observe.js'
import { testDatabase } from './helpers/db.js'
import { setupTenantSchema } from './helpers/runtime-matrix.js'
import { drizzleItems, type KyselyDB } from './helpers/runtime-adapters.js'
import { generatePrismaClient, type GeneratedPrisma } from './fixtures/prisma/client.js'

const db = await testDatabase(import.meta.url)
const fixture = await setupTenantSchema(db)
const { a, expected } = fixture
const mine = expected.get(a)!
const THIS_FILE = 'runtime-observe.test.ts'
let generated: GeneratedPrisma

before(async () => {
  generated = await generatePrismaClient()
})
after(async () => {
  await generated.dispose()
})

const appPool = (): pg.Pool => new pg.Pool({ connectionString: db.url, max: 2, options: `-c role=${fixture.app}` })

/** Collects the events an adapter reports. */
function recorder(): { events: UnscopedQueryEvent[]; observe: (event: UnscopedQueryEvent) => void } {
  const events: UnscopedQueryEvent[] = []
  return { events, observe: (event) => events.push(event) }
}

/** The event's call site is a line of this file. */
function assertCallSiteHere(event: UnscopedQueryEvent | undefined, label: string): void {
  assert.ok(event !== undefined, `${label}: an event`)
  assert.ok(event.callSite?.includes(THIS_FILE), `${label}: the call site is in this file, got ${String(event.callSite)}\n${event.stack}`)
  assert.match(event.callSite ?? '', /:\d+:\d+$/)
}

test('callSiteOf skips tenantize, node_modules and node internals', () => {
  const runtime = new URL('../src/runtime/pg.ts', import.meta.url).pathname
  const stack = [
    `    at query (${runtime}:10:5)`,
    '    at Client.query (/app/node_modules/pg/lib/client.js:1:1)',
    '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
    '    at async handler (/app/src/routes/invoice.ts:42:7)',
  ].join('\n')
  assert.equal(callSiteOf(stack), '/app/src/routes/invoice.ts:42:7')
  assert.equal(callSiteOf('    at file:///app/jobs/nightly.js:3:9'), 'file:///app/jobs/nightly.js:3:9')
  assert.equal(callSiteOf(`    at x (${runtime}:1:1)`), undefined)
})

test('pg: observe reports statements and transactions outside withTenant with their call site; they run unscoped; scoped ones are not reported', async () => {
  const pool = appPool()
  const { events, observe } = recorder()
  const scoped = tenantPool(pool, { observe })
  try {
    const unscoped = await scoped.query('SELECT id FROM items WHERE id <> $1', ['none'])
    assert.equal(unscoped.rowCount, 0, 'policies enforced: no rows without a tenant')
    assertCallSiteHere(events[0], 'pg query')
    assert.equal(events[0]!.adapter, 'pg')
    assert.equal(events[0]!.sql, 'SELECT id FROM items WHERE id <> $1')
    assert.ok(!JSON.stringify(events[0]).includes('none'), 'parameters are not reported')
    await scoped.transaction(async (tx) => tx.query('SELECT 1'))
    assert.equal(events.length, 2)
    assert.equal(events[1]!.sql, 'transaction')
    assertCallSiteHere(events[1], 'pg transaction')
    const rows = await withTenant(a, () => scoped.query<{ id: string }>('SELECT id FROM items ORDER BY id'))
    assert.deepEqual(rows.rows.map((r) => r.id), mine)
    await withTenant(a, () => scoped.transaction((tx) => tx.query('SELECT 1')))
    assert.equal(events.length, 2, 'scoped statements are not reported')
    // Without observe, the same call refuses before touching the database (the default).
    await assert.rejects(tenantPool(pool).query('SELECT 1'), TenantContextMissingError)
    assert.throws(() => tenantPool(pool, { observe: 'loud' as never }), TypeError)
  } finally {
    await pool.end()
  }
})

test("observe: 'warn' emits one process warning (TZ_UNSCOPED_QUERY) per call site; an observer that throws changes nothing", async () => {
  const pool = appPool()
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => {
    if ((warning as { code?: string }).code === 'TZ_UNSCOPED_QUERY') warnings.push(warning)
  }
  process.on('warning', onWarning)
  try {
    const scoped = tenantPool(pool, { observe: 'warn' })
    for (let i = 0; i < 3; i++) await scoped.query('SELECT 1 AS one') // one call site, three calls
    await scoped.query('SELECT 2 AS two') // another call site
    await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on the next tick
    assert.equal(warnings.length, 2)
    assert.match(warnings[0]!.message, new RegExp(`${THIS_FILE.replace(/\./g, '\\.')}:\\d+:\\d+: SELECT 1 AS one — wrap it in withTenant`))
    assert.ok(!warnings.some((w) => w.message.includes(a)))
    const throwing = tenantPool(pool, {
      observe: () => {
        throw new Error('observer failed')
      },
    })
    const result = await throwing.query<{ one: number }>('SELECT 1 AS one')
    assert.deepEqual(result.rows, [{ one: 1 }])
  } finally {
    process.off('warning', onWarning)
    await pool.end()
  }
})

test('postgres.js: observe reports tagged, unsafe and begin outside withTenant; they run unscoped', async () => {
  const sql = postgres(db.url, { max: 2, onnotice: () => undefined, connection: { options: `-c role=${fixture.app}` } })
  const { events, observe } = recorder()
  const tsql = tenantSql(sql, { observe })
  try {
    const tagged = await tsql`SELECT id FROM items WHERE id <> ${'none'}`
    assert.equal(tagged.length, 0)
    assertCallSiteHere(events[0], 'postgres.js tagged')
    assert.equal(events[0]!.sql, 'SELECT id FROM items WHERE id <> $1')
    const unsafe = await tsql.unsafe('SELECT count(*)::int AS n FROM items')
    assert.deepEqual([...unsafe], [{ n: 0 }])
    assertCallSiteHere(events[1], 'postgres.js unsafe')
    await tsql.unsafe('SELECT id FROM items WHERE id = $1', ['x'])
    assertCallSiteHere(events[2], 'postgres.js unsafe with parameters')
    await tsql.begin(async (tx) => tx`SELECT 1`)
    assert.equal(events[3]!.sql, 'transaction')
    assertCallSiteHere(events[3], 'postgres.js begin')
    const rows = await withTenant(a, () => tsql<{ id: string }[]>`SELECT id FROM items ORDER BY id`)
    assert.deepEqual(rows.map((r) => r.id), mine)
    await withTenant(a, () => tsql.unsafe('SELECT 1'))
    await withTenant(a, () => tsql.begin(async (tx) => tx`SELECT 1`))
    assert.equal(events.length, 4, 'scoped statements are not reported')
  } finally {
    await sql.end()
  }
})

test('Kysely: observe reports statements and transactions outside withTenant; they run unscoped', async () => {
  const pool = appPool()
  const { events, observe } = recorder()
  const k = new Kysely<KyselyDB>({ dialect: tenantDialect(new PostgresDialect({ pool }), { observe }) })
  try {
    const unscoped = await k.selectFrom('items').select('id').execute()
    assert.deepEqual(unscoped, [])
    assertCallSiteHere(events[0], 'kysely select')
    assert.match(events[0]!.sql, /^select "id" from "items"$/)
    await k.transaction().execute(async (trx) => trx.selectFrom('items').select('id').execute())
    assert.equal(events.length, 2, 'a transaction is reported once, not per statement')
    assert.equal(events[1]!.sql, 'transaction')
    assertCallSiteHere(events[1], 'kysely transaction')
    const rows = await withTenant(a, () => k.selectFrom('items').select('id').orderBy('id').execute())
    assert.deepEqual(rows.map((r) => r.id), mine)
    await withTenant(a, () => k.transaction().execute(async (trx) => trx.selectFrom('items').select('id').execute()))
    assert.equal(events.length, 2, 'scoped statements are not reported')
  } finally {
    await k.destroy()
  }
})

test('Drizzle: observe reports statements and transactions outside withTenant; they run unscoped', async () => {
  const pool = appPool()
  const { events, observe } = recorder()
  const d = drizzle({ client: tenantDrizzlePool(pool, { observe }) })
  try {
    // execute() called here: the statement starts in this frame.
    const unscoped = await d.select({ id: drizzleItems.id }).from(drizzleItems).where(eq(drizzleItems.body, 'x')).execute()
    assert.deepEqual(unscoped, [])
    assertCallSiteHere(events[0], 'drizzle select')
    assert.match(events[0]!.sql, /^select "id" from "items" where "items"."body" = \$1$/)
    // Awaited as a thenable, Drizzle starts the query from a microtask: the statement is still reported,
    // the frame that awaited it is not on the stack.
    await d.select({ id: drizzleItems.id }).from(drizzleItems)
    assert.equal(events.length, 2)
    assert.equal(events[1]!.sql, 'select "id" from "items"')
    events.pop()
    await d.transaction(async (tx) => tx.select({ id: drizzleItems.id }).from(drizzleItems))
    assert.equal(events.length, 2)
    assert.equal(events[1]!.sql, 'transaction')
    assertCallSiteHere(events[1], 'drizzle transaction')
    const rows = await withTenant(a, () => d.select({ id: drizzleItems.id }).from(drizzleItems).orderBy(drizzleItems.id))
    assert.deepEqual(rows.map((r) => r.id), mine)
    assert.equal(events.length, 2, 'scoped statements are not reported')
  } finally {
    await pool.end()
  }
})

test('Prisma: observe reports model queries and transactions outside withTenant; they run unscoped', async () => {
  const pool = appPool()
  const { events, observe } = recorder()
  const prisma = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool), { observe })), { observe })
  try {
    const unscoped = await prisma.item.findMany({ where: { body: 'x' } })
    assert.deepEqual(unscoped, [])
    assert.equal(events.length, 1)
    assert.equal(events[0]!.adapter, 'prisma')
    assert.match(events[0]!.sql, /FROM "public"\."items"/)
    assertCallSiteHere(events[0], 'prisma findMany')
    await prisma.$transaction([prisma.item.count(), prisma.item.findMany()])
    assert.deepEqual(events.slice(1).map((e) => e.sql), ['transaction'], 'the batch is reported as a transaction, its statements are not')
    await prisma.$transaction(async (tx) => tx.item.count())
    assert.deepEqual(events.slice(2).map((e) => e.sql), ['transaction'], 'an interactive transaction too')
    const before = events.length
    const rows = await withTenant(a, () => prisma.item.findMany({ orderBy: { id: 'asc' } }))
    assert.deepEqual(rows.map((r) => r.id), mine)
    await withTenant(a, () => prisma.$transaction([prisma.item.count()]))
    assert.equal(events.length, before, 'scoped statements are not reported')
  } finally {
    await prisma.$disconnect()
    await pool.end()
  }
})
