import { randomInt } from 'node:crypto'
import type { Table } from '../../catalog/types.js'
import { names, nodeType, parseExpression, walk, type AstNode } from '../lints/sql-text.js'

/**
 * What CHECK constraints (of the table, and of the domains its columns use) ask of a single column, so
 * the probe's rows pass them: a list of allowed values (`status IN ('a', 'b')`, `= ANY (ARRAY[…])`),
 * refused ones (`status <> 'draft'`), numeric bounds (`month BETWEEN 1 AND 12`, `n > 0`), lengths
 * (`length(code) = 6`), case (`x = lower(x)`), a regular expression (`code ~ '^[A-Z0-9]{2,12}$'`), and
 * comparisons between two columns (`ends_at > starts_at`). Read from the catalog's deparsed constraint
 * definitions with PostgreSQL's parser; anything else is left to retries with other values.
 */
export interface ColumnHint {
  allowed?: string[]
  notEqual?: string[]
  min?: number
  max?: number
  minLength?: number
  maxLength?: number
  lower?: boolean
  upper?: boolean
  pattern?: string
}

/** `left op right` between two columns of one row. */
export interface ColumnRelation {
  readonly left: string
  readonly op: '<' | '<=' | '>' | '>='
  readonly right: string
}

export interface TableHints {
  readonly columns: Map<string, ColumnHint>
  readonly relations: ColumnRelation[]
}

function unwrap(node: unknown): [string, AstNode] | null {
  let typed = nodeType(node)
  while (typed?.[0] === 'TypeCast') typed = nodeType(typed[1]['arg'])
  return typed
}

function literal(node: unknown): string | null {
  const typed = unwrap(node)
  if (typed?.[0] !== 'A_Const') return null
  const body = typed[1]
  const s = body['sval'] as { sval?: string } | undefined
  if (s !== undefined) return s.sval ?? ''
  const i = body['ival'] as { ival?: number } | undefined
  if (i !== undefined) return String(i.ival ?? 0)
  const f = body['fval'] as { fval?: string } | undefined
  if (f !== undefined) return f.fval ?? null
  const b = body['boolval'] as { boolval?: boolean } | undefined
  if (b !== undefined) return String(b.boolval ?? false)
  return null
}

function column(node: unknown): string | null {
  const typed = unwrap(node)
  if (typed?.[0] !== 'ColumnRef') return null
  const fields = names(typed[1]['fields'])
  return fields.length === 1 ? fields[0]! : null
}

/** `fn(column)` → [fn, column] for one-argument calls of a column. */
function call(node: unknown): [string, string] | null {
  const typed = unwrap(node)
  if (typed?.[0] !== 'FuncCall') return null
  const fn = names(typed[1]['funcname']).at(-1)
  const args = (typed[1]['args'] as unknown[] | undefined) ?? []
  const col = args.length === 1 ? column(args[0]) : null
  return fn === undefined || col === null ? null : [fn.toLowerCase(), col]
}

/**
 * The AND-ed conditions of an expression. `col IS NULL OR <condition>` (AdventureWorks' `persontype IS NULL
 * OR upper(persontype) = ANY (…)`) says what a value of the column must be: the condition.
 */
function conjuncts(node: unknown): unknown[] {
  const typed = nodeType(node)
  if (typed?.[0] === 'BoolExpr' && typed[1]['boolop'] === 'AND_EXPR') return ((typed[1]['args'] as unknown[] | undefined) ?? []).flatMap(conjuncts)
  if (typed?.[0] === 'BoolExpr' && typed[1]['boolop'] === 'OR_EXPR') {
    const args = (typed[1]['args'] as unknown[] | undefined) ?? []
    const isNull = (a: unknown): boolean => {
      const n = nodeType(a)
      return n?.[0] === 'NullTest' && n[1]['nulltesttype'] === 'IS_NULL' && column(n[1]['arg']) !== null
    }
    const rest = args.filter((a) => !isNull(a))
    if (rest.length === 1 && args.length === 2) return conjuncts(rest[0])
  }
  return [node]
}

/** Functions whose result is one of the listed values when their argument already is (a list of upper-case codes, `upper(col)`). */
const SAME_VALUE_FUNCTIONS = new Set(['upper', 'lower', 'btrim', 'trim', 'rtrim', 'ltrim'])

