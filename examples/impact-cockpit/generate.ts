/**
 * Deterministic data for the impact-cockpit example: companies, the RBAC matrix, users and their
 * sessions, API keys and their usage, the audit log, weight overrides (changed a few times, so the
 * history trigger writes rows), integrations and their deliveries.
 *
 *   npx tsx examples/impact-cockpit/generate.ts --db postgres://localhost/cockpit --scale large
 *
 * `small` (tests): 3 companies — about 2,000 rows. `large`: 200 companies, 2,000,000 API-key usage rows.
 * A number: about that many API-key usage rows.
 */
import { assertEmpty, countRows, generatorCli, insertRows, isMain, random, type GenerateOptions, type SqlClient } from '../shared/generator.js'

const SEED = 0x1a3c
export const TABLES = ['companies', 'role_hierarchy', 'permissions', 'role_permissions', 'users', 'sessions', 'api_keys', 'api_key_usage', 'audit_log', 'weight_overrides', 'weight_override_history', 'integration_configs', 'integration_delivery_log'] as const

interface Size {
  readonly companies: number
  readonly usersPerCompany: number
  readonly usagePerKey: number
  readonly auditPerCompany: number
  readonly deliveriesPerIntegration: number
}

function sizeOf(scale: GenerateOptions['scale']): Size {
  if (scale === 'small') return { companies: 3, usersPerCompany: 8, usagePerKey: 250, auditPerCompany: 40, deliveriesPerIntegration: 30 }
  if (scale === 'large') return { companies: 200, usersPerCompany: 50, usagePerKey: 5000, auditPerCompany: 2000, deliveriesPerIntegration: 500 }
  const companies = Math.min(1000, Math.max(2, Math.ceil(scale / 10_000)))
  return { companies, usersPerCompany: 20, usagePerKey: Math.max(1, Math.round(scale / (companies * 2))), auditPerCompany: 200, deliveriesPerIntegration: 100 }
}

const COMPANIES = [
  ['northwind-foods', 'Northwind Foods'],
  ['blue-harbor-bank', 'Blue Harbor Bank'],
  ['lumen-health', 'Lumen Health'],
  ['terra-logistics', 'Terra Logistics'],
  ['quartz-software', 'Quartz Software'],
] as const
const ROLES = [['VIEWER', 1, 'Read-only access to dashboards and reports'], ['MANAGER', 2, 'View, export and generate reports'], ['ADMIN', 3, 'Company administrator'], ['SUPER_ADMIN', 4, 'Operates the cockpit for every company']] as const
const PERMISSIONS = [
  ['dashboard:read', 'dashboard', 'read', 1], ['reports:read', 'reports', 'read', 1], ['reports:export', 'reports', 'export', 2], ['reports:generate', 'reports', 'generate', 2],
  ['weights:read', 'weights', 'read', 2], ['weights:write', 'weights', 'write', 3], ['api_keys:manage', 'api_keys', 'manage', 3], ['users:manage', 'users', 'manage', 3],
  ['integrations:manage', 'integrations', 'manage', 3], ['audit:read', 'audit', 'read', 3], ['companies:manage', 'companies', 'manage', 4], ['tenants:switch', 'tenants', 'switch', 4],
] as const
const FIRST = ['Amira', 'Bram', 'Chen', 'Dalia', 'Emil', 'Freya', 'Goran', 'Hana', 'Ivo', 'Jana', 'Kofi', 'Lena']
const LAST = ['Andersen', 'Bakker', 'Chowdhury', 'Dumont', 'Eriksen', 'Fontaine', 'Gruber', 'Haddad', 'Ivanova', 'Jovanovic', 'Kim', 'Lindqvist']
const ENDPOINTS = ['/api/v1/metrics/sroi', '/api/v1/metrics/vis', '/api/v1/reports', '/api/v1/programs', '/api/v1/volunteers']
const ACTIONS = [['USER_INVITED', 'user'], ['ROLE_CHANGED', 'user'], ['API_KEY_CREATED', 'api_key'], ['REPORT_EXPORTED', 'report'], ['WEIGHTS_UPDATED', 'weight_override'], ['INTEGRATION_ENABLED', 'integration']] as const
const PLATFORMS = ['benevity', 'goodera', 'workday'] as const

const day = (d: number, hour = 9): string => new Date(Date.UTC(2025, 0, 1 + d, hour)).toISOString()

/**
 * Load the example's data into a database where schema.sql was loaded (and nothing else yet).
 * The same rows on every run. Returns the row count of each table.
 */
