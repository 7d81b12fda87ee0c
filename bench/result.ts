/**
 * What a benchmark returns. Each `bench/<name>.bench.ts` default-exports a {@link Bench}; `npm run bench`
 * (scripts/bench.ts) runs them all, prints one table and exits non-zero when a measure exceeds its limit.
 */

export interface BenchMeasure {
  /** What was measured, e.g. `introspect 5,000 tables (median of 3)`. */
  readonly name: string
  readonly value: number
  /** `ms`, `queries`, `tables`, `×` … */
  readonly unit: string
  /** The goal is missed when `value` is above this. */
  readonly limit?: number
  /** The goal is missed when `value` is below this (throughput ratios). */
  readonly min?: number
  /** Context shown beside the value (server version, how the baseline was taken). */
  readonly note?: string
}

/** How `npm run bench` runs a benchmark. */
export interface BenchOptions {
  /** `npm run bench -- --full`: the large sizes too (up to 5M rows); quick mode stays under 5 minutes in all. */
  readonly full: boolean
}

export type Bench = (options: BenchOptions) => Promise<readonly BenchMeasure[]>

/** The value at quantile `q` (0…1) of a non-empty list, nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new TypeError('quantile of nothing')
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/** Peak resident memory of this process so far, MiB (`process.resourceUsage().maxRSS`). */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024
}

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new TypeError('median of nothing')
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Run `fn` `runs` times; the wall-clock milliseconds of each run and the last result. */
export async function timed<T>(runs: number, fn: () => Promise<T>): Promise<{ ms: number[]; result: T }> {
  const ms: number[] = []
  let result: T | undefined
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint()
    result = await fn()
    ms.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  return { ms, result: result as T }
}
