/**
 * What the example data generators share: a seeded PRNG (mulberry32 — the same rows on every run, no
 * Math.random), multi-row inserts, row counts, and the command line
 * `npx tsx examples/<name>/generate.ts --db URL --scale small|large|N`.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { identList, qualifiedName, quoteIdent } from '../../src/sql/quote.js'

/** The little a generator needs from a driver: a `pg.Client`, a `pg.Pool` or a `tenantPool` fit. */
export interface SqlClient {
  query(text: string, values?: unknown[]): Promise<unknown>
}

/** `small`: a few thousand rows (tests); `large`: benchmark size; a number: about that many rows in the largest table. */
export type Scale = 'small' | 'large' | number

export interface GenerateOptions {
  readonly scale: Scale
}

export type Generate = (client: SqlClient, options: GenerateOptions) => Promise<Record<string, number>>

/** A deterministic pseudo-random sequence (mulberry32). */
export interface Random {
  /** A float in [0, 1). */
  next(): number
  /** An integer in [min, max]. */
  int(min: number, max: number): number
  pick<T>(items: readonly T[]): T
  chance(p: number): boolean
  /** A version-4-shaped uuid from the sequence (the same on every run). */
  uuid(): string
  /** `n` hex digits. */
  hex(n: number): string
}

export function random(seed: number): Random {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join('')
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
    uuid: () => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(next() * 4)]!}${hex(3)}-${hex(12)}`,
    hex,
  }
}

const rowsOf = (result: unknown): Record<string, unknown>[] => (result as { rows?: Record<string, unknown>[] }).rows ?? []

/** Run a query and return its rows (the client's result is typed `unknown`). */
export async function rows<R>(client: SqlClient, text: string, values?: unknown[]): Promise<R[]> {
  return rowsOf(await client.query(text, values)) as R[]
}

/**
 * Insert `values` into `schema.table (columns)` with multi-row `INSERT … VALUES` statements of at most
 * `chunk` rows, every value a bind parameter. Returns the rows of `returning` (e.g. `id`), in order.
 */
export async function insertRows(client: SqlClient, table: string, columns: readonly string[], values: readonly (readonly unknown[])[], options: { returning?: string; chunk?: number; schema?: string } = {}): Promise<Record<string, unknown>[]> {
  const chunk = options.chunk ?? Math.max(1, Math.floor(5000 / columns.length))
  const out: Record<string, unknown>[] = []
  for (let start = 0; start < values.length; start += chunk) {
    const part = values.slice(start, start + chunk)
    const params: unknown[] = []
    const tuples = part.map((row) => `(${row.map((v) => `$${params.push(v)}`).join(', ')})`)
    const returning = options.returning === undefined ? '' : ` RETURNING ${quoteIdent(options.returning)}`
    out.push(...rowsOf(await client.query(`INSERT INTO ${qualifiedName(options.schema ?? 'public', table)} (${identList(columns)}) VALUES ${tuples.join(', ')}${returning}`, params)))
  }
  return out
}

/** Exact row counts of `tables` (in the `public` schema), in that order. */
export async function countRows(client: SqlClient, tables: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const table of tables) {
    const [row] = await rows<{ n: string }>(client, `SELECT count(*) AS n FROM ${qualifiedName('public', table)}`)
    out[table] = Number(row?.n ?? 0)
  }
  return out
}

/** Refuse to generate into tables that already hold rows (ids and checksums assume a fresh schema). */
export async function assertEmpty(client: SqlClient, tables: readonly string[]): Promise<void> {
  const counts = await countRows(client, tables)
  const full = Object.entries(counts).filter(([, n]) => n > 0)
  if (full.length > 0) throw new Error(`generate: ${full.map(([t]) => t).join(', ')} already hold rows; load schema.sql into a new database first`)
}

/** Parse `--scale`: small, large or a positive number of rows. */
export function parseScale(text: string | undefined): Scale {
  if (text === undefined || text === 'small' || text === 'large') return text ?? 'small'
  const n = Number(text.replaceAll('_', ''))
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--scale: expected small, large or a positive number of rows, got ${JSON.stringify(text)}`)
  return n
}

/** True when `moduleUrl` is the script node was started with (`npx tsx examples/x/generate.ts …`). */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1]
  return script !== undefined && pathToFileURL(resolve(script)).href === moduleUrl
}

/** The command line of a generator: `--db URL` (default $DATABASE_URL) and `--scale`; one transaction, then ANALYZE. Prints the row counts. */
export async function generatorCli(name: string, generate: Generate, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const flag = (f: string): string | undefined => {
    const i = argv.indexOf(f)
    return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`${f}=`))?.slice(f.length + 1)
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`Usage: npx tsx examples/${name}/generate.ts --db URL [--scale small|large|N]\n\nLoads deterministic data into a database where examples/${name}/schema.sql was loaded.`)
    return
  }
  const url = flag('--db') ?? process.env['DATABASE_URL']
  if (url === undefined) throw new Error('give --db URL or set DATABASE_URL')
  const scale = parseScale(flag('--scale'))
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const started = performance.now()
    await client.query('BEGIN')
    let counts: Record<string, number>
    try {
      counts = await generate(client, { scale })
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK')
      throw error
    }
    await client.query('ANALYZE')
    const seconds = ((performance.now() - started) / 1000).toFixed(1)
    const width = Math.max(...Object.keys(counts).map((k) => k.length))
    for (const [table, n] of Object.entries(counts)) console.log(`${table.padEnd(width)}  ${n.toLocaleString('en-US').padStart(12)}`)
    console.log(`${Object.values(counts).reduce((a, b) => a + b, 0).toLocaleString('en-US')} rows in ${seconds} s (scale ${String(scale)})`)
  } finally {
    await client.end()
  }
}
