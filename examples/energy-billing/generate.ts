/**
 * Deterministic data for the energy-billing example: clients, tariffs, customers, users, 15-minute
 * meter readings, monthly billing periods, invoices and their lines.
 *
 *   npx tsx examples/energy-billing/generate.ts --db postgres://localhost/energy --scale large
 *
 * `small` (tests): 2 clients, 24 customers, 2 days of readings — about 5,000 rows.
 * `large` (benchmarks): 6 clients, 600 customers, 90 days — 5,184,000 meter readings.
 * A number: about that many meter readings.
 */
import { assertEmpty, countRows, generatorCli, insertRows, isMain, random, type GenerateOptions, type SqlClient } from '../shared/generator.js'

const SEED = 0x0e1ec7
export const TABLES = ['client', 'tariff_rate', 'tariff_block', 'customer', 'users', 'meter_reading', 'billing_period', 'invoice', 'invoice_line'] as const
/** The first reading; readings follow every 15 minutes. */
export const READINGS_START = '2025-01-01T00:00:00Z'

interface Size {
  readonly clients: number
  readonly customersPerClient: number
  readonly days: number
}

function sizeOf(scale: GenerateOptions['scale']): Size {
  if (scale === 'small') return { clients: 2, customersPerClient: 12, days: 2 }
  if (scale === 'large') return { clients: 6, customersPerClient: 100, days: 90 }
  const customers = Math.min(1000, Math.max(4, Math.ceil(scale / (96 * 90))))
  const clients = Math.max(1, Math.ceil(customers / 100))
  return { clients, customersPerClient: Math.ceil(customers / clients), days: Math.max(1, Math.round(scale / (customers * 96))) }
}

