/**
 * PostgreSQL security fixes that matter to row-level security, with the minor release of each major that
 * fixed them. Pure data: used by `migrate` pre-flight checks and by `verify`.
 */
export interface RlsSecurityFix {
  readonly cve: string
  readonly summary: string
  /**
   * major → first fixed minor. Affected majors older than every listed one were end-of-life and never got
   * the fix; majors newer than every listed one shipped with it.
   */
  readonly fixedIn: Readonly<Record<number, number>>
  /** The first major with the flaw; older ones are not affected. */
  readonly affectedFrom: number
}

export const RLS_SECURITY_FIXES: readonly RlsSecurityFix[] = Object.freeze([
  {
    cve: 'CVE-2016-2193',
    summary: 'a cached plan could apply one role\'s row security policies to another role',
    fixedIn: { 9: 501 },
    affectedFrom: 9,
  },
  {
    cve: 'CVE-2019-10130',
    summary: 'selectivity estimators could read rows that row security policies hide',
    fixedIn: { 9: 613, 10: 8, 11: 3 },
    affectedFrom: 9,
  },
  {
    cve: 'CVE-2023-2455',
    summary: 'row security policies disregarded user ID changes after inlining (wrong policies applied after SET ROLE)',
    fixedIn: { 11: 20, 12: 15, 13: 11, 14: 8, 15: 3 },
    affectedFrom: 9,
  },
  {
    cve: 'CVE-2023-39418',
    summary: 'MERGE did not enforce UPDATE and SELECT row security policies',
    fixedIn: { 15: 4 },
    affectedFrom: 15,
  },
  {
    cve: 'CVE-2024-10976',
    summary: 'row security below subqueries disregarded user ID changes, so reused plans could apply the wrong role\'s policies',
    fixedIn: { 12: 21, 13: 17, 14: 14, 15: 9, 16: 5, 17: 1 },
    affectedFrom: 9,
  },
  {
    cve: 'CVE-2025-8713',
    summary: 'optimizer statistics could expose sampled rows of a view, partition or child table hidden by row security',
    fixedIn: { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 },
    affectedFrom: 9,
  },
] satisfies RlsSecurityFix[])

/** Split `server_version_num` (e.g. 150019 → 15, 19). 9.x keeps its middle digit in the minor: 90613 → 9, 613. */
export function splitVersionNum(versionNum: number): { major: number; minor: number } {
  return { major: Math.floor(versionNum / 10000), minor: versionNum % 10000 }
}

function formatVersion(major: number, minor: number): string {
  return major === 9 ? `9.${Math.floor(minor / 100)}.${minor % 100}` : `${major}.${minor}`
}

/** The RLS security fixes a server of this `server_version_num` is missing, each with the release that has it. */
export function missingRlsFixes(versionNum: number): { fix: RlsSecurityFix; upgradeTo: string }[] {
  const { major, minor } = splitVersionNum(versionNum)
  const out: { fix: RlsSecurityFix; upgradeTo: string }[] = []
  for (const fix of RLS_SECURITY_FIXES) {
    if (major < fix.affectedFrom) continue
    const majors = Object.keys(fix.fixedIn).map(Number)
    const fixedMinor = fix.fixedIn[major]
    if (fixedMinor !== undefined) {
      if (minor < fixedMinor) out.push({ fix, upgradeTo: formatVersion(major, fixedMinor) })
    } else if (major < Math.min(...majors)) {
      const newest = Math.max(...majors)
      out.push({ fix, upgradeTo: formatVersion(newest, fix.fixedIn[newest] ?? 0) })
    }
  }
  return out
}
