import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { PrismaPg } from '@prisma/adapter-pg'
import { withTenant } from '../src/runtime/index.js'
import { tenantPrisma, tenantPrismaAdapter, tenantRouting } from '../src/runtime/prisma.js'
import { testDatabase } from './helpers/db.js'
import { runMatrix, setupTenantSchema } from './helpers/runtime-matrix.js'
import { prismaAdapter, prismaSqlState, trackedPool } from './helpers/runtime-adapters.js'
import { generatePrismaClient, type PrismaLike } from './fixtures/prisma/client.js'

const db = await testDatabase(import.meta.url)
const fixture = await setupTenantSchema(db)
const { a, b, expected, total } = fixture
const generated = await generatePrismaClient()
after(() => generated.dispose())

runMatrix(prismaAdapter(generated), fixture)
runMatrix(prismaAdapter(generated, { pipeline: true }), fixture, { sizes: [2] })

type Counts = { connections: number; requests: number }

async function withPrisma<T>(fn: (prisma: PrismaLike, counts: Counts) => Promise<T>): Promise<T> {
  const { pool, counts } = trackedPool({ url: db.url, max: 2, role: fixture.app })
  const prisma = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool))))
  try {
    return await fn(prisma, counts)
  } finally {
    await prisma.$disconnect()
    await pool.end()
  }
}

const SETTINGS = "SELECT current_setting('transaction_isolation') AS level, current_setting('tenantize.tenant_id') AS setting"

test('prisma: a lazy query returned from withTenant runs as that tenant, also nested', async () => {
  await withPrisma(async (prisma) => {
    // Prisma's queries run when awaited; withTenant starts them inside its context.
    assert.equal(await withTenant(a, () => prisma.item.count()), expected.get(a)!.length)
    assert.equal(await withTenant(a, () => withTenant(b, () => prisma.item.count(), { allowNested: true })), expected.get(b)!.length)
  })
})

test('prisma: an interactive transaction keeps its isolation level, with the context set', async () => {
  await withPrisma(async (prisma) => {
    const rows = await withTenant(a, () => prisma.$transaction((tx) => tx.$queryRawUnsafe(SETTINGS), { isolationLevel: 'Serializable' }))
    assert.deepEqual(rows, [{ level: 'serializable', setting: a }])
  })
})

test('prisma: a batch $transaction runs in one tenant transaction and rolls back as a whole', async () => {
  await withPrisma(async (prisma) => {
    const [n, rows] = await withTenant(b, () => prisma.$transaction([prisma.item.count(), prisma.$queryRawUnsafe<{ setting: string }[]>(SETTINGS)]))
    assert.deepEqual([n, rows[0]?.setting], [expected.get(b)!.length, b])
    await assert.rejects(
      withTenant(b, () => prisma.$transaction([
        prisma.item.create({ data: { orgId: b, id: 'batch-undone', body: 'x' } }),
        prisma.item.create({ data: { orgId: a, id: 'batch-cross-tenant', body: 'x' } }),
      ])),
      (error: unknown) => prismaSqlState(error) === '42501',
    )
    assert.deepEqual(await db.sql(`SELECT id FROM items WHERE id LIKE 'batch-%'`), [])
  })
})

test('prisma: plain model queries, findUnique and raw queries run scoped', async () => {
  await withPrisma(async (prisma) => {
    await withTenant(a, async () => {
      assert.equal(await prisma.item.count(), expected.get(a)!.length)
      assert.deepEqual(await prisma.item.findUnique({ where: { id: expected.get(a)![0]! } }).then((r) => r?.orgId), a)
      assert.equal(await prisma.item.findUnique({ where: { id: expected.get(b)![0]! } }), null, "another tenant's row is invisible")
      assert.equal(await prisma.$executeRawUnsafe('UPDATE items SET body = body'), expected.get(a)!.length)
    })
  })
})

test('prisma: requests of ten tenants in one tick (findUnique, batch $transaction) each run as their own tenant', async () => {
  await withPrisma(async (prisma) => {
    // Prisma defers these to one process.nextTick shared by the tick's requests; tenantPrisma keeps them apart.
    const target = expected.get(a)![0]!
    const found = await Promise.all(fixture.tenants.map((org) => withTenant(org, () => prisma.item.findUnique({ where: { id: target } }))))
    assert.deepEqual(found.map((row) => row?.orgId ?? null), fixture.tenants.map((org) => (org === a ? a : null)))
    const batches = await Promise.all(fixture.tenants.map((org) => withTenant(org, () => prisma.$transaction([
      prisma.item.findMany({ select: { id: true }, orderBy: { id: 'asc' } }),
      prisma.$queryRawUnsafe<{ setting: string }[]>(SETTINGS),
    ]))))
    assert.deepEqual(
      batches.map(([rows, settings]) => [rows.map((r) => r.id), settings[0]?.setting]),
      fixture.tenants.map((org) => [expected.get(org), org]),
    )
    await assert.rejects(prisma.$transaction([prisma.item.count()]), (error: unknown) => (error as { code?: string }).code === 'TZ_TENANT_CONTEXT_MISSING')
  })
})

test('prisma: system work goes through a separate client on another pool; executeScript is refused', async () => {
  const { pool: systemPool } = trackedPool({ url: db.url, max: 1 })
  const system = generated.client(new PrismaPg(systemPool))
  try {
    await withPrisma(async (prisma, counts) => {
      await assert.rejects(prisma.item.count(), (error: unknown) => (error as { code?: string }).code === 'TZ_TENANT_CONTEXT_MISSING')
      assert.equal(await system.item.count(), total)
      assert.deepEqual(counts, { connections: 0, requests: 0 }, 'the tenant pool was not used')
    })
    const adapter = await tenantPrismaAdapter(new PrismaPg(systemPool)).connect()
    await assert.rejects(adapter.executeScript('SELECT 1'), TypeError)
  } finally {
    await system.$disconnect()
    await systemPool.end()
  }
})

test('tenantRouting (Citus routing): findMany, findUnique and count with the tenant condition return what they return without it; another tenant\'s row stays out of reach', async () => {
  const { pool } = trackedPool({ url: db.url, max: 2, role: fixture.app })
  const plain = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool))))
  const routed = (plain as unknown as { $extends(extension: unknown): unknown }).$extends(tenantRouting({ models: { Item: 'orgId' } })) as PrismaLike
  try {
    for (const tenant of [a, b]) {
      const mine = expected.get(tenant)!
      const read = (p: PrismaLike) => withTenant(tenant, async () => ({
        all: (await p.item.findMany({ orderBy: { id: 'asc' } })).map((r) => r.id),
        filtered: (await p.item.findMany({ where: { id: { in: [mine[0]!, 't9-r0'] } } as never })).map((r) => r.id),
        unique: (await p.item.findUnique({ where: { id: mine[0]! } }))?.id,
        count: await p.item.count(),
      }))
      const [withCondition, without] = [await read(routed), await read(plain)]
      assert.deepEqual(withCondition, without)
      assert.deepEqual(withCondition, { all: mine, filtered: [mine[0]], unique: mine[0], count: mine.length })
    }
    // Another tenant's row stays out of reach either way (RLS is the backstop).
    const other = expected.get(b)![0]!
    assert.equal(await withTenant(a, () => routed.item.findUnique({ where: { id: other } })), null)
    assert.throws(() => tenantRouting({ models: { Item: '' } }), TypeError)
  } finally {
    await (plain as unknown as { $disconnect(): Promise<void> }).$disconnect()
    await pool.end()
  }
})