export async function generate(client: SqlClient, options: GenerateOptions): Promise<Record<string, number>> {
  const size = sizeOf(options.scale)
  const rnd = random(SEED)
  await assertEmpty(client, TABLES)

  await insertRows(client, 'role_hierarchy', ['role', 'level', 'description'], ROLES)
  const permissions = await insertRows(client, 'permissions', ['name', 'resource', 'action', 'description', 'created_at'], PERMISSIONS.map(([name, resource, action]) => [name, resource, action, `${action} ${resource}`, '2024-01-01T00:00:00Z']), { returning: 'id' })
  await insertRows(client, 'role_permissions', ['role', 'permission_id'], ROLES.flatMap(([role, level]) => PERMISSIONS.map((p, i) => [p, permissions[i]!['id']] as const).filter(([p]) => p[3] <= level).map(([, id]) => [role, id])))

  const companies = Array.from({ length: size.companies }, (_, i) => {
    const [slug, name] = COMPANIES[i] ?? [`company-${String(i + 1).padStart(4, '0')}`, `Company ${i + 1}`]
    return { id: rnd.uuid(), slug, name }
  })
  await insertRows(client, 'companies', ['id', 'name', 'slug', 'tenant_enabled', 'tenant_config', 'created_at'], companies.map((c, i) => [c.id, c.name, c.slug, i % 9 !== 8, JSON.stringify({ theme: i % 2 === 0 ? 'light' : 'dark', locale: 'en' }), day(-400 + i)]))

  const users: { id: string; companyId: string; email: string; role: string }[] = []
  const userRows: unknown[][] = []
  for (const c of companies) {
    for (let u = 0; u < size.usersPerCompany; u++) {
      const role = u === 0 ? 'ADMIN' : u < 3 ? 'MANAGER' : 'VIEWER'
      const first = rnd.pick(FIRST)
      const last = rnd.pick(LAST)
      const user = { id: rnd.uuid(), companyId: c.id, email: `${first.toLowerCase()}.${last.toLowerCase()}.${u}@${c.slug}.example`, role }
      users.push(user)
      userRows.push([user.id, c.id, user.email, `${first} ${last}`, role, `$2b$12$${rnd.hex(53)}`, u % 4 === 3 ? null : day(rnd.int(0, 30), 8 + u % 9), day(-300 + u)])
    }
  }
  const operator = { id: rnd.uuid(), companyId: companies[0]!.id, email: 'operator@cockpit.example', role: 'SUPER_ADMIN' }
  users.push(operator)
  userRows.push([operator.id, operator.companyId, operator.email, 'Cockpit Operator', 'SUPER_ADMIN', `$2b$12$${rnd.hex(53)}`, day(31), day(-500)])
  await insertRows(client, 'users', ['id', 'company_id', 'email', 'name', 'role', 'password_hash', 'last_login_at', 'created_at'], userRows)

  const slugOf = new Map(companies.map((c) => [c.id, c.slug]))
  await insertRows(client, 'sessions', ['id', 'user_id', 'token_hash', 'tenant_slug', 'created_at', 'expires_at', 'ip_address', 'user_agent'], users.flatMap((u, i) => [0, 1].map((s) => {
    const at = day(rnd.int(0, 30), 7 + s * 6)
    return [rnd.uuid(), u.id, rnd.hex(64), slugOf.get(u.companyId), at, new Date(Date.parse(at) + 12 * 3600_000).toISOString(), `10.${i % 250}.${s}.${1 + (i % 200)}`, s === 0 ? 'Mozilla/5.0 (Macintosh)' : 'Mozilla/5.0 (Windows NT 10.0)']
  })))

  const admins = new Map(users.filter((u) => u.role === 'ADMIN').map((u) => [u.companyId, u.id]))
  const keys = companies.flatMap((c, i) => [0, 1].map((k) => ({ id: rnd.uuid(), companyId: c.id, revoked: k === 1 && i % 2 === 0, k })))
  await insertRows(client, 'api_keys', ['id', 'company_id', 'name', 'key_hash', 'key_prefix', 'scopes', 'created_at', 'created_by', 'last_used_at', 'revoked_at', 'revoked_by'], keys.map((key) => {
    const prefix = `tz_${rnd.hex(8)}`
    return [key.id, key.companyId, key.k === 0 ? 'Reporting export' : 'Data warehouse sync', rnd.hex(64), prefix, key.k === 0 ? ['read:metrics', 'read:reports'] : ['read:metrics'], day(-60 + key.k), admins.get(key.companyId), day(30, 23), key.revoked ? day(20) : null, key.revoked ? admins.get(key.companyId) : null]
  }))

  // API-key usage: one row per key and minute of traffic, from the start of the year.
  await client.query(
    `INSERT INTO api_key_usage (api_key_id, used_at, endpoint, ip_address, user_agent, request_count)
     SELECT k.id, '2025-01-01T00:00:00Z'::timestamptz + (g * 7 + k.n * 3) * interval '1 minute',
            ($3::text[])[1 + (g + k.n) % 5], ('192.0.2.' || (1 + (g * 11 + k.n) % 250))::inet,
            CASE WHEN g % 3 = 0 THEN 'python-requests/2.32' ELSE 'cockpit-sync/1.4' END,
            1 + (g * 13 + k.n * $1) % 20
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM api_keys) AS k
      CROSS JOIN generate_series(1, $2::int) AS g
      ORDER BY k.n, g`,
    [SEED % 97, size.usagePerKey, ENDPOINTS],
  )

  const auditRows: unknown[][] = []
  for (const c of companies) {
    const own = users.filter((u) => u.companyId === c.id && u.role !== 'SUPER_ADMIN')
    for (let a = 0; a < size.auditPerCompany; a++) {
      const who = rnd.pick(own)
      const [action, resource] = rnd.pick(ACTIONS)
      auditRows.push([day(Math.floor(a * 30 / size.auditPerCompany), 8 + (a % 10)), c.id, who.id, who.email, who.role, action, resource, rnd.uuid(), a % 25 === 24 ? 'warning' : 'info', JSON.stringify({ via: a % 3 === 0 ? 'api' : 'console' }), `198.51.100.${1 + (a % 250)}`, rnd.uuid()])
    }
  }
  await insertRows(client, 'audit_log', ['occurred_at', 'company_id', 'user_id', 'user_email', 'user_role', 'action', 'resource', 'resource_id', 'severity', 'details', 'ip_address', 'request_id'], auditRows)

  // Weight overrides: created, then changed twice — the trigger keeps each change.
  const overrides = companies.flatMap((c) => (['sroi', 'vis'] as const).map((category) => ({ id: rnd.uuid(), companyId: c.id, category })))
  await insertRows(client, 'weight_overrides', ['id', 'company_id', 'category', 'weights', 'created_at', 'created_by', 'updated_at', 'updated_by'], overrides.map((o) => [o.id, o.companyId, o.category, JSON.stringify(o.category === 'sroi' ? { volunteer_hour_value: 29.95, donation_multiplier: 1.0 } : { engagement: 0.4, reach: 0.35, depth: 0.25 }), day(-90), admins.get(o.companyId), day(-90), admins.get(o.companyId)]))
  for (const [n, factor] of [[1, 1.1], [2, 1.2]] as const) {
    await client.query(
      `UPDATE weight_overrides
          SET weights = (SELECT jsonb_object_agg(key, round((value::text)::numeric * $1, 2)) FROM jsonb_each(weights)),
              updated_at = $2, updated_by = created_by`,
      [factor, day(-60 + n * 20)],
    )
  }

  const integrations = companies.flatMap((c, i) => PLATFORMS.slice(0, 1 + (i % 3)).map((platform) => ({ id: rnd.uuid(), companyId: c.id, platform })))
  await insertRows(client, 'integration_configs', ['id', 'company_id', 'platform', 'enabled', 'api_endpoint', 'credentials_encrypted', 'config', 'last_synced_at', 'last_sync_status', 'created_at', 'updated_at'], integrations.map((g, i) => [g.id, g.companyId, g.platform, i % 4 !== 3, `https://api.${g.platform}.example/v2/impact`, `v1:${rnd.hex(96)}`, JSON.stringify({ batch_size: 500, schedule: '0 3 * * *' }), day(30, 3), i % 5 === 4 ? 'failed' : 'success', day(-120), day(-10)]))
  await client.query(
    `INSERT INTO integration_delivery_log (integration_config_id, company_id, platform, delivered_at, status, payload_hash, error_message, retry_count, response_status, duration_ms, metadata)
     SELECT i.id, i.company_id, i.platform, '2025-01-01T03:00:00Z'::timestamptz + g * interval '1 day' + i.n * interval '1 second',
            CASE WHEN (g + i.n) % 11 = 0 THEN 'failed' WHEN (g + i.n) % 13 = 0 THEN 'retrying' ELSE 'success' END,
            md5(i.id::text || ':' || g),
            CASE WHEN (g + i.n) % 11 = 0 THEN 'HTTP 503 from partner' END,
            CASE WHEN (g + i.n) % 13 = 0 THEN 1 + g % 3 ELSE 0 END,
            CASE WHEN (g + i.n) % 11 = 0 THEN 503 ELSE 200 END,
            120 + (g * 37 + i.n * 11) % 900,
            jsonb_build_object('records', 100 + (g * 17) % 400)
       FROM (SELECT id, company_id, platform, row_number() OVER (ORDER BY id) AS n FROM integration_configs) AS i
      CROSS JOIN generate_series(1, $1::int) AS g
      ORDER BY i.n, g`,
    [size.deliveriesPerIntegration],
  )

  return countRows(client, TABLES)
}

if (isMain(import.meta.url)) await generatorCli('impact-cockpit', generate)
