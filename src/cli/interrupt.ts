import { line, type CliIO } from './io.js'

/** Exit status of a process stopped by a signal, as shells report it: 128 + the signal number. */
export const SIGNAL_EXIT: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = Object.freeze({ SIGINT: 130, SIGTERM: 143 })

/**
 * Run `fn` with an AbortSignal that the first SIGINT / SIGTERM aborts (reason: the signal's name), so a
 * runner stops after its current statement or batch and says how to resume. A second signal ends the
 * process at once with 130 / 143. Outside `fn` the process's usual signal handling is back.
 */
export async function withInterrupts<T>(io: CliIO, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const onSignal = (name: 'SIGINT' | 'SIGTERM'): void => {
    if (controller.signal.aborted) {
      line(io.stderr, `${name} again: aborting ${what} at once; the statement running now is cancelled by the server and not recorded (run the command again to resume)`)
      process.exit(SIGNAL_EXIT[name])
    }
    controller.abort(name)
    line(io.stderr, `${name}: stopping ${what} after the current statement or batch… (${name === 'SIGINT' ? 'Ctrl-C' : 'send it'} again to abort at once)`)
  }
  const onInt = (): void => onSignal('SIGINT')
  const onTerm = (): void => onSignal('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  try {
    return await fn(controller.signal)
  } finally {
    process.off('SIGINT', onInt)
    process.off('SIGTERM', onTerm)
  }
}
