import { quoteIdent } from '../sql/quote.js'
import { blockSql, DOWN_NOTE, preamble, type BlockMigration, type BlockNames } from './common.js'

/**
 * `tenantize add api-keys`: the `api_keys` table — prefix + SHA-256 hash (never the secret), scopes,
 * expiry, revocation, last use and usage count. The app role may not read the hashes nor change them,
 * the usage counters or the owning tenant; verification runs through a system pool
 * (`createApiKeyStore` in `tenantize/runtime`).
 */
export function apiKeysMigration(names: BlockNames): BlockMigration {
  const sql = blockSql(names)
  const t = sql.table('api_keys')
  const readable = [sql.tenantColumn, '"id"', '"name"', '"prefix"', '"scopes"', '"created_at"', '"created_by"', '"expires_at"', '"revoked_at"', '"revoked_by"', '"last_used_at"', '"usage_count"']
  const up = `-- tenantize add api-keys: API keys stored as prefix + hash, with scopes, expiry, revocation and usage.
-- Tenant-scoped and protected by row-level security.

${preamble(sql)}
CREATE TABLE ${t} (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  ${sql.tenantColumnDefinition(true)},
  "name" text NOT NULL CHECK ("name" <> ''),
  "prefix" text NOT NULL CHECK ("prefix" ~ '^[0-9a-f]{16}$'),
  "secret_hash" bytea NOT NULL CHECK (octet_length("secret_hash") = 32),
  "scopes" text[] NOT NULL DEFAULT '{}',
  "created_at" timestamptz NOT NULL DEFAULT now(),
  "created_by" text,
  "expires_at" timestamptz,
  "revoked_at" timestamptz,
  "revoked_by" text,
  "last_used_at" timestamptz,
  "usage_count" bigint NOT NULL DEFAULT 0,
  CONSTRAINT ${quoteIdent('api_keys_expires_after_created')} CHECK ("expires_at" IS NULL OR "expires_at" > "created_at")
);

CREATE INDEX ${quoteIdent('api_keys_prefix_idx')} ON ${t} ("prefix");
CREATE INDEX ${quoteIdent('api_keys_tenant_created_at_idx')} ON ${t} (${sql.tenantColumn}, "created_at");

${sql.rowLevelSecurity('api_keys')}

GRANT SELECT (${readable.join(', ')}) ON ${t} TO ${sql.appRole};
GRANT INSERT, DELETE ON ${t} TO ${sql.appRole};
GRANT UPDATE ("name", "revoked_at", "revoked_by") ON ${t} TO ${sql.appRole};
`
  const down = `-- tenantize add api-keys, reversed: drops the api_keys table with its policy and indexes.
${DOWN_NOTE}

DROP TABLE ${t};
`
  return Object.freeze({ block: 'api-keys', label: 'api_keys', tables: Object.freeze([sql.label('api_keys')]), up, down })
}
