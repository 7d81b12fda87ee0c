import type { Catalog, Routine } from '../../catalog/types.js'
import { names, nodeType, parseExpression, walk, type AstNode } from './sql-text.js'

/**
 * What a policy expression (USING or WITH CHECK) does with the tenant context, read from PostgreSQL's
 * parse tree of the catalog's deparsed text. Pure; see {@link analyzeExpression}.
 */

/** A place where the expression reads the tenant context. */
export interface ContextRead {
  /** `current_setting('<setting>' …)` itself, or a user function that reads it. */
  readonly via: 'current_setting' | 'function'
  /** `current_setting` or the function's `schema.name`. */
  readonly name: string
  /** Inside a sub-select, e.g. `(SELECT tenantize.current_tenant_id())`: evaluated once per statement. */
  readonly wrapped: boolean
}

export interface SubqueryFacts {
  readonly kind: 'scalar' | 'in' | 'exists' | 'all' | 'array' | 'other'
  /** Relations in its FROM clauses, as `[schema | null, name]`. */
  readonly relations: readonly (readonly [string | null, string])[]
  /** Whether the tenant column is compared with what it returns (`org_id IN (SELECT …)`, `org_id = (SELECT …)`). */
  readonly feedsTenantColumn: boolean
}

export interface ExpressionFacts {
  readonly text: string
  /** false when the text did not parse: then every other fact is empty. */
  readonly parsed: boolean
  /** `true` / `false` when the whole expression is that constant (also `x OR true`). */
  readonly constant: boolean | null
  readonly contextReads: readonly ContextRead[]
  /** Settings read with `current_setting` (directly or in called functions) that are not the tenant setting. */
  readonly otherSettings: readonly string[]
  /** `current_setting(…)` calls without `missing_ok = true`: they raise an error when the setting was never set. */
  readonly strictSettingReads: number
  /** VOLATILE functions it calls (user functions by `schema.name`, built-ins by name). */
  readonly volatileCalls: readonly string[]
  /** User functions it calls. */
  readonly calls: readonly Routine[]
  /** User functions that get the row's columns as arguments and are not LEAKPROOF, by `schema.name`. */
  readonly leakyCalls: readonly string[]
  /** User-defined operators (`OPERATOR(schema.op)`). */
  readonly userOperators: readonly string[]
  readonly subqueries: readonly SubqueryFacts[]
  /** Columns of the row compared with `=` to something that reads the context. */
  readonly columnsComparedToContext: readonly string[]
  /** Compares the tenant column with the context (directly, or through a sub-select). */
  readonly tenantComparison: boolean
  /**
   * Every row it admits has its tenant column compared with the context: each OR branch (every branch of
   * every OR on the way down) holds such a comparison, AND-ed in. False when an OR branch admits rows on
   * something else (`… OR is_public`, `… OR current_setting('app.bypass') = 'on'`), and without a tenant column.
   */
  readonly tenantConstrained: boolean
  /** Settings other than the tenant setting that the tenant column is compared with (`org_id = current_setting('app.tenant')`). */
  readonly comparedSettings: readonly string[]
  /** Columns of the row compared with `=` (or `IN (SELECT …)`) to something that reads a setting, with those settings (for inferring the setting). */
  readonly settingComparisons: readonly SettingComparison[]
  /** References the tenant column outside sub-selects. */
  readonly refsTenantColumn: boolean
  /** How the expression lets rows through when the context is missing (`IS NULL OR …`, `coalesce(…, org_id)`), else null. */
  readonly openWhenNoContext: string | null
}

export interface SettingComparison {
  readonly column: string
  readonly settings: readonly string[]
}

export interface ExpressionScope {
  readonly catalog: Catalog
  /** The tenant setting, lower-case. */
  readonly setting: string
  /** User routines that read the tenant setting (directly or through others). */
  readonly contextRoutines: ReadonlySet<number>
  /** Settings each user routine reads, transitively. */
  readonly routineSettings: ReadonlyMap<number, ReadonlySet<string>>
  /** The table's tenant column, if it has one. */
  readonly tenantColumn: string | null
}

