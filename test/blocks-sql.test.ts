import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TenantizeError } from '../src/errors.js'
import { apiKeysMigration, auditMigration, blockMigration, blockNames, rbacMigration, type BlockName } from '../src/blocks/index.js'

// Exact text of every generated migration with the default names (organizations, org_id, tenantize_app),
// then with names that need quoting: spaces, quotes, unicode, a schema.

const RBAC_UP = `-- tenantize add rbac: who has which role in which tenant. The permission matrix lives in code
-- (createRbac in tenantize/runtime). Tenant-scoped and protected by row-level security.

CREATE SCHEMA IF NOT EXISTS tenantize;

-- The current transaction's tenant, or NULL without one (policies then match no rows). Created only
-- when missing: tenantize's planner owns this function and may replace it. Every name is qualified and
-- there is no SET clause, so the planner inlines it into the policies.
DO $tenantize$
BEGIN
  IF pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NULL THEN
    CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
  END IF;
END
$tenantize$;

GRANT USAGE ON SCHEMA tenantize TO "tenantize_app";

CREATE TABLE "public"."memberships" (
  "org_id" uuid NOT NULL DEFAULT tenantize.current_tenant_id() REFERENCES "public"."organizations" ("id") ON DELETE CASCADE,
  "user_id" text NOT NULL CHECK ("user_id" <> ''),
  "role" text NOT NULL CHECK ("role" <> ''),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY ("org_id", "user_id")
);

CREATE INDEX "memberships_user_id_idx" ON "public"."memberships" ("user_id");

ALTER TABLE "public"."memberships" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "public"."memberships" FORCE ROW LEVEL SECURITY;
CREATE POLICY "memberships_tenant_isolation" ON "public"."memberships" TO "tenantize_app"
  USING ("org_id" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()))
  WITH CHECK ("org_id" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."memberships" TO "tenantize_app";
`

const RBAC_DOWN = `-- tenantize add rbac, reversed: drops the memberships table with its policy and indexes.
-- Schema tenantize and tenantize.current_tenant_id() stay: other tables' policies may use them.

DROP TABLE "public"."memberships";
`

const API_KEYS_UP = `-- tenantize add api-keys: API keys stored as prefix + hash, with scopes, expiry, revocation and usage.
-- Tenant-scoped and protected by row-level security.

CREATE SCHEMA IF NOT EXISTS tenantize;

-- The current transaction's tenant, or NULL without one (policies then match no rows). Created only
-- when missing: tenantize's planner owns this function and may replace it. Every name is qualified and
-- there is no SET clause, so the planner inlines it into the policies.
DO $tenantize$
BEGIN
  IF pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NULL THEN
    CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
  END IF;
END
$tenantize$;

GRANT USAGE ON SCHEMA tenantize TO "tenantize_app";

CREATE TABLE "public"."api_keys" (
  "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "org_id" uuid NOT NULL DEFAULT tenantize.current_tenant_id() REFERENCES "public"."organizations" ("id") ON DELETE CASCADE,
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
  CONSTRAINT "api_keys_expires_after_created" CHECK ("expires_at" IS NULL OR "expires_at" > "created_at")
);

CREATE INDEX "api_keys_prefix_idx" ON "public"."api_keys" ("prefix");
CREATE INDEX "api_keys_tenant_created_at_idx" ON "public"."api_keys" ("org_id", "created_at");

ALTER TABLE "public"."api_keys" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "public"."api_keys" FORCE ROW LEVEL SECURITY;
CREATE POLICY "api_keys_tenant_isolation" ON "public"."api_keys" TO "tenantize_app"
  USING ("org_id" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()))
  WITH CHECK ("org_id" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()));

GRANT SELECT ("org_id", "id", "name", "prefix", "scopes", "created_at", "created_by", "expires_at", "revoked_at", "revoked_by", "last_used_at", "usage_count") ON "public"."api_keys" TO "tenantize_app";
GRANT INSERT, DELETE ON "public"."api_keys" TO "tenantize_app";
GRANT UPDATE ("name", "revoked_at", "revoked_by") ON "public"."api_keys" TO "tenantize_app";
`

