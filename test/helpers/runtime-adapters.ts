/**
 * Each runtime adapter described for the matrix (test/helpers/runtime-matrix.ts): how to open it on a
 * pool of a given size, as the app role, with a strategy — and how to observe it from the client side.
 * Shared by the per-adapter test files and the PgBouncer test.
 */
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import pg from 'pg'
import postgres from 'postgres'
import { Kysely, PostgresDialect, sql as kyselySql, type Transaction as KyselyTransaction } from 'kysely'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import { sql as drizzleSql } from 'drizzle-orm'
import { pgTable, text, uuid } from 'drizzle-orm/pg-core'
import { PrismaPg } from '@prisma/adapter-pg'
import { tenantPool, TenantRuntimeError, type Queryable } from '../../src/runtime/index.js'
import { tenantSql } from '../../src/runtime/postgres.js'
import { tenantDialect } from '../../src/runtime/kysely.js'
import { tenantDrizzlePool } from '../../src/runtime/drizzle.js'
import { tenantPrisma, tenantPrismaAdapter } from '../../src/runtime/prisma.js'
import type { GeneratedPrisma, PrismaLike } from '../fixtures/prisma/client.js'
import { listing, type MatrixAdapter, type MatrixScope, type OpenOptions, type OpenedAdapter } from './runtime-matrix.js'

type Counts = { connections: number; requests: number }

/** Options of the adapters that can pipeline over node-postgres. */
export interface PipelineOption {
  /** Create the pool with node-postgres' `pipeline: true` and tell the adapter so. */
  readonly pipeline?: boolean
}

/** A node-postgres pool as the app role, counting connections opened and checkouts. */
export function trackedPool(options: OpenOptions & PipelineOption): { pool: pg.Pool; counts: Counts } {
  // `pipeline` is a client option of node-postgres 8.23 its types do not list yet.
  const config: pg.PoolConfig & { pipeline?: boolean } = {
    connectionString: options.url,
    max: options.max,
    ...(options.role === undefined ? {} : { options: `-c role=${options.role}` }),
    ...(options.pipeline === true ? { pipeline: true } : {}),
  }
  const pool = new pg.Pool(config)
  const counts = { connections: 0, requests: 0 }
  pool.on('connect', () => counts.connections++)
  pool.on('acquire', () => counts.requests++)
  pool.on('error', () => undefined) // idle clients dropped by the server; the next checkout reconnects
  return { pool, counts }
}

function poolParts(pool: pg.Pool, counts: Counts): Pick<OpenedAdapter, 'rawQuery' | 'activity' | 'checkedOut'> {
  return {
    rawQuery: async <R extends object>(text: string) => (await pool.query<R & pg.QueryResultRow>(text)).rows,
    activity: () => ({ ...counts }),
    checkedOut: () => pool.totalCount - pool.idleCount,
  }
}

const strategyOf = (options: OpenOptions): { strategy?: 'set_config' | 'set-local' } =>
  options.strategy === undefined ? {} : { strategy: options.strategy }

const pgCode = (error: unknown): string | undefined => (error as { code?: string } | undefined)?.code

// --- node-postgres (tenantPool) ------------------------------------------------------------------

export function pgAdapter({ pipeline = false }: PipelineOption = {}): MatrixAdapter {
  const scope = (q: Queryable): MatrixScope => ({
    ids: async () => listing((await q.query<{ org_id: string; id: string }>('SELECT org_id, id FROM items')).rows),
    insert: async (org, id) => {
      await q.query('INSERT INTO items (org_id, id, body) VALUES ($1, $2, $3)', [org, id, 'x'])
    },
    query: async <R extends object>(text: string) => (await q.query<R & pg.QueryResultRow>(text)).rows,
  })
  return {
    name: pipeline ? 'pg (pipeline)' : 'pg',
    sqlState: pgCode,
    async open(options) {
      const { pool, counts } = trackedPool({ ...options, pipeline })
      const db = tenantPool(pool, strategyOf(options))
      return {
        client: { ...scope(db), transaction: (fn) => db.transaction((tx) => fn(scope(tx))) },
        ...poolParts(pool, counts),
        close: () => pool.end(),
      }
    },
  }
}

