import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url))
const TSX = import.meta.resolve('tsx')

/**
 * The real CLI (`tenantize …` through tsx) in `cwd`, without a terminal (stdin closed) and without
 * DATABASE_URL, so every test names its database: its exit code and both streams.
 */
export function runCli(cwd: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env }
    delete env['DATABASE_URL']
    Object.assign(env, extraEnv)
    const child = spawn(process.execPath, ['--import', TSX, BIN, ...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] })
    child.stdin.end()
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}
