import { NO_TRANSACTION_HEADER } from '../migrate/files.js'
import { cost } from '../plan/render.js'
import type { Backfill, Plan } from '../plan/steps.js'

/** After a backfill that asks for it (see Backfill.vacuumAfter), its VACUUM, a statement of its own. */
const vacuumOf = (b: Backfill): string[] => (b.vacuumAfter === true ? [`VACUUM (ANALYZE, SKIP_LOCKED) ${b.table}`] : [])

/**
 * Numbered migration files (`NNNN_phase_step.up.sql` / `.down.sql`) that `tenantize migrate up` runs.
 * Steps that cannot run in a transaction — and backfills, which commit each batch — carry the
 * no-transaction header.
 */
export function planSqlFiles(plan: Plan): { name: string; up: string; down: string }[] {
  return plan.steps.map((s, i) => {
    const name = `${String(i + 1).padStart(4, '0')}_${s.phase}_${s.id.replace(/[^a-z0-9]+/gi, '_').toLowerCase().replace(/^_|_$/g, '')}`.slice(0, 120)
    const noTx = !s.transactional || s.backfill !== undefined
    const header = `${noTx ? `${NO_TRANSACTION_HEADER}\n` : ''}-- ${s.title}\n-- lock: ${s.lock} (${s.lockHeld}); ${cost(s)}\n`
    const up = s.backfill !== undefined ? [s.backfill.loopSql, ...vacuumOf(s.backfill)].join(';\n\n') : s.up.join(';\n\n')
    const down = s.down.length > 0 ? s.down.join(';\n\n') : 'SELECT 1 -- nothing to reverse'
    return { name, up: `${header}\n${up};\n`, down: `${s.transactional ? '' : `${NO_TRANSACTION_HEADER}\n`}-- reverses ${s.id}\n\n${down};\n` }
  })
}

/**
 * A Prisma migrations folder: one `YYYYMMDDHHMMSS_tenantize_NNNN_step/migration.sql` per step, numbered
 * from `start` so they sort after the project's existing migrations. Prisma runs a migration file as one
 * script, so a step that cannot run in a transaction gets one folder per statement (a concurrent index
 * build must be alone in its file). Prisma has no down migrations: keep `plan --format sql` for rollback.
 */
export function planPrismaMigrations(plan: Plan, start: Date): { dir: string; sql: string }[] {
  const out: { dir: string; sql: string }[] = []
  let t = start.getTime()
  const stamp = (): string => {
    const d = new Date(t)
    t += 1000
    return d.toISOString().replace(/[-:T]/g, '').slice(0, 14)
  }
  plan.steps.forEach((s, i) => {
    const base = `tenantize_${String(i + 1).padStart(4, '0')}_${s.id.replace(/[^a-z0-9]+/gi, '_').toLowerCase().replace(/^_|_$/g, '')}`.slice(0, 100)
    const header = `-- ${s.title}\n-- lock: ${s.lock} (${s.lockHeld}); ${cost(s)}\n`
    if (s.backfill !== undefined) {
      out.push({ dir: `${stamp()}_${base}`, sql: `${header}\n${s.backfill.loopSql};\n` })
      for (const stmt of vacuumOf(s.backfill)) out.push({ dir: `${stamp()}_${base}_vacuum`, sql: `${header}-- after the backfill: alone in its file, outside a transaction\n\n${stmt};\n` })
    }
    else if (s.transactional) out.push({ dir: `${stamp()}_${base}`, sql: `${header}\n${s.up.join(';\n\n')};\n` })
    else s.up.forEach((stmt, n) => out.push({ dir: `${stamp()}_${base}_${n + 1}`, sql: `${header}-- statement ${n + 1} of ${s.up.length}: alone in its file, outside a transaction\n\n${stmt};\n` }))
  })
  return out
}