/** Built-in VOLATILE functions worth naming when they turn up in a policy. */
const BUILTIN_VOLATILE = new Set(['random', 'clock_timestamp', 'timeofday', 'gen_random_uuid', 'nextval', 'setval', 'set_config', 'txid_current', 'pg_sleep'])

const SUBLINK_KINDS: Record<string, SubqueryFacts['kind']> = {
  EXPR_SUBLINK: 'scalar',
  ANY_SUBLINK: 'in',
  EXISTS_SUBLINK: 'exists',
  ALL_SUBLINK: 'all',
  ARRAY_SUBLINK: 'array',
}

function funcName(body: AstNode): [string | null, string] {
  const parts = names(body['funcname'])
  return parts.length >= 2 ? [parts[parts.length - 2]!, parts[parts.length - 1]!] : [null, parts[0] ?? '']
}

function constString(node: unknown): string | null {
  let typed = nodeType(node)
  while (typed?.[0] === 'TypeCast') typed = nodeType(typed[1]['arg'])
  if (typed?.[0] !== 'A_Const') return null
  const sval = typed[1]['sval'] as { sval?: string } | undefined
  return sval === undefined ? null : sval.sval ?? ''
}

function constBool(node: unknown): boolean | null {
  let typed = nodeType(node)
  while (typed?.[0] === 'TypeCast') typed = nodeType(typed[1]['arg'])
  if (typed?.[0] !== 'A_Const') return null
  const b = typed[1]['boolval'] as { boolval?: boolean } | undefined
  return b === undefined ? null : b.boolval === true
}

/** The column a node names, seeing through casts (`(org_id)::text`). */
function columnName(node: unknown): string | null {
  let typed = nodeType(node)
  while (typed?.[0] === 'TypeCast') typed = nodeType(typed[1]['arg'])
  if (typed?.[0] !== 'ColumnRef') return null
  const fields = names(typed[1]['fields'])
  return fields.length === 0 ? null : fields[fields.length - 1]!
}

/** Whether `node` names `column` of the row (outside sub-selects). */
function refsColumn(node: unknown, column: string): boolean {
  let found = false
  walk(node, (type, body) => {
    if (found || type === 'SubLink') return false
    if (type === 'ColumnRef' && columnName({ ColumnRef: body }) === column) found = true
  })
  return found
}

/** Whether a function's arguments contain a column of the row (outside sub-selects). */
function hasColumnArgument(args: unknown): boolean {
  let found = false
  walk(args, (type) => {
    if (found || type === 'SubLink') return false
    if (type === 'ColumnRef') found = true
  })
  return found
}

/** Analyses sub-trees: does `node` read the tenant context? */
class Reader {
  constructor(private readonly scope: ExpressionScope) {}

  routinesOf(body: AstNode): Routine[] {
    const [schema, name] = funcName(body)
    return schema === null ? [] : [...this.scope.catalog.routinesNamed(schema, name)]
  }

  /** The setting a `current_setting` call reads, or null for another function. */
  settingOf(body: AstNode): string | null {
    const [schema, name] = funcName(body)
    if (name !== 'current_setting' || (schema !== null && schema !== 'pg_catalog')) return null
    const args = body['args']
    return Array.isArray(args) ? (constString(args[0]) ?? '')?.toLowerCase() : ''
  }

  /** Settings `node` reads: `current_setting('<name>')` literals and what the user functions it calls read. */
  settingsIn(node: unknown): Set<string> {
    const out = new Set<string>()
    walk(node, (type, body) => {
      if (type !== 'FuncCall') return
      const setting = this.settingOf(body)
      if (setting !== null) {
        if (setting !== '') out.add(setting)
        return
      }
      for (const r of this.routinesOf(body)) for (const s of this.scope.routineSettings.get(r.oid) ?? []) out.add(s)
    })
    return out
  }

