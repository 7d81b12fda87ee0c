import { Argument, type Command } from 'commander'
import { z } from 'zod'
import { addBlock, BLOCK_DEFAULTS, BLOCKS, nameProblem, roleProblem, tableProblem } from '../../blocks/index.js'
import { line, type CliIO } from '../io.js'

/** The app role init, plan and apply use when the config names none. */
const DEFAULT_APP_ROLE = 'tenantize_app'
import { parseOptions } from '../options.js'

const named = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const message = problem(value)
    if (message !== undefined) ctx.addIssue({ code: 'custom', message })
  })

const addSchema = z.object({
  block: z.enum(BLOCKS),
  dir: z.string().min(1).default('migrations'),
  tenantTable: named(tableProblem).default(BLOCK_DEFAULTS.tenantTable),
  tenantColumn: named(nameProblem).default(BLOCK_DEFAULTS.tenantColumn),
  appRole: named(roleProblem).default(DEFAULT_APP_ROLE),
  json: z.boolean().default(false),
})

/** The options of `tenantize add`, as the core function takes them. */
export type AddCommandOptions = z.output<typeof addSchema>

const WHAT: Readonly<Record<(typeof BLOCKS)[number], string>> = {
  rbac: 'memberships: which user has which role in which tenant (permission matrix: createRbac in tenantize/runtime)',
  'api-keys': 'api_keys: prefix + hash, scopes, expiry, revocation, usage (createApiKeyStore in tenantize/runtime)',
  audit: 'audit_log with a row trigger function and a retention function (createAuditLog in tenantize/runtime)',
}

/** `tenantize add rbac|api-keys|audit`. Returns the exit code through `setExit`. */
export function registerAdd(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('add')
    .description('write the next-numbered migration for a tenant-scoped, RLS-protected building block: rbac, api-keys or audit')
    .addArgument(new Argument('<block>', 'the block to add').choices(BLOCKS))
    .option('--dir <path>', 'migrations directory', 'migrations')
    .option('--tenant-table <name>', 'the tenant table ([schema.]table); the new tables go in its schema', BLOCK_DEFAULTS.tenantTable)
    .option('--tenant-column <name>', 'the tenant key column (uuid) of the new tables', BLOCK_DEFAULTS.tenantColumn)
    .option('--app-role <role>', 'the application role the policies and grants are for (must exist when the migration runs); the same default as init and apply', DEFAULT_APP_ROLE)
    .option('--json', 'JSON output')
    .action(async (block: string, raw: Record<string, unknown>) => {
      const o = parseOptions(addSchema, { ...raw, block })
      const added = await addBlock({ block: o.block, dir: o.dir, tenantTable: o.tenantTable, tenantColumn: o.tenantColumn, appRole: o.appRole })
      if (o.json) {
        line(io.stdout, JSON.stringify(added))
      } else {
        line(io.stdout, `Created ${added.up}\nCreated ${added.down}`)
        line(io.stdout, `Adds ${WHAT[added.block]}.`)
        line(io.stdout, 'Apply it with: tenantize migrate up')
      }
      setExit(0)
    })
}
