import { test } from 'node:test'
import assert from 'node:assert/strict'
import { missingRlsFixes, splitVersionNum } from '../src/pg-security.js'

const cves = (v: number): string[] => missingRlsFixes(v).map((m) => `${m.fix.cve}→${m.upgradeTo}`)

test('splitVersionNum', () => {
  assert.deepEqual(splitVersionNum(150019), { major: 15, minor: 19 })
  assert.deepEqual(splitVersionNum(180004), { major: 18, minor: 4 })
  assert.deepEqual(splitVersionNum(90613), { major: 9, minor: 613 })
})

test('current minors of supported majors miss no RLS fix', () => {
  assert.deepEqual(cves(150019), [])
  assert.deepEqual(cves(160010), [])
  assert.deepEqual(cves(170006), [])
  assert.deepEqual(cves(180000), [])
})

test('each fix is reported on the minor just before it, with the release that fixes it', () => {
  assert.deepEqual(cves(150002), ['CVE-2023-2455→15.3', 'CVE-2023-39418→15.4', 'CVE-2024-10976→15.9', 'CVE-2025-8713→15.14'])
  assert.deepEqual(cves(150003), ['CVE-2023-39418→15.4', 'CVE-2024-10976→15.9', 'CVE-2025-8713→15.14'])
  assert.deepEqual(cves(150013), ['CVE-2025-8713→15.14'])
  assert.deepEqual(cves(160004), ['CVE-2024-10976→16.5', 'CVE-2025-8713→16.10'])
  assert.deepEqual(cves(170005), ['CVE-2025-8713→17.6'])
  // MERGE arrived in 15: 14 is not affected by CVE-2023-39418.
  assert.deepEqual(cves(140007), ['CVE-2023-2455→14.8', 'CVE-2024-10976→14.14', 'CVE-2025-8713→14.19'])
})

test('end-of-life majors are told which release to move to', () => {
  assert.deepEqual(cves(100023), ['CVE-2023-2455→15.3', 'CVE-2024-10976→17.1', 'CVE-2025-8713→17.6'])
  assert.deepEqual(cves(120022), ['CVE-2025-8713→17.6'])
})
