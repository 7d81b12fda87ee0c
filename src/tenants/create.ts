import type pg from 'pg'
import { ErrorCodes, TenantizeError, type Problem } from '../errors.js'
import { splitKey } from '../plan/config.js'
import { qualifiedName, quoteIdent } from '../sql/quote.js'
import type { TenantModel } from './model.js'
import { transaction, withModel, type TenantOptions } from './session.js'
import { findTenant, writeStatus, type LifecycleStatus, type TenantRow } from './store.js'

/** Slugs name tenants in URLs and subdomains: lower-case letters, digits and inner hyphens, at most 63. */
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

export interface NewTenant {
  readonly slug: string
  readonly name: string
  /** The tenant id; default: the tenant table's own default (gen_random_uuid(), identity). */
  readonly id?: string
  /** The first member, as owner, when a membership table exists: a key of the users table. */
  readonly owner?: string
  /** Values for further columns of an existing tenant table (tenant.create false), as text. */
  readonly values?: Readonly<Record<string, string>>
  /** Default `active`; an import creates its tenant `importing`. */
  readonly status?: LifecycleStatus
}

export function validateSlug(slug: string): void {
  if (!SLUG_PATTERN.test(slug)) {
    throw new TenantizeError(ErrorCodes.USAGE, 'is not a valid slug', { object: `slug ${JSON.stringify(slug)}`, fix: 'use lower-case letters, digits and inner hyphens, at most 63 characters, e.g. acme-corp' })
  }
}

/** Core of {@link createTenant}: on a connected client (a superuser, BYPASSRLS or owner session), in one transaction. */
export async function insertTenant(client: pg.Client, model: TenantModel, input: NewTenant): Promise<TenantRow> {
  validateSlug(input.slug)
  const root = model.root.table
  const values = new Map<string, string>(Object.entries(input.values ?? {}))
  if (model.slugColumn !== null) values.set(model.slugColumn, input.slug)
  if (model.nameColumn !== null) values.set(model.nameColumn, input.name)
  if (input.id !== undefined) values.set(model.root.column, input.id)
  const problems: Problem[] = []
  for (const name of values.keys()) {
    if (!root.columns.some((c) => c.name === name)) problems.push({ object: `${model.root.key}.${name}`, message: 'no such column', fix: 'name a column of the tenant table' })
  }
  for (const c of root.columns) {
    if (!c.nullable && c.default === null && c.identity === null && c.generated === null && !values.has(c.name)) {
      problems.push({ object: `${model.root.key}.${c.name}`, message: 'is NOT NULL and has no default', fix: `give it a value: --set ${c.name}=VALUE` })
    }
  }
  if (problems.length > 0) throw new TenantizeError(ErrorCodes.USAGE, `cannot create the tenant: ${problems.length} problem(s)`, { object: model.root.key, problems })
  return transaction(client, async () => {
    if (model.slugColumn !== null) {
      const taken = await client.query(`SELECT 1 FROM ${model.root.sql} WHERE ${quoteIdent(model.slugColumn)}::text = $1`, [input.slug])
      if (taken.rows.length > 0) throw new TenantizeError(ErrorCodes.TENANT, 'a tenant with this slug exists already', { object: `slug ${input.slug}`, fix: 'choose another slug' })
    }
    const names = [...values.keys()]
    const { rows } = await client.query<{ id: string }>(
      names.length === 0
        ? `INSERT INTO ${model.root.sql} DEFAULT VALUES RETURNING ${quoteIdent(model.root.column)}::text AS id`
        : `INSERT INTO ${model.root.sql} (${names.map(quoteIdent).join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING ${quoteIdent(model.root.column)}::text AS id`,
      [...values.values()],
    )
    const id = rows[0]!.id
    const membership = model.config.tenant.membership
    if (input.owner !== undefined) {
      if (membership === null || !model.ownsTenantTable) throw new TenantizeError(ErrorCodes.TENANT, 'there is no membership table to add the owner to', { object: 'owner', fix: 'leave out the owner, or configure tenant.membership' })
      const { schema, name } = splitKey(membership.table)
      await client.query(`INSERT INTO ${qualifiedName(schema, name)} ("org_id", "user_id", "role") VALUES ($1, $2, 'owner')`, [id, input.owner])
    }
    await writeStatus(client, model, id, input.status ?? 'active')
    return findTenant(client, model, id)
  })
}

/**
 * Create a tenant: the tenant row (slug validated and unique), its first member as owner when a
 * membership table exists, and its lifecycle status. For signup flows: call it with a connection that
 * row-level security does not restrict (the app role may not insert tenants).
 */
export async function createTenant(options: TenantOptions & NewTenant): Promise<TenantRow> {
  return withModel(options, 'create', (client, model) => insertTenant(client, model, options))
}