const CLIENTS = [
  ['NWE', 'Northwind Energy'],
  ['SRP', 'Sunridge Power'],
  ['BWU', 'Bluewater Utilities'],
  ['PEC', 'Prairie Electric Cooperative'],
  ['HLP', 'Harbor Light & Power'],
  ['GSE', 'Granite State Energy'],
  ['CVE', 'Cedar Valley Electric'],
  ['MRP', 'Mesa Ridge Power'],
] as const
const FIRST = ['Ada', 'Ben', 'Carla', 'Dmitri', 'Elena', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Keiko', 'Liam', 'Maya', 'Nils', 'Olga', 'Pablo', 'Quinn', 'Rosa', 'Sami', 'Tara']
const LAST = ['Adams', 'Berg', 'Costa', 'Dube', 'Evans', 'Fischer', 'Garcia', 'Horvat', 'Ito', 'Jensen', 'Kowalski', 'Lopez', 'Moreau', 'Novak', 'Okafor', 'Park', 'Rossi', 'Silva', 'Tanaka', 'Weber']
const BUSINESSES = ['Bakery', 'Dental Clinic', 'Hardware', 'Print Shop', 'Brewery', 'Cold Storage', 'Laundromat', 'Machine Works', 'Garden Center', 'Data Center']
const STREETS = ['Oak St', 'Maple Ave', 'Harbor Rd', 'Mill Lane', 'Station Sq', 'Ridge Way', 'Lake Dr', 'Elm Ct', 'Quarry Rd', 'Pine St']
const CITIES = [['Springfield', '62701'], ['Riverton', '82501'], ['Fairview', '97024'], ['Lakeside', '92040'], ['Georgetown', '78626'], ['Salem', '97301']] as const

/**
 * Load the example's data into a database where schema.sql was loaded (and nothing else yet).
 * The same rows on every run. Returns the row count of each table.
 */
export async function generate(client: SqlClient, options: GenerateOptions): Promise<Record<string, number>> {
  const size = sizeOf(options.scale)
  const rnd = random(SEED)
  await assertEmpty(client, TABLES)

  // Clients and their tariffs.
  const clientRows = Array.from({ length: size.clients }, (_, i) => {
    const [code, name] = CLIENTS[i] ?? [`CL${String(i + 1).padStart(3, '0')}`, `Client ${i + 1} Energy`]
    return [code, name, `billing@${code.toLowerCase()}.example`, `+1-555-01${String(i).padStart(2, '0')}`, 1 + (i * 7) % 28, i % 3 === 0 ? 21 : 30, 'USD', 'active', JSON.stringify({ portal: `${code.toLowerCase()}.portal.example`, paperless: i % 2 === 0 }), `2023-0${1 + (i % 9)}-15T09:00:00Z`, `2024-06-01T09:00:00Z`]
  })
  const clients = (await insertRows(client, 'client', ['code', 'name', 'contact_email', 'contact_phone', 'billing_day', 'payment_terms_days', 'currency', 'status', 'settings', 'created_at', 'updated_at'], clientRows, { returning: 'id' })).map((r, i) => ({ id: Number(r['id']), code: clientRows[i]![0] as string }))

  const tariffs: { id: number; clientId: number; kind: string }[] = []
  for (const c of clients) {
    const flat = 0.14 + rnd.int(0, 40) / 1000
    const spec = [
      ['Residential flat', 'flat', flat, null, null, null, null, 9.5],
      ['Residential tiered', 'tiered', flat - 0.01, null, null, null, null, 8],
      ['Time of use', 'time_of_use', 0.17, 0.28 + rnd.int(0, 30) / 1000, 0.17, 0.09, null, 10],
      ['Commercial demand', 'demand', 0.11, null, null, null, 12.5 + rnd.int(0, 40) / 10, 35],
    ] as const
    const inserted = await insertRows(client, 'tariff_rate', ['client_id', 'name', 'rate_type', 'energy_rate', 'on_peak_rate', 'mid_peak_rate', 'off_peak_rate', 'demand_rate', 'fixed_charge', 'effective_from', 'created_at'], spec.map((s) => [c.id, ...s, '2024-01-01', '2023-12-01T12:00:00Z']), { returning: 'id' })
    inserted.forEach((r, i) => tariffs.push({ id: Number(r['id']), clientId: c.id, kind: spec[i]![1] }))
  }
  const blocks = tariffs.filter((t) => t.kind === 'tiered').flatMap((t) => [
    [t.id, 1, 0, 500, 0.13],
    [t.id, 2, 500, 1000, 0.15],
    [t.id, 3, 1000, null, 0.18],
  ])
  await insertRows(client, 'tariff_block', ['tariff_rate_id', 'block_order', 'from_kwh', 'to_kwh', 'rate'], blocks)

  // Customers: mostly households, some businesses on the demand tariff.
  const customerRows: unknown[][] = []
  let serial = 0
  for (const c of clients) {
    const own = tariffs.filter((t) => t.clientId === c.id)
    for (let i = 0; i < size.customersPerClient; i++) {
      serial++
      const type = rnd.chance(0.8) ? 'residential' : rnd.chance(0.8) ? 'commercial' : 'industrial'
      const first = rnd.pick(FIRST)
      const last = rnd.pick(LAST)
      const name = type === 'residential' ? `${first} ${last}` : `${last} ${rnd.pick(BUSINESSES)}`
      const tariff = type === 'residential' ? rnd.pick(own.filter((t) => t.kind !== 'demand')) : own.find((t) => t.kind === 'demand')!
      const [city, postal] = rnd.pick(CITIES)
      customerRows.push([
        c.id, tariff.id, `${c.code}-${String(serial).padStart(7, '0')}`, `M${String(100000 + serial * 7)}`, name,
        `${first.toLowerCase()}.${last.toLowerCase()}.${serial}@mail.example`, `${rnd.int(1, 999)} ${rnd.pick(STREETS)}`, city, postal,
        type, rnd.chance(0.97) ? 'active' : 'moved_out', `2024-0${1 + (serial % 9)}-${String(1 + (serial % 28)).padStart(2, '0')}T10:00:00Z`, '2024-10-01T10:00:00Z',
      ])
    }
  }
  const customers = (await insertRows(client, 'customer', ['client_id', 'tariff_rate_id', 'account_number', 'meter_number', 'name', 'email', 'service_address', 'city', 'postal_code', 'customer_type', 'status', 'created_at', 'updated_at'], customerRows, { returning: 'id' })).map((r, i) => ({ id: Number(r['id']), clientId: customerRows[i]![0] as number, email: customerRows[i]![5] as string, name: customerRows[i]![4] as string }))

  // Users: one energy admin, an admin per client, a portal login for every third customer.
  const hash = (): string => `$2b$12$${rnd.hex(53)}`
  const userRows: unknown[][] = [['ops@energy.example', 'Energy Operations', hash(), 'energy_admin', null, null, '2025-01-02T08:00:00Z', '2023-01-01T08:00:00Z']]
  for (const c of clients) userRows.push([`admin@${c.code.toLowerCase()}.example`, `${c.code} administrator`, hash(), 'client_admin', c.id, null, null, '2023-06-01T08:00:00Z'])
  customers.forEach((cu, i) => {
    if (i % 3 === 0) userRows.push([cu.email, cu.name, hash(), 'customer_user', cu.clientId, cu.id, i % 2 === 0 ? '2025-01-01T19:30:00Z' : null, '2024-11-01T08:00:00Z'])
  })
  await insertRows(client, 'users', ['email', 'name', 'password_hash', 'role', 'client_id', 'customer_id', 'last_login_at', 'created_at'], userRows)

  // Meter readings: a daily load shape per customer type, with deterministic noise. Chunks keep each
  // statement bounded at benchmark size.
  const intervals = size.days * 96
  const ids = customers.map((c) => c.id).sort((a, b) => a - b)
  for (let i = 0; i < ids.length; i += 25) {
    const part = ids.slice(i, i + 25)
    await client.query(
      `INSERT INTO meter_reading (customer_id, meter_number, reading_at, kwh, demand_kw, tou_period, quality, received_at)
       SELECT c.id, c.meter_number, s.at,
              round(((CASE c.customer_type WHEN 'residential' THEN 0.12 WHEN 'commercial' THEN 1.6 ELSE 6.5 END)
                    * (1 + (c.id % 7) / 10.0)
                    * (0.7 + 0.3 * cos(2 * pi() * (s.hour - 18) / 24))
                    * (0.8 + 0.4 * s.noise))::numeric, 3),
              round(((CASE c.customer_type WHEN 'residential' THEN 0.48 WHEN 'commercial' THEN 6.4 ELSE 26 END)
                    * (1 + (c.id % 7) / 10.0)
                    * (0.7 + 0.3 * cos(2 * pi() * (s.hour - 18) / 24))
                    * (0.9 + 0.3 * s.noise))::numeric, 3),
              CASE WHEN s.dow < 6 AND s.hour >= 16 AND s.hour < 21 THEN 'on_peak'
                   WHEN s.dow < 6 AND s.hour >= 7 AND s.hour < 16 THEN 'mid_peak'
                   ELSE 'off_peak' END,
              CASE WHEN s.noise < 0.004 THEN 'estimated' ELSE 'actual' END,
              s.at + interval '15 minutes' + ((s.n * 31 + c.id) % 300) * interval '1 second'
         FROM customer c
        CROSS JOIN LATERAL (
              SELECT n, at,
                     extract(hour FROM at AT TIME ZONE 'UTC') + extract(minute FROM at AT TIME ZONE 'UTC') / 60.0 AS hour,
                     extract(isodow FROM at AT TIME ZONE 'UTC') AS dow,
                     ((c.id::bigint * 7919 + n * 104729 + $3) % 1000) / 1000.0 AS noise
                FROM generate_series(0, $4 - 1) AS n,
                     LATERAL (SELECT $5::timestamptz + n * interval '15 minutes' AS at) AS t
              ) AS s
        WHERE c.id BETWEEN $1 AND $2
        ORDER BY c.id, s.n`,
      [part[0], part[part.length - 1], SEED, intervals, READINGS_START],
    )
  }

  // A billing period per customer and calendar month with readings, its invoice, and the invoice lines.
  await client.query(`
    INSERT INTO billing_period (customer_id, tariff_rate_id, period_start, period_end, total_kwh, on_peak_kwh, mid_peak_kwh, off_peak_kwh, peak_demand_kw, status, calculated_at)
    SELECT r.customer_id, c.tariff_rate_id, m.month, (m.month + interval '1 month')::date,
           sum(r.kwh),
           coalesce(sum(r.kwh) FILTER (WHERE r.tou_period = 'on_peak'), 0),
           coalesce(sum(r.kwh) FILTER (WHERE r.tou_period = 'mid_peak'), 0),
           coalesce(sum(r.kwh) FILTER (WHERE r.tou_period = 'off_peak'), 0),
           max(r.demand_kw), 'invoiced',
           ((m.month + interval '1 month')::timestamp + interval '6 hours') AT TIME ZONE 'UTC'
      FROM meter_reading r
      JOIN customer c ON c.id = r.customer_id
     CROSS JOIN LATERAL (SELECT date_trunc('month', r.reading_at AT TIME ZONE 'UTC')::date AS month) AS m
     GROUP BY r.customer_id, c.tariff_rate_id, m.month
     ORDER BY r.customer_id, m.month`)
  await client.query(`
    INSERT INTO invoice (invoice_number, customer_id, billing_period_id, issued_on, due_on, energy_charges, demand_charges, fixed_charges, taxes, total, currency, status, paid_at, pdf_path, created_at)
    SELECT x.number, x.customer_id, x.period_id, x.issued_on, x.issued_on + x.terms,
           x.energy, x.demand, x.fixed, round((x.energy + x.demand + x.fixed) * 0.07, 2),
           x.energy + x.demand + x.fixed + round((x.energy + x.demand + x.fixed) * 0.07, 2),
           x.currency,
           CASE WHEN x.period_start < x.last_period THEN 'paid' ELSE 'issued' END,
           CASE WHEN x.period_start < x.last_period THEN ((x.issued_on + 12)::timestamp + interval '10 hours') AT TIME ZONE 'UTC' END,
           'invoices/' || x.number || '.pdf',
           (x.issued_on::timestamp + interval '6 hours') AT TIME ZONE 'UTC'
      FROM (
        SELECT cl.code || '-' || to_char(bp.period_start, 'YYYYMM') || '-' || lpad(c.id::text, 6, '0') AS number,
               c.id AS customer_id, bp.id AS period_id, bp.period_start, bp.period_end + 2 AS issued_on, cl.payment_terms_days AS terms, cl.currency,
               max(bp.period_start) OVER () AS last_period,
               round(CASE tr.rate_type
                       WHEN 'time_of_use' THEN bp.on_peak_kwh * tr.on_peak_rate + bp.mid_peak_kwh * tr.mid_peak_rate + bp.off_peak_kwh * tr.off_peak_rate
                       WHEN 'tiered' THEN (SELECT sum(greatest(0, least(bp.total_kwh, coalesce(b.to_kwh, bp.total_kwh)) - b.from_kwh) * b.rate) FROM tariff_block b WHERE b.tariff_rate_id = tr.id)
                       ELSE bp.total_kwh * tr.energy_rate
                     END, 2) AS energy,
               round(coalesce(bp.peak_demand_kw, 0) * coalesce(tr.demand_rate, 0), 2) AS demand,
               tr.fixed_charge AS fixed
          FROM billing_period bp
          JOIN customer c ON c.id = bp.customer_id
          JOIN client cl ON cl.id = c.client_id
          JOIN tariff_rate tr ON tr.id = bp.tariff_rate_id
      ) AS x
     ORDER BY x.period_id`)
  await client.query(`
    INSERT INTO invoice_line (invoice_id, line_no, kind, description, quantity, unit, unit_price, amount)
    SELECT i.id, l.line_no, l.kind, l.description, l.quantity, l.unit, l.unit_price, l.amount
      FROM invoice i
      JOIN billing_period bp ON bp.id = i.billing_period_id
     CROSS JOIN LATERAL (VALUES
       (1, 'energy', 'Energy ' || to_char(bp.period_start, 'FMMonth YYYY'), bp.total_kwh, 'kWh', CASE WHEN bp.total_kwh > 0 THEN round(i.energy_charges / bp.total_kwh, 5) ELSE 0 END, i.energy_charges),
       (2, 'demand', 'Peak demand', coalesce(bp.peak_demand_kw, 0), 'kW', CASE WHEN coalesce(bp.peak_demand_kw, 0) > 0 THEN round(i.demand_charges / bp.peak_demand_kw, 5) ELSE 0 END, i.demand_charges),
       (3, 'fixed', 'Service charge', 1, NULL, i.fixed_charges, i.fixed_charges),
       (4, 'tax', 'Taxes (7%)', 1, NULL, i.taxes, i.taxes)
     ) AS l (line_no, kind, description, quantity, unit, unit_price, amount)
     WHERE l.kind <> 'demand' OR i.demand_charges > 0
     ORDER BY i.id, l.line_no`)

  return countRows(client, TABLES)
}

if (isMain(import.meta.url)) await generatorCli('energy-billing', generate)