  /**
   * Whether every row `node` admits has `column` compared with the context (see
   * {@link ExpressionFacts.tenantConstrained}). Leaves other than equality (LIKE, a function of the column)
   * count when they use both the column and the context: other rules judge how well they compare.
   */
  constrains(node: unknown, column: string): boolean {
    const typed = nodeType(node)
    if (typed === null) return false
    const [type, body] = typed
    const args = (body['args'] as unknown[] | undefined) ?? []
    if (constBool(node) === false || (type === 'A_Const' && body['isnull'] === true)) return true
    if (type === 'BoolExpr') {
      if (body['boolop'] === 'AND_EXPR') return args.some((a) => this.constrains(a, column))
      if (body['boolop'] === 'OR_EXPR') return args.length > 0 && args.every((a) => this.constrains(a, column))
      return false
    }
    if (type === 'TypeCast') return this.constrains(body['arg'], column)
    if (type === 'CaseExpr') {
      const results = args.map((w) => nodeType(w)?.[1]['result'])
      return [...results, body['defresult'] ?? { A_Const: { isnull: true } }].every((r) => this.constrains(r, column))
    }
    if (type === 'SubLink') {
      return body['subLinkType'] === 'ANY_SUBLINK' && columnName(body['testexpr']) === column && this.readsContext(body['subselect'])
    }
    if (type === 'A_Expr' && ['<>', '!='].includes(names(body['name'])[0] ?? '')) return false
    if (type === 'A_Expr' || type === 'FuncCall') return refsColumn(node, column) && this.readsContext(node)
    return false
  }

  readsContext(node: unknown): boolean {
    let found = false
    walk(node, (type, body) => {
      if (found) return false
      if (type !== 'FuncCall') return
      if (this.settingOf(body) === this.scope.setting) found = true
      else if (this.routinesOf(body).some((r) => this.scope.contextRoutines.has(r.oid))) found = true
    })
    return found
  }

  /** `<ctx> IS NULL`, `<ctx> = ''`, `coalesce(<ctx>, '') = ''`, `NOT (<ctx> IS NOT NULL)`, `<ctx> IS NOT DISTINCT FROM NULL`. */
  isNoContextTest(node: unknown): string | null {
    const typed = nodeType(node)
    if (typed === null) return null
    const [type, body] = typed
    if (type === 'NullTest' && body['nulltesttype'] === 'IS_NULL' && this.readsContext(body['arg'])) return 'IS NULL'
    if (type === 'BoolExpr' && body['boolop'] === 'NOT_EXPR') {
      const inner = nodeType((body['args'] as unknown[] | undefined)?.[0])
      if (inner?.[0] === 'NullTest' && inner[1]['nulltesttype'] === 'IS_NOT_NULL' && this.readsContext(inner[1]['arg'])) return 'NOT … IS NOT NULL'
    }
    if (type === 'A_Expr') {
      const op = names(body['name'])[0]
      const [l, r] = [body['lexpr'], body['rexpr']]
      const emptyVs = (a: unknown, b: unknown): boolean => constString(b) === '' && this.readsContext(a)
      if (op === '=' && (emptyVs(l, r) || emptyVs(r, l))) return "= ''"
      if (body['kind'] === 'AEXPR_NOT_DISTINCT') {
        const isNull = (n: unknown): boolean => nodeType(n)?.[0] === 'A_Const' && (nodeType(n)?.[1]['isnull'] === true)
        if ((isNull(r) && this.readsContext(l)) || (isNull(l) && this.readsContext(r))) return 'IS NOT DISTINCT FROM NULL'
      }
    }
    return null
  }

