import { readFile } from 'node:fs/promises'
import { ErrorCodes, TenantizeError } from '../errors.js'
import { parseConfig, type TenantizeConfig } from '../plan/config.js'

export const DEFAULT_CONFIG_FILE = 'tenantize.config.json'

/** Read and validate the config file; every problem is named with its key. */
export async function readConfigFile(path: string): Promise<TenantizeConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new TenantizeError(ErrorCodes.CONFIG, code === 'ENOENT' ? 'configuration file not found' : `cannot read the configuration file (${code ?? String(error)})`, {
      object: path,
      fix: code === 'ENOENT' ? 'run tenantize init to write it, or pass --config FILE' : 'check the file permissions',
      cause: error,
    })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new TenantizeError(ErrorCodes.CONFIG, `is not valid JSON: ${(error as Error).message}`, { object: path, fix: 'correct the JSON syntax, or delete the file and run tenantize init again', cause: error })
  }
  return parseConfig(raw, path)
}
