/**
 * Building blocks seed 003 built by hand — RBAC role assignments, API keys, an audit log — as
 * tenant-scoped, RLS-protected migrations. The generators are pure: options in, SQL text out, every
 * name quoted through src/sql/quote.ts. {@link addBlock} writes them as the next-numbered migration.
 *
 * @module
 */
export { BLOCKS, BLOCK_DEFAULTS, blockNames, nameProblem, roleProblem, tableProblem, type BlockName, type BlockNames, type BlockOptions, type BlockMigration } from './common.js'
export { rbacMigration } from './rbac.js'
export { apiKeysMigration } from './api-keys.js'
export { auditMigration } from './audit.js'
export { blockMigration } from './generate.js'
export { addBlock, type AddBlockOptions, type AddedBlock } from './add.js'