  /** Where the expression lets rows through without context; null when it does not. */
  openWhenNoContext(root: AstNode): string | null {
    let found: string | null = null
    walk(root, (type, body, ancestors) => {
      if (found !== null) return false
      if (ancestors.includes('SubLink')) return false
      if (type === 'BoolExpr' && body['boolop'] === 'OR_EXPR') {
        for (const arg of (body['args'] as unknown[] | undefined) ?? []) {
          const test = this.isNoContextTest(arg)
          if (test !== null) {
            found = `an OR branch is true when the context is missing (${test})`
            return false
          }
        }
      }
      if (type === 'CoalesceExpr') {
        const args = (body['args'] as unknown[] | undefined) ?? []
        if (args.length >= 2 && this.readsContext(args[0])) {
          for (const fallback of args.slice(1)) {
            const col = columnName(fallback)
            if (col !== null) {
              found = `coalesce(<context>, ${col}) falls back to the row's own value, which matches every row`
              return false
            }
            const s = constString(fallback)
            if (s === '%' || s === '*' || s === '') {
              found = `coalesce(<context>, '${s}') falls back to a wildcard`
              return false
            }
          }
        }
      }
      if (type === 'CaseExpr') {
        for (const when of (body['args'] as unknown[] | undefined) ?? []) {
          const w = nodeType(when)
          if (w?.[0] === 'CaseWhen' && this.isNoContextTest(w[1]['expr']) !== null && constBool(w[1]['result']) === true) {
            found = 'CASE returns true when the context is missing'
            return false
          }
        }
      }
    })
    return found
  }
}

/** Is the whole expression constant? `true`, `false`, `x OR true`, `x AND false`. */
function constantOf(node: unknown): boolean | null {
  const b = constBool(node)
  if (b !== null) return b
  const typed = nodeType(node)
  if (typed?.[0] !== 'BoolExpr') return null
  const args = ((typed[1]['args'] as unknown[] | undefined) ?? []).map(constantOf)
  if (typed[1]['boolop'] === 'OR_EXPR') return args.includes(true) ? true : args.every((a) => a === false) ? false : null
  if (typed[1]['boolop'] === 'AND_EXPR') return args.includes(false) ? false : args.every((a) => a === true) ? true : null
  return null
}

const EMPTY: Omit<ExpressionFacts, 'text' | 'parsed'> = {
  constant: null,
  contextReads: [],
  otherSettings: [],
  strictSettingReads: 0,
  volatileCalls: [],
  calls: [],
  leakyCalls: [],
  userOperators: [],
  subqueries: [],
  columnsComparedToContext: [],
  tenantComparison: false,
  tenantConstrained: false,
  comparedSettings: [],
  settingComparisons: [],
  refsTenantColumn: false,
  openWhenNoContext: null,
}

