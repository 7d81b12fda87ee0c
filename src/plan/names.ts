import { createHash } from 'node:crypto'

/** PostgreSQL truncates names to 63 bytes; keep generated names unique by hashing what is cut off. */
export function objectName(...parts: string[]): string {
  const name = parts.join('_')
  if (Buffer.byteLength(name, 'utf8') <= 63) return name
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8)
  let head = name
  while (Buffer.byteLength(`${head}_${hash}`, 'utf8') > 63) head = head.slice(0, -1)
  return `${head}_${hash}`
}
