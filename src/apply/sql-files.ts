import { NO_TRANSACTION_HEADER } from '../migrate/files.js'
import { cost } from '../plan/render.js'
import type { Plan } from '../plan/steps.js'

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
    const up = s.backfill !== undefined ? s.backfill.loopSql : s.up.join(';\n\n')
    const down = s.down.length > 0 ? s.down.join(';\n\n') : 'SELECT 1 -- nothing to reverse'
    return { name, up: `${header}\n${up};\n`, down: `${s.transactional ? '' : `${NO_TRANSACTION_HEADER}\n`}-- reverses ${s.id}\n\n${down};\n` }
  })
}
