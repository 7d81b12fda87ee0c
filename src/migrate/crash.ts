/**
 * Test hook for the crash suite (issue #12, test/crash*.test.ts): `TENANTIZE_TEST_CRASH_AT=<point>:<n>`
 * makes the process kill itself with SIGKILL the n-th time (1-based, counted in this process) it passes
 * `point` — as a `kill -9` at exactly that place would. Inert unless the variable is set.
 *
 * Points: `unit-start` (a unit's start is logged, nothing of it ran), `statement` (a statement of a unit
 * ran: inside the open transaction of a transactional unit, or between two statements of a no-transaction
 * one), `unit-end` (a unit is done and in the ledger, its finish not logged), `batch` (a backfill batch
 * updated its rows and saved its progress in one statement, committed; the process has not yet acted on it).
 */
export type CrashPoint = 'unit-start' | 'statement' | 'unit-end' | 'batch'

const passed = new Map<CrashPoint, number>()

export function crashPoint(point: CrashPoint): void {
  const at = process.env['TENANTIZE_TEST_CRASH_AT']
  if (at === undefined || at === '') return
  const n = (passed.get(point) ?? 0) + 1
  passed.set(point, n)
  if (at === `${point}:${n}`) process.kill(process.pid, 'SIGKILL')
}
