/**
 * A catalog-driven data generator for schemas we did not write (the corpus under test/fixtures/corpus):
 * it fills every table in foreign-key order with a few rows each, deterministically, respecting NOT NULL,
 * CHECK constraints (by trying the literals the constraint mentions), enums, domains, arrays (of one element
 * made as a value of the element type: text[], uuid[], enum[], an array of a domain), unique keys,
 * partition bounds and column types. Every value travels as text and is cast by PostgreSQL to the
 * column's type (the parameter takes the target column's type), so no key ever round-trips through a
 * JS number or Date.
 *
 * How a row is found: each column (or each foreign key's column group) has an ordered list of candidate
 * values — the generated value first, then NULL / DEFAULT / the constraint's literals / a few edge
 * values. The row is inserted inside a savepoint; when PostgreSQL rejects it, the error names the
 * constraint (or column), and only the candidates of the columns that constraint reads move on.
 * The choices that worked become the starting point of the table's next row.
 */
import type pg from 'pg'
import type { Catalog, Column, ForeignKeyConstraint, Table } from '../../src/catalog/index.js'
import { identList, qualifiedName, quoteLiteral } from '../../src/sql/quote.js'
import { loadSqlParser } from '../../src/verify/lints/sql-text.js'
import { columnHints, stringMatching } from '../../src/verify/probe/constraint-values.js'

/** Every value as the text PostgreSQL prints (no JS type parsing). */
const TEXT = { getTypeParser: () => (value: string) => value }

type Value = string | null
type Row = Record<string, Value>

/** Type facts the catalog does not carry: base type of domains, enum labels, array-ness, domain CHECKs. */
interface TypeFacts {
  /** Base type name (typname of the base of a domain), e.g. int4, varchar, bpchar, bool, my_enum. */
  readonly base: string
  readonly category: string
  readonly labels: readonly string[] | null
  /** Maximum length for varchar/bpchar, precision/scale for numeric. */
  readonly maxLength: number | null
  readonly precision: number | null
  readonly scale: number | null
  /** The domain's own name when the column's type is a domain, else null. */
  readonly domain: string | null
  /** Literals mentioned by the domain's CHECK constraints. */
  readonly domainLiterals: readonly string[]
  /** For an array type (or a domain over one): the facts of its element type, else null. */
  readonly element: TypeFacts | null
}

const DEFAULT = Symbol('DEFAULT')
/** A value made afresh for each row: generated from the column's type, or matching a CHECK's regular expression. */
type Fresh = { readonly gen: true } | { readonly pattern: string }
type Candidate = Value | typeof DEFAULT | Fresh
const GEN: Candidate = { gen: true }
const isFresh = (c: Candidate | undefined): c is Fresh => c !== null && typeof c === 'object'

/** One thing the search chooses: a single column, or the columns of one foreign key together. */
interface Group {
  readonly columns: readonly string[]
  readonly fk: ForeignKeyConstraint | null
  /** For a plain column: candidates. For a foreign key: parent rows (by index), then NULL if allowed. */
  readonly candidates: readonly Candidate[]
  readonly nullable: boolean
  /** For a foreign key through fixed columns: each such column → its fixed value (its parent rows hold it; NULL leaves it). */
  readonly pinned: Readonly<Record<string, string>>
  /**
   * For a foreign key sharing columns with an earlier one (formbricks' (feedback_source_id, workspaceId) and
   * (surveyId, workspaceId)): those columns, whose parent rows must hold the value the earlier key chose.
   */
  readonly shared: readonly string[]
}

interface TablePlan {
  readonly table: Table
  readonly key: string
  readonly groups: readonly Group[]
  /** Columns never written: generated, identity ALWAYS, serial/identity defaults, omitted by the caller. */
  readonly skipped: ReadonlySet<string>
  /** Starting choices for the next row: index per group and the salt of generated values. */
  state: { choice: number[]; salt: number }
}

export interface FillOptions {
  /** Tables to fill, `schema.name` (default: every ordinary and partitioned table outside `tenantize`). */
  readonly tables?: readonly string[]
  /** Rows per table (default 3). */
  readonly rows?: number
  /** Columns given a fixed value in every table that has them, e.g. `{ org_id: B }`. */
  readonly fixed?: Readonly<Record<string, string>>
  /** Seed of the generated values (default 1). */
  readonly seed?: number
  /** Seed per table, over `seed` (e.g. shared tables as in another database, the rest new). */
  readonly seedOf?: (table: string) => number
  /** Most insert attempts per row before giving up on it (default 400). */
  readonly attempts?: number
}

export interface FillResult {
  /** Rows inserted per table, in fill order. */
  readonly counts: Record<string, number>
  /** Tables in the order they were filled. */
  readonly order: readonly string[]
  /** Why a table got fewer rows than asked, per table. */
  readonly problems: Record<string, string>
}