function hintFor(hints: Map<string, ColumnHint>, col: string): ColumnHint {
  let h = hints.get(col)
  if (h === undefined) {
    h = {}
    hints.set(col, h)
  }
  return h
}

const FLIP: Record<string, ColumnRelation['op']> = { '<': '>', '<=': '>=', '>': '<', '>=': '<=' }
const LENGTH_FUNCTIONS = new Set(['length', 'char_length', 'character_length', 'octet_length'])

function lengthBound(h: ColumnHint, op: string, n: number): void {
  if (op === '=') Object.assign(h, { minLength: n, maxLength: n })
  else if (op === '>=') h.minLength = Math.max(h.minLength ?? 0, n)
  else if (op === '>') h.minLength = Math.max(h.minLength ?? 0, n + 1)
  else if (op === '<=') h.maxLength = Math.min(h.maxLength ?? Infinity, n)
  else if (op === '<') h.maxLength = Math.min(h.maxLength ?? Infinity, n - 1)
}

function apply(out: TableHints, cond: AstNode): void {
  const hints = out.columns
  const typed = nodeType(cond)
  if (typed?.[0] !== 'A_Expr') return
  const [, e] = typed
  const op = names(e['name'])[0]
  if (op === undefined) return
  const fn = call(e['lexpr'])
  // `upper(col) = ANY (ARRAY['W', 'S', 'P'])` (AdventureWorks): the listed values are values of the column.
  const listOf = fn !== null && SAME_VALUE_FUNCTIONS.has(fn[0]) && op === '=' && (e['kind'] === 'AEXPR_OP_ANY' || e['kind'] === 'AEXPR_IN') ? fn[1] : null
  const left = column(e['lexpr']) ?? listOf
  // length(col) <op> n, n <op> length(col) is rare enough to leave out
  if (left === null && fn !== null && e['kind'] === 'AEXPR_OP') {
    const n = Number(literal(e['rexpr']))
    if (LENGTH_FUNCTIONS.has(fn[0]) && !Number.isNaN(n)) lengthBound(hintFor(hints, fn[1]), op, n)
    else if (e['kind'] === 'AEXPR_OP' && op === '=' && column(e['rexpr']) === fn[1]) caseOf(hintFor(hints, fn[1]), fn[0])
    return
  }
  if (left === null) return
  if (e['kind'] === 'AEXPR_OP_ANY' && op === '=') {
    const values: string[] = []
    walk(e['rexpr'], (type, body) => {
      if (type !== 'A_Const' && type !== 'TypeCast') return
      const v = literal({ [type]: body })
      if (v === null) return // e.g. the cast of the whole array: look inside
      values.push(v)
      return false
    })
    if (values.length > 0) hintFor(hints, left).allowed = values
    return
  }
  if (e['kind'] === 'AEXPR_IN' && op === '=') {
    // The parser gives the list as an array or as a List node (`x IN ('a', 'b')` as written; the catalog deparses it to `= ANY`).
    const list = nodeType(e['rexpr'])
    const items = Array.isArray(e['rexpr']) ? (e['rexpr'] as unknown[]) : list?.[0] === 'List' ? ((list[1]['items'] as unknown[] | undefined) ?? []) : []
    const values = items.map(literal).filter((v): v is string => v !== null)
    if (values.length > 0) hintFor(hints, left).allowed = values
    return
  }
  if (e['kind'] === 'AEXPR_BETWEEN') {
    const [lo, hi] = ((e['rexpr'] as unknown[] | undefined) ?? []).map(literal)
    if (lo != null && hi != null && !Number.isNaN(Number(lo)) && !Number.isNaN(Number(hi))) Object.assign(hintFor(hints, left), { min: Number(lo), max: Number(hi) })
    return
  }
  if (e['kind'] !== 'AEXPR_OP') return
  const other = column(e['rexpr'])
  if (other !== null && other !== left && op in FLIP) {
    out.relations.push({ left, op: op as ColumnRelation['op'], right: other })
    return
  }
  const rfn = call(e['rexpr'])
  if (rfn !== null && rfn[1] === left && op === '=') {
    caseOf(hintFor(hints, left), rfn[0])
    return
  }
  const right = literal(e['rexpr'])
  if (right === null) return
  const n = Number(right)
  const h = (): ColumnHint => hintFor(hints, left)
  if ((op === '~' || op === '~*') && right.length > 0) h().pattern = right
  else if (op === '=') h().allowed = [right]
  else if (op === '<>') h().notEqual = [...(h().notEqual ?? []), right]
  else if (op === '>=' && !Number.isNaN(n)) h().min = Math.max(h().min ?? -Infinity, n)
  else if (op === '>' && !Number.isNaN(n)) h().min = Math.max(h().min ?? -Infinity, Number.isInteger(n) ? n + 1 : n)
  else if (op === '<=' && !Number.isNaN(n)) h().max = Math.min(h().max ?? Infinity, n)
  else if (op === '<' && !Number.isNaN(n)) h().max = Math.min(h().max ?? Infinity, Number.isInteger(n) ? n - 1 : n)
}

