import { test } from 'node:test'
import assert from 'node:assert/strict'
import { introspect } from '../src/catalog/index.js'
import { connect } from '../src/db/connect.js'
import { preflight } from '../src/migrate/preflight.js'
import { missingRlsFixes } from '../src/pg-security.js'
import { lintCatalog, verify } from '../src/verify/index.js'
import { CHANNEL_CLASSES, SERVER_CLASS } from './fixtures/security/classes-channels.js'
import { runSecurityClasses } from './fixtures/security/run.js'
import { createVerifyFixture, patchCatalog } from './helpers/verify-fixture.js'

// docs/security.md, part 3 of 3: side channels, pooled sessions and the server.
const { db } = await runSecurityClasses(import.meta.url, CHANNEL_CLASSES)

test(SERVER_CLASS.name, async () => {
  const t = await db.another('cve')
  const fx = await createVerifyFixture(t)
  const client = await connect(t.url)
  try {
    // An affected release (15.2: MERGE ignored UPDATE/SELECT policies, wrong policies after SET ROLE, …) is reported.
    const old = patchCatalog(await introspect(client), { server: { version: '15.2', versionNum: 150002, major: 15 } })
    const cves = (await lintCatalog(old, { appRole: fx.app })).findings.filter((f) => f.rule === 'server-rls-cve').map((f) => f.message.split(':')[0])
    assert.ok(cves.includes('CVE-2023-39418') && cves.includes('CVE-2023-2455'), cves.join(', '))
    // The live server is reported exactly when its own version misses a fix (per version: none on 15.20 or 18).
    const num = Number((await client.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`)).rows[0]!.n)
    const missing = missingRlsFixes(num)
    const report = await verify({ databaseUrl: t.url, appRole: fx.app })
    assert.equal(report.findings.some((f) => f.rule === 'server-rls-cve'), missing.length > 0)
    // On a fixed server the MERGE attack of CVE-2023-39418 fails: the probe's merge check passes.
    assert.ok(report.probe?.checks.some((c) => c.check === 'merge' && c.status === 'pass'), 'the probe ran MERGE against tenant B')
    // apply cannot upgrade the server: its pre-flight warns about missing fixes and goes on.
    const fixes = (await preflight(client, { touchedTables: [] })).find((c) => c.check === 'security-fixes')
    assert.equal(fixes?.status, missing.length > 0 ? 'warn' : 'ok')
  } finally {
    await client.end()
  }
})
