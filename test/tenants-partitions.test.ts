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
import { parseConfig } from '../src/plan/config.js'
import { deleteTenant, importTenant, tenantModel } from '../src/tenants/index.js'
import { dataChecksums } from './helpers/conversion.js'
import { testDatabase } from './helpers/db.js'
import { fast, proposedConfig } from './helpers/examples.js'

const db = await testDatabase(import.meta.url)

const SCHEMA = `CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL);
  CREATE TABLE payment (id serial NOT NULL, paid_at int NOT NULL, customer_id int NOT NULL, amount int NOT NULL) PARTITION BY RANGE (paid_at);
  CREATE TABLE payment_0 PARTITION OF payment FOR VALUES FROM (0) TO (100);
  CREATE TABLE payment_1 PARTITION OF payment FOR VALUES FROM (100) TO (200);
  ALTER TABLE ONLY payment_0 ADD CONSTRAINT payment_0_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer (id)`

test('import and delete a tenant through a foreign key declared on a partition only: the imported payments point at the imported customers; the delete leaves the other tenant as it was', async () => {
  const target = await db.another('tz_part_target')
  const source = await db.another('tz_part_source')
  await target.sql(`${SCHEMA}; INSERT INTO customer (name) VALUES ('a1'), ('a2'); INSERT INTO payment (paid_at, customer_id, amount) VALUES (1, 1, 10), (2, 2, 20), (150, 2, 30)`)
  await source.sql(`${SCHEMA}; INSERT INTO customer (name) VALUES ('b1'), ('b2'), ('b3'); INSERT INTO payment (paid_at, customer_id, amount) VALUES (1, 3, 100), (2, 1, 200), (150, 2, 300)`)
  const config = await proposedConfig(target)
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

test('import: keys from a sequence not OWNED BY their column, a composite key (partition key, id), a key that is the foreign key to an imported row, and shared rows the target lacks (refused before any row goes in)', async () => {
  const target = await db.another('tz_keys_target')
  const source = await db.another('tz_keys_source')
  // pagila's way: the sequence first, the default names it, no OWNED BY (pg_get_serial_sequence finds nothing).
  const schema = `CREATE TABLE kind (id int PRIMARY KEY, label text NOT NULL);
    CREATE SEQUENCE person_seq; CREATE SEQUENCE event_seq;
    CREATE TABLE person (id int PRIMARY KEY DEFAULT nextval('person_seq'), name text NOT NULL, kind_id int REFERENCES kind);
    CREATE TABLE person_extra (person_id int PRIMARY KEY REFERENCES person, note text NOT NULL);
    CREATE TABLE event (id int NOT NULL DEFAULT nextval('event_seq'), at int NOT NULL, person_id int NOT NULL REFERENCES person, PRIMARY KEY (at, id)) PARTITION BY RANGE (at);
    CREATE TABLE event_0 PARTITION OF event FOR VALUES FROM (0) TO (1000)`
  const rows = `INSERT INTO kind VALUES (1, 'one');
    INSERT INTO person (name, kind_id) VALUES ('p1', 1), ('p2', NULL);
    INSERT INTO person_extra VALUES (1, 'extra of p1'), (2, 'extra of p2');
    INSERT INTO event (at, person_id) VALUES (5, 1), (6, 2)`
  await target.sql(`${schema}; ${rows}`)
  await source.sql(`${schema}; ${rows}; UPDATE person_extra SET note = note || ' (source)'; INSERT INTO kind VALUES (7, 'seven'); INSERT INTO person (name, kind_id) VALUES ('p3', 7)`)
  const proposed = await proposedConfig(target)
  // kind is the app's lookup table, shared by every tenant.
  const config = parseConfig({ ...proposed, tables: { ...proposed.tables, 'public.kind': { class: 'global', reason: 'the app\'s lookup table', alternatives: [], keepGlobalUnique: [], sharedReferences: [] } } })
  await apply({ databaseUrl: target.url, config, phase: 'all', timeouts: fast })
  const options = { databaseUrl: target.url, config, from: source.url, slug: 'keys', name: 'Keys', batchPauseMs: 0, timeouts: fast }
  // The source's p3 names kind 7, which the target's shared table lacks: refused before any row of the tenant goes in.
  await assert.rejects(importTenant(options), (e: { code?: string; problems?: readonly { object: string; message: string }[] }) => {
    assert.equal(e.code, 'TZ_TENANT')
    assert.deepEqual(e.problems?.map((p) => [p.object, p.message]), [['public.person person_kind_id_fkey', '1 row(s) reference public.kind rows the target does not have (kind_id = 7)']])
    return true
  })
  const [{ tenant }] = await target.sql<{ tenant: string }>(`SELECT id::text AS tenant FROM organizations WHERE slug = 'keys'`) as [{ tenant: string }]
  assert.deepEqual(await target.sql(`SELECT count(*)::int AS n FROM person WHERE org_id = $1`, [tenant]), [{ n: 0 }], 'no row of the tenant went in')
  // The shared row added, the import runs again and resumes.
  await target.sql(`INSERT INTO kind VALUES (7, 'seven')`)
  const result = await importTenant(options)
  assert.equal(result.tenant?.id, tenant)
  assert.deepEqual(result.tables.map((x) => [x.table, x.rows, x.remapped]), [['public.person', 3, 3], ['public.event', 2, 2], ['public.person_extra', 2, 2]], 'every key new: drawn from the sequences, the extension rows following their person')
  assert.deepEqual(
    await target.sql(`SELECT p.name, x.note, e.at FROM person p JOIN person_extra x ON x.person_id = p.id JOIN event e ON e.person_id = p.id WHERE p.org_id = $1 ORDER BY p.name`, [tenant]),
    [{ name: 'p1', note: 'extra of p1 (source)', at: 5 }, { name: 'p2', note: 'extra of p2 (source)', at: 6 }],
    'each extension row and event still belongs to its person',
  )
  assert.deepEqual(await target.sql(`SELECT min(id)::int AS lo FROM person WHERE org_id = $1`, [tenant]), [{ lo: 3 }], 'new ids from person_seq, after the target\'s own')
})