function caseOf(h: ColumnHint, fn: string): void {
  if (fn === 'lower') h.lower = true
  else if (fn === 'upper') h.upper = true
}

/** The expression inside `CHECK (…)` of a deparsed constraint. */
function checkExpression(definition: string): AstNode | null {
  const m = /^CHECK \((.*)\)( NOT VALID)?( NO INHERIT)?$/s.exec(definition)
  return m === null ? null : parseExpression(m[1]!)
}

/** Hints from CHECK definitions; `rename` maps a column name of the expression (domains say `value`). */
export function hintsFrom(definitions: readonly string[], rename: (column: string) => string = (c) => c): TableHints {
  const out: TableHints = { columns: new Map(), relations: [] }
  for (const definition of definitions) {
    const root = checkExpression(definition)
    if (root === null) continue
    for (const cond of conjuncts(root)) apply(out, cond as AstNode)
  }
  if (rename('value') === 'value') return out
  const renamed: TableHints = { columns: new Map(), relations: out.relations }
  for (const [k, v] of out.columns) renamed.columns.set(rename(k), v)
  return renamed
}

/** Hints for every column of `t` its CHECK constraints constrain in a way the probe can follow. */
export function columnHints(t: Table): TableHints {
  return hintsFrom(t.constraints.filter((c) => c.type === 'check').map((c) => c.definition))
}

/** Two hints for one column (a domain's and the table's): the table's where both say something. */
export function mergeHints(a: ColumnHint | undefined, b: ColumnHint | undefined): ColumnHint {
  return { ...(a ?? {}), ...(b ?? {}), notEqual: [...(a?.notEqual ?? []), ...(b?.notEqual ?? [])] }
}

const CLASSES: Record<string, string> = {
  d: '0123456789',
  w: 'abcdefghijklmnopqrstuvwxyz0123456789_',
  s: ' ',
}
const POSIX: Record<string, string> = {
  alpha: 'abcdefghijklmnopqrstuvwxyz',
  lower: 'abcdefghijklmnopqrstuvwxyz',
  upper: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  digit: '0123456789',
  alnum: 'abcdefghijklmnopqrstuvwxyz0123456789',
  xdigit: '0123456789abcdef',
  space: ' ',
  word: 'abcdefghijklmnopqrstuvwxyz0123456789_',
  punct: '-_.',
}
/** What a negated class or `\S`, `\W`, `\D` may pick from. */
const SAFE = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'

type Atom = { kind: 'chars'; chars: string } | { kind: 'group'; alternatives: Piece[][] }
interface Piece {
  atom: Atom
  min: number
  max: number
}

class RegexParser {
  i = 0
  constructor(private readonly s: string) {}

  /** Alternatives separated by `|`, up to `)` or the end. */
  alternatives(): Piece[][] | null {
    const alts: Piece[][] = [[]]
    while (this.i < this.s.length) {
      const ch = this.s[this.i]!
      if (ch === ')') break
      if (ch === '|') {
        this.i++
        alts.push([])
        continue
      }
      const atom = this.atom()
      if (atom === null) return null
      if (atom === 'anchor') continue
      const [min, max] = this.quantifier()
      alts.at(-1)!.push({ atom, min, max })
    }
    return alts
  }