const keyOf = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

async function typeFacts(client: pg.ClientBase, tables: readonly Table[]): Promise<Map<string, TypeFacts>> {
  // One row per column, then (element = true) one per array column for its element type: the same facts,
  // the element's domain unwrapped as a column's is. An array's typmod is its element's (varchar(10)[]).
  const { rows } = await client.query<{ rel: string; att: string; element: boolean; base: string; category: string; labels: string[] | null; typmod: number; domain: string | null; domain_checks: string[] | null }>({
    text: `WITH col AS (
             SELECT c.oid AS rel, a.attname, a.atttypid, a.atttypmod
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.oid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped),
           typ AS (
             SELECT col.rel, col.attname, false AS element, col.atttypid AS typid, col.atttypmod AS typmod FROM col
             UNION ALL
             SELECT col.rel, col.attname, true, b.typelem, col.atttypmod
               FROM col
               JOIN pg_type t ON t.oid = col.atttypid
               JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
              WHERE b.typcategory = 'A' AND b.typelem <> 0)
           SELECT typ.rel::text AS rel, typ.attname AS att, typ.element,
                  b.typname AS base, b.typcategory AS category,
                  (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = b.oid) AS labels,
                  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE typ.typmod END AS typmod,
                  CASE WHEN t.typtype = 'd' THEN t.typname::text END AS domain,
                  CASE WHEN t.typtype = 'd' THEN (SELECT array_agg(pg_get_constraintdef(k.oid)) FROM pg_constraint k WHERE k.contypid IN (t.oid, b.oid)) END AS domain_checks
             FROM typ
             JOIN pg_type t ON t.oid = typ.typid
             JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END`,
    values: [tables.map((t) => t.oid)],
  })
  const factsOf = (r: (typeof rows)[number], element: TypeFacts | null): TypeFacts => {
    const typmod = Number(r.typmod)
    const isChar = ['varchar', 'bpchar'].includes(r.base)
    const isNumeric = r.base === 'numeric' && typmod > 4
    return {
      base: r.base,
      category: r.category,
      labels: r.labels,
      maxLength: isChar && typmod > 4 ? typmod - 4 : null,
      precision: isNumeric ? ((typmod - 4) >> 16) & 0xffff : null,
      scale: isNumeric ? (typmod - 4) & 0xffff : null,
      domain: r.domain,
      domainLiterals: (r.domain_checks ?? []).flatMap(literalsOf),
      element,
    }
  }
  const elements = new Map(rows.filter((r) => r.element).map((r) => [`${r.rel}:${r.att}`, factsOf(r, null)]))
  const out = new Map<string, TypeFacts>()
  for (const r of rows) if (!r.element) out.set(`${r.rel}:${r.att}`, factsOf(r, elements.get(`${r.rel}:${r.att}`) ?? null))
  return out
}

/** String and number literals of a constraint or bound definition, in order, without duplicates. */
export function literalsOf(definition: string): string[] {
  const out: string[] = []
  for (const m of definition.matchAll(/'((?:[^']|'')*)'|(?<![\w.$])(-?\d+(?:\.\d+)?)(?![\w.])/g)) {
    const v = m[1] !== undefined ? m[1].replaceAll("''", "'") : m[2]!
    if (!out.includes(v)) out.push(v)
  }
  return out
}

/** A one-dimensional array literal of `elements`, each double-quoted (commas, braces, quotes and backslashes stay inside). */
function arrayLiteral(elements: readonly string[]): string {
  return `{${elements.map((e) => `"${e.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`
}

/** A constraint's literal as a value of the column: for an array column, an array of that one element unless it is an array literal already. */
function asValueOf(facts: TypeFacts, literal: string): string {
  return facts.category === 'A' && !literal.startsWith('{') ? arrayLiteral([literal]) : literal
}

function base36(n: number, width: number): string {
  const s = n.toString(36)
  return s.length >= width ? s.slice(-width) : s.padStart(width, '0')
}

