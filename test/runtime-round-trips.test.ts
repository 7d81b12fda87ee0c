/**
 * Round trips per scoped statement (issue #14), counted on the wire, not timed: every adapter, with its
 * default settings, sends a statement outside a transaction and its tenant context in ONE round trip,
 * a scoped statement sends as many Parse messages as the bare one (the context statement is prepared once
 * per connection), and a transaction costs no round trip more than the same transaction without tenantize.
 *
 * A proxy between the driver and PostgreSQL holds the server's answers until the client has written
 * nothing for {@link QUIET_MS}; whatever the client writes before it sees an answer cannot depend on
 * one. A round trip is counted each time the client writes after an answer was handed to it.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import pg from 'pg'
import postgres from 'postgres'
import { Kysely, PostgresDialect } from 'kysely'
import { drizzle } from 'drizzle-orm/node-postgres'
import { eq } from 'drizzle-orm'
import { PrismaPg } from '@prisma/adapter-pg'
import { tenantPool, withTenant } from '../src/runtime/index.js'
import { tenantSql } from '../src/runtime/postgres.js'
import { tenantDialect } from '../src/runtime/kysely.js'
import { tenantDrizzlePool } from '../src/runtime/drizzle.js'
import { tenantPrisma, tenantPrismaAdapter } from '../src/runtime/prisma.js'
import { testDatabase } from './helpers/db.js'
import { setupTenantSchema } from './helpers/runtime-matrix.js'
import { drizzleItems, type KyselyDB } from './helpers/runtime-adapters.js'
import { generatePrismaClient, type GeneratedPrisma } from './fixtures/prisma/client.js'

const QUIET_MS = 25

/**
 * Reads the frontend messages of one connection and counts those that end an exchange with the server —
 * `Sync` (extended protocol) and `Query` (simple protocol) — each answered by its own ReadyForQuery, and
 * `Parse` messages (a statement the server parses and plans).
 */
class MessageReader {
  private buffer = Buffer.alloc(0)
  private started = false

  constructor(
    private readonly onExchange: () => void,
    private readonly onParse: () => void,
  ) {}

  push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
    for (;;) {
      if (!this.started) {
        // The startup message (or an SSLRequest before it) has no type byte.
        if (this.buffer.length < 8) return
        const length = this.buffer.readInt32BE(0)
        if (this.buffer.length < length) return
        const code = this.buffer.readInt32BE(4)
        this.buffer = this.buffer.subarray(length)
        if (code !== 80877103) this.started = true // not an SSLRequest: the startup message
        continue
      }
      if (this.buffer.length < 5) return
      const length = this.buffer.readInt32BE(1)
      if (this.buffer.length < length + 1) return
      const type = String.fromCharCode(this.buffer[0]!)
      if (type === 'S' || type === 'Q') this.onExchange()
      if (type === 'P') this.onParse()
      this.buffer = this.buffer.subarray(length + 1)
    }
  }
}

/** A TCP proxy that counts the client's round trips (see the file comment) and its exchanges (Sync / Query messages). */
class RoundTripCounter {
  turns = 0
  exchanges = 0
  parses = 0
  private readonly server: Server
  private readonly sockets = new Set<Socket>()

  constructor(target: URL) {
    this.server = createServer((client) => {
      const upstream = netConnect(Number(target.port || 5432), target.hostname)
      this.sockets.add(client).add(upstream)
      let answered = true // a connection starts with the client's turn
      const reader = new MessageReader(
        () => this.exchanges++,
        () => this.parses++,
      )
      let pending: Buffer[] = []
      let timer: NodeJS.Timeout | undefined
      const release = (): void => {
        timer = undefined
        if (pending.length === 0) return
        client.write(Buffer.concat(pending))
        pending = []
        answered = true
      }
      const arm = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        timer = setTimeout(release, QUIET_MS)
      }
      client.on('data', (chunk: Buffer) => {
        if (answered) {
          this.turns++
          answered = false
        }
        reader.push(chunk)
        upstream.write(chunk)
        if (pending.length > 0) arm() // the client is still writing: keep holding the answers
      })
      upstream.on('data', (chunk: Buffer) => {
        pending.push(chunk)
        arm()
      })
      const close = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        client.destroy()
        upstream.destroy()
      }
      client.on('close', close).on('error', close)
      upstream.on('close', close).on('error', close)
    })
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    return (this.server.address() as { port: number }).port
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }

  /** Round trips `fn` takes (run it on connections opened before). */
  async count(fn: () => Promise<unknown>): Promise<number> {
    return (await this.measure(fn)).turns
  }

  /** Parse messages `fn` sends. */
  async parsesOf(fn: () => Promise<unknown>): Promise<number> {
    const parses = this.parses
    await fn()
    return this.parses - parses
  }

  /** Round trips and exchanges (Sync / Query messages, each answered by a ReadyForQuery) `fn` takes. */
  async measure(fn: () => Promise<unknown>): Promise<{ turns: number; exchanges: number }> {
    const [turns, exchanges] = [this.turns, this.exchanges]
    await fn()
    return { turns: this.turns - turns, exchanges: this.exchanges - exchanges }
  }
}