// --- postgres.js ---------------------------------------------------------------------------------

export type PostgresSql = postgres.Sql<Record<string, never>>

/** postgres.js as the app role, counting the sockets it opens and the statements it sends. */
export function trackedSql(options: OpenOptions & { prepare?: boolean }): { sql: PostgresSql; counts: Counts } {
  const counts = { connections: 0, requests: 0 }
  const target = new URL(options.url)
  // `socket` (a connected socket per connection) is a postgres.js option its types do not list.
  const settings: postgres.Options<Record<string, never>> & { socket: () => Promise<unknown> } = {
    max: options.max,
    prepare: options.prepare ?? true,
    onnotice: () => undefined,
    ...(options.role === undefined ? {} : { connection: { options: `-c role=${options.role}` } }),
    debug: () => {
      counts.requests++
    },
    socket: async () => {
      counts.connections++
      const socket = netConnect(Number(target.port || 5432), target.hostname)
      await once(socket, 'connect')
      return socket
    },
  }
  const sql = postgres(options.url, settings) as unknown as PostgresSql
  return { sql, counts }
}

type Tag = (strings: TemplateStringsArray, ...values: never[]) => Promise<readonly object[]>

/** The matrix through postgres.js. Behind PgBouncer (before 1.21) pass `prepare: false`. */
export function postgresAdapter(prepare = true): MatrixAdapter {
  const scope = (run: Tag, unsafe: (text: string) => Promise<readonly object[]>): MatrixScope => ({
    ids: async () => listing((await run`SELECT org_id, id FROM items`) as { org_id: string; id: string }[]),
    insert: async (org, id) => {
      await run`INSERT INTO items (org_id, id, body) VALUES (${org as never}, ${id as never}, ${'x' as never})`
    },
    query: async <R extends object>(text: string) => [...(await unsafe(text))] as R[],
  })
  return {
    name: 'postgres.js',
    sqlState: pgCode,
    async open(options) {
      const { sql, counts } = trackedSql({ ...options, prepare })
      const tsql = tenantSql(sql, strategyOf(options))
      return {
        client: {
          ...scope(tsql as Tag, (text) => tsql.unsafe<object[]>(text)),
          transaction: <T>(fn: (tx: MatrixScope) => Promise<T>) =>
            tsql.begin((tx) => fn(scope(tx as unknown as Tag, (text) => tx.unsafe<object[]>(text)))) as Promise<T>,
        },
        rawQuery: async <R extends object>(text: string) => [...(await sql.unsafe(text))] as R[],
        activity: () => ({ ...counts }),
        close: () => sql.end(),
      }
    },
  }
}

// --- Kysely --------------------------------------------------------------------------------------

export interface KyselyDB {
  items: { org_id: string; id: string; body: string }
}

export function kyselyAdapter({ pipeline = false }: PipelineOption = {}): MatrixAdapter {
  const scope = (k: Kysely<KyselyDB> | KyselyTransaction<KyselyDB>): MatrixScope => ({
    ids: async () => listing(await k.selectFrom('items').select(['org_id', 'id']).execute()),
    insert: async (org, id) => {
      await k.insertInto('items').values({ org_id: org, id, body: 'x' }).execute()
    },
    query: async <R extends object>(text: string) => (await kyselySql.raw<R>(text).execute(k)).rows,
  })
  return {
    name: pipeline ? 'kysely (pipeline)' : 'kysely',
    sqlState: pgCode,
    async open(options) {
      const { pool, counts } = trackedPool({ ...options, pipeline })
      const db = new Kysely<KyselyDB>({ dialect: tenantDialect(new PostgresDialect({ pool }), { ...strategyOf(options), pipeline }) })
      return {
        client: { ...scope(db), transaction: (fn) => db.transaction().execute((trx) => fn(scope(trx))) },
        ...poolParts(pool, counts),
        close: async () => {
          await db.destroy()
          if (!pool.ended) await pool.end() // a driver never used is not destroyed by Kysely
        },
      }
    },
  }
}

