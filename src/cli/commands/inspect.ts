import type { Command } from 'commander'
import { z } from 'zod'
import { introspect, type Catalog } from '../../catalog/index.js'
import { withClient } from '../../db/connect.js'
import { resolveDatabaseUrl } from '../../db/url.js'
import { line, table, type CliIO } from '../io.js'
import { parseOptions } from '../options.js'

const schema = z.object({
  db: z.string().optional(),
  schema: z.array(z.string().min(1)).optional(),
  json: z.boolean().default(false),
})

/** One line per table: kind, estimated rows, RLS state, policy count. */
function renderSummary(io: CliIO, catalog: Catalog): void {
  const s = catalog.server
  line(io.stdout, `PostgreSQL ${s.version} · database ${s.database} · as ${s.currentUser}`)
  line(io.stdout, `${catalog.schemas.length} schema(s), ${catalog.tables.length} table(s), ${catalog.views.length} view(s), ${catalog.routines.length} function(s), ${catalog.sequences.length} sequence(s), ${catalog.roles.length} role(s)`)
  if (catalog.tables.length === 0) return
  const rows = catalog.tables.map((t) => [
    `${t.schema}.${t.name}`,
    t.kind,
    t.estimatedRows === null ? '?' : String(Math.round(t.estimatedRows)),
    t.rowSecurity ? (t.forceRowSecurity ? 'enabled+forced' : 'enabled') : 'off',
    String(t.policies.length),
  ])
  const head = ['table', 'kind', 'rows (est.)', 'RLS', 'policies']
  line(io.stdout)
  for (const l of table(head, rows)) line(io.stdout, l)
}

/** `tenantize inspect`: the catalog snapshot the planner and verify work from. */
export function registerInspect(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('inspect')
    .description('read the database catalog (tables, keys, policies, views, functions, grants, roles) in one consistent snapshot and print a summary, or all of it with --json')
    .option('--db <url>', 'database URL (default: $DATABASE_URL)')
    .option('--schema <name...>', 'only these schemas (default: all but the system ones)')
    .option('--json', 'the whole snapshot as JSON')
    .action(async (raw: unknown) => {
      const o = parseOptions(schema, raw)
      const url = resolveDatabaseUrl(o.db, io.env)
      const catalog = await withClient(url, (client) => introspect(client, o.schema === undefined ? {} : { schemas: o.schema }), { applicationName: 'tenantize inspect' })
      if (o.json) line(io.stdout, JSON.stringify(catalog, null, 2))
      else renderSummary(io, catalog)
      setExit(0)
    })
}