  private atom(): Atom | 'anchor' | null {
    const ch = this.s[this.i]!
    if (ch === '^' || ch === '$') {
      this.i++
      return 'anchor'
    }
    if (ch === '(') {
      this.i++
      if (this.s.startsWith('?:', this.i)) this.i += 2
      else if (this.s[this.i] === '?') return null
      const alts = this.alternatives()
      if (alts === null || this.s[this.i] !== ')') return null
      this.i++
      return { kind: 'group', alternatives: alts }
    }
    if (ch === '[') return this.bracket()
    if (ch === '\\') {
      const next = this.s[this.i + 1] ?? ''
      this.i += 2
      if (CLASSES[next] !== undefined) return { kind: 'chars', chars: CLASSES[next] }
      if (next === 'D' || next === 'W' || next === 'S') return { kind: 'chars', chars: next === 'D' ? 'abcdefghij' : SAFE }
      if (/[A-Za-z0-9]/.test(next)) return null // \b, \m, back references …
      return { kind: 'chars', chars: next }
    }
    this.i++
    if (ch === '.') return { kind: 'chars', chars: 'abcdefghijklmnopqrstuvwxyz' }
    if (ch === '*' || ch === '+' || ch === '?' || ch === '{') return null
    return { kind: 'chars', chars: ch }
  }

  private bracket(): Atom | null {
    this.i++
    const negated = this.s[this.i] === '^'
    if (negated) this.i++
    let chars = ''
    let first = true
    while (this.i < this.s.length && (this.s[this.i] !== ']' || first)) {
      first = false
      if (this.s.startsWith('[:', this.i)) {
        const end = this.s.indexOf(':]', this.i)
        const cls = end === -1 ? undefined : POSIX[this.s.slice(this.i + 2, end)]
        if (cls === undefined) return null
        chars += cls
        this.i = end + 2
        continue
      }
      let c = this.s[this.i]!
      if (c === '\\') {
        const next = this.s[this.i + 1] ?? ''
        this.i += 2
        if (CLASSES[next] !== undefined) {
          chars += CLASSES[next]
          continue
        }
        c = next
      } else this.i++
      if (this.s[this.i] === '-' && this.s[this.i + 1] !== ']' && this.i + 1 < this.s.length) {
        let end = this.s[this.i + 1]!
        this.i += 2
        if (end === '\\') {
          end = this.s[this.i] ?? ''
          this.i++
        }
        for (let k = c.charCodeAt(0); k <= end.charCodeAt(0); k++) chars += String.fromCharCode(k)
      } else chars += c
    }
    if (this.s[this.i] !== ']') return null
    this.i++
    if (negated) chars = [...SAFE].filter((x) => !chars.includes(x)).join('')
    return chars.length === 0 ? null : { kind: 'chars', chars }
  }

  private quantifier(): [number, number] {
    const q = /^(\{(\d+)(,(\d*))?\}|[?*+])\??/.exec(this.s.slice(this.i))
    if (q === null) return [1, 1]
    this.i += q[0].length
    if (q[1] === '?') return [0, 1]
    if (q[1] === '*') return [0, 8]
    if (q[1] === '+') return [1, 8]
    const min = Number(q[2])
    return [min, q[3] === undefined ? min : q[4] === '' ? min + 8 : Number(q[4])]
  }
}

function generate(pieces: readonly Piece[]): string {
  let out = ''
  for (const p of pieces) {
    if (p.atom.kind === 'chars') {
      const chars = p.atom.chars
      // As long as allowed (up to 10 for a class), so unique columns get distinct values.
      const count = chars.length > 1 ? Math.max(p.min, Math.min(p.max, 10)) : p.min
      for (let k = 0; k < count; k++) out += chars[randomInt(0, chars.length)]
    } else {
      const alts = p.atom.alternatives
      for (let k = 0; k < p.min; k++) out += generate(alts[randomInt(0, alts.length)]!)
    }
  }
  return out
}

/**
 * A random string matching a POSIX regular expression of the kind CHECK constraints use: literals,
 * bracket expressions (ranges, negation, `[:alpha:]`), `\d \w \s`, groups with alternatives, and the
 * quantifiers `? * + {n} {m,} {m,n}`. An unanchored side gets unique text (so unique columns differ).
 * Null for what it does not know (back references, look-arounds, word boundaries).
 */
export function stringMatching(pattern: string): string | null {
  const parser = new RegexParser(pattern)
  const alts = parser.alternatives()
  if (alts === null || parser.i !== pattern.length) return null
  // Top-level alternatives: pick one.
  const body = generate(alts[randomInt(0, alts.length)]!)
  const anchoredStart = pattern.startsWith('^')
  const anchoredEnd = pattern.endsWith('$') && !pattern.endsWith('\\$')
  const noise = (): string => `tz${randomInt(0, 36 ** 4).toString(36)}`
  return `${anchoredStart ? '' : noise()}${body}${anchoredEnd ? '' : noise()}`
}
