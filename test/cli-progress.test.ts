import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { MigrateEvent } from '../src/migrate/index.js'
import { convertRenderer } from '../src/cli/progress.js'

// Issue #13 item 7: apply / rollback progress as people read it. Without a terminal one line per step and
// the phase named; on a terminal one live line per phase (step n/N, the step and its table, rows/s, ETA)
// that ends as the phase's summary. Unit-level: the renderer fed the runner's events, written to a fake stream.

function run(events: readonly MigrateEvent[], stdout: { isTTY?: boolean; columns?: number }, json = false): string {
  let out = ''
  const io = { stdout: { ...stdout, write: (s: string) => (out += s) }, stderr: { write: () => true }, env: {} }
  const render = convertRenderer(io, json)
  for (const e of events) render(e)
  return out
}

/** What a terminal shows once the output is written: `\r` goes back to the line's start, `ESC[K` clears the rest. */
function screen(raw: string): string[] {
  const lines: string[] = ['']
  let col = 0
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!
    const row = lines.length - 1
    if (raw.startsWith('\x1b[K', i)) {
      lines[row] = lines[row]!.slice(0, col)
      i += 2
    } else if (c === '\r') col = 0
    else if (c === '\n') {
      lines.push('')
      col = 0
    } else {
      const text = lines[row]!
      lines[row] = text.slice(0, col) + c + text.slice(col + 1)
      col += 1
    }
  }
  return lines
}

const up = 'up' as const
const conversion: MigrateEvent[] = [
  { event: 'plan', direction: up, migrations: ['0001_helpers', '0002_backfill:public.notes', '0003_app-role', '0004_rls:public.notes'], dryRun: false },
  { event: 'start', direction: up, migration: '0001_helpers', index: 1, total: 4, noTransaction: false, phase: 'schema', table: null },
  { event: 'finish', direction: up, migration: '0001_helpers', index: 1, total: 4, durationMs: 12, phase: 'schema', table: null },
  { event: 'start', direction: up, migration: '0002_backfill:public.notes', index: 2, total: 4, noTransaction: true, phase: 'schema', table: 'public.notes' },
  { event: 'progress', migration: '0002_backfill:public.notes', phase: 'schema', table: 'public.notes', done: 1200, total: 3000, rowsPerSecond: 4000.4, etaSeconds: 0.45 },
  { event: 'progress', migration: '0002_backfill:public.notes', phase: 'schema', table: 'public.notes', done: 3000, total: 3000, rowsPerSecond: 4100, etaSeconds: 0 },
  { event: 'finish', direction: up, migration: '0002_backfill:public.notes', index: 2, total: 4, durationMs: 1500, phase: 'schema', table: 'public.notes' },
  { event: 'start', direction: up, migration: '0003_app-role', index: 3, total: 4, noTransaction: false, phase: 'enforce', table: null },
  { event: 'retry', direction: up, migration: '0003_app-role', attempt: 2, delayMs: 500, blockers: [42] },
  { event: 'finish', direction: up, migration: '0003_app-role', index: 3, total: 4, durationMs: 5, phase: 'enforce', table: null },
  { event: 'start', direction: up, migration: '0004_rls:public.notes', index: 4, total: 4, noTransaction: false, phase: 'enforce', table: 'public.notes' },
  { event: 'finish', direction: up, migration: '0004_rls:public.notes', index: 4, total: 4, durationMs: 20, phase: 'enforce', table: 'public.notes' },
  { event: 'done', direction: up, migrations: ['0001_helpers', '0002_backfill:public.notes', '0003_app-role', '0004_rls:public.notes'], durationMs: 2040, dryRun: false },
]

test('without a terminal: the phase named where it begins and ends, one line per step, no progress or started lines, then the summary', () => {
  assert.equal(run(conversion, {}), [
    'Running 4 step(s) up (↑ 0001_helpers … 0004_rls:public.notes)',
    '▸ schema phase ↑',
    '[1/4] ↑ 0001_helpers (12 ms)',
    '[2/4] ↑ 0002_backfill:public.notes (1.5 s)',
    '✔ schema phase: 2 step(s) ↑ in 1.5 s',
    '▸ enforce phase ↑',
    '  ⟳ 0003_app-role: lock timeout, try 2 in 500 ms (blocked by pid 42)',
    '[3/4] ↑ 0003_app-role (5 ms)',
    '[4/4] ↑ 0004_rls:public.notes (20 ms)',
    '✔ enforce phase: 2 step(s) ↑ in 25 ms',
    'Done: 4 step(s) up in 2.0 s.',
    '',
  ].join('\n'))
})