const db = await testDatabase(import.meta.url)
const fixture = await setupTenantSchema(db)
const { a, expected } = fixture
const mine = expected.get(a)!
const one = mine[0]!
const counter = new RoundTripCounter(new URL(db.url))
let url = ''
let generated: GeneratedPrisma

before(async () => {
  const target = new URL(db.url)
  target.host = `127.0.0.1:${await counter.listen()}`
  url = target.href
  generated = await generatePrismaClient()
})
after(async () => {
  await generated.dispose()
  await counter.close()
})

const appPool = (): pg.Pool => new pg.Pool({ connectionString: url, max: 1, options: `-c role=${fixture.app}` })

interface Case {
  /** One statement outside a transaction, returning the ids it read. */
  statement(): Promise<string[]>
  /** Two statements in one transaction, the adapter's way. */
  transaction(): Promise<unknown>
}

/**
 * For `scoped` (inside withTenant) and `bare` (the driver alone, as the app role, same connection pool
 * size): the statement is right and takes one round trip, and the transaction takes as many round trips
 * scoped as bare.
 */
async function check(name: string, scoped: Case, bare: Case, scopedExchanges = 1): Promise<void> {
  const inTenant = <T>(fn: () => Promise<T>): Promise<T> => withTenant(a, fn)
  // Warm up: connections open, statements prepared, ORM metadata loaded.
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(await inTenant(() => scoped.statement()), [one], name)
    await inTenant(() => scoped.transaction())
    await bare.statement()
    await bare.transaction()
  }
  assert.deepEqual(await counter.measure(() => bare.statement()), { turns: 1, exchanges: 1 }, `${name}: the bare statement is one round trip, one exchange`)
  let ids: string[] = []
  const statement = await counter.measure(async () => (ids = await inTenant(() => scoped.statement())))
  assert.deepEqual(statement, { turns: 1, exchanges: scopedExchanges }, `${name}: a scoped statement is one round trip, ${scopedExchanges} exchange(s) with the server`)
  assert.deepEqual(ids, [one])
  // The context statement is prepared once per connection, not parsed (and planned) with every statement.
  const bareParses = await counter.parsesOf(() => bare.statement())
  assert.equal(await counter.parsesOf(() => inTenant(() => scoped.statement())), bareParses, `${name}: a scoped statement sends as many Parse messages as the bare one (${bareParses})`)
  const bareTransaction = await counter.count(() => bare.transaction())
  assert.ok(bareTransaction >= 3, `${name}: the bare transaction takes ${bareTransaction} round trips`)
  assert.equal(await counter.count(() => inTenant(() => scoped.transaction())), bareTransaction, `${name}: a scoped transaction takes no round trip more than a bare one`)
}

const TEXT = 'SELECT id FROM items WHERE id = $1'

test('pg: one round trip per statement (with and without parameters); a transaction costs what it costs without tenantize', async () => {
  const pool = appPool()
  const db = tenantPool(pool)
  try {
    const ids = (r: pg.QueryResult<{ id: string }>): string[] => r.rows.map((row) => row.id)
    const scoped: Case = {
      statement: async () => ids(await db.query<{ id: string }>(TEXT, [one])),
      transaction: () => db.transaction(async (tx) => [await tx.query(TEXT, [one]), await tx.query('SELECT count(*) FROM items')]),
    }
    const bare: Case = {
      statement: async () => ids(await pool.query<{ id: string }>(TEXT, [one])),
      transaction: async () => {
        const client = await pool.connect()
        try {
          await client.query('BEGIN')
          await client.query(TEXT, [one])
          await client.query('SELECT count(*) FROM items')
          return await client.query('COMMIT')
        } finally {
          client.release()
        }
      },
    }
    await check('pg', scoped, bare)
    const simple = `SELECT id FROM items WHERE id = '${one}'`
    assert.equal(await counter.count(async () => assert.deepEqual(ids(await withTenant(a, () => db.query<{ id: string }>(simple))), [one])), 1, 'pg: a statement without parameters is one round trip')
  } finally {
    await pool.end()
  }
})