const API_KEYS_DOWN = `-- tenantize add api-keys, reversed: drops the api_keys table with its policy and indexes.
-- Schema tenantize and tenantize.current_tenant_id() stay: other tables' policies may use them.

DROP TABLE "public"."api_keys";
`

const AUDIT_UP = `-- tenantize add audit: an append-only audit log (actor, tenant, action, table, row id, before/after,
-- request id), a row trigger function to attach to your tables, and a retention function.
-- Tenant-scoped and protected by row-level security.

CREATE SCHEMA IF NOT EXISTS tenantize;

-- The current transaction's tenant, or NULL without one (policies then match no rows). Created only
-- when missing: tenantize's planner owns this function and may replace it. Every name is qualified and
-- there is no SET clause, so the planner inlines it into the policies.
DO $tenantize$
BEGIN
  IF pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NULL THEN
    CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
  END IF;
END
$tenantize$;

GRANT USAGE ON SCHEMA tenantize TO "tenantize_app";

CREATE TABLE "public"."audit_log" (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "org_id" uuid NOT NULL DEFAULT tenantize.current_tenant_id(),
  "occurred_at" timestamptz NOT NULL DEFAULT now(),
  "actor" text,
  "action" text NOT NULL CHECK ("action" <> ''),
  "table_name" text,
  "row_id" text,
  "before" jsonb,
  "after" jsonb,
  "request_id" text
);

CREATE INDEX "audit_log_tenant_occurred_at_idx" ON "public"."audit_log" ("org_id", "occurred_at");
CREATE INDEX "audit_log_occurred_at_idx" ON "public"."audit_log" ("occurred_at");

ALTER TABLE "public"."audit_log" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "public"."audit_log" FORCE ROW LEVEL SECURITY;
CREATE POLICY "audit_log_tenant_isolation" ON "public"."audit_log" TO "tenantize_app"
  USING ("org_id" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()))
  WITH CHECK ("org_id" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()));

GRANT SELECT, INSERT ON "public"."audit_log" TO "tenantize_app";

-- Attach to a table:
--   CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON invoice
--     FOR EACH ROW EXECUTE FUNCTION audit_log_row_change('id', 'secret_column', ...);
-- The first argument names the row id column (default id); further arguments name columns left out
-- of before/after (secrets). The row's own tenant column decides the audit row's tenant.
CREATE FUNCTION "public"."audit_log_row_change"() RETURNS trigger
  LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $audit$
DECLARE
  excluded text[] := CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1:TG_NARGS - 1] ELSE '{}' END;
  old_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) - excluded END;
  new_row jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) - excluded END;
  row_data jsonb := coalesce(new_row, old_row);
BEGIN
  IF TG_OP = 'UPDATE' AND old_row = new_row THEN
    RETURN NULL;
  END IF;
  INSERT INTO "public"."audit_log" ("org_id", "actor", "action", "table_name", "row_id", "before", "after", "request_id")
  VALUES (
    coalesce((row_data ->> 'org_id')::uuid, tenantize.current_tenant_id()),
    nullif(current_setting('tenantize.actor_id', true), ''),
    lower(TG_OP),
    format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME),
    row_data ->> coalesce(TG_ARGV[0], 'id'),
    old_row,
    new_row,
    nullif(current_setting('tenantize.request_id', true), '')
  );
  RETURN NULL;
END
$audit$;

-- Retention: deletes at most batch_size rows older than older_than per call and returns how many;
-- call it until it returns less than batch_size (createAuditLog(...).prune does), as a role that sees
-- every tenant's rows.
CREATE FUNCTION "public"."audit_log_prune"("older_than" interval, "batch_size" integer DEFAULT 10000) RETURNS integer
  LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $prune$
DECLARE
  deleted integer;
BEGIN
  IF older_than IS NULL OR older_than < interval '0' THEN
    RAISE EXCEPTION 'audit_log_prune: older_than must be an interval of zero or more' USING ERRCODE = '22023';
  END IF;
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'audit_log_prune: batch_size must be at least 1' USING ERRCODE = '22023';
  END IF;
  DELETE FROM "public"."audit_log"
  WHERE "id" IN (
    SELECT "id" FROM "public"."audit_log"
    WHERE "occurred_at" < now() - older_than
    ORDER BY "occurred_at"
    LIMIT batch_size
    FOR UPDATE SKIP LOCKED
  );
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$prune$;

REVOKE ALL ON FUNCTION "public"."audit_log_prune"(interval, integer) FROM PUBLIC;
`