test('on a terminal: one live line per phase (step n/N, the step and its table, rows/s, ETA), rewritten in place, ending as its summary', () => {
  const raw = run(conversion, { isTTY: true, columns: 200 })
  const live = (text: string): string => `\r${text}\x1b[K`
  assert.equal(raw, [
    'Running 4 step(s) up (↑ 0001_helpers … 0004_rls:public.notes)\n',
    live('  schema phase: step 1/4 ↑ 0001_helpers …'),
    live('  schema phase: step 1/4 ↑ 0001_helpers ✔ (12 ms)'),
    live('  schema phase: step 2/4 ↑ 0002_backfill:public.notes …'),
    live('  schema phase: step 2/4 ↑ 0002_backfill:public.notes: 1,200/3,000 rows, 4,000 rows/s, ETA 1 s'),
    live('  schema phase: step 2/4 ↑ 0002_backfill:public.notes: 3,000/3,000 rows, 4,100 rows/s, ETA 0 s'),
    live('  schema phase: step 2/4 ↑ 0002_backfill:public.notes ✔ (1.5 s)'),
    '\r\x1b[K✔ schema phase: 2 step(s) ↑ in 1.5 s\n',
    live('  enforce phase: step 3/4 ↑ 0003_app-role …'),
    '\r\x1b[K  ⟳ 0003_app-role: lock timeout, try 2 in 500 ms (blocked by pid 42)\n',
    live('  enforce phase: step 3/4 ↑ 0003_app-role ✔ (5 ms)'),
    live('  enforce phase: step 4/4 ↑ 0004_rls:public.notes …'),
    live('  enforce phase: step 4/4 ↑ 0004_rls:public.notes ✔ (20 ms)'),
    '\r\x1b[K✔ enforce phase: 2 step(s) ↑ in 25 ms\n',
    'Done: 4 step(s) up in 2.0 s.\n',
  ].join(''))
  // What stays on the screen: the plan line, one line per phase, the retry, the summary.
  assert.deepEqual(screen(raw), [
    'Running 4 step(s) up (↑ 0001_helpers … 0004_rls:public.notes)',
    '✔ schema phase: 2 step(s) ↑ in 1.5 s',
    '  ⟳ 0003_app-role: lock timeout, try 2 in 500 ms (blocked by pid 42)',
    '✔ enforce phase: 2 step(s) ↑ in 25 ms',
    'Done: 4 step(s) up in 2.0 s.',
    '',
  ])
})

test('on a narrow terminal the live line is cut to fit one row (a wrapped line could not be rewritten)', () => {
  const raw = run(conversion.slice(0, 5), { isTTY: true, columns: 40 })
  const rows = raw.split('\r').map((s) => (s.endsWith('\x1b[K') ? s.slice(0, -3) : s)).filter((s) => s.startsWith('  schema'))
  assert.deepEqual(rows.slice(-2), ['  schema phase: step 2/4 ↑ 0002_backfi…', '  schema phase: step 2/4 ↑ 0002_backfi…'])
  assert.ok(rows.every((r) => r.length < 40))
})

test('rollback: phases in reverse, arrows down; a failure ends the live line with its own line', () => {
  const down = 'down' as const
  const events: MigrateEvent[] = [
    { event: 'plan', direction: down, migrations: ['0004_rls:public.notes', '0001_helpers'], dryRun: false },
    { event: 'start', direction: down, migration: '0004_rls:public.notes', index: 1, total: 2, noTransaction: false, phase: 'enforce', table: 'public.notes' },
    { event: 'finish', direction: down, migration: '0004_rls:public.notes', index: 1, total: 2, durationMs: 7, phase: 'enforce', table: 'public.notes' },
    { event: 'start', direction: down, migration: '0001_helpers', index: 2, total: 2, noTransaction: false, phase: 'schema', table: null },
    { event: 'fail', direction: down, migration: '0001_helpers', error: 'cannot drop schema', sqlstate: '2BP01' },
  ]
  assert.equal(run(events, {}), [
    'Running 2 step(s) down (↓ 0004_rls:public.notes … 0001_helpers)',
    '▸ enforce phase ↓',
    '[1/2] ↓ 0004_rls:public.notes (7 ms)',
    '✔ enforce phase: 1 step(s) ↓ in 7 ms',
    '▸ schema phase ↓',
    '✖ 0001_helpers failed (SQLSTATE 2BP01)',
    '',
  ].join('\n'))
  assert.deepEqual(screen(run(events, { isTTY: true })), [
    'Running 2 step(s) down (↓ 0004_rls:public.notes … 0001_helpers)',
    '✔ enforce phase: 1 step(s) ↓ in 7 ms',
    '✖ 0001_helpers failed (SQLSTATE 2BP01)',
    '',
  ])
})

test('units without a phase (migration files) are shown as steps; an interruption says where it stopped', () => {
  const events: MigrateEvent[] = [
    { event: 'plan', direction: up, migrations: ['0001_a', '0002_b'], dryRun: false },
    { event: 'start', direction: up, migration: '0001_a', index: 1, total: 2, noTransaction: false },
    { event: 'finish', direction: up, migration: '0001_a', index: 1, total: 2, durationMs: 3 },
    { event: 'interrupt', direction: up, migration: '0002_b', signal: 'SIGINT', done: 1, total: 2 },
  ]
  assert.equal(run(events, {}), 'Running 2 step(s) up (↑ 0001_a … 0002_b)\n▸ steps ↑\n[1/2] ↑ 0001_a (3 ms)\n■ stopped by SIGINT at 0002_b (1 of 2 done in this run)\n')
  assert.deepEqual(screen(run(events, { isTTY: true })), ['Running 2 step(s) up (↑ 0001_a … 0002_b)', '■ stopped by SIGINT at 0002_b (1 of 2 done in this run)', ''])
})

test('--json: one event per line, carrying the phase and table of each step', () => {
  const lines = run(conversion.slice(1, 5), {}, true).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.deepEqual(lines.map((e) => [e['event'], e['phase'], e['table']]), [
    ['start', 'schema', null],
    ['finish', 'schema', null],
    ['start', 'schema', 'public.notes'],
    ['progress', 'schema', 'public.notes'],
  ])
})