test('postgres.js: one round trip per statement; sql.begin costs what it costs without tenantize', async () => {
  const sql = postgres(url, { max: 1, onnotice: () => undefined, connection: { options: `-c role=${fixture.app}` } })
  const tsql = tenantSql(sql)
  try {
    type Tag = (strings: TemplateStringsArray, ...values: string[]) => Promise<readonly { id?: string }[]>
    type Begin = (fn: (tx: Tag) => Promise<unknown>) => Promise<unknown>
    const run = (s: { begin: unknown }): Case => ({
      statement: async () => (await (s as unknown as Tag)`SELECT id FROM items WHERE id = ${one}`).map((r) => r.id!),
      transaction: () => (s.begin as Begin)(async (tx) => [await tx`SELECT id FROM items WHERE id = ${one}`, await tx`SELECT count(*) FROM items`]),
    })
    // postgres.js ends every query it sends with its own Sync, and offers no way to write two statements
    // before one Sync: a tagged query with its context is BEGIN + context, the query, COMMIT — written
    // together (one round trip), three exchanges with the server.
    await check('postgres.js', run(tsql), run(sql), 3)
    // Without parameters (simple protocol) the context goes in the same query string: one exchange.
    type Unsafe = (text: string) => Promise<readonly { id?: string }[]>
    const text = `SELECT id FROM items WHERE id = '${one}'`
    await withTenant(a, () => (tsql.unsafe as Unsafe)(text))
    await (sql.unsafe as Unsafe)(text)
    assert.deepEqual(await counter.measure(() => (sql.unsafe as Unsafe)(text)), { turns: 1, exchanges: 1 }, 'postgres.js: bare unsafe')
    let rows: readonly { id?: string }[] = []
    const scopedUnsafe = await counter.measure(async () => (rows = await withTenant(a, () => (tsql.unsafe as Unsafe)(text))))
    assert.deepEqual(scopedUnsafe, { turns: 1, exchanges: 1 }, 'postgres.js: unsafe without parameters is one round trip, one exchange')
    assert.deepEqual(rows.map((r) => r.id), [one])
    assert.equal((await (sql.unsafe as Unsafe)(text)).length, 0, 'without context the same text sees nothing')
  } finally {
    await sql.end()
  }
})

test('Kysely (PostgresDialect): one round trip per statement; a transaction costs what it costs without tenantize', async () => {
  const pool = appPool()
  const scoped = new Kysely<KyselyDB>({ dialect: tenantDialect(new PostgresDialect({ pool })) })
  const bare = new Kysely<KyselyDB>({ dialect: new PostgresDialect({ pool }) })
  try {
    const run = (k: Kysely<KyselyDB>): Case => ({
      statement: async () => (await k.selectFrom('items').select('id').where('id', '=', one).execute()).map((r) => r.id),
      transaction: () => k.transaction().execute(async (trx) => [await trx.selectFrom('items').select('id').where('id', '=', one).execute(), await trx.selectFrom('items').select((e) => e.fn.countAll().as('n')).execute()]),
    })
    await check('kysely', run(scoped), run(bare))
  } finally {
    await pool.end()
  }
})

test('Drizzle (node-postgres): one round trip per statement; a transaction costs what it costs without tenantize', async () => {
  const pool = appPool()
  const scoped = drizzle({ client: tenantDrizzlePool(pool) })
  const bare = drizzle({ client: pool })
  try {
    const run = (d: typeof bare): Case => ({
      statement: async () => (await d.select({ id: drizzleItems.id }).from(drizzleItems).where(eq(drizzleItems.id, one))).map((r) => r.id),
      transaction: () => d.transaction(async (tx) => [await tx.select({ id: drizzleItems.id }).from(drizzleItems).where(eq(drizzleItems.id, one)), await tx.select({ id: drizzleItems.id }).from(drizzleItems)]),
    })
    await check('drizzle', run(scoped), run(bare))
  } finally {
    await pool.end()
  }
})

test('Prisma 7 (adapter-pg): one round trip per statement; an interactive transaction costs what it costs without tenantize', async () => {
  const pool = appPool()
  const scoped = tenantPrisma(generated.client(tenantPrismaAdapter(new PrismaPg(pool))))
  const bare = generated.client(new PrismaPg(pool))
  try {
    const run = (p: typeof bare): Case => ({
      statement: async () => (await p.item.findMany({ where: { id: one }, select: { id: true } })).map((r) => r.id),
      transaction: () => p.$transaction(async (tx) => [await tx.item.findMany({ where: { id: one } }), await tx.item.count()]),
    })
    await check('prisma', run(scoped), run(bare))
  } finally {
    await scoped.$disconnect()
    await bare.$disconnect()
    await pool.end()
  }
})

test("strategy 'set-local' (Citus): BEGIN, SET LOCAL, the statement and COMMIT before one Sync — one round trip, one exchange (pg, Kysely, Drizzle, Prisma share this path)", async () => {
  const pool = appPool()
  const db = tenantPool(pool, { strategy: 'set-local' })
  const k = new Kysely<KyselyDB>({ dialect: tenantDialect(new PostgresDialect({ pool: appPool() }), { strategy: 'set-local' }) })
  try {
    const pgIds = async (): Promise<string[]> => (await withTenant(a, () => db.query<{ id: string }>(TEXT, [one]))).rows.map((r) => r.id)
    const kyselyIds = async (): Promise<string[]> => (await withTenant(a, () => k.selectFrom('items').select('id').where('id', '=', one).execute())).map((r) => r.id)
    for (const [name, run] of [['pg', pgIds], ['kysely', kyselyIds]] as const) {
      await run() // warm up
      let ids: string[] = []
      assert.deepEqual(await counter.measure(async () => (ids = await run())), { turns: 1, exchanges: 1 }, `${name}: set-local is one round trip, one exchange`)
      assert.deepEqual(ids, [one])
    }
    // Without parameters too (the extended protocol even then: see pg-scoped.ts).
    const simple = `SELECT id FROM items WHERE id = '${one}'`
    assert.deepEqual(await counter.measure(() => withTenant(a, () => db.query(simple))), { turns: 1, exchanges: 1 })
  } finally {
    await pool.end()
    await k.destroy()
  }
})