const AUDIT_DOWN = `-- tenantize add audit, reversed: drops the functions and the audit_log table. Drop the triggers
-- that use audit_log_row_change first; this file does not drop them for you.
-- Schema tenantize and tenantize.current_tenant_id() stay: other tables' policies may use them.

DROP FUNCTION "public"."audit_log_prune"(interval, integer);
DROP FUNCTION "public"."audit_log_row_change"();
DROP TABLE "public"."audit_log";
`

const ODD_RBAC_UP = `-- tenantize add rbac: who has which role in which tenant. The permission matrix lives in code
-- (createRbac in tenantize/runtime). Tenant-scoped and protected by row-level security.

CREATE SCHEMA IF NOT EXISTS tenantize;

-- The current transaction's tenant, or NULL without one (policies then match no rows). Created only
-- when missing: tenantize's planner owns this function and may replace it. Every name is qualified and
-- there is no SET clause, so the planner inlines it into the policies.
DO $tenantize$
BEGIN
  IF pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NULL THEN
    CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
  END IF;
END
$tenantize$;

GRANT USAGE ON SCHEMA tenantize TO "app role's";

CREATE TABLE "Kunden Ü"."memberships" (
  "tenant's ""id""" uuid NOT NULL DEFAULT tenantize.current_tenant_id() REFERENCES "Kunden Ü"."Org ""HQ""" ("id") ON DELETE CASCADE,
  "user_id" text NOT NULL CHECK ("user_id" <> ''),
  "role" text NOT NULL CHECK ("role" <> ''),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY ("tenant's ""id""", "user_id")
);

CREATE INDEX "memberships_user_id_idx" ON "Kunden Ü"."memberships" ("user_id");

ALTER TABLE "Kunden Ü"."memberships" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "Kunden Ü"."memberships" FORCE ROW LEVEL SECURITY;
CREATE POLICY "memberships_tenant_isolation" ON "Kunden Ü"."memberships" TO "app role's"
  USING ("tenant's ""id""" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()))
  WITH CHECK ("tenant's ""id""" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()));

GRANT SELECT, INSERT, UPDATE, DELETE ON "Kunden Ü"."memberships" TO "app role's";
`

const ODD_RBAC_DOWN = `-- tenantize add rbac, reversed: drops the memberships table with its policy and indexes.
-- Schema tenantize and tenantize.current_tenant_id() stay: other tables' policies may use them.

DROP TABLE "Kunden Ü"."memberships";
`

