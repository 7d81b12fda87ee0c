import { quoteIdent, quoteLiteral } from '../sql/quote.js'
import { blockSql, DOWN_NOTE, preamble, type BlockMigration, type BlockNames } from './common.js'

/**
 * `tenantize add audit`: the append-only `audit_log` table (the app role may read and insert, never
 * change or delete), a row trigger function that records changes of the tables you attach it to, and
 * a retention function that deletes old rows one batch per call.
 *
 * The trigger function is SECURITY INVOKER with a pinned `search_path`: it writes as the role that
 * changed the row, so the audit table's own policy checks the tenant. It reads the actor and request
 * id from the transaction-local settings `tenantize.actor_id` and `tenantize.request_id`.
 *
 * `audit_log` has no foreign key to the tenant table: a deleted tenant's audit trail stays until the
 * retention function removes it.
 */
export function auditMigration(names: BlockNames): BlockMigration {
  const sql = blockSql(names)
  const t = sql.table('audit_log')
  const trigger = sql.table('audit_log_row_change')
  const prune = sql.table('audit_log_prune')
  const up = `-- tenantize add audit: an append-only audit log (actor, tenant, action, table, row id, before/after,
-- request id), a row trigger function to attach to your tables, and a retention function.
-- Tenant-scoped and protected by row-level security.

${preamble(sql)}
CREATE TABLE ${t} (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ${sql.tenantColumnDefinition(false)},
  "occurred_at" timestamptz NOT NULL DEFAULT now(),
  "actor" text,
  "action" text NOT NULL CHECK ("action" <> ''),
  "table_name" text,
  "row_id" text,
  "before" jsonb,
  "after" jsonb,
  "request_id" text
);

CREATE INDEX ${quoteIdent('audit_log_tenant_occurred_at_idx')} ON ${t} (${sql.tenantColumn}, "occurred_at");
CREATE INDEX ${quoteIdent('audit_log_occurred_at_idx')} ON ${t} ("occurred_at");

${sql.rowLevelSecurity('audit_log')}

GRANT SELECT, INSERT ON ${t} TO ${sql.appRole};

-- Attach to a table:
--   CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON invoice
--     FOR EACH ROW EXECUTE FUNCTION audit_log_row_change('id', 'secret_column', ...);
-- The first argument names the row id column (default id); further arguments name columns left out
-- of before/after (secrets). The row's own tenant column decides the audit row's tenant.
CREATE FUNCTION ${trigger}() RETURNS trigger
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
  INSERT INTO ${t} (${sql.tenantColumn}, "actor", "action", "table_name", "row_id", "before", "after", "request_id")
  VALUES (
    coalesce((row_data ->> ${quoteLiteral(names.tenantColumn)})::uuid, tenantize.current_tenant_id()),
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
CREATE FUNCTION ${prune}("older_than" interval, "batch_size" integer DEFAULT 10000) RETURNS integer
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
  DELETE FROM ${t}
  WHERE "id" IN (
    SELECT "id" FROM ${t}
    WHERE "occurred_at" < now() - older_than
    ORDER BY "occurred_at"
    LIMIT batch_size
    FOR UPDATE SKIP LOCKED
  );
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$prune$;

REVOKE ALL ON FUNCTION ${prune}(interval, integer) FROM PUBLIC;
`
  const down = `-- tenantize add audit, reversed: drops the functions and the audit_log table. Drop the triggers
-- that use audit_log_row_change first; this file does not drop them for you.
${DOWN_NOTE}

DROP FUNCTION ${prune}(interval, integer);
DROP FUNCTION ${trigger}();
DROP TABLE ${t};
`
  return Object.freeze({ block: 'audit', label: 'audit_log', tables: Object.freeze([sql.label('audit_log')]), up, down })
}
