import { execFile } from 'node:child_process'
import { access, rm, stat } from 'node:fs/promises'
import { constants } from 'node:fs'
import { readdirSync } from 'node:fs'
import { promisify } from 'node:util'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { redactUrl } from '../db/url.js'

const run = promisify(execFile)

async function dumpMajor(bin: string): Promise<number | undefined> {
  try {
    const { stdout } = await run(bin, ['--version'])
    const m = /(\d+)(?:\.\d+)?/.exec(stdout.replace(/^[^0-9]*/, ''))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}

/** Candidate pg_dump binaries: `TENANTIZE_PG_DUMP`, then `pg_dump` on PATH, then Debian's per-major ones. */
function candidates(): string[] {
  const env = process.env['TENANTIZE_PG_DUMP']
  if (env !== undefined && env !== '') return [env]
  const out = ['pg_dump']
  try {
    for (const major of readdirSync('/usr/lib/postgresql')) out.push(`/usr/lib/postgresql/${major}/bin/pg_dump`)
  } catch {
    // not a Debian-style layout
  }
  return out
}

/** A pg_dump at least as new as the server (pg_dump refuses older), newest first. */
export async function findPgDump(serverMajor: number): Promise<string> {
  const found: string[] = []
  let best: { bin: string; major: number } | undefined
  for (const bin of candidates()) {
    const major = await dumpMajor(bin)
    if (major === undefined) continue
    found.push(`${bin} (${major})`)
    if (major >= serverMajor && (best === undefined || major > best.major)) best = { bin, major }
  }
  if (best === undefined) {
    throw new TenantizeError(ErrorCodes.BACKUP, `no pg_dump for PostgreSQL ${serverMajor} or later found${found.length > 0 ? ` (found: ${found.join(', ')})` : ''}; nothing was changed`, {
      object: 'pg_dump',
      fix: `install the PostgreSQL ${serverMajor} client tools or set TENANTIZE_PG_DUMP to a pg_dump ${serverMajor}+`,
    })
  }
  return best.bin
}

/**
 * `pg_dump -Fc` of the database into `file`. The password goes through PGPASSWORD, never the command line.
 * Refuses to overwrite an existing file; removes a partial file on failure.
 */
export async function backupDatabase(url: string, file: string, serverMajor: number): Promise<{ file: string; bytes: number }> {
  const exists = await access(file, constants.F_OK).then(() => true, () => false)
  if (exists) {
    throw new TenantizeError(ErrorCodes.BACKUP, 'the backup file already exists; nothing was changed', { object: file, fix: 'choose a new file name or move the old backup away' })
  }
  const bin = await findPgDump(serverMajor)
  const parsed = new URL(url)
  const password = decodeURIComponent(parsed.password)
  parsed.password = ''
  try {
    await run(bin, ['--format=custom', '--no-password', `--file=${file}`, `--dbname=${parsed.toString()}`], {
      env: { ...process.env, ...(password === '' ? {} : { PGPASSWORD: password }) },
      maxBuffer: 16 * 1024 * 1024,
    })
  } catch (error) {
    await rm(file, { force: true })
    const stderr = String((error as { stderr?: string }).stderr ?? (error as Error).message).trim().split('\n').at(-1) ?? ''
    throw new TenantizeError(ErrorCodes.BACKUP, `pg_dump failed: ${stderr.replaceAll(password === '' ? '\0' : password, '***')}; nothing was changed`, {
      object: redactUrl(url),
      fix: 'fix the cause above (permissions, disk space, pg_dump version) and run again',
      cause: error,
    })
  }
  return { file, bytes: (await stat(file)).size }
}
