import type pg from 'pg'
import type { Catalog } from '../catalog/types.js'
import { introspect } from '../catalog/index.js'
import { withClient } from '../db/connect.js'
import type { TenantizeConfig } from '../plan/config.js'
import { tenantModel, type TenantModel } from './model.js'
import { assertSeesAllTenants } from './store.js'

/** What every tenant lifecycle function takes. */
export interface TenantOptions {
  readonly databaseUrl: string
  readonly config: TenantizeConfig
}

/** Connect, read the catalog, build the model, check the role sees every tenant; then `fn`. */
export async function withModel<T>(options: TenantOptions, what: string, fn: (client: pg.Client, model: TenantModel, catalog: Catalog) => Promise<T>): Promise<T> {
  return withClient(
    options.databaseUrl,
    async (client) => {
      const catalog = await introspect(client)
      const model = tenantModel(catalog, options.config)
      await assertSeesAllTenants(client, model)
      return fn(client, model, catalog)
    },
    { applicationName: `tenantize tenant ${what}` },
  )
}

/** Run `fn` in a transaction on `client`. */
export async function transaction<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN')
  try {
    const result = await fn()
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}
