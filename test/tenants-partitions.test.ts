/**
 * Tenant import and delete on a partitioned table whose foreign key is declared on one partition only
 * (`ALTER TABLE ONLY partition ADD FOREIGN KEY …`, as pagila's payment partitions): the import must rewrite
 * that column through the id map like any other key, and the delete must remove the partition's rows before
 * the rows they reference.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { apply } from '../src/apply/index.js'
import { introspect } from '../src/catalog/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig, type TenantizeConfig } from '../src/plan/config.js'
import { deleteTenant, importTenant, tenantModel } from '../src/tenants/index.js'
import { dataChecksums } from './helpers/conversion.js'
import { testDatabase, type TestDatabase } from './helpers/db.js'
import { fast } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)

const SCHEMA = `CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL);
  CREATE TABLE payment (id serial NOT NULL, paid_at int NOT NULL, customer_id int NOT NULL, amount int NOT NULL) PARTITION BY RANGE (paid_at);
  CREATE TABLE payment_0 PARTITION OF payment FOR VALUES FROM (0) TO (100);
  CREATE TABLE payment_1 PARTITION OF payment FOR VALUES FROM (100) TO (200);
  ALTER TABLE ONLY payment_0 ADD CONSTRAINT payment_0_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer (id)`

async function configOf(t: TestDatabase): Promise<TenantizeConfig> {
  const client = new pg.Client(t.url)
  await client.connect()
  try {
    return parseConfig(proposeConfig(await introspect(client), { defaultTenantId: '00000000-0000-4000-8000-00000000000a', appRole: t.role('app') }).config)
  } finally {
    await client.end()
  }
}

test('import and delete a tenant through a foreign key declared on a partition only: the imported payments point at the imported customers; the delete leaves the other tenant as it was', async () => {
  const target = await db.another('tz_part_target')
  const source = await db.another('tz_part_source')
  await target.sql(`${SCHEMA}; INSERT INTO customer (name) VALUES ('a1'), ('a2'); INSERT INTO payment (paid_at, customer_id, amount) VALUES (1, 1, 10), (2, 2, 20), (150, 2, 30)`)
  await source.sql(`${SCHEMA}; INSERT INTO customer (name) VALUES ('b1'), ('b2'), ('b3'); INSERT INTO payment (paid_at, customer_id, amount) VALUES (1, 3, 100), (2, 1, 200), (150, 2, 300)`)
  const config = await configOf(target)
  await apply({ databaseUrl: target.url, config, phase: 'all', timeouts: fast })
  const model = await (async () => {
    const client = new pg.Client(target.url)
    await client.connect()
    try {
      return tenantModel(await introspect(client), config)
    } finally {
      await client.end()
    }
  })()
  assert.ok(model.edges.some((e) => e.from === 'public.payment' && e.to === 'public.customer' && e.fk.name === 'payment_0_customer_id_fkey'), 'the partition\'s key is an edge of the partitioned table')
  const tenantA = config.tenant.default.id
  const where = { '"public"."customer"': `WHERE org_id = '${tenantA}'`, '"public"."payment"': `WHERE org_id = '${tenantA}'` }
  const before = await dataChecksums(target.url, Object.keys(where), where)

  const result = await importTenant({ databaseUrl: target.url, config, from: source.url, slug: 'bee', name: 'Bee', batchPauseMs: 0, timeouts: fast })
  const tenantB = result.tenant!.id
  // Each imported payment names the imported customer it named in the source, in every partition.
  assert.deepEqual(
    await target.sql(`SELECT p.paid_at, p.amount, c.name FROM payment p JOIN customer c ON c.id = p.customer_id WHERE p.org_id = $1 ORDER BY p.paid_at`, [tenantB]),
    [{ paid_at: 1, amount: 100, name: 'b3' }, { paid_at: 2, amount: 200, name: 'b1' }, { paid_at: 150, amount: 300, name: 'b2' }],
  )
  assert.deepEqual(await target.sql(`SELECT count(*)::int AS n FROM payment p JOIN customer c ON c.id = p.customer_id WHERE p.org_id <> c.org_id`), [{ n: 0 }], 'no payment names another tenant\'s customer')

  const deleted = await deleteTenant({ databaseUrl: target.url, config, tenant: 'bee', batchPauseMs: 0, timeouts: fast })
  assert.deepEqual(deleted.tables.map((x) => [x.table, x.rows]), [['public.payment', 3], ['public.customer', 3], ['public.organizations', 1]], 'the payments before the customers they name')
  assert.deepEqual(await dataChecksums(target.url, Object.keys(where), where), before, 'tenant A byte-identical')
  assert.deepEqual(await target.sql(`SELECT count(*)::int AS n FROM payment WHERE org_id = $1`, [tenantB]), [{ n: 0 }])
})