// --- Drizzle (node-postgres) ----------------------------------------------------------------------

export const drizzleItems = pgTable('items', {
  orgId: uuid('org_id').notNull(),
  id: text('id').primaryKey(),
  body: text('body').notNull(),
})

/** Drizzle wraps driver errors (DrizzleQueryError): the database's or tenantize's error is its cause. */
export const drizzleSqlState = (error: unknown): string | undefined => pgCode((error as { cause?: unknown }).cause) ?? pgCode(error)
export const drizzleTenantizeCode = (error: unknown): string | undefined => {
  const cause = (error as { cause?: unknown }).cause ?? error
  return cause instanceof TenantRuntimeError ? cause.code : undefined
}

export function drizzleAdapter({ pipeline = false }: PipelineOption = {}): MatrixAdapter {
  const scope = (d: Pick<NodePgDatabase, 'select' | 'insert' | 'execute'>): MatrixScope => ({
    ids: async () => listing(await d.select({ org_id: drizzleItems.orgId, id: drizzleItems.id }).from(drizzleItems)),
    insert: async (org, id) => {
      await d.insert(drizzleItems).values({ orgId: org, id, body: 'x' })
    },
    query: async <R extends object>(text: string) => (await d.execute(drizzleSql.raw(text))).rows as R[],
  })
  return {
    name: pipeline ? 'drizzle (pipeline)' : 'drizzle',
    sqlState: drizzleSqlState,
    tenantizeCode: drizzleTenantizeCode,
    async open(options) {
      const { pool, counts } = trackedPool({ ...options, pipeline })
      const db = drizzle({ client: tenantDrizzlePool(pool, strategyOf(options)) })
      return {
        client: { ...scope(db), transaction: (fn) => db.transaction((tx) => fn(scope(tx))) },
        ...poolParts(pool, counts),
        close: () => pool.end(),
      }
    },
  }
}

// --- Prisma 7 (driver adapter) --------------------------------------------------------------------

/**
 * Prisma wraps every error in its own classes; a database error's SQLSTATE is in `meta.code` (or
 * `meta.driverAdapterError.cause.originalCode`), and tenantize's errors keep their `code`.
 */
export function prismaSqlState(error: unknown): string | undefined {
  const meta = (error as { meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string } } } }).meta
  return meta?.driverAdapterError?.cause?.originalCode ?? meta?.code
}

export function prismaAdapter(generated: GeneratedPrisma, { pipeline = false }: PipelineOption = {}): MatrixAdapter {
  const scope = (p: PrismaLike): MatrixScope => ({
    ids: async () => listing((await p.item.findMany({ select: { orgId: true, id: true } })).map((r) => ({ org_id: r.orgId, id: r.id }))),
    insert: async (org, id) => {
      await p.item.create({ data: { orgId: org, id, body: 'x' } })
    },
    query: (text) => p.$queryRawUnsafe(text),
  })
  return {
    name: pipeline ? 'prisma (pipeline)' : 'prisma',
    sqlState: prismaSqlState,
    tenantizeCode: (error) => (error as { code?: string }).code,
    transactionTenant: 'bound',
    async open(options) {
      const { pool, counts } = trackedPool({ ...options, pipeline })
      const adapter = tenantPrismaAdapter(new PrismaPg(pool), { ...strategyOf(options), pipeline })
      const prisma = tenantPrisma(generated.client(adapter), strategyOf(options))
      return {
        client: {
          ...scope(prisma),
          // Prisma's defaults (start within 2 s, finish within 5 s) are too short for 500 queued transactions on one connection.
          transaction: (fn) => prisma.$transaction((tx) => fn(scope(tx)), { maxWait: 60_000, timeout: 60_000 }),
        },
        ...poolParts(pool, counts),
        close: async () => {
          await prisma.$disconnect()
          await pool.end()
        },
      }
    },
  }
}
