import { quoteIdent } from '../sql/quote.js'
import { blockSql, DOWN_NOTE, preamble, type BlockMigration, type BlockNames } from './common.js'

/**
 * `tenantize add rbac`: the `memberships` table — which user has which role in which tenant. The
 * permission matrix itself lives in code (`createRbac` in `tenantize/runtime`), versioned with the
 * app; this table is also what the HTTP middleware's default `sqlMembership` check reads.
 */
export function rbacMigration(names: BlockNames): BlockMigration {
  const sql = blockSql(names)
  const t = sql.table('memberships')
  const up = `-- tenantize add rbac: who has which role in which tenant. The permission matrix lives in code
-- (createRbac in tenantize/runtime). Tenant-scoped and protected by row-level security.

${preamble(sql)}
CREATE TABLE ${t} (
  ${sql.tenantColumnDefinition(true)},
  "user_id" text NOT NULL CHECK ("user_id" <> ''),
  "role" text NOT NULL CHECK ("role" <> ''),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (${sql.tenantColumn}, "user_id")
);

CREATE INDEX ${quoteIdent('memberships_user_id_idx')} ON ${t} ("user_id");

${sql.rowLevelSecurity('memberships')}

GRANT SELECT, INSERT, UPDATE, DELETE ON ${t} TO ${sql.appRole};
`
  const down = `-- tenantize add rbac, reversed: drops the memberships table with its policy and indexes.
${DOWN_NOTE}

DROP TABLE ${t};
`
  return Object.freeze({ block: 'rbac', label: 'rbac', tables: Object.freeze([sql.label('memberships')]), up, down })
}
