import { randomInt } from 'node:crypto'
import type { Table } from '../../catalog/types.js'
import { names, nodeType, parseExpression, walk, type AstNode } from '../lints/sql-text.js'

/**
 * What CHECK constraints ask of a single column, so the probe's rows pass them: a list of allowed values
 * (`status IN ('a', 'b')`), numeric bounds (`month BETWEEN 1 AND 12`, `n > 0`) or a simple regular
 * expression (`code ~ '^[A-Z0-9]{2,12}$'`). Read from the catalog's deparsed constraint definitions with
 * PostgreSQL's parser; anything else is left to retries with fresh values.
 */
export interface ColumnHint {
  allowed?: string[]
  min?: number
  max?: number
  pattern?: string
}

function literal(node: unknown): string | null {
  let typed = nodeType(node)
  while (typed?.[0] === 'TypeCast') typed = nodeType(typed[1]['arg'])
  if (typed?.[0] !== 'A_Const') return null
  const body = typed[1]
  const s = body['sval'] as { sval?: string } | undefined
  if (s !== undefined) return s.sval ?? ''
  const i = body['ival'] as { ival?: number } | undefined
  if (i !== undefined) return String(i.ival ?? 0)
  const f = body['fval'] as { fval?: string } | undefined
  if (f !== undefined) return f.fval ?? null
  return null
}

function column(node: unknown): string | null {
  let typed = nodeType(node)
  while (typed?.[0] === 'TypeCast') typed = nodeType(typed[1]['arg'])
  if (typed?.[0] !== 'ColumnRef') return null
  const fields = names(typed[1]['fields'])
  return fields.length === 1 ? fields[0]! : null
}

/** The AND-ed conditions of an expression. */
function conjuncts(node: unknown): unknown[] {
  const typed = nodeType(node)
  if (typed?.[0] === 'BoolExpr' && typed[1]['boolop'] === 'AND_EXPR') return ((typed[1]['args'] as unknown[] | undefined) ?? []).flatMap(conjuncts)
  return [node]
}

function hintFor(hints: Map<string, ColumnHint>, col: string): ColumnHint {
  let h = hints.get(col)
  if (h === undefined) {
    h = {}
    hints.set(col, h)
  }
  return h
}

function apply(hints: Map<string, ColumnHint>, cond: AstNode): void {
  const typed = nodeType(cond)
  if (typed?.[0] !== 'A_Expr') return
  const [, e] = typed
  const op = names(e['name'])[0]
  const left = column(e['lexpr'])
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
    const values = ((e['rexpr'] as unknown[] | undefined) ?? []).map(literal).filter((v): v is string => v !== null)
    if (values.length > 0) hintFor(hints, left).allowed = values
    return
  }
  if (e['kind'] === 'AEXPR_BETWEEN') {
    const [lo, hi] = ((e['rexpr'] as unknown[] | undefined) ?? []).map(literal)
    if (lo != null && hi != null && !Number.isNaN(Number(lo)) && !Number.isNaN(Number(hi))) Object.assign(hintFor(hints, left), { min: Number(lo), max: Number(hi) })
    return
  }
  if (e['kind'] !== 'AEXPR_OP') return
  const right = literal(e['rexpr'])
  if (right === null) return
  const n = Number(right)
  const h = (): ColumnHint => hintFor(hints, left)
  if ((op === '~' || op === '~*') && right.length > 0) h().pattern = right
  else if (op === '>=' && !Number.isNaN(n)) h().min = Math.max(h().min ?? -Infinity, n)
  else if (op === '>' && !Number.isNaN(n)) h().min = Math.max(h().min ?? -Infinity, n + 1)
  else if (op === '<=' && !Number.isNaN(n)) h().max = Math.min(h().max ?? Infinity, n)
  else if (op === '<' && !Number.isNaN(n)) h().max = Math.min(h().max ?? Infinity, n - 1)
}

/** Hints for every column of `t` its CHECK constraints constrain in a way the probe can follow. */
export function columnHints(t: Table): Map<string, ColumnHint> {
  const hints = new Map<string, ColumnHint>()
  for (const c of t.constraints) {
    if (c.type !== 'check') continue
    const m = /^CHECK \((.*)\)( NOT VALID)?$/s.exec(c.definition)
    const root = m === null ? null : parseExpression(m[1]!)
    if (root === null) continue
    for (const cond of conjuncts(root)) apply(hints, cond as AstNode)
  }
  return hints
}

const CLASSES: Record<string, string> = {
  d: '0123456789',
  w: 'abcdefghijklmnopqrstuvwxyz0123456789_',
}

/**
 * A random string matching a simple anchored regular expression: literals, character classes with
 * ranges (`[A-Z0-9_-]`, `\d`, `\w`), and the quantifiers `?`, `*`, `+`, `{n}`, `{m,n}`. Null for anything
 * more complicated (alternation, groups, negated classes).
 */
export function stringMatching(pattern: string): string | null {
  if (!pattern.startsWith('^') || !pattern.endsWith('$') || /[|()]/.test(pattern)) return null
  const body = pattern.slice(1, -1)
  let out = ''
  let i = 0
  while (i < body.length) {
    let chars: string
    const ch = body[i]!
    if (ch === '[') {
      const end = body.indexOf(']', i + 1)
      if (end === -1 || body[i + 1] === '^') return null
      chars = ''
      const spec = body.slice(i + 1, end)
      for (let j = 0; j < spec.length; j++) {
        if (spec[j + 1] === '-' && j + 2 < spec.length) {
          for (let c = spec.charCodeAt(j); c <= spec.charCodeAt(j + 2); c++) chars += String.fromCharCode(c)
          j += 2
        } else chars += spec[j]
      }
      i = end + 1
    } else if (ch === '\\') {
      const cls = CLASSES[body[i + 1] ?? '']
      chars = cls ?? body[i + 1] ?? ''
      i += 2
    } else if (ch === '.') {
      chars = 'abcdefghijklmnopqrstuvwxyz'
      i++
    } else {
      chars = ch
      i++
    }
    let min = 1
    let max = 1
    const q = /^(\{(\d+)(,(\d*))?\}|[?*+])/.exec(body.slice(i))
    if (q !== null) {
      if (q[0] === '?') [min, max] = [0, 1]
      else if (q[0] === '*') [min, max] = [0, 8]
      else if (q[0] === '+') [min, max] = [1, 8]
      else {
        min = Number(q[2])
        max = q[3] === undefined ? min : q[4] === '' ? min + 8 : Number(q[4])
      }
      i += q[0].length
    }
    if (chars.length === 0) return null
    // As long as allowed (up to 10 for a class), so unique columns get distinct values.
    const count = chars.length > 1 ? Math.max(min, Math.min(max, 10)) : min
    for (let k = 0; k < count; k++) out += chars[randomInt(0, chars.length)]
  }
  return out
}
