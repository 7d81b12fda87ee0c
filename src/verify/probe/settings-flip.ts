import { appliesToApp, tableSql } from '../lints/rule.js'
import type { ModelTable, TenantModel } from '../lints/model.js'
import type { ProbeCheck } from '../types.js'
import type { SeededRow, Seeder } from './seed.js'
import type { ProbeSession } from './session.js'

/**
 * Settings a session can flip on its own: a custom setting (`app.bypass`, a second tenant setting) read by
 * a permissive policy is no gate, since any session may set it with set_config(). As the app role with
 * tenant A's context, set each such setting to values a bypass switch or a tenant id would take and
 * look for tenant B's rows. Runs inside the probe's transaction; every try is rolled back.
 */

/** Values a switch or a second tenant setting is likely to open on; tenant B's id is tried as well. */
export const FLIP_VALUES: readonly string[] = Object.freeze(['on', 'true', '1', 'yes', ''])

const display = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`

/**
 * Custom settings (`prefix.name`) other than the tenant setting that the permissive policies of the app
 * role read when it selects from the table (directly or through the functions they call), sorted.
 */
export function flippableSettings(model: TenantModel, m: ModelTable): string[] {
  const out = new Set<string>()
  for (const f of model.policies.get(m.table.oid) ?? []) {
    const p = f.policy
    if (p.mode !== 'permissive' || !appliesToApp(model, p) || (p.command !== 'all' && p.command !== 'select')) continue
    for (const s of f.using?.otherSettings ?? []) if (s.includes('.') && s !== model.setting) out.add(s)
  }
  return [...out].sort()
}

/** `(t.tableoid = $i AND t.ctid = $j) OR …` for the given rows, appending to `params`. */
function rowsPredicate(rows: readonly SeededRow[], params: unknown[]): string {
  return `(${rows.map((r) => {
    params.push(r.tableOid, r.ctid)
    return `(t.tableoid = $${params.length - 1}::oid AND t.ctid = $${params.length}::tid)`
  }).join(' OR ')})`
}

/**
 * The `setting-flip` check of one table: no value of a setting the policies read may show tenant B's rows
 * to tenant A. None for a table whose permissive policies read no other setting (nothing to flip) and
 * for a table whose rows name no tenant.
 */
export async function settingFlip(session: ProbeSession, seeder: Seeder, model: TenantModel, m: ModelTable): Promise<ProbeCheck[]> {
  const settings = flippableSettings(model, m)
  if (m.class === 'policy' || settings.length === 0) return []
  return [await flip(session, seeder, m, settings)]
}

async function flip(session: ProbeSession, seeder: Seeder, m: ModelTable, settings: readonly string[]): Promise<ProbeCheck> {
  const result = (status: ProbeCheck['status'], detail: string): ProbeCheck => ({ table: display(m.table), check: 'setting-flip', status, detail, sqlstate: null })
  const B = seeder.rowsOf(m.table, 'B')
  if (B.length === 0) return result('skip', `no rows of tenant B in ${display(m.table)}`)
  const tries: [string, string][] = [...FLIP_VALUES.map((v): [string, string] => [v, `'${v}'`]), [seeder.tenants.B, 'tenant B\'s id']]
  const opened: string[] = []
  try {
    for (const setting of settings) {
      for (const [value, label] of tries) {
        const seen = await session.isolated(async () => {
          await session.asApp(seeder.tenants.A)
          const set = await session.step('SELECT pg_catalog.set_config($1, $2, true)', [setting, value])
          if (!set.ok) return 0
          const params: unknown[] = []
          const r = await session.step(`SELECT count(*) AS n FROM ${tableSql(m.table)} t WHERE ${rowsPredicate(B, params)}`, params)
          // A refusal (a cast of 'on' to a tenant id type, say) shows nothing.
          return r.ok ? Number(r.rows[0]?.['n']) : 0
        })
        if (seen > 0) opened.push(`${setting} = ${label} shows ${seen} of B's ${B.length} row(s)`)
      }
    }
  } catch (error) {
    const e = error as { code?: string; message?: string }
    return { ...result('error', `the probe failed: ${e.message ?? String(error)}`), sqlstate: e.code ?? null }
  }
  if (opened.length > 0) return result('fail', `with tenant A's context, setting ${opened.join('; ')} of ${display(m.table)} (set_config(…, true) is open to every session)`)
  return result('pass', `${settings.join(', ')} set to ${tries.map(([, l]) => l).join(', ')}: none of B's rows visible`)
}
