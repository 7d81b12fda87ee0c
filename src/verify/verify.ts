import type pg from 'pg'
import { introspect } from '../catalog/index.js'
import { connect } from '../db/connect.js'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { packageVersion } from '../package-info.js'
import { LINT_RULES, RULES_DOC, applyAcceptances, lintCatalog, summarizeModel, type ModelOptions, type TenantModel } from './lints/index.js'
import { enableRlsSql, tableSql, tenantPolicySql } from './lints/rule.js'
import { citusLintFindings, citusProbe, citusProbeFindings, readCitusFacts, withoutCitusContradictions } from './citus.js'
import { probePooler } from './pooler.js'
import { runProbe } from './probe/probe.js'
import { POOLER_CHECKS, PROBE_CHECKS, PROBE_META, type LiveCheck } from './probe/registry.js'
import { SEVERITIES, type Finding, type PoolerReport, type ProbeReport, type ProbeStatus, type VerifyReport } from './types.js'

export interface VerifyCoreOptions extends ModelOptions {
  /** Run the live probe (default true). */
  readonly probe?: boolean | undefined
  /** The client is inside an open transaction (introspect and probe stay inside it; nothing is committed). */
  readonly inTransaction?: boolean | undefined
  readonly statementTimeoutMs?: number | undefined
  /**
   * Tenant tables the probe could not seed are findings `probe-unprobed` at error level (verify cannot
   * pass what it did not check); true makes them warnings, still listed.
   */
  readonly allowUnprobed?: boolean | undefined
}

export interface VerifyOptions extends VerifyCoreOptions {
  readonly databaseUrl: string
  /** A PgBouncer (or other pooler) URL in front of the same database: run the pooler leak probe through it. */
  readonly poolerUrl?: string | undefined
}

const byId = (list: readonly LiveCheck[]): Map<string, LiveCheck> => new Map(list.map((c) => [c.id, c]))
const PROBE_BY_ID = byId(PROBE_CHECKS)
const META_BY_ID = byId(PROBE_META)
const POOLER_BY_ID = byId(POOLER_CHECKS)

/** The fix a failed live check points at: the table's lint fix when it has one, else the check's hint. */
function liveFix(model: TenantModel, table: string, check: LiveCheck): string {
  const m = model.tables.find((x) => `${x.table.schema}.${x.table.name}` === table)
  if (m === undefined || check.id.startsWith('data-') || check.id === 'view-other' || check.id === 'read-own' || check.id === 'setting-flip') return `-- ${check.fixHint}`
  return `-- ${check.fixHint} The tenant model for ${tableSql(m.table)}:\n${enableRlsSql(m.table)}\n${tenantPolicySql(model, m)}`
}

/** Findings for failed (and broken) probe checks. */
export function probeFindings(model: TenantModel, probe: ProbeReport): Finding[] {
  const out: Finding[] = []
  for (const c of probe.checks) {
    if (c.status !== 'fail' && c.status !== 'error') continue
    const check = c.status === 'fail' ? PROBE_BY_ID.get(c.check) : META_BY_ID.get('probe-error')
    if (check === undefined) continue
    const rule = c.status === 'fail' ? `probe-${c.check}` : 'probe-error'
    const key = (r: { schema: string; name: string }): string => `${r.schema}.${r.name}`
    const view = model.catalog.views.find((v) => key(v) === c.table)
    const ref = view ?? model.catalog.tables.find((t) => key(t) === c.table)
    // No privilege at all (permission denied) is a grant to add, not a broken policy: grant-app-missing says so too.
    const unprivileged = c.status === 'fail' && c.check === 'read-own' && c.sqlstate === '42501'
    out.push({
      rule,
      severity: unprivileged ? 'info' : check.severity,
      source: 'probe',
      objectKind: view === undefined ? 'table' : 'view',
      object: ref === undefined ? c.table : tableSql(ref),
      table: view === undefined ? c.table : null,
      message: c.status === 'fail' ? c.detail : `${c.check}: ${c.detail}`,
      why: check.why,
      fix: c.status === 'fail' ? liveFix(model, c.table, check) : `-- ${check.fixHint}`,
      docs: `${RULES_DOC}#${rule}`,
    })
  }
  return out
}

/** One finding per tenant table the probe could not probe: an error, or a warning with `allowUnprobed`. */
export function unprobedFindings(model: TenantModel, probe: ProbeReport, allowUnprobed = false): Finding[] {
  const meta = META_BY_ID.get('probe-unprobed')!
  return probe.unprobed.map((u) => {
    const ref = model.catalog.tables.find((t) => `${t.schema}.${t.name}` === u.table)
    return {
      rule: 'probe-unprobed',
      severity: allowUnprobed ? 'warn' : meta.severity,
      source: 'probe',
      objectKind: 'table',
      object: ref === undefined ? u.table : tableSql(ref),
      table: u.table,
      message: `not probed: ${u.reason}`,
      why: meta.why,
      fix: `-- ${meta.fixHint}`,
      docs: `${RULES_DOC}#probe-unprobed`,
    }
  })
}

function notRunFinding(reason: string): Finding {
  const meta = META_BY_ID.get('probe-not-run')!
  return { rule: 'probe-not-run', severity: meta.severity, source: 'probe', objectKind: 'server', object: 'probe', table: null, message: reason, why: meta.why, fix: `-- ${meta.fixHint}`, docs: `${RULES_DOC}#probe-not-run` }
}

