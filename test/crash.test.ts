import { test } from 'node:test'
import assert from 'node:assert/strict'
import { testDatabase } from './helpers/db.js'
import { SOAK, assertApplied, assertClean, assertRolledBack, crashCli, finish, fixture, reference, statementPoint, stepPosition, type Fixture } from './helpers/crash.js'

/**
 * kill -9 of the CLI (its own SIGKILL at a deterministic point, TENANTIZE_TEST_CRASH_AT) at step boundaries,
 * inside transactions, inside a backfill batch and between the statements of a no-transaction step, during
 * apply and during rollback: the command run again finishes, and the schema and every row equal a clean run's.
 * `npm run test:soak` tries every point.
 */
const db = await testDatabase(import.meta.url)
const ref = await reference(db, 'crash_ref')
const probe = await fixture(db, 'crash_plan')
const plan = probe.plan
const N = plan.steps.length
const batches = Math.ceil(600 / 50)
const statements = (dir: 'up' | 'down'): number => plan.steps.reduce((n, s) => n + (dir === 'up' && s.backfill !== undefined ? 0 : (dir === 'up' ? s.up : s.down).length), 0)

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1)
const applyPoints = SOAK
  ? [...range(N).flatMap((i) => [`unit-start:${i}`, `unit-end:${i}`]), ...range(batches).map((i) => `batch:${i}`), ...range(statements('up')).map((i) => `statement:${i}`)]
  : [
      `unit-end:${stepPosition(plan, 'add-column:public.tasks')}`,
      statementPoint(plan, 'add-column:public.tasks', 2),
      `unit-start:${stepPosition(plan, 'backfill:public.tasks')}`,
      'batch:3',
      statementPoint(plan, 'tenant-key:public.projects:client_id,id', 1),
      statementPoint(plan, 'tenant-unique:public.notes:notes_code_key', 1),
      `unit-end:${N}`,
    ]
const rollbackPoints = SOAK
  ? [...range(N).flatMap((i) => [`unit-start:${i}`, `unit-end:${i}`]), ...range(statements('down')).map((i) => `statement:${i}`)]
  : [
      'unit-start:1',
      statementPoint(plan, 'rls:public.notes', 2, 'down'),
      `unit-end:${stepPosition(plan, 'app-role', 'down')}`,
      statementPoint(plan, 'tenant-unique:public.notes:notes_code_key', 1, 'down'),
      statementPoint(plan, 'add-column:public.tasks', 2, 'down'),
      `unit-start:${N}`,
      `unit-end:${N}`,
    ]

test('the plan has every kind of step the crash points aim at', () => {
  assert.ok(plan.steps.some((s) => s.backfill !== undefined), 'a batched backfill')
  assert.ok(plan.steps.some((s) => !s.transactional && s.up.length > 1), 'a no-transaction step of several statements')
  assert.ok(plan.steps.some((s) => s.transactional && s.up.length > 1), 'a transactional step of several statements')
  assert.ok(plan.steps.some((s) => s.phase === 'enforce'))
})

/** One database: apply killed at `up`, run again; rollback killed at `down`, run again. */
async function crashPair(label: string, up: string, down: string | undefined): Promise<void> {
  const f: Fixture = await fixture(db, label)
  const crashed = await crashCli(f, 'apply', up)
  assert.doesNotMatch(crashed.stderr, /TZ_|Error/, 'nothing failed before the kill')
  await finish(f, 'apply')
  await assertApplied(f, ref)
  if (down === undefined) return
  await crashCli(f, 'rollback', down)
  await finish(f, 'rollback')
  await assertRolledBack(f, ref)
  await assertClean(f.t)
}

/** Crash points run three at a time (each in its own database). */
async function pool<T>(items: readonly T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: width }, async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i]!, i)
  }))
}

test(`kill -9 at ${applyPoints.length} points of apply and ${rollbackPoints.length} of rollback: the re-run finishes, no row lost, schema and data equal a clean run's`, async () => {
  const pairs = Array.from({ length: Math.max(applyPoints.length, rollbackPoints.length) }, (_, i) => ({ up: applyPoints[i % applyPoints.length]!, down: rollbackPoints[i] }))
  const survived: string[] = []
  await pool(pairs, 3, async ({ up, down }, i) => {
    await crashPair(`crash_${i}`, up, down)
    survived.push(`apply@${up}`, ...(down === undefined ? [] : [`rollback@${down}`]))
  })
  assert.equal(survived.length, pairs.length + pairs.filter((p) => p.down !== undefined).length, 'every crash point was survived')
  console.log(`# crash points survived: ${survived.length} (${survived.join(', ')})`)
})