const ODD_AUDIT_UP = `-- tenantize add audit: an append-only audit log (actor, tenant, action, table, row id, before/after,
-- request id), a row trigger function to attach to your tables, and a retention function.
-- Tenant-scoped and protected by row-level security.

CREATE SCHEMA IF NOT EXISTS tenantize;

-- The current transaction's tenant, or NULL without one (policies then match no rows). Created only
-- when missing: tenantize's planner owns this function and may replace it. Every name is qualified and
-- there is no SET clause, so the planner inlines it into the policies.
DO $tenantize$
BEGIN
  IF pg_catalog.to_regprocedure('tenantize.current_tenant_id()') IS NULL THEN
    CREATE FUNCTION tenantize.current_tenant_id() RETURNS pg_catalog.uuid LANGUAGE sql STABLE PARALLEL SAFE RETURN CASE WHEN pg_catalog.current_setting('tenantize.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('tenantize.tenant_id', true)::pg_catalog.uuid END;
  END IF;
END
$tenantize$;

GRANT USAGE ON SCHEMA tenantize TO "app role's";

CREATE TABLE "Kunden Ü"."audit_log" (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "tenant's ""id""" uuid NOT NULL DEFAULT tenantize.current_tenant_id(),
  "occurred_at" timestamptz NOT NULL DEFAULT now(),
  "actor" text,
  "action" text NOT NULL CHECK ("action" <> ''),
  "table_name" text,
  "row_id" text,
  "before" jsonb,
  "after" jsonb,
  "request_id" text
);

CREATE INDEX "audit_log_tenant_occurred_at_idx" ON "Kunden Ü"."audit_log" ("tenant's ""id""", "occurred_at");
CREATE INDEX "audit_log_occurred_at_idx" ON "Kunden Ü"."audit_log" ("occurred_at");

ALTER TABLE "Kunden Ü"."audit_log" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "Kunden Ü"."audit_log" FORCE ROW LEVEL SECURITY;
CREATE POLICY "audit_log_tenant_isolation" ON "Kunden Ü"."audit_log" TO "app role's"
  USING ("tenant's ""id""" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()))
  WITH CHECK ("tenant's ""id""" OPERATOR(pg_catalog.=) (SELECT tenantize.current_tenant_id()));

GRANT SELECT, INSERT ON "Kunden Ü"."audit_log" TO "app role's";

-- Attach to a table:
--   CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON invoice
--     FOR EACH ROW EXECUTE FUNCTION audit_log_row_change('id', 'secret_column', ...);
-- The first argument names the row id column (default id); further arguments name columns left out
-- of before/after (secrets). The row's own tenant column decides the audit row's tenant.
CREATE FUNCTION "Kunden Ü"."audit_log_row_change"() RETURNS trigger
  LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $audit$
DECLARE
  excluded text[] := CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1:TG_NARGS - 1] ELSE '{}' END;
  old_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) - excluded END;
  new_row jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) - excluded END;
  row_data jsonb := coalesce(new_row, old_row);
BEGIN
  IF TG_OP = 'UPDATE' AND old_row = new_row THEN
    RETURN NULL;
  END IF;
  INSERT INTO "Kunden Ü"."audit_log" ("tenant's ""id""", "actor", "action", "table_name", "row_id", "before", "after", "request_id")
  VALUES (
    coalesce((row_data ->> 'tenant''s "id"')::uuid, tenantize.current_tenant_id()),
    nullif(current_setting('tenantize.actor_id', true), ''),
    lower(TG_OP),
    format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME),
    row_data ->> coalesce(TG_ARGV[0], 'id'),
    old_row,
    new_row,
    nullif(current_setting('tenantize.request_id', true), '')
  );
  RETURN NULL;
END
$audit$;

-- Retention: deletes at most batch_size rows older than older_than per call and returns how many;
-- call it until it returns less than batch_size (createAuditLog(...).prune does), as a role that sees
-- every tenant's rows.
CREATE FUNCTION "Kunden Ü"."audit_log_prune"("older_than" interval, "batch_size" integer DEFAULT 10000) RETURNS integer
  LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $prune$
DECLARE
  deleted integer;
BEGIN
  IF older_than IS NULL OR older_than < interval '0' THEN
    RAISE EXCEPTION 'audit_log_prune: older_than must be an interval of zero or more' USING ERRCODE = '22023';
  END IF;
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'audit_log_prune: batch_size must be at least 1' USING ERRCODE = '22023';
  END IF;
  DELETE FROM "Kunden Ü"."audit_log"
  WHERE "id" IN (
    SELECT "id" FROM "Kunden Ü"."audit_log"
    WHERE "occurred_at" < now() - older_than
    ORDER BY "occurred_at"
    LIMIT batch_size
    FOR UPDATE SKIP LOCKED
  );
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$prune$;

REVOKE ALL ON FUNCTION "Kunden Ü"."audit_log_prune"(interval, integer) FROM PUBLIC;
`


const ODD = { tenantTable: '"Kunden Ü"."Org ""HQ"""', tenantColumn: `tenant's "id"`, appRole: `app role's` }

test('rbac: the exact up and down SQL with the default names', () => {
  const m = blockMigration('rbac')
  assert.equal(m.up, RBAC_UP)
  assert.equal(m.down, RBAC_DOWN)
  assert.equal(m.label, 'rbac')
  assert.deepEqual(m.tables, ['public.memberships'])
})

