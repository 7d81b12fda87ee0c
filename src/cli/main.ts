import { Command, CommanderError } from 'commander'
import { ErrorCodes, TenantizeError, fromPgServerError, isPgServerError } from '../errors.js'
import { packageVersion } from '../package-info.js'
import { registerAdd } from './commands/add.js'
import { registerConvert } from './commands/convert.js'
import { registerDemo } from './commands/demo.js'
import { registerDistribute } from './commands/distribute.js'
import { registerDoctor } from './commands/doctor.js'
import { registerInspect } from './commands/inspect.js'
import { registerMigrate } from './commands/migrate.js'
import { registerTenant } from './commands/tenant.js'
import { registerVerify } from './commands/verify.js'
import { SIGNAL_EXIT } from './interrupt.js'
import { line, processIO, type CliIO } from './io.js'

export const EXIT = Object.freeze({ OK: 0, FINDINGS: 1, ERROR: 2 })

/** The commander program with every command registered. */
export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command()
    .name('tenantize')
    .description('Take a live single-tenant PostgreSQL database to multi-tenant with row-level security, online and reversibly, and prove tenant isolation.')
    .version(packageVersion())
    .option('--verbose', 'print stack traces and server details on errors')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Exit codes:
  0  ok
  1  findings or failed checks (e.g. migrate status found changed or missing migrations)
  2  usage, configuration or connection error, or a failed migration
  130, 143  apply / rollback stopped by SIGINT (Ctrl-C) / SIGTERM after the current statement or batch;
            run the command again to resume (a second signal aborts at once)

The database URL comes from --db or DATABASE_URL; its password is never printed.`,
    )
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
  registerConvert(program, io, setExit)
  registerVerify(program, io, setExit)
  registerDoctor(program, io, setExit)
  registerMigrate(program, io, setExit)
  registerInspect(program, io, setExit)
  registerTenant(program, io, setExit)
  registerDistribute(program, io, setExit)
  registerAdd(program, io, setExit)
  registerDemo(program, io, setExit)
  for (const cmd of program.commands) {
    cmd.exitOverride()
    for (const sub of cmd.commands) sub.exitOverride()
  }
  return program
}

/**
 * Print a known error as one line per problem; a PostgreSQL error that reached here gets the code of its
 * SQLSTATE class; anything else is a bug and gets a stack with --verbose.
 */
export function reportError(caught: unknown, io: CliIO, verbose: boolean): number {
  const error = isPgServerError(caught) ? fromPgServerError(caught) : caught
  if (error instanceof TenantizeError) {
    for (const l of error.toLines()) line(io.stderr, l)
    if (verbose && error.cause !== undefined) line(io.stderr, String((error.cause as Error).stack ?? error.cause))
    const signal = error.code === ErrorCodes.INTERRUPTED ? error.details?.['signal'] : undefined
    return signal === 'SIGINT' || signal === 'SIGTERM' ? SIGNAL_EXIT[signal] : EXIT.ERROR
  }
  const message = error instanceof Error ? error.message : String(error)
  line(io.stderr, `TZ_INTERNAL unexpected error: ${message}${verbose ? '' : ' (run with --verbose for the stack trace; please report it)'}`)
  if (verbose && error instanceof Error && error.stack !== undefined) line(io.stderr, error.stack)
  return EXIT.ERROR
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let code: number = EXIT.OK
  const program = buildProgram(io, (c) => {
    code = c
  })
  const verbose = argv.includes('--verbose')
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return code
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.OK
      if (error.code === 'commander.executeSubCommandAsync') return EXIT.OK
      // commander already printed its message; add our code so scripts can match it.
      line(io.stderr, `${ErrorCodes.USAGE} ${error.message.replace(/^error: /, '')}`)
      return EXIT.ERROR
    }
    return reportError(error, io, verbose)
  }
}
