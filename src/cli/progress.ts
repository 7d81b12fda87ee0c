import type { MigrateEvent } from '../migrate/index.js'
import { eventRenderer } from './commands/migrate.js'
import { line, type CliIO } from './io.js'

const seconds = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`)
const arrow = (d: string): string => (d === 'up' ? '↑' : '↓')
const count = (n: number): string => Math.round(n).toLocaleString('en-US')

/** A run of consecutive steps of one phase (`schema`, `enforce`; '' for units without one). */
interface PhaseRun {
  readonly phase: string
  readonly direction: string
  steps: number
  durationMs: number
}

const phaseName = (phase: string): string => (phase === '' ? 'steps' : `${phase} phase`)

/**
 * The runner's events for apply / rollback as people read them (JSON lines with --json).
 *
 * Without a terminal: a line when a phase begins, one line per step (`[n/N] ↑ name (time)`, no "started"
 * lines), a line when the phase ends (its steps and time), then the summary. On a terminal: one live line per
 * phase, rewritten in place (step n/N, the step and its table, rows/s and ETA of a backfill), which becomes
 * the phase's summary line when the phase ends; then the summary. A dry run prints each step's SQL under one
 * comment naming it. Pre-flight, backup, retries, repairs, failures and interruptions get lines of their own.
 */
export function convertRenderer(io: CliIO, json: boolean): (e: MigrateEvent) => void {
  const render = eventRenderer(io, json)
  if (json) return render
  const tty = io.stdout.isTTY === true
  let live = false
  let run: PhaseRun | undefined
  let current = { index: 0, total: 0, direction: 'up', migration: '' }
  const own = (text: string): void => {
    line(io.stdout, `${live ? '\r\x1b[K' : ''}${text}`)
    live = false
  }
  // One terminal row: a wrapped line could not be rewritten in place.
  const fit = (text: string): string => {
    const width = io.stdout.columns
    return width !== undefined && width > 1 && text.length >= width ? `${text.slice(0, width - 2)}…` : text
  }
  const status = (text: string): void => {
    io.stdout.write(`\r${fit(text)}\x1b[K`)
    live = true
  }
  const stepText = (): string => `  ${phaseName(run?.phase ?? '')}: step ${current.index}/${current.total} ${arrow(current.direction)} ${current.migration}`
  const endPhase = (): void => {
    if (run === undefined) return
    own(`✔ ${phaseName(run.phase)}: ${run.steps} step(s) ${arrow(run.direction)} in ${seconds(run.durationMs)}`)
    run = undefined
  }
  return (e) => {
    switch (e.event) {
      case 'plan':
        own(e.migrations.length === 0 ? 'Nothing to run: every step is applied.' : `${e.dryRun ? 'Would run' : 'Running'} ${e.migrations.length} step(s) ${e.direction}${e.dryRun ? '' : ` (${arrow(e.direction)} ${e.migrations[0]} … ${e.migrations.at(-1)})`}`)
        return
      case 'would-run':
        line(io.stdout, `\n-- ${arrow(e.direction)} ${e.migration}${e.noTransaction ? ' (no transaction: statement by statement)' : ' (one transaction)'}`)
        for (const st of e.statements) line(io.stdout, `${st.sql};`)
        return
      case 'start': {
        const phase = e.phase ?? ''
        if (run !== undefined && run.phase !== phase) endPhase()
        if (run === undefined) {
          run = { phase, direction: e.direction, steps: 0, durationMs: 0 }
          if (!tty) line(io.stdout, `▸ ${phaseName(phase)} ${arrow(e.direction)}`)
        }
        current = { index: e.index, total: e.total, direction: e.direction, migration: e.migration }
        if (tty) status(`${stepText()} …`)
        return
      }
      case 'finish':
        if (run !== undefined) {
          run.steps += 1
          run.durationMs += e.durationMs
        }
        if (tty) status(`${stepText()} ✔ (${seconds(e.durationMs)})`)
        else line(io.stdout, `[${e.index}/${e.total}] ${arrow(e.direction)} ${e.migration} (${seconds(e.durationMs)})`)
        return
      case 'progress': {
        if (!tty) return
        const eta = e.etaSeconds === null ? '' : `, ETA ${Math.ceil(e.etaSeconds)} s`
        status(`${stepText()}: ${count(e.done)}/${count(e.total)} rows, ${count(e.rowsPerSecond)} rows/s${eta}`)
        return
      }
      case 'repair':
        own(`  ⟳ ${e.migration}: ${e.action === 'drop' ? 'dropped' : 'rebuilt'} INVALID index ${e.index} left by an interrupted build${e.action === 'drop' ? '; building it again' : ''}`)
        return
      case 'interrupt':
        run = undefined
        own(`■ stopped by ${e.signal} at ${e.migration} (${e.done} of ${e.total} done in this run)`)
        return
      case 'done':
        endPhase()
        if (e.migrations.length > 0) own(e.dryRun ? 'Dry run: nothing was changed.' : `Done: ${e.migrations.length} step(s) ${e.direction} in ${seconds(e.durationMs)}.`)
        else if (live) own('')
        return
      case 'retry':
        own(`  ⟳ ${e.migration}: lock timeout, try ${e.attempt} in ${seconds(e.delayMs)}${e.blockers.length > 0 ? ` (blocked by pid ${e.blockers.join(', ')})` : ''}`)
        return
      case 'fail':
        run = undefined
        own(`✖ ${e.migration} failed${e.sqlstate === undefined ? '' : ` (SQLSTATE ${e.sqlstate})`}`)
        return
      default:
        if (live) {
          io.stdout.write('\r\x1b[K')
          live = false
        }
        render(e)
    }
  }
}
