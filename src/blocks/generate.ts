import { ErrorCodes, TenantizeError } from '../errors.js'
import { apiKeysMigration } from './api-keys.js'
import { auditMigration } from './audit.js'
import { BLOCKS, blockNames, type BlockMigration, type BlockName, type BlockOptions } from './common.js'
import { rbacMigration } from './rbac.js'

const GENERATORS: Readonly<Record<BlockName, (names: ReturnType<typeof blockNames>) => BlockMigration>> = {
  rbac: rbacMigration,
  'api-keys': apiKeysMigration,
  audit: auditMigration,
}

/**
 * The migration for one block (pure: no I/O).
 * @throws {TenantizeError} `TZ_USAGE` for an unknown block or unusable names (all problems at once).
 */
export function blockMigration(block: BlockName, options: BlockOptions = {}): BlockMigration {
  if (!BLOCKS.includes(block)) {
    throw new TenantizeError(ErrorCodes.USAGE, `unknown block: expected one of ${BLOCKS.join(', ')}`, { object: String(block) })
  }
  return GENERATORS[block](blockNames(options))
}
