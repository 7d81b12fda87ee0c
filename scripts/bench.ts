/**
 * `npm run bench`: run every `bench/*.bench.ts` (or those whose names contain an argument), print one
 * table of their measures (MISSED beside a goal a measure misses), write bench/results.json and the table
 * of the latest figures with the machine into bench/README.md, and exit 1 when a goal is missed or a
 * benchmark fails. A run of some benchmarks replaces only their rows.
 *
 *   npm run bench                               # all benchmarks, on the test server (see src/db/test-server.ts)
 *   npm run bench -- introspect                 # only bench/introspect.bench.ts
 *   npm run bench -- --skip runtime-context     # all but bench/runtime-context.bench.ts
 *   npm run bench -- --full                     # the large sizes too (up to 5M rows; quick mode: < 5 min)
 *   npm run bench -- --render                   # run nothing: rewrite bench/README.md from results.json and bench/causes.md
 *   TENANTIZE_TEST_PG=embedded npm run bench    # on embedded PostgreSQL 18
 *
 * Timings live here, never in tests.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import type { Bench, BenchMeasure } from '../bench/result.js'

const dir = new URL('../bench/', import.meta.url)
const args = process.argv.slice(2)
const full = args.includes('--full')
const render = args.includes('--render')
const skips = args.flatMap((a, i) => (args[i - 1] === '--skip' ? [a] : a.startsWith('--skip=') ? [a.slice('--skip='.length)] : []))
const filters = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--skip')
const files = (await readdir(dir))
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .filter((f) => !skips.some((x) => f.includes(x)))
  .filter(() => !render)
  .sort()
if (files.length === 0 && !render) {
  console.error(`no benchmark matches ${filters.join(' ')}`)
  process.exit(2)
}

interface Row { bench: string; measure: string; value: string; limit: string; status: string; note: string }
const rows: Row[] = []
let failed = false

const format = (m: BenchMeasure, value: number): string =>
  `${value.toLocaleString('en', { maximumFractionDigits: m.unit === '×' ? 2 : m.unit === 'ms' ? 1 : 0, minimumFractionDigits: m.unit === '×' ? 2 : 0 })} ${m.unit}`

for (const file of files) {
  const bench = file.replace(/\.bench\.ts$/, '')
  console.error(`# running ${bench}${full ? ' (full)' : ''}…`)
  try {
    const mod = (await import(new URL(file, dir).href)) as { default?: Bench }
    if (typeof mod.default !== 'function') throw new Error(`${file} has no default export function`)
    for (const m of await mod.default({ full })) {
      const over = (m.limit !== undefined && m.value > m.limit) || (m.min !== undefined && m.value < m.min)
      failed ||= over
      const goal = m.limit !== undefined ? `≤ ${format(m, m.limit)}` : m.min !== undefined ? `≥ ${format(m, m.min)}` : ''
      rows.push({
        bench, measure: m.name, value: format(m, m.value),
        limit: goal,
        status: goal === '' ? '' : over ? 'MISSED' : 'ok',
        note: m.note ?? '',
      })
    }
  } catch (error) {
    failed = true
    rows.push({ bench, measure: 'error', value: '', limit: '', status: 'ERROR', note: error instanceof Error ? error.message : String(error) })
  }
}

const columns: (keyof Row)[] = ['bench', 'measure', 'value', 'limit', 'status', 'note']
const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)))
const line = (cells: string[]): string => cells.map((cell, i) => (i === 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()
console.log(line(columns))
console.log(line(widths.map((w) => '-'.repeat(w))))
for (const r of rows) console.log(line(columns.map((c) => r[c])))

// The latest figures: this run's rows replace those of the benchmarks it ran.
const resultsFile = new URL('../bench/results.json', import.meta.url)
const machine = {
  cpus: `${cpus().length} × ${cpus()[0]?.model.trim() ?? '?'}`,
  memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
  loadAverage: loadavg().map((l) => l.toFixed(1)).join(' '),
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
}
interface Stored { bench: string; measure: string; value: string; limit: string; status: string; note: string; ranAt: string; mode?: 'quick' | 'full'; machine: typeof machine }
let stored: Stored[] = []
try {
  stored = (JSON.parse(await readFile(resultsFile, 'utf8')) as { results: Stored[] }).results
} catch {
  // first run
}
const ranAt = new Date().toISOString()
const ran = new Set(files.map((f) => f.replace(/\.bench\.ts$/, '')))
const results = [...stored.filter((r) => !ran.has(r.bench)), ...rows.map((r) => ({ ...r, ranAt, mode: full ? 'full' as const : 'quick' as const, machine }))].sort((x, y) => (x.bench < y.bench ? -1 : x.bench > y.bench ? 1 : 0))
await writeFile(resultsFile, `${JSON.stringify({ results }, null, 2)}\n`)
const cell = (text: string): string => text.replaceAll('|', '\\|')
// Why a goal is missed (or what a number means), written by hand: bench/causes.md, copied in below the table.
let causes = ''
try {
  causes = (await readFile(new URL('../bench/causes.md', import.meta.url), 'utf8')).trim()
} catch {
  // none written
}
const machines = [...new Map(results.map((r) => [`${r.bench}`, `${r.bench}: ${r.ranAt.slice(0, 16).replace('T', ' ')} UTC${r.mode === undefined ? '' : ` (${r.mode})`}, ${r.machine.cpus}, ${r.machine.memory}, load ${r.machine.loadAverage}, Node ${r.machine.node}`])).values()]
await writeFile(new URL('../bench/README.md', import.meta.url), `# Benchmarks — latest figures

Written by \`npm run bench\` (scripts/bench.ts) from bench/results.json; do not edit by hand. A goal a
measure misses is marked MISSED. Timings depend on the machine and on what else runs on it: the machines
below were shared with other work, so small differences are noise.

| bench | measure | value | goal | status | note |
| --- | --- | ---: | --- | --- | --- |
${results.map((r) => `| ${[r.bench, r.measure, r.value, r.limit, r.status, r.note].map(cell).join(' | ')} |`).join('\n')}

Runs:
${machines.map((m) => `- ${m}`).join('\n')}
${causes === '' ? '' : `\n${causes}\n`}`)
process.exit(failed ? 1 : 0)