/** Findings for a pooler report. */
export function poolerFindings(pooler: PoolerReport): Finding[] {
  const out: Finding[] = []
  for (const [id, obs] of [['session-context-leaks', pooler.sessionScope], ['transaction-context-leaks', pooler.transactionScope]] as const) {
    if (obs.status !== 'fail') continue
    const meta = POOLER_BY_ID.get(id)!
    out.push({ rule: `pooler-${id}`, severity: meta.severity, source: 'pooler', objectKind: 'pooler', object: pooler.url, table: null, message: obs.detail, why: meta.why, fix: `-- ${meta.fixHint}`, docs: `${RULES_DOC}#pooler-${id}` })
  }
  return out
}

/** Put a report together; findings sorted by severity, then rule, then object. */
export function assembleReport(database: VerifyReport['database'], model: TenantModel, findings: readonly Finding[], probe: ProbeReport | null, pooler: PoolerReport | null, now = new Date()): VerifyReport {
  const sources = ['lint', 'probe', 'pooler']
  const { findings: reported, accepted, unused } = applyAcceptances(findings, model.acceptances)
  const summary = summarizeModel(model)
  const stale = unused.map((a) => `accepted risk ${a.rules.join(' / ')} on ${a.object} (${a.source}) matches no finding: remove it, or correct its rule or object`)
  const sorted = [...reported].sort(
    (a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || sources.indexOf(a.source) - sources.indexOf(b.source) || a.rule.localeCompare(b.rule) || a.object.localeCompare(b.object),
  )
  const checks: Record<ProbeStatus, number> = { pass: 0, fail: 0, skip: 0, error: 0 }
  for (const c of probe?.checks ?? []) checks[c.status]++
  return {
    kind: 'tenantize.verify',
    schemaVersion: 1,
    tool: { name: 'tenantize', version: packageVersion() },
    generatedAt: now.toISOString(),
    database,
    model: stale.length === 0 ? summary : { ...summary, notes: [...summary.notes, ...stale] },
    findings: sorted,
    accepted,
    probe,
    pooler,
    rules: LINT_RULES.map((r) => ({ id: r.id, severity: r.severity, scope: r.scope })),
    summary: {
      error: sorted.filter((f) => f.severity === 'error').length,
      warn: sorted.filter((f) => f.severity === 'warn').length,
      info: sorted.filter((f) => f.severity === 'info').length,
      checks,
      unprobed: probe?.unprobed.length ?? 0,
    },
  }
}

/**
 * The core of `verify` on a connected client: introspect, lint and (unless `probe: false`) probe. The
 * probe always rolls back; with `inTransaction` everything happens inside the caller's transaction.
 *
 * @throws TenantizeError `TZ_USAGE` when the probe should run but the app role cannot be inferred.
 */
export async function verifyClient(client: pg.ClientBase, options: VerifyCoreOptions = {}): Promise<{ report: VerifyReport; model: TenantModel }> {
  const catalog = await introspect(client, { inTransaction: options.inTransaction })
  const { model, findings } = await lintCatalog(catalog, options)
  if (model.appRole === null) {
    throw new TenantizeError(ErrorCodes.USAGE, 'cannot infer the app role: no policy names one and no login role has SELECT on the tenant tables', {
      object: '--app-role',
      fix: 'pass --app-role NAME (the role the application connects as)',
    })
  }
  let probe: ProbeReport | null = null
  // On a Citus coordinator with distributed tables: Citus's lints, and its live checks instead of the probe.
  const citus = await readCitusFacts(client, model.appRole)
  const distributed = citus !== null && [...citus.tables.values()].some((t) => t.kind !== 'local')
  const all = citus === null ? [...findings] : [...withoutCitusContradictions(findings, model, citus), ...citusLintFindings(model, citus)]
  if (options.probe !== false && distributed) {
    probe = await citusProbe(client, model, citus, { inTransaction: options.inTransaction })
    all.push(...citusProbeFindings(model, probe))
  } else if (options.probe !== false) {
    const result = await runProbe(client, model, { inTransaction: options.inTransaction, statementTimeoutMs: options.statementTimeoutMs })
    if ('notRun' in result) all.push(notRunFinding(result.notRun))
    else {
      probe = result
      all.push(...probeFindings(model, result), ...unprobedFindings(model, result, options.allowUnprobed === true))
    }
  }
  const database = { name: catalog.server.database, serverVersion: catalog.server.version, serverVersionNum: catalog.server.versionNum }
  return { report: assembleReport(database, model, all, probe, null), model }
}

/**
 * `tenantize verify` as a library call: connect, verify, optionally probe a pooler, disconnect.
 *
 * @throws TenantizeError `TZ_CONNECTION` when the database (or pooler) cannot be reached, `TZ_USAGE` when
 * the app role cannot be inferred.
 */
export async function verify(options: VerifyOptions): Promise<VerifyReport> {
  const client = await connect(options.databaseUrl, { applicationName: 'tenantize-verify' })
  let report: VerifyReport
  let model: TenantModel
  try {
    ;({ report, model } = await verifyClient(client, options))
  } finally {
    await client.end().catch(() => undefined)
  }
  if (options.poolerUrl === undefined) return report
  const pooler = await probePooler(options.poolerUrl, model.setting)
  return assembleReport(report.database, model, [...report.findings, ...poolerFindings(pooler)], report.probe, pooler)
}

/** Exit code for CI: 1 when a finding is at or above `failOn`, else 0. */
export function exitCodeFor(report: VerifyReport, failOn: 'error' | 'warn'): 0 | 1 {
  const threshold = SEVERITIES.indexOf(failOn)
  return report.findings.some((f) => SEVERITIES.indexOf(f.severity) <= threshold) ? 1 : 0
}

