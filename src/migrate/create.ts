import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { MIGRATION_FILE, NO_TRANSACTION_HEADER } from './files.js'

export interface CreateMigrationOptions {
  readonly dir: string
  /** Lower-case words: letters, digits, `_` or `-`. */
  readonly name: string
  /** Start the up and down files with `-- tenantize:no-transaction`. */
  readonly noTransaction?: boolean
}

/** Write the next-numbered pair `NNNN_name.up.sql` / `NNNN_name.down.sql`; creates the directory if needed. */
export async function createMigration(options: CreateMigrationOptions): Promise<{ up: string; down: string; name: string }> {
  const label = options.name.trim().toLowerCase().replace(/[\s-]+/g, '_')
  if (!/^[a-z0-9][a-z0-9_]*$/.test(label)) {
    throw new TenantizeError(ErrorCodes.USAGE, 'a migration name may contain only letters, digits and _', { object: options.name, fix: 'e.g. tenantize migrate create add_org_id' })
  }
  await mkdir(options.dir, { recursive: true })
  let next = 1
  for (const entry of await readdir(options.dir)) {
    const m = MIGRATION_FILE.exec(entry)
    if (m !== null) next = Math.max(next, Number(m[1]) + 1)
  }
  const name = `${String(next).padStart(4, '0')}_${label}`
  const header = options.noTransaction === true ? `${NO_TRANSACTION_HEADER}\n` : ''
  const up = join(options.dir, `${name}.up.sql`)
  const down = join(options.dir, `${name}.down.sql`)
  try {
    await writeFile(up, `${header}-- ${name}: up\n\n`, { flag: 'wx' })
    await writeFile(down, `${header}-- ${name}: down (reverses the up file)\n\n`, { flag: 'wx' })
  } catch (error) {
    throw new TenantizeError(ErrorCodes.EXISTS, 'file already exists', { object: (error as { path?: string }).path ?? up, fix: 'choose another name', cause: error })
  }
  return { up, down, name }
}
