/**
 * Deterministic data for the sell-out example: retailers, users, the product catalog, monthly uploads
 * per retailer, their sell-out rows, and the pipeline's processing, transformation and e-mail logs.
 *
 *   npx tsx examples/sellout/generate.ts --db postgres://localhost/sellout --scale large
 *
 * `small` (tests): 12 uploads (one failed), 2,750 sell-out rows — about 3,000 rows in all.
 * `large` (benchmarks): 192 uploads (8 retailers × 24 months, 17 failed), 875,000 sell-out rows.
 * A number: about that many sell-out rows.
 */
import { assertEmpty, countRows, generatorCli, insertRows, isMain, random, type GenerateOptions, type SqlClient } from '../shared/generator.js'

const SEED = 0x5e11
export const TABLES = ['retailers', 'users', 'products', 'uploads', 'sellout_entries2', 'processing_logs', 'transform_logs', 'email_logs'] as const

interface Size {
  readonly retailers: number
  readonly months: number
  readonly rowsPerUpload: number
  readonly products: number
}

function sizeOf(scale: GenerateOptions['scale']): Size {
  if (scale === 'small') return { retailers: 4, months: 3, rowsPerUpload: 250, products: 60 }
  if (scale === 'large') return { retailers: 8, months: 24, rowsPerUpload: 5000, products: 2500 }
  const uploads = Math.min(8 * 36, Math.max(4, Math.ceil(scale / 5000)))
  const retailers = Math.min(8, uploads)
  const months = Math.ceil(uploads / retailers)
  return { retailers, months, rowsPerUpload: Math.max(1, Math.round(scale / (retailers * months))), products: Math.min(5000, Math.max(20, Math.round(scale / 400))) }
}

const RETAILERS = [
  ['ALDI_N', 'Aldi Nord', 'DE', 'grocery'],
  ['DM', 'dm-drogerie markt', 'DE', 'drugstore'],
  ['REWE', 'REWE', 'DE', 'grocery'],
  ['ROSSMANN', 'Rossmann', 'DE', 'drugstore'],
  ['AH', 'Albert Heijn', 'NL', 'grocery'],
  ['KRUIDVAT', 'Kruidvat', 'NL', 'drugstore'],
  ['AMAZON_DE', 'Amazon.de', 'DE', 'online'],
  ['METRO', 'Metro Cash & Carry', 'DE', 'wholesale'],
] as const
const BRANDS = ['Alpenfrisch', 'Nordlicht', 'Sonnenhof']
const CATEGORIES = [['Shampoo', '250 ml'], ['Shower gel', '300 ml'], ['Hand cream', '75 ml'], ['Toothpaste', '75 ml'], ['Body lotion', '400 ml'], ['Deodorant', '150 ml']] as const

/** An EAN-13 with its check digit. */
function ean13(body: string): string {
  const digits = [...body].map(Number)
  const sum = digits.reduce((s, d, i) => s + d * (i % 2 === 0 ? 1 : 3), 0)
  return `${body}${(10 - (sum % 10)) % 10}`
}

/**
 * Load the example's data into a database where schema.sql was loaded (and nothing else yet).
 * The same rows on every run. Returns the row count of each table.
 */
