import type pg from 'pg'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { quoteIdent } from '../sql/quote.js'
import { tenantIdType, type TenantModel } from './model.js'

/**
 * Tenantize's own lifecycle tables in schema `tenantize`:
 *
 * - `tenantize.tenant_status`: one row per tenant whose lifecycle status is not plain "active" (or was
 *   changed by Tenantize): `active`, `suspended`, `importing`, `deleting`. It is the one place the HTTP
 *   middleware reads (`sqlTenantStatus`), whether Tenantize created the tenant table or it is the app's own
 *   (which may have no status column). When Tenantize created the tenant table, its `status` column is
 *   kept equal (a tenant being deleted shows `suspended` there). No row: active.
 * - `tenantize.id_map`: for each imported tenant, every key that changed (old → new value, as text), so
 *   references kept outside the database can be rewritten.
 * - `tenantize.import_rows`: rows copied from the source database of an import still in progress;
 *   UNLOGGED (no WAL for a copy written once and read once: an import stages again what a crash emptied).
 */
export const TENANTS_DDL = `
CREATE SCHEMA IF NOT EXISTS tenantize;
CREATE TABLE IF NOT EXISTS tenantize.tenant_status (
  tenant     text PRIMARY KEY,
  status     text NOT NULL CHECK (status IN ('active', 'suspended', 'importing', 'deleting')),
  changed_at timestamptz NOT NULL DEFAULT now(),
  changed_by text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE tenantize.tenant_status IS 'Lifecycle status per tenant (no row: active); the HTTP middleware answers 403 for suspended, 404 for importing and deleting.';
CREATE TABLE IF NOT EXISTS tenantize.id_map (
  tenant  text NOT NULL,
  "table" text NOT NULL,
  old_id  text NOT NULL,
  new_id  text NOT NULL,
  PRIMARY KEY (tenant, "table", old_id)
);
CREATE INDEX IF NOT EXISTS id_map_new_id_idx ON tenantize.id_map (tenant, "table", new_id);
COMMENT ON TABLE tenantize.id_map IS 'Keys of imported tenants that were given new values (old → new, as text), per table.';
CREATE UNLOGGED TABLE IF NOT EXISTS tenantize.import_rows (
  tenant  text NOT NULL,
  "table" text NOT NULL,
  seq     bigint NOT NULL,
  data    jsonb NOT NULL,
  PRIMARY KEY (tenant, "table", seq)
);
COMMENT ON TABLE tenantize.import_rows IS 'Rows copied from the source database of an import in progress; emptied when the import completes. UNLOGGED: an import finding them lost to a crash stages them again.';
`

export const LIFECYCLE_STATUSES = ['active', 'suspended', 'importing', 'deleting'] as const
export type LifecycleStatus = (typeof LIFECYCLE_STATUSES)[number]

type Queryable = Pick<pg.Client, 'query'>

/**
 * Create Tenantize's lifecycle tables unless they exist. When they do, no DDL runs: `CREATE INDEX IF NOT
 * EXISTS` locks its table (SHARE) before it finds the index, and `COMMENT ON TABLE` takes SHARE UPDATE
 * EXCLUSIVE — both wait for an autovacuum of `id_map` (which a million mapped keys start), and an import
 * stopped on its lock_timeout at 1,000,000 rows in the tenants bench.
 */
