import { createHash } from 'node:crypto'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'

/** `NNNN_name.up.sql` / `NNNN_name.down.sql`: at least four digits, then a lower-case name. */
export const MIGRATION_FILE = /^(\d{4,})_([a-z0-9][a-z0-9_-]*)\.(up|down)\.sql$/

/** The header line that makes a file run statement by statement outside a transaction. */
export const NO_TRANSACTION_HEADER = '-- tenantize:no-transaction'

export interface MigrationFile {
  readonly path: string
  readonly sql: string
  /** `-- tenantize:no-transaction` appears among the file's leading comment lines. */
  readonly noTransaction: boolean
}

/** One migration: its up file and, when present, its down file. */
export interface Migration {
  /** The number as written, e.g. `0003`. */
  readonly version: string
  /** The file name without `.up.sql`, e.g. `0003_add_org_id`; the ledger key. */
  readonly name: string
  /** sha256 of the up file's bytes, hex. */
  readonly checksum: string
  readonly up: MigrationFile
  readonly down: MigrationFile | undefined
}

export function checksumOf(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

/** True when the header appears in the comment block at the top of the file. */
export function hasNoTransactionHeader(sql: string): boolean {
  for (const raw of sql.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    if (!line.startsWith('--')) return false
    if (line.toLowerCase() === NO_TRANSACTION_HEADER) return true
  }
  return false
}

/** Nothing but whitespace and `--` comments. */
function isEmptySql(sql: string): boolean {
  return sql.split('\n').every((l) => l.trim() === '' || l.trim().startsWith('--'))
}

/**
 * Read and check a migrations directory. Every problem — malformed names, duplicate numbers, down files
 * without an up file, empty files — is reported together in one error, before anything runs.
 */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  const abs = resolve(dir)
  let entries: string[]
  try {
    if (!(await stat(abs)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
    entries = (await readdir(abs)).sort()
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new TenantizeError(
      ErrorCodes.MIGRATION_DIR,
      code === 'ENOENT' ? 'migrations directory does not exist' : `cannot read the migrations directory (${code ?? String(error)})`,
      { object: dir, fix: 'create it with `tenantize migrate create <name>` or pass the right --dir', cause: error },
    )
  }

  const problems: Problem[] = []
  const byVersion = new Map<string, { name: string; up?: string; down?: string }>()
  for (const entry of entries) {
    if (!entry.endsWith('.sql')) continue
    const m = MIGRATION_FILE.exec(entry)
    if (m === null) {
      problems.push({ object: join(dir, entry), code: ErrorCodes.MIGRATION_NAME, message: 'file name does not match NNNN_name.up.sql / NNNN_name.down.sql', fix: 'rename it, e.g. 0001_create_users.up.sql (lower-case name, digits, _ or -)' })
      continue
    }
    const [, version, label, direction] = m as unknown as [string, string, string, 'up' | 'down']
    const name = `${version}_${label}`
    const slot = byVersion.get(version)
    if (slot === undefined) byVersion.set(version, { name, [direction]: entry })
    else if (slot.name !== name) {
      problems.push({ object: join(dir, entry), code: ErrorCodes.MIGRATION_DUPLICATE, message: `number ${version} is also used by ${slot.name}`, fix: 'give each migration its own number' })
    } else if (slot[direction] !== undefined) {
      problems.push({ object: join(dir, entry), code: ErrorCodes.MIGRATION_DUPLICATE, message: `two ${direction} files for ${name}`, fix: 'keep one' })
    } else slot[direction] = entry
  }

  const migrations: Migration[] = []
  const byNumber = new Map<number, string>()
  for (const [version, slot] of [...byVersion].sort(([a], [b]) => Number(a) - Number(b) || a.localeCompare(b))) {
    const other = byNumber.get(Number(version))
    if (other !== undefined) {
      problems.push({ object: join(dir, slot.name), code: ErrorCodes.MIGRATION_DUPLICATE, message: `number ${version} is the same as ${other}'s`, fix: 'give each migration its own number' })
      continue
    }
    byNumber.set(Number(version), slot.name)
    if (slot.up === undefined) {
      problems.push({ object: join(dir, slot.down ?? slot.name), code: ErrorCodes.MIGRATION_NAME, message: 'down file without an up file', fix: `add ${slot.name}.up.sql or remove the down file` })
      continue
    }
    const read = async (file: string): Promise<MigrationFile | undefined> => {
      const path = join(abs, file)
      const sql = await readFile(path, 'utf8')
      if (isEmptySql(sql)) {
        problems.push({ object: join(dir, file), code: ErrorCodes.MIGRATION_EMPTY, message: 'file is empty', fix: 'write the SQL or remove the file' })
        return undefined
      }
      return { path, sql, noTransaction: hasNoTransactionHeader(sql) }
    }
    const up = await read(slot.up)
    const down = slot.down === undefined ? undefined : await read(slot.down)
    if (up === undefined) continue
    migrations.push({ version, name: slot.name, checksum: checksumOf(up.sql), up, down })
  }

  if (problems.length > 0) {
    throw new TenantizeError(problems[0]?.code ?? ErrorCodes.MIGRATION_NAME, `${problems.length} problem${problems.length === 1 ? '' : 's'} in the migrations directory, nothing was run`, {
      object: dir,
      problems,
    })
  }
  return migrations
}