/** Analyse one policy expression (deparsed text). */
export function analyzeExpression(text: string, scope: ExpressionScope): ExpressionFacts {
  const root = parseExpression(text)
  if (root === null) return { text, parsed: false, ...EMPTY }
  const reader = new Reader(scope)
  const contextReads: ContextRead[] = []
  const otherSettings = new Set<string>()
  const volatileCalls = new Set<string>()
  const calls = new Map<number, Routine>()
  const leaky = new Set<string>()
  const operators = new Set<string>()
  const subqueries: SubqueryFacts[] = []
  const compared = new Set<string>()
  const comparedSettings = new Set<string>()
  const settingComparisons: SettingComparison[] = []
  let strict = 0
  let tenantComparison = false
  let refsTenantColumn = false
  const tc = scope.tenantColumn
  const feeding = new Set<AstNode>()

  walk(root, (type, body, ancestors) => {
    const inSublink = ancestors.includes('SubLink')
    if (type === 'FuncCall') {
      const setting = reader.settingOf(body)
      const [schema, name] = funcName(body)
      if (setting !== null) {
        const args = (body['args'] as unknown[] | undefined) ?? []
        if (args.length < 2 || constBool(args[1]) !== true) strict++
        if (setting === scope.setting) contextReads.push({ via: 'current_setting', name: 'current_setting', wrapped: inSublink })
        else if (setting !== '') otherSettings.add(setting)
        return
      }
      if (schema === null && BUILTIN_VOLATILE.has(name)) volatileCalls.add(name)
      const takesColumns = !inSublink && hasColumnArgument(body['args'])
      for (const r of reader.routinesOf(body)) {
        calls.set(r.oid, r)
        const qualified = `${r.schema}.${r.name}`
        if (takesColumns && !r.leakproof) leaky.add(qualified)
        if (r.volatility === 'volatile') volatileCalls.add(qualified)
        if (scope.contextRoutines.has(r.oid)) contextReads.push({ via: 'function', name: qualified, wrapped: inSublink })
        for (const s of scope.routineSettings.get(r.oid) ?? []) if (s !== scope.setting) otherSettings.add(s)
      }
      return
    }
    if (type === 'ColumnRef' && !inSublink && tc !== null && columnName({ ColumnRef: body }) === tc) refsTenantColumn = true
    if (type === 'A_Expr') {
      const op = names(body['name'])
      if (op.length === 2 && op[0] !== 'pg_catalog') operators.add(`${op[0]}.${op[1]}`)
    }
    if (type === 'A_Expr' && names(body['name'])[0] === '=') {
      const [l, r] = [body['lexpr'], body['rexpr']]
      for (const [col, other] of [[l, r], [r, l]] as const) {
        const name = columnName(col)
        // `org_id = (SELECT … FROM …)`: the scalar sub-select feeds the tenant column.
        const sub = nodeType(other)
        if (name !== null && name === tc && !inSublink && sub?.[0] === 'SubLink') feeding.add(sub[1])
        if (name !== null && !inSublink) {
          const settings = reader.settingsIn(other)
          if (settings.size > 0) settingComparisons.push({ column: name, settings: [...settings].sort() })
          if (name === tc) for (const setting of settings) if (setting !== scope.setting) comparedSettings.add(setting)
        }
        if (name === null || !reader.readsContext(other)) continue
        if (!inSublink) compared.add(name)
        if (!inSublink && name === tc) tenantComparison = true
      }
    }
    if (type === 'SubLink') {
      const kind = SUBLINK_KINDS[String(body['subLinkType'])] ?? 'other'
      const relations: (readonly [string | null, string])[] = []
      walk(body['subselect'], (t, b) => {
        if (t === 'RangeVar' && typeof b['relname'] === 'string') {
          relations.push([typeof b['schemaname'] === 'string' ? b['schemaname'] : null, b['relname']])
        }
      })
      const tested = columnName(body['testexpr'])
      if (!inSublink && tested !== null) {
        const settings = reader.settingsIn(body['subselect'])
        if (settings.size > 0) settingComparisons.push({ column: tested, settings: [...settings].sort() })
        if (tested === tc) for (const setting of settings) if (setting !== scope.setting) comparedSettings.add(setting)
      }
      const feeds = !inSublink && tc !== null && (tested === tc || feeding.has(body))
      if (feeds && reader.readsContext(body['subselect'])) tenantComparison = true
      subqueries.push({ kind, relations, feedsTenantColumn: feeds })
    }
  })
  return {
    text,
    parsed: true,
    constant: constantOf(root),
    contextReads,
    otherSettings: [...otherSettings].sort(),
    strictSettingReads: strict,
    volatileCalls: [...volatileCalls].sort(),
    calls: [...calls.values()],
    leakyCalls: [...leaky].sort(),
    userOperators: [...operators].sort(),
    subqueries,
    columnsComparedToContext: [...compared].sort(),
    tenantComparison,
    tenantConstrained: tc !== null && reader.constrains(root, tc),
    comparedSettings: [...comparedSettings].sort(),
    settingComparisons,
    refsTenantColumn,
    openWhenNoContext: reader.openWhenNoContext(root),
  }
}

/** Every `current_setting('<name>')` literal an expression reads itself (for inferring the setting). */
export function settingsInExpression(text: string): string[] {
  const root = parseExpression(text)
  if (root === null) return []
  const out: string[] = []
  walk(root, (type, body) => {
    if (type !== 'FuncCall') return
    const [schema, name] = funcName(body)
    if (name !== 'current_setting' || (schema !== null && schema !== 'pg_catalog')) return
    const s = constString((body['args'] as unknown[] | undefined)?.[0])
    if (s !== null && s !== '') out.push(s.toLowerCase())
  })
  return out
}

/** User routines an expression calls (for inferring the setting through helper functions). */
export function routinesInExpression(text: string, catalog: Catalog): Routine[] {
  const root = parseExpression(text)
  if (root === null) return []
  const out: Routine[] = []
  walk(root, (type, body) => {
    if (type !== 'FuncCall') return
    const [schema, name] = funcName(body)
    if (schema !== null) out.push(...catalog.routinesNamed(schema, name))
  })
  return out
}