export async function generate(client: SqlClient, options: GenerateOptions): Promise<Record<string, number>> {
  const size = sizeOf(options.scale)
  const rnd = random(SEED)
  await assertEmpty(client, TABLES)

  await insertRows(client, 'retailers', ['code', 'name', 'country', 'channel'], RETAILERS)

  const people = [['anna.keller', 'Anna Keller', 'admin'], ['bo.svensson', 'Bo Svensson', 'analyst'], ['chiara.ferri', 'Chiara Ferri', 'analyst'], ['daan.visser', 'Daan Visser', 'analyst'], ['emre.yilmaz', 'Emre Yilmaz', 'viewer'], ['fatou.diallo', 'Fatou Diallo', 'viewer']] as const
  const users = people.map(([login, name, role], i) => [rnd.uuid(), `${login}@brand.example`, name, role, i !== 4, `2023-0${1 + i}-10T08:00:00Z`, i < 4 ? `2025-0${1 + i}-20T07:45:00Z` : null] as const)
  await insertRows(client, 'users', ['id', 'email', 'full_name', 'role', 'is_active', 'created_at', 'last_login_at'], users)
  const analysts = users.filter((u) => u[3] !== 'viewer')

  const products = Array.from({ length: size.products }, (_, i) => {
    const [category, pack] = CATEGORIES[i % CATEGORIES.length]!
    const brand = BRANDS[i % BRANDS.length]!
    return [rnd.uuid(), ean13(`40${String(1234500000 + i * 7).padStart(10, '0')}`), `SKU-${String(i + 1).padStart(5, '0')}`, `${brand} ${category} ${['Classic', 'Sensitive', 'Fresh', 'Repair', 'Kids'][i % 5]}`, brand, category, pack, i % 23 !== 22, `2022-${String(1 + (i % 12)).padStart(2, '0')}-01T09:00:00Z`]
  })
  await insertRows(client, 'products', ['id', 'ean', 'sku', 'name', 'brand', 'category', 'pack_size', 'is_active', 'created_at'], products)

  // One upload per retailer and month, the newest months last; now and then one failed.
  const uploads: (string | number | null)[][] = []
  for (let m = 0; m < size.months; m++) {
    const year = 2023 + Math.floor(m / 12)
    const month = 1 + (m % 12)
    const next = new Date(Date.UTC(year, month, 3 + (m % 5), 8))
    for (let r = 0; r < size.retailers; r++) {
      const [code] = RETAILERS[r]!
      const failed = (m * size.retailers + r) % 11 === 10
      const at = new Date(next.getTime() + r * 47 * 60_000)
      uploads.push([
        rnd.uuid(), rnd.pick(analysts)[0], code, `${code.toLowerCase()}_${year}${String(month).padStart(2, '0')}.${r % 3 === 0 ? 'xlsx' : 'csv'}`, rnd.int(40_000, 9_000_000), rnd.hex(64), year, month,
        failed ? 'failed' : 'processed', failed ? null : size.rowsPerUpload, failed ? 'row 1: unknown column "Menge (Stk)"' : null, at.toISOString(), failed ? null : new Date(at.getTime() + rnd.int(20, 600) * 1000).toISOString(),
      ])
    }
  }
  await insertRows(client, 'uploads', ['id', 'user_id', 'retailer', 'filename', 'file_size', 'content_hash', 'period_year', 'period_month', 'status', 'row_count', 'error_message', 'created_at', 'processed_at'], uploads)

  // Sell-out rows of every processed upload, upload by upload: a product and store per row, an
  // unmapped EAN now and then. Everything derives from the upload's position and the row number.
  await client.query(
    `INSERT INTO sellout_entries2 (upload_id, product_id, ean, retailer, store_code, year, month, quantity, revenue, currency, created_at)
     SELECT u.id,
            CASE WHEN g % 97 = 0 THEN NULL ELSE p.id END,
            CASE WHEN g % 97 = 0 THEN '400000' || lpad((g * 7 % 1000000)::text, 7, '0') ELSE p.ean END,
            u.retailer, u.retailer || '-' || lpad((1 + (g * 13 + u.n) % 180)::text, 4, '0'), u.period_year, u.period_month,
            q.quantity, round(q.quantity * (1.49 + (p.n % 20) * 0.45) * (1 - (u.n % 4) * 0.02), 2), 'EUR',
            u.processed_at
       FROM (SELECT *, row_number() OVER (ORDER BY created_at, id) AS n FROM uploads WHERE status = 'processed') AS u
      CROSS JOIN generate_series(1, $1::int) AS g
       JOIN (SELECT id, ean, row_number() OVER (ORDER BY ean) - 1 AS n FROM products) AS p ON p.n = (g * 31 + u.n * 7 + $2) % $3
      CROSS JOIN LATERAL (SELECT 1 + ((g * 37 + u.n * 11) % 48) AS quantity) AS q
      ORDER BY u.n, g`,
    [size.rowsPerUpload, SEED % 1000, size.products],
  )

  // The pipeline's logs: five steps per upload (fewer when it failed), three transformation rules, one e-mail.
  await client.query(`
    INSERT INTO processing_logs (upload_id, step, status, message, duration_ms, created_at)
    SELECT u.id, s.step, CASE WHEN u.status = 'failed' AND s.n = 2 THEN 'failed' ELSE 'succeeded' END,
           CASE WHEN u.status = 'failed' AND s.n = 2 THEN u.error_message ELSE s.step || ' ok' END,
           40 + (s.n * 211 + length(u.filename) * 17) % 4000,
           u.created_at + s.n * interval '7 seconds'
      FROM uploads u
     CROSS JOIN (VALUES (1, 'parse'), (2, 'validate'), (3, 'map_products'), (4, 'load'), (5, 'notify')) AS s (n, step)
     WHERE u.status = 'processed' OR s.n <= 2
     ORDER BY u.created_at, u.id, s.n`)
  await client.query(`
    INSERT INTO transform_logs (upload_id, rule, rows_in, rows_out, rows_rejected, details, created_at)
    SELECT u.id, r.rule, u.row_count + r.extra, u.row_count, r.extra, jsonb_build_object('source', u.filename, 'rule_version', r.n),
           u.created_at + (10 + r.n) * interval '1 second'
      FROM uploads u
     CROSS JOIN (VALUES (1, 'trim_header_rows', 3), (2, 'normalize_ean', 0), (3, 'drop_zero_quantity', 12)) AS r (n, rule, extra)
     WHERE u.status = 'processed'
     ORDER BY u.created_at, u.id, r.n`)
  await client.query(`
    INSERT INTO email_logs (user_id, upload_id, recipient, subject, template, status, provider_message_id, sent_at, created_at)
    SELECT u.user_id, u.id, us.email,
           CASE u.status WHEN 'failed' THEN 'Upload failed: ' ELSE 'Upload processed: ' END || u.filename,
           CASE u.status WHEN 'failed' THEN 'upload_failed' ELSE 'upload_processed' END,
           CASE WHEN length(u.filename) % 13 = 0 THEN 'bounced' ELSE 'sent' END,
           '<' || substr(u.content_hash, 1, 24) || '@mail.example>',
           coalesce(u.processed_at, u.created_at) + interval '40 seconds',
           coalesce(u.processed_at, u.created_at) + interval '35 seconds'
      FROM uploads u
      JOIN users us ON us.id = u.user_id
     ORDER BY u.created_at, u.id`)

  return countRows(client, TABLES)
}

if (isMain(import.meta.url)) await generatorCli('sellout', generate)
