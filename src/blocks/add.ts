import { readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { createMigration } from '../migrate/create.js'
import { MIGRATION_FILE } from '../migrate/files.js'
import type { BlockName, BlockOptions } from './common.js'
import { blockMigration } from './generate.js'

export interface AddBlockOptions extends BlockOptions {
  readonly block: BlockName
  /** The migrations directory; created when missing. */
  readonly dir: string
}

export interface AddedBlock {
  readonly block: BlockName
  /** e.g. `0004_api_keys`. */
  readonly name: string
  readonly up: string
  readonly down: string
  /** `schema.table` of each table the migration creates. */
  readonly tables: readonly string[]
}

/**
 * Write a block's migration as the next-numbered `NNNN_<label>.up.sql` / `.down.sql` pair (numbered
 * and created by `createMigration`, then filled in). Refuses when the directory already has that
 * block's migration.
 *
 * @throws {TenantizeError} `TZ_USAGE` for bad names, `TZ_EXISTS` when the block is already there,
 *   `TZ_MIGRATION_DIR` when the directory cannot be read.
 */
export async function addBlock(options: AddBlockOptions): Promise<AddedBlock> {
  const migration = blockMigration(options.block, options)
  let entries: string[]
  try {
    entries = await readdir(options.dir)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== 'ENOENT') {
      throw new TenantizeError(ErrorCodes.MIGRATION_DIR, `cannot read the migrations directory (${code ?? String(error)})`, { object: options.dir, fix: 'pass the right --dir', cause: error })
    }
    entries = []
  }
  const same = entries.filter((entry) => MIGRATION_FILE.exec(entry)?.[2] === migration.label).sort()
  const existing = same.find((entry) => entry.endsWith('.up.sql')) ?? same[0]
  if (existing !== undefined) {
    throw new TenantizeError(ErrorCodes.EXISTS, `the ${options.block} block is already in the migrations directory`, {
      object: join(options.dir, existing),
      fix: 'add a block once; to regenerate it, reverse that migration (migrate down) and delete its files first',
    })
  }
  const created = await createMigration({ dir: options.dir, name: migration.label })
  try {
    await writeFile(created.up, migration.up)
    await writeFile(created.down, migration.down)
  } catch (error) {
    await rm(created.up, { force: true })
    await rm(created.down, { force: true })
    throw new TenantizeError(ErrorCodes.MIGRATION_DIR, 'cannot write the migration files', { object: created.up, fix: 'check the directory is writable', cause: error })
  }
  return Object.freeze({ block: options.block, name: created.name, up: created.up, down: created.down, tables: migration.tables })
}
