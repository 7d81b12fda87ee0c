import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { introspect } from '../src/catalog/index.js'
import { proposeConfig } from '../src/plan/classify.js'
import { parseConfig } from '../src/plan/config.js'
import { planConversion } from '../src/plan/plan.js'
import { testDatabase } from './helpers/db.js'

const db = await testDatabase(import.meta.url)

// A writer inserting a reading holds c_readings, then its foreign-key checks lock rows of b_meters and
// a_customers. A step that locked the scope's tables in name order held a_customers and waited for
// c_readings while the writer waited for a_customers: a deadlock, the writer's insert failed (40P01).
// The names put every parent before its children in name order, as energy-billing's did.
await db.sql(`
  CREATE TABLE organizations (id uuid PRIMARY KEY);
  CREATE TABLE a_customers (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations);
  CREATE TABLE b_meters (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations, customer_id bigint NOT NULL REFERENCES a_customers);
  CREATE TABLE c_readings (id bigint PRIMARY KEY, org_id uuid NOT NULL REFERENCES organizations, meter_id bigint NOT NULL REFERENCES b_meters, customer_id bigint NOT NULL REFERENCES a_customers);
  INSERT INTO organizations VALUES ('5e0f0c1a-0000-4000-8000-000000000001');
`)

test('a scope step locks referencing tables before the tables they reference (the order of a writer\'s foreign-key checks), so it cannot deadlock with a writer', async () => {
  const client = new pg.Client(db.url)
  await client.connect()
  const catalog = await introspect(client).finally(() => client.end())
  const { config: proposed } = proposeConfig(catalog, { tenantTable: { schema: 'public', name: 'organizations' }, defaultTenantId: '5e0f0c1a-0000-4000-8000-000000000001', appRole: db.role('app') })
  const config = parseConfig({
    ...proposed,
    scopes: [{ name: 'customer', setting: 'tenantize.customer_id', idType: 'bigint', tables: { 'public.a_customers': 'id', 'public.b_meters': 'customer_id', 'public.c_readings': 'customer_id' } }],
  })
  const plan = planConversion(catalog, config)
  const scope = plan.steps.find((s) => s.id === 'scope:customer')
  assert.ok(scope !== undefined, 'the plan has the scope step')
  const order = scope.up.filter((sql) => sql.startsWith('CREATE POLICY')).map((sql) => /ON ("?[\w.]+"?\.)?"?(\w+)"?/.exec(sql.slice(sql.indexOf(' ON ')))?.[2])
  assert.deepEqual(order, ['c_readings', 'b_meters', 'a_customers'])
})
