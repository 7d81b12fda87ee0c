import { ErrorCodes, TenantizeError } from '../errors.js'

/** The URL with its password replaced by `***`, safe to print and log. Non-URLs come back as `<invalid URL>`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|key|token/i.test(key)) parsed.searchParams.set(key, '***')
    }
    return parsed.toString()
  } catch {
    return '<invalid URL>'
  }
}

/**
 * The database URL a command uses: `--db` when given, else `DATABASE_URL`. Throws a config error naming
 * both when neither is set, or when the URL is not a postgres:// URL.
 */
export function resolveDatabaseUrl(fromFlag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = fromFlag ?? env['DATABASE_URL']
  if (url === undefined || url === '') {
    throw new TenantizeError(ErrorCodes.CONFIG, 'no database URL given', {
      object: '--db',
      fix: 'pass --db postgres://user@host:5432/dbname or set DATABASE_URL',
    })
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TenantizeError(ErrorCodes.CONFIG, 'the database URL is not a valid URL', {
      object: fromFlag === undefined ? 'DATABASE_URL' : '--db',
      fix: 'use the form postgres://user:password@host:5432/dbname',
    })
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new TenantizeError(ErrorCodes.CONFIG, `unsupported URL scheme "${parsed.protocol}"`, {
      object: fromFlag === undefined ? 'DATABASE_URL' : '--db',
      fix: 'use a postgres:// or postgresql:// URL',
    })
  }
  return url
}

/** The same server URL pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${encodeURIComponent(database)}`
  return parsed.toString()
}

/** The database name a URL points at (`postgres` when absent, as libpq defaults to the user name we don't know). */
export function databaseName(url: string): string {
  const path = new URL(url).pathname.replace(/^\//, '')
  return path === '' ? 'postgres' : decodeURIComponent(path)
}