test('api-keys: the exact up and down SQL with the default names', () => {
  const m = blockMigration('api-keys')
  assert.equal(m.up, API_KEYS_UP)
  assert.equal(m.down, API_KEYS_DOWN)
  assert.equal(m.label, 'api_keys')
  assert.deepEqual(m.tables, ['public.api_keys'])
})

test('audit: the exact up and down SQL with the default names', () => {
  const m = blockMigration('audit')
  assert.equal(m.up, AUDIT_UP)
  assert.equal(m.down, AUDIT_DOWN)
  assert.equal(m.label, 'audit_log')
  assert.deepEqual(m.tables, ['public.audit_log'])
})

test('names with quotes, spaces and unicode are quoted as identifiers, and as a literal in the trigger body', () => {
  assert.equal(blockMigration('rbac', ODD).up, ODD_RBAC_UP)
  assert.equal(blockMigration('rbac', ODD).down, ODD_RBAC_DOWN)
  assert.equal(blockMigration('audit', ODD).up, ODD_AUDIT_UP)
  assert.deepEqual(blockMigration('api-keys', ODD).tables, ['Kunden Ü.api_keys'])
})

test('the generators are the same functions blockMigration dispatches to', () => {
  const names = blockNames()
  assert.equal(rbacMigration(names).up, RBAC_UP)
  assert.equal(apiKeysMigration(names).up, API_KEYS_UP)
  assert.equal(auditMigration(names).down, AUDIT_DOWN)
})

test('every up file creates the helper only when missing and no down file drops it', () => {
  for (const block of ['rbac', 'api-keys', 'audit'] as const) {
    const m = blockMigration(block)
    assert.match(m.up, /IF pg_catalog\.to_regprocedure\('tenantize\.current_tenant_id\(\)'\) IS NULL THEN/)
    assert.doesNotMatch(m.down, /DROP (FUNCTION|SCHEMA) (IF EXISTS )?tenantize/i)
    assert.doesNotMatch(m.up, /SECURITY DEFINER/)
    // one policy per table, for the app role only, with the same USING and WITH CHECK
    assert.equal(m.up.match(/CREATE POLICY/g)?.length, 1)
    assert.match(m.up, /FORCE ROW LEVEL SECURITY/)
  }
})

/** The TenantizeError `fn` throws. */
function usageError(fn: () => unknown): TenantizeError {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof TenantizeError, String(error))
    assert.equal(error.code, 'TZ_USAGE')
    return error
  }
  assert.fail('expected a TZ_USAGE error')
}

test('bad names are refused, every problem at once, naming the flag', () => {
  const error = usageError(() => blockMigration('rbac', { tenantTable: 'a.b.c', tenantColumn: '', appRole: 'PUBLIC' }))
  assert.deepEqual(
    error.problems.map((p) => p.object),
    ['--tenant-table', '--tenant-column', '--app-role'],
  )
  assert.match(error.problems[2]!.message, /real role/)
})

test('names that would break out of a comment or a dollar-quoted body, or be truncated, are refused', () => {
  for (const tenantColumn of ['org\nDROP TABLE x; --', 'org$audit$', 'x'.repeat(64), 'ü'.repeat(32)]) {
    const error = usageError(() => blockMigration('audit', { tenantColumn }))
    assert.deepEqual(error.problems.map((p) => p.object), ['--tenant-column'])
  }
  for (const appRole of ['public', 'current_user', 'SESSION_USER', 'none']) usageError(() => blockMigration('rbac', { appRole }))
  usageError(() => blockMigration('rbac', { tenantTable: '"unterminated' }))
  // 63 bytes is the limit, not 64
  assert.match(blockMigration('rbac', { tenantColumn: 'x'.repeat(63) }).up, new RegExp(`"${'x'.repeat(63)}" uuid NOT NULL`))
})

test('an unknown block is a usage error', () => {
  const error = usageError(() => blockMigration('billing' as BlockName))
  assert.match(error.message, /rbac, api-keys, audit/)
})
