/**
 * `npm run bench`: run every `bench/*.bench.ts` (or those whose names contain an argument), print one
 * table of their measures, and exit 1 when a measure exceeds its limit or a benchmark fails.
 *
 *   npm run bench                               # all benchmarks, on the test server (see src/db/test-server.ts)
 *   npm run bench -- introspect                 # only bench/introspect.bench.ts
 *   TENANTIZE_TEST_PG=embedded npm run bench    # on embedded PostgreSQL 18
 *
 * Timings live here, never in tests.
 */
import { readdir } from 'node:fs/promises'
import type { Bench, BenchMeasure } from '../bench/result.js'

const dir = new URL('../bench/', import.meta.url)
const filters = process.argv.slice(2)
const files = (await readdir(dir))
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(' ')}`)
  process.exit(2)
}

interface Row { bench: string; measure: string; value: string; limit: string; status: string; note: string }
const rows: Row[] = []
let failed = false

const format = (m: BenchMeasure, value: number): string =>
  `${value.toLocaleString('en', { maximumFractionDigits: m.unit === 'ms' || m.unit === '×' ? 1 : 0 })} ${m.unit}`

for (const file of files) {
  const bench = file.replace(/\.bench\.ts$/, '')
  console.error(`# running ${bench}…`)
  try {
    const mod = (await import(new URL(file, dir).href)) as { default?: Bench }
    if (typeof mod.default !== 'function') throw new Error(`${file} has no default export function`)
    for (const m of await mod.default()) {
      const over = m.limit !== undefined && m.value > m.limit
      failed ||= over
      rows.push({
        bench, measure: m.name, value: format(m, m.value),
        limit: m.limit === undefined ? '' : `≤ ${format(m, m.limit)}`,
        status: m.limit === undefined ? '' : over ? 'FAIL' : 'ok',
        note: m.note ?? '',
      })
    }
  } catch (error) {
    failed = true
    rows.push({ bench, measure: 'error', value: '', limit: '', status: 'FAIL', note: error instanceof Error ? error.message : String(error) })
  }
}

const columns: (keyof Row)[] = ['bench', 'measure', 'value', 'limit', 'status', 'note']
const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)))
const line = (cells: string[]): string => cells.map((cell, i) => (i === 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()
console.log(line(columns))
console.log(line(widths.map((w) => '-'.repeat(w))))
for (const r of rows) console.log(line(columns.map((c) => r[c])))
process.exit(failed ? 1 : 0)