/** The generated value of a column for row `i` with `salt` (unique keys bump the salt). */
function generated(column: Column, facts: TypeFacts, table: string, i: number, salt: number, seed: number): Value {
  const n = i + 1 + salt * 1000 + (seed - 1) * 100_000
  if (facts.category === 'A') {
    // One element made as a column of the element's type would get it (a CHECK may ask for a non-empty array).
    const element = facts.element === null ? null : generated(column, facts.element, table, i, salt, seed)
    return element === null ? '{}' : arrayLiteral([element])
  }
  if (facts.labels !== null) return facts.labels[(i + salt) % facts.labels.length] ?? null
  switch (facts.base) {
    case 'int2':
      return String(n % 30000)
    case 'int4':
    case 'int8':
    case 'oid':
      return String(n)
    case 'numeric': {
      if (facts.precision === null) return `${n}.5`
      const whole = facts.precision - (facts.scale ?? 0)
      return whole <= 0 ? '0' : String(n % 10 ** Math.min(whole, 9))
    }
    case 'float4':
    case 'float8':
      return `${n}.25`
    case 'money':
      return `${n}.00`
    case 'bool':
      return (i + salt) % 2 === 0 ? 'true' : 'false'
    case 'date':
      return new Date(Date.UTC(2024, 0, 1 + n)).toISOString().slice(0, 10)
    case 'timestamp':
    case 'timestamptz':
      return `${new Date(Date.UTC(2024, 0, 1 + n, 12)).toISOString().slice(0, 19)}Z`
    case 'time':
    case 'timetz':
      return `${String(n % 24).padStart(2, '0')}:30:00`
    case 'interval':
      return `${n} minutes`
    case 'uuid': {
      const h = (n * 2654435761 + seed * 97 + table.length).toString(16).padStart(12, '0').slice(-12)
      return `00000000-0000-4000-8000-${h}`
    }
    case 'json':
    case 'jsonb':
      return `{"n": ${n}}`
    case 'bytea': {
      const hex = n.toString(16)
      return `\\x${hex.padStart(hex.length + (hex.length % 2), '0')}`
    }
    case 'inet':
    case 'cidr':
      return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}${facts.base === 'cidr' ? '/32' : ''}`
    case 'macaddr':
      return `08:00:2b:00:${base36(n % 256, 2).replace(/[^0-9a-f]/g, '0')}:01`
    case 'tsvector':
      return `word${n}`
    case 'tsquery':
      return `word${n}`
    case 'xml':
      return `<n>${n}</n>`
    case 'ltree':
      // A root label only: a longer path names other rows by their ids (Lemmy's comment.path '0.<parent>.<id>', whose
      // triggers count a comment's children through it), a reference no constraint keeps within a tenant.
      return '0'
    case 'point':
      return `(${n},${n})`
    case 'bit':
    case 'varbit':
      return '1'
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'name':
    case 'citext': {
      const s = `${column.name.replace(/[^a-z]/gi, '').slice(0, 6)}${n}`
      const max = facts.maxLength
      if (max === null || s.length <= max) return /mail/i.test(column.name) && (max === null || s.length + 12 <= max) ? `${s}@example.test` : s
      return base36(n, max)
    }
    default:
      if (facts.category === 'R') return 'empty'
      if (facts.category === 'S') return `${column.name}${n}`
      return null
  }
}

/** Edge values worth trying for a type after the generated one and the constraint's literals. */
function edgeValues(facts: TypeFacts): string[] {
  if (facts.category === 'A') return ['{}', ...(facts.element === null ? [] : edgeValues(facts.element).map((v) => arrayLiteral([v])))]
  if (facts.labels !== null) return [...facts.labels]
  switch (facts.base) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'numeric':
    case 'float4':
    case 'float8':
      return ['0', '1', '2', '10', '-1', '100', '1901', '2000', '4000']
    case 'bool':
      return ['true', 'false']
    case 'date':
    case 'timestamp':
    case 'timestamptz':
      return ['2000-01-01', '2022-01-15', '1990-06-01']
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'citext':
      return ['a', 'x', 'A', '']
    case 'json':
    case 'jsonb':
      return ['{}', '[]', '"x"', '1']
    default:
      return []
  }
}

const isSerialDefault = (c: Column): boolean => c.identity !== null || (c.default !== null && /^nextval\(/.test(c.default))

/**
 * The foreign keys rows of `t` must satisfy: its own and, for a partitioned table, those declared on its
 * partitions only (pagila's payment has them there), one per column list and parent.
 */
function foreignKeysOf(catalog: Catalog, t: Table): ForeignKeyConstraint[] {
  const out: ForeignKeyConstraint[] = []
  const seen = new Set<string>()
  const visit = (table: Table): void => {
    for (const c of table.constraints) {
      if (c.type !== 'foreign key') continue
      const id = `${c.columns.join(',')}->${keyOf(c.references.table)}(${c.references.columns.join(',')})`
      if (seen.has(id)) continue
      seen.add(id)
      out.push(c)
    }
    for (const p of table.partitions) {
      const part = catalog.tables.find((x) => x.oid === p.oid)
      if (part !== undefined) visit(part)
    }
  }
  visit(t)
  return out
}

/** Tables ordered so that every foreign key's parent comes first (self references and cycles broken). */
function fillOrder(catalog: Catalog, tables: readonly Table[]): { order: Table[]; broken: Set<string> } {
  const keys = new Set(tables.map(keyOf))
  const deps = new Map<string, Set<string>>()
  for (const t of tables) {
    const parents = new Set<string>()
    for (const c of foreignKeysOf(catalog, t)) {
      const p = keyOf(c.references.table)
      if (p !== keyOf(t) && keys.has(p)) parents.add(p)
    }
    deps.set(keyOf(t), parents)
  }
  const order: Table[] = []
  const done = new Set<string>()
  const broken = new Set<string>()
  const byKey = new Map(tables.map((t) => [keyOf(t), t]))
  const remaining = [...tables].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))
  while (remaining.length > 0) {
    let index = remaining.findIndex((t) => [...deps.get(keyOf(t))!].every((p) => done.has(p)))
    if (index < 0) {
      // A cycle: take the table with the fewest missing parents its NOT NULL foreign keys need (those keys
      // could only be filled with NULL), then the fewest missing parents; those foreign keys are filled with NULL.
      const missing = (t: Table): number => [...deps.get(keyOf(t))!].filter((p) => !done.has(p)).length
      const required = (t: Table): number =>
        new Set(foreignKeysOf(catalog, t).filter((c) => !done.has(keyOf(c.references.table)) && keys.has(keyOf(c.references.table)) && keyOf(c.references.table) !== keyOf(t) && c.columns.every((n) => t.columns.find((x) => x.name === n)?.nullable === false)).map((c) => keyOf(c.references.table))).size
      const rank = (t: Table): number => required(t) * 10_000 + missing(t)
      index = remaining.reduce((best, t, i) => (rank(t) < rank(remaining[best]!) ? i : best), 0)
      const t = remaining[index]!
      for (const p of deps.get(keyOf(t))!) if (!done.has(p)) broken.add(`${keyOf(t)}->${p}`)
    }
    const [t] = remaining.splice(index, 1)
    order.push(byKey.get(keyOf(t!))!)
    done.add(keyOf(t!))
  }
  return { order, broken }
}

interface PgError {
  code?: string
  constraint?: string
  column?: string
  table?: string
  schema?: string
  dataType?: string
  message: string
  detail?: string
}

/** The data generator over one connection; the caller owns the transaction (and the role and context). */
export class CorpusData {
  private readonly plans = new Map<string, TablePlan>()
  /** Rows each table holds that children may point at (visible rows at the start, then inserted ones). */
  private readonly parents = new Map<string, Row[]>()
  /** Set by rowFor: the groups to move on when a key sharing columns with them finds no parent row holding their values. */
  private mismatch: number[] | null = null
  private facts = new Map<string, TypeFacts>()

  private constructor(
    private readonly client: pg.ClientBase,
    private readonly catalog: Catalog,
    private readonly options: FillOptions,
  ) {}

  /** Fill the tables; `catalog` must be a fresh introspection of the database `client` is connected to. */
  static async fill(client: pg.ClientBase, catalog: Catalog, options: FillOptions = {}): Promise<{ result: FillResult; data: CorpusData }> {
    await loadSqlParser()
    const data = new CorpusData(client, catalog, options)
    return { result: await data.run(), data }
  }

  private fillable(): Table[] {
    const wanted = this.options.tables === undefined ? null : new Set(this.options.tables)
    return this.catalog.tables.filter((t) => t.schema !== 'tenantize' && t.kind !== 'partition' && !t.foreign && t.extension === null && (wanted === null || wanted.has(keyOf(t))))
  }

  private async run(): Promise<FillResult> {
    const tables = this.fillable()
    this.facts = await typeFacts(this.client, this.catalog.tables.filter((t) => t.schema !== 'tenantize'))
    const { order, broken } = fillOrder(this.catalog, tables)
    const counts: Record<string, number> = {}
    const problems: Record<string, string> = {}
    // A table two foreign keys of one child point at gets as many rows (l_area_area: entity0 <> entity1).
    const least = new Map<string, number>()
    for (const t of order) {
      const perParent = new Map<string, number>()
      for (const c of foreignKeysOf(this.catalog, t)) perParent.set(keyOf(c.references.table), (perParent.get(keyOf(c.references.table)) ?? 0) + 1)
      for (const [p, n] of perParent) least.set(p, Math.max(least.get(p) ?? 0, n))
    }
    for (const t of order) {
      const key = keyOf(t)
      await this.visibleRows(t)
      for (const c of foreignKeysOf(this.catalog, t)) await this.visibleRows(this.catalog.tables.find((x) => x.oid === c.references.table.oid)!)
      const plan = this.planFor(t, broken)
      let inserted = 0
      for (let i = 0; i < Math.max(this.options.rows ?? 3, least.get(key) ?? 0); i++) {
        const outcome = await this.insertRow(plan, i)
        if (typeof outcome === 'string') {
          problems[key] = outcome
          break
        }
        inserted++
      }
      // Rows the table's triggers' targets got from tables filled before it (Lemmy's report_combined from
      // post_report, comment_report, …): a table the generator cannot fill itself still has rows.
      if (inserted === 0) {
        const { rows } = await this.client.query<{ n: string }>(`SELECT count(*) AS n FROM ${qualifiedName(t.schema, t.name)}`)
        if (Number(rows[0]?.n ?? 0) > 0) {
          inserted = Number(rows[0]!.n)
          delete problems[key]
        }
      }
      counts[key] = inserted
    }
    return { counts, order: order.map(keyOf), problems }
  }

  /** Rows a table already has (those the session can see), as parents for foreign keys. */
  private async visibleRows(t: Table): Promise<void> {
    if (this.parents.has(keyOf(t))) return
    await this.client.query('SAVEPOINT corpus_read')
    try {
      const { rows } = await this.client.query<Row>({ text: `SELECT * FROM ${qualifiedName(t.schema, t.name)} LIMIT 20`, types: TEXT })
      await this.client.query('RELEASE SAVEPOINT corpus_read')
      this.parents.set(keyOf(t), rows)
    } catch {
      await this.client.query('ROLLBACK TO SAVEPOINT corpus_read')
      this.parents.set(keyOf(t), [])
    }
  }

  /** The rows a foreign key group may point at: the parent table's, those holding the fixed values it is pinned to. */
  private parentRows(group: Group, row?: ReadonlyMap<string, Value>): Row[] {
    const fk = group.fk
    if (fk === null) return []
    const rows = this.parents.get(keyOf(fk.references.table)) ?? []
    const pinned = fk.columns.flatMap((c, k) => (group.pinned[c] === undefined ? [] : [{ parent: fk.references.columns[k]!, value: group.pinned[c] }]))
    // A shared column holds what an earlier key chose for this row (a NULL there leaves this key unchecked).
    if (row !== undefined) for (const [k, c] of fk.columns.entries()) if (group.shared.includes(c) && row.get(c) !== undefined && row.get(c) !== null) pinned.push({ parent: fk.references.columns[k]!, value: row.get(c) as string })
    return pinned.length === 0 ? rows : rows.filter((r) => pinned.every((p) => r[p.parent] === p.value))
  }

  private columnFacts(t: Table, column: string): TypeFacts {
    const f = this.facts.get(`${t.oid}:${column}`)
    if (f === undefined) throw new Error(`corpus-data: no type facts for ${keyOf(t)}.${column}`)
    return f
  }

  private planFor(t: Table, broken: ReadonlySet<string>): TablePlan {
    const existing = this.plans.get(keyOf(t))
    if (existing !== undefined) return existing
    const fixed = this.options.fixed ?? {}
    const skipped = new Set<string>()
    for (const c of t.columns) {
      if (c.generated !== null || c.identity === 'always' || (isSerialDefault(c) && fixed[c.name] === undefined)) skipped.add(c.name)
    }
    const checks = t.constraints.filter((c) => c.type === 'check')
    const literalsFor = (column: string): string[] => checks.filter((c) => c.columns.includes(column)).flatMap((c) => literalsOf(c.definition))
    const boundLiterals = (column: string): string[] => {
      if (t.partitionKey === null || !new RegExp(`\\b${column}\\b`).test(t.partitionKey)) return []
      return t.partitions.flatMap((p) => {
        const part = this.catalog.tables.find((x) => x.oid === p.oid)
        return part?.partitionOf === null || part === undefined ? [] : literalsOf(part.partitionOf.bound.replace(/\bTO\b.*$/s, ''))
      })
    }
    const hints = columnHints(t).columns
    const groups: Group[] = []
    const claimed = new Set<string>(skipped)
    for (const c of t.columns) {
      if (fixed[c.name] !== undefined && !claimed.has(c.name)) {
        groups.push({ columns: [c.name], fk: null, candidates: [fixed[c.name]!], nullable: false, pinned: {}, shared: [] })
        claimed.add(c.name)
      }
    }
    for (const fk of foreignKeysOf(this.catalog, t)) {
      // A foreign key that also goes through a fixed column (lago's (membership_id, organization_id) →
      // memberships (id, organization_id)) takes parent rows holding the fixed value; one of fixed columns only needs none.
      // A key sharing a column with an earlier key takes parent rows holding the value that key chose; a key whose
      // columns are all taken already adds nothing.
      if (fk.columns.every((c) => claimed.has(c))) continue
      const shared = fk.columns.filter((c) => claimed.has(c) && fixed[c] === undefined && !skipped.has(c))
      if (fk.columns.some((c) => skipped.has(c))) continue
      const pinned = Object.fromEntries(fk.columns.flatMap((c) => (fixed[c] === undefined ? [] : [[c, fixed[c]!]])))
      const parentKey = keyOf(fk.references.table)
      const nullable = fk.columns.some((c) => t.columns.find((x) => x.name === c)?.nullable === true)
      const isBroken = broken.has(`${keyOf(t)}->${parentKey}`)
      const candidates: Candidate[] = isBroken ? [] : Array.from({ length: 20 }, (_, i) => String(i))
      if (nullable) candidates.push(null)
      groups.push({ columns: fk.columns, fk, candidates, nullable, pinned, shared })
      for (const c of fk.columns) claimed.add(c)
    }
    for (const c of t.columns) {
      if (claimed.has(c.name)) continue
      const facts = this.columnFacts(t, c.name)
      // A regular expression on an array column reads its text form ({a,b}): no one value of it to match.
      const pattern = facts.category === 'A' ? undefined : hints.get(c.name)?.pattern
      const candidates: Candidate[] = [...boundLiterals(c.name).map((v) => asValueOf(facts, v)), ...(pattern === undefined ? [] : [{ pattern }]), GEN]
      if (c.nullable) candidates.push(null)
      if (c.default !== null) candidates.push(DEFAULT)
      const literals = [...literalsFor(c.name), ...facts.domainLiterals, ...(facts.element?.domainLiterals ?? [])].map((v) => asValueOf(facts, v))
      // An enum column takes only its labels (a check's other literals, num_nonnulls(…) = 2, are no label).
      for (const v of [...literals, ...edgeValues(facts)]) if (!candidates.includes(v) && (facts.labels === null || v === null || facts.labels.includes(v))) candidates.push(v)
      groups.push({ columns: [c.name], fk: null, candidates, nullable: c.nullable, pinned: {}, shared: [] })
    }
    const plan: TablePlan = { table: t, key: keyOf(t), groups, skipped, state: { choice: groups.map(() => 0), salt: 0 } }
    this.plans.set(keyOf(t), plan)
    return plan
  }

  /** The row for `choice`: column → value (DEFAULT columns left out), or why it cannot be built. */
  private rowFor(plan: TablePlan, choice: readonly number[], i: number, salt: number, self?: ReadonlyMap<string, Value>): Map<string, Value> | string {
    const row = new Map<string, Value>()
    for (const [g, group] of plan.groups.entries()) {
      const candidate = group.candidates[choice[g]!]
      if (candidate === undefined) return `no candidate left for ${group.columns.join(', ')}`
      if (group.fk !== null) {
        if (candidate === null) {
          for (const c of group.columns) if (!group.shared.includes(c)) row.set(c, group.pinned[c] ?? null)
          continue
        }
        const parents = this.parentRows(group, row)
        const selfRows = keyOf(group.fk.references.table) === plan.key
        if (parents.length === 0 && selfRows && self !== undefined) {
          // The table's first row references itself (its own key, taken from the key's default).
          for (const [k, c] of group.columns.entries()) row.set(c, self.get(group.fk.references.columns[k]!) ?? null)
          for (const [c, v] of self) row.set(c, v)
          continue
        }
        if (parents.length === 0 && group.shared.length > 0 && this.parentRows(group).length > 0) {
          // No parent row holds what the earlier key chose: that key moves on.
          this.mismatch = plan.groups.flatMap((g, k) => (k < plan.groups.indexOf(group) && g.columns.some((c) => group.shared.includes(c)) ? [k] : []))
          return `no row of ${keyOf(group.fk.references.table)} holds ${group.shared.map((c) => `${c} = ${String(row.get(c))}`).join(', ')}`
        }
        if (parents.length === 0) return selfRows ? 'no earlier row of the table itself' : `the parent ${keyOf(group.fk.references.table)} has no rows`
        const index = Number(candidate)
        // Past the rows holding the shared values, they repeat (the count of all rows bounds the search).
        if (index >= (group.shared.length > 0 ? this.parentRows(group).length : parents.length)) return `tried every row of ${keyOf(group.fk.references.table)}`
        const parent = parents[(i + index) % parents.length]!
        for (const [k, c] of group.columns.entries()) if (!group.shared.includes(c)) row.set(c, parent[group.fk.references.columns[k]!] ?? null)
        continue
      }
      const column = group.columns[0]!
      if (candidate === DEFAULT) continue
      if (isFresh(candidate) && 'pattern' in candidate) {
        const value = stringMatching(candidate.pattern)
        if (value === null) return `cannot make a value matching ${candidate.pattern} for ${column}`
        row.set(column, value)
        continue
      }
      if (isFresh(candidate)) {
        const value = generated(plan.table.columns.find((c) => c.name === column)!, this.columnFacts(plan.table, column), plan.key, i, salt, this.options.seedOf?.(plan.key) ?? this.options.seed ?? 1)
        if (value === null && !group.nullable) return `cannot generate a value of type ${this.columnFacts(plan.table, column).base} for ${column}`
        row.set(column, value)
        continue
      }
      row.set(column, candidate)
    }
    return row
  }

  /** The INSERT statement (text and values) for row `i` with the table's current choices; `fixed` columns set as given. */
  statementFor(key: string, i: number, fixed: Readonly<Record<string, string>> = {}): { text: string; values: Value[] } {
    const plan = this.plans.get(key)
    if (plan === undefined) throw new Error(`corpus-data: ${key} was not filled`)
    const row = this.rowFor(plan, plan.state.choice, i, plan.state.salt)
    if (typeof row === 'string') throw new Error(`corpus-data: ${key}: ${row}`)
    for (const [column, value] of Object.entries(fixed)) if (plan.table.columns.some((c) => c.name === column)) row.set(column, value)
    return this.insertSql(plan, row)
  }

  private insertSql(plan: TablePlan, row: Map<string, Value>): { text: string; values: Value[] } {
    const target = qualifiedName(plan.table.schema, plan.table.name)
    if (row.size === 0) return { text: `INSERT INTO ${target} DEFAULT VALUES RETURNING *`, values: [] }
    const columns = [...row.keys()]
    return { text: `INSERT INTO ${target} (${identList(columns)}) VALUES (${columns.map((_, k) => `$${k + 1}`).join(', ')}) RETURNING *`, values: [...row.values()] }
  }

  /**
   * For a table whose NOT NULL foreign key references the table itself and that has no row yet: its next
   * key (from the key columns' defaults), so the first row can reference itself. Undefined otherwise.
   */
  private async selfKey(plan: TablePlan): Promise<ReadonlyMap<string, Value> | undefined> {
    const group = plan.groups.find((g) => g.fk !== null && !g.nullable && keyOf(g.fk.references.table) === plan.key)
    const fk = group?.fk
    if (group === undefined || fk === undefined || fk === null || (this.parents.get(plan.key)?.length ?? 0) > 0) return undefined
    const out = new Map<string, Value>()
    for (const [k, name] of fk.references.columns.entries()) {
      // A referenced column a fixed column points at (the tenant column of a composite key) holds the fixed value.
      const pinned = group.pinned[fk.columns[k]!]
      if (pinned !== undefined) {
        out.set(name, pinned)
        continue
      }
      const c = plan.table.columns.find((x) => x.name === name)
      if (c === undefined || !plan.skipped.has(name)) return undefined
      const expression = c.identity !== null ? `nextval(pg_get_serial_sequence(${quoteLiteral(qualifiedName(plan.table.schema, plan.table.name))}, ${quoteLiteral(name)}))` : c.default
      if (expression === null) return undefined
      const { rows } = await this.client.query<{ v: string | null }>({ text: `SELECT (${expression})::text AS v`, types: TEXT })
      out.set(name, rows[0]?.v ?? null)
    }
    return out
  }

  /** Insert row `i`; true when inserted, else why not. */
  private async insertRow(plan: TablePlan, i: number): Promise<true | string> {
    const choice = [...plan.state.choice]
    let salt = plan.state.salt
    let last = ''
    const limit = this.options.attempts ?? 400
    const groupsOf = (columns: readonly string[]): number[] => plan.groups.flatMap((g, k) => (g.columns.some((c) => columns.includes(c)) ? [k] : []))
    // Odometer over some groups: advance the first one that has candidates left, resetting those before it.
    // A foreign key's candidates are parent rows: past the last row it goes to NULL (if allowed), then wraps.
    const advance = (groups: readonly number[]): boolean => {
      for (const g of groups) {
        const group = plan.groups[g]!
        let next = choice[g]! + 1
        if (group.fk !== null) {
          const rows = this.parentRows(group).length
          const candidate = group.candidates[next]
          const nullAt = group.candidates.indexOf(null)
          if (typeof candidate === 'string' && Number(candidate) >= rows) next = nullAt > choice[g]! ? nullAt : group.candidates.length
        }
        if (next < group.candidates.length) {
          choice[g] = next
          return true
        }
        choice[g] = 0
      }
      return false
    }
    const self = await this.selfKey(plan)
    for (let attempt = 0; attempt < limit; attempt++) {
      this.mismatch = null
      const row = this.rowFor(plan, choice, i, salt, self)
      if (typeof row === 'string' && this.mismatch !== null && advance(this.mismatch)) continue
      if (typeof row === 'string') {
        // A foreign key ran out of parent rows or a column of values: try the next NULL-able option.
        const stuck = plan.groups.findIndex((g, k) => g.candidates[choice[k]!] === undefined || (g.fk !== null && typeof g.candidates[choice[k]!] === 'string' && Number(g.candidates[choice[k]!]) >= this.parentRows(g).length))
        if (stuck >= 0 && plan.groups[stuck]!.nullable && plan.groups[stuck]!.candidates.includes(null) && plan.groups[stuck]!.candidates[choice[stuck]!] !== null) {
          choice[stuck] = plan.groups[stuck]!.candidates.indexOf(null)
          continue
        }
        return `${row}${last === '' ? '' : ` (last error: ${last})`}`
      }
      const { text, values } = this.insertSql(plan, row)
      await this.client.query('SAVEPOINT corpus_row')
      try {
        const { rows } = await this.client.query<Row>({ text, values, types: TEXT })
        await this.client.query('RELEASE SAVEPOINT corpus_row')
        this.parents.get(plan.key)?.push(...rows)
        plan.state = { choice: [...choice], salt }
        return true
      } catch (raw) {
        await this.client.query('ROLLBACK TO SAVEPOINT corpus_row')
        const error = raw as PgError
        last = `${error.code ?? '?'} ${error.message}`
        const moved = this.react(plan, error, choice, groupsOf, advance, () => void salt++, (g, c) => void (choice[g] = c))
        if (!moved) return `${error.code ?? '?'} ${error.message}${error.detail === undefined ? '' : ` — ${error.detail}`}`
      }
    }
    return `no row found in ${limit} attempts (last error: ${last})`
  }

  /** Move the choices the error points at; false when the error is not one the search can react to. */
  private react(plan: TablePlan, error: PgError, choice: readonly number[], groupsOf: (columns: readonly string[]) => number[], advance: (groups: readonly number[]) => boolean, bumpSalt: () => void, setChoice: (group: number, candidate: number) => void): boolean {
    const t = plan.table
    switch (error.code) {
      case '23502': // not_null_violation
        return error.column !== undefined && advance(groupsOf([error.column]))
      case '23514': {
        // check_violation: a table CHECK, a domain CHECK, or no partition for the row.
        const check = t.constraints.find((c) => c.name === error.constraint)
        if (check !== undefined && /\bnum_(?:non)?nulls\(/.test(check.definition)) {
          // A check that counts the set columns (Lemmy's modlog: which targets each kind has): first every
          // NULL-able column it reads NULL, then the others move on.
          const nullable = groupsOf(check.columns).filter((g) => plan.groups[g]!.nullable && plan.groups[g]!.candidates.includes(null) && plan.groups[g]!.candidates[choice[g]!] !== null)
          if (nullable.length > 0) {
            for (const g of nullable) setChoice(g, plan.groups[g]!.candidates.indexOf(null))
            return true
          }
          if (advance(groupsOf(check.columns).filter((g) => plan.groups[g]!.candidates[choice[g]!] !== null))) return true
        }
        if (check !== undefined) return advance(groupsOf(check.columns.length > 0 ? check.columns : t.columns.map((c) => c.name)))
        if (error.dataType !== undefined || (error.constraint !== undefined && /domain/.test(error.message))) {
          // The domain of a column, or of an array column's elements.
          const domainOf = (c: Column): string | null => this.columnFacts(t, c.name).domain ?? this.columnFacts(t, c.name).element?.domain ?? null
          const cols = t.columns.filter((c) => domainOf(c) !== null && (error.dataType === undefined || c.type.endsWith(error.dataType) || domainOf(c) === error.dataType)).map((c) => c.name)
          return advance(groupsOf(cols))
        }
        if (t.partitionKey !== null) return advance(groupsOf(t.columns.filter((c) => new RegExp(`\\b${c.name}\\b`).test(t.partitionKey!)).map((c) => c.name)))
        return false
      }
      case '23505': {
        // unique_violation: new generated values (salt) for generated columns, the next candidate for the rest.
        // A trigger's insert into another table (error.table) violates that table's index: the row's columns of the same names.
        const other = error.table !== undefined && error.table !== t.name ? this.catalog.tables.find((x) => x.name === error.table && (error.schema === undefined || x.schema === error.schema)) : undefined
        const index = (other ?? t).indexes.find((x) => x.name === error.constraint)
        const named = index?.columns.filter((c): c is string => c !== null && t.columns.some((x) => x.name === c))
        const columns = index === undefined || named === undefined || (other !== undefined && named.length === 0) ? t.columns.map((c) => c.name) : named
        const groups = groupsOf(columns.length > 0 ? columns : t.columns.map((c) => c.name))
        bumpSalt()
        if (groups.some((g) => plan.groups[g]!.fk === null && isFresh(plan.groups[g]!.candidates[choice[g]!]))) return true
        return advance(groups)
      }
      case '23503': {
        const fk = foreignKeysOf(this.catalog, t).find((c) => c.name === error.constraint)
        return fk !== undefined && advance(groupsOf(fk.columns))
      }
      case '23P01': // exclusion_violation
        bumpSalt()
        return true
      default:
        return false
    }
  }
}

/** Short report of a fill for assertion messages. */
export function fillSummary(result: FillResult): string {
  const empty = Object.entries(result.counts).filter(([, n]) => n === 0).map(([k]) => `${k}: ${result.problems[k] ?? 'no rows'}`)
  return empty.length === 0 ? 'every table has rows' : `tables without rows:\n  ${empty.join('\n  ')}`
}

