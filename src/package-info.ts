import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The package's root directory (where package.json is), found by walking up from this file, so the same
 * code works from `src/` (tsx) and from the build in `dist/src/`.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'package.json')
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'tenantize') return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find the tenantize package root')
    dir = parent
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version
}
