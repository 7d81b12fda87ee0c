import { qualifiedName, quoteIdent } from '../../sql/quote.js'
import type { AcceptedRisk, Finding } from '../types.js'

/** A risk the user accepted: findings of these rules on one object (as verify prints it, or a `schema.table`). */
export interface Acceptance {
  readonly rules: readonly string[]
  readonly object: string
  readonly reason: string
  /** Where it was declared, for the report: `verify.accept` or `tables["…"].sharedReferences`. */
  readonly source: string
}

/** The config's `verify.accept` entries. */
export function configAcceptances(accept: readonly { readonly rule: string; readonly object: string; readonly reason: string }[]): Acceptance[] {
  return accept.map((a) => ({ rules: [a.rule], object: a.object, reason: a.reason, source: 'verify.accept' }))
}

/** Foreign keys declared as crossing tenants on purpose, as acceptances of the rules that would report them. */
export function sharedReferenceAcceptances(tables: Readonly<Record<string, { readonly sharedReferences: readonly { readonly constraint: string; readonly reason: string }[] }>>): Acceptance[] {
  return Object.entries(tables).flatMap(([key, t]) => {
    const dot = key.indexOf('.')
    const table = qualifiedName({ schema: key.slice(0, dot), name: key.slice(dot + 1) })
    return t.sharedReferences.map((r) => ({ rules: ['fk-not-tenant-scoped', 'fk-from-tenant-table-not-tenant-scoped'], object: `constraint ${quoteIdent(r.constraint)} on ${table}`, reason: r.reason, source: `tables["${key}"].sharedReferences` }))
  })
}

/**
 * PURE: split findings into those still reported and those an acceptance silences (each with its reason);
 * acceptances that silence nothing come back as `unused`, so the report can say they are stale.
 */
export function applyAcceptances(findings: readonly Finding[], acceptances: readonly Acceptance[]): { findings: Finding[]; accepted: AcceptedRisk[]; unused: Acceptance[] } {
  const used = new Set<Acceptance>()
  const kept: Finding[] = []
  const accepted: AcceptedRisk[] = []
  for (const f of findings) {
    const a = acceptances.find((x) => x.rules.includes(f.rule) && (x.object === f.object || x.object === f.table))
    if (a === undefined) {
      kept.push(f)
      continue
    }
    used.add(a)
    accepted.push({ rule: f.rule, severity: f.severity, object: f.object, table: f.table, message: f.message, reason: a.reason, source: a.source })
  }
  return { findings: kept, accepted, unused: acceptances.filter((a) => !used.has(a)) }
}