export async function ensureTenantTables(client: Queryable): Promise<void> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT to_regclass('tenantize.tenant_status') IS NOT NULL AND to_regclass('tenantize.id_map') IS NOT NULL
        AND to_regclass('tenantize.id_map_new_id_idx') IS NOT NULL AND to_regclass('tenantize.import_rows') IS NOT NULL AS ok`,
  )
  if (rows[0]?.ok === true) return
  await client.query(TENANTS_DDL)
}

/** A tenant as the lifecycle commands see it. Ids are text, exactly as PostgreSQL prints them. */
export interface TenantRow {
  readonly id: string
  readonly slug: string | null
  readonly name: string | null
  readonly status: LifecycleStatus
  readonly createdAt: string | null
}

const ID_PATTERNS = {
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  bigint: /^-?[0-9]{1,19}$/,
  text: /^[^\0]{1,256}$/,
} as const

/** `SELECT` list of the tenant table: id, slug, name, created_at as text (NULL where the table has no such column). */
function tenantColumns(model: TenantModel, alias: string): string {
  const col = (c: string | null): string => (c === null ? 'NULL::text' : `${alias}.${quoteIdent(c)}::text`)
  return `${alias}.${quoteIdent(model.root.column)}::text AS id, ${col(model.slugColumn)} AS slug, ${col(model.nameColumn)} AS name, ${col(model.createdAtColumn)} AS created_at`
}

async function hasStatusTable(client: Queryable): Promise<boolean> {
  return (await client.query<{ ok: boolean }>(`SELECT to_regclass('tenantize.tenant_status') IS NOT NULL AS ok`)).rows[0]?.ok === true
}

/** Every tenant (or those matching `where`, SQL over alias `r` with parameters `values`), ordered by id. */
export async function readTenants(client: Queryable, model: TenantModel, where = 'true', values: unknown[] = []): Promise<TenantRow[]> {
  const status = (await hasStatusTable(client))
    ? `coalesce((SELECT s.status FROM tenantize.tenant_status s WHERE s.tenant = r.${quoteIdent(model.root.column)}::text), 'active')`
    : `'active'`
  const { rows } = await client.query<{ id: string; slug: string | null; name: string | null; created_at: string | null; status: LifecycleStatus }>(
    `SELECT ${tenantColumns(model, 'r')}, ${status} AS status FROM ${model.root.sql} AS r WHERE ${where} ORDER BY r.${quoteIdent(model.root.column)}`,
    values,
  )
  return rows.map((r) => ({ id: r.id, slug: r.slug, name: r.name, status: r.status, createdAt: r.created_at }))
}

/**
 * The tenant named by `ref`: its id (in the form of the configured id type) or its slug.
 * @throws {TenantizeError} TZ_USAGE when there is no such tenant.
 */
export async function findTenant(client: Queryable, model: TenantModel, ref: string): Promise<TenantRow> {
  const idType = model.config.tenant.idType
  const conditions: string[] = []
  const values: unknown[] = []
  if (ID_PATTERNS[idType].test(ref)) {
    values.push(ref)
    conditions.push(`r.${quoteIdent(model.root.column)} = $${values.length}::${tenantIdType(model.config)}`)
  }
  if (model.slugColumn !== null) {
    values.push(ref)
    conditions.push(`r.${quoteIdent(model.slugColumn)}::text = $${values.length}`)
  }
  const found = conditions.length === 0 ? [] : await readTenants(client, model, conditions.join(' OR '), values)
  if (found.length === 0) {
    throw new TenantizeError(ErrorCodes.TENANT, `no tenant with this ${model.slugColumn === null ? 'id' : 'id or slug'}`, {
      object: model.root.key,
      fix: 'list the tenants with tenantize tenant list',
    })
  }
  // An id that happens to be another tenant's slug: the id wins.
  return found.find((t) => t.id === ref) ?? found[0]!
}

/** The status column of a tenant table Tenantize created allows no `deleting`: it shows `suspended` meanwhile. */
const ROOT_STATUS: Readonly<Record<LifecycleStatus, string>> = { active: 'active', suspended: 'suspended', importing: 'importing', deleting: 'suspended' }

/** Record a tenant's lifecycle status (and mirror it into the tenant table Tenantize created). Runs in the caller's transaction. */
export async function writeStatus(client: Queryable, model: TenantModel, tenantId: string, status: LifecycleStatus): Promise<void> {
  await ensureTenantTables(client)
  await client.query(
    `INSERT INTO tenantize.tenant_status (tenant, status) VALUES ($1, $2)
     ON CONFLICT (tenant) DO UPDATE SET status = EXCLUDED.status, changed_at = now(), changed_by = current_user`,
    [tenantId, status],
  )
  if (model.ownsTenantTable) {
    await client.query(`UPDATE ${model.root.sql} SET "status" = $2, "updated_at" = now() WHERE ${quoteIdent(model.root.column)} = $1::${tenantIdType(model.config)} AND "status" IS DISTINCT FROM $2`, [tenantId, ROOT_STATUS[status]])
  }
}

/** Forget a deleted tenant: its status, its id map and any rows of an unfinished import. */
export async function forgetTenant(client: Queryable, tenantId: string): Promise<void> {
  if (!(await hasStatusTable(client))) return
  await client.query('DELETE FROM tenantize.tenant_status WHERE tenant = $1', [tenantId])
  await client.query('DELETE FROM tenantize.id_map WHERE tenant = $1', [tenantId])
  await client.query('DELETE FROM tenantize.import_rows WHERE tenant = $1', [tenantId])
}

/**
 * Lifecycle commands read and write every tenant's rows: as a role that row-level security does not apply
 * to (a superuser or BYPASSRLS), or before the enforce phase.
 */
export async function assertSeesAllTenants(client: Queryable, model: TenantModel): Promise<void> {
  const forced = model.tables.filter((t) => t.table.rowSecurity)
  if (forced.length === 0) return
  const { rows } = await client.query<{ bypass: boolean; who: string }>('SELECT current_user AS who, (r.rolsuper OR r.rolbypassrls) AS bypass FROM pg_catalog.pg_roles r WHERE r.rolname = current_user')
  if (rows[0]?.bypass === true) return
  throw new TenantizeError(ErrorCodes.USAGE, `row-level security applies to ${rows[0]?.who ?? 'this role'}, so it cannot see every tenant's rows`, {
    object: forced[0]!.key,
    fix: 'run tenant commands as a superuser or a role WITH BYPASSRLS (e.g. the migration role)',
  })
}
