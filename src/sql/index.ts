export { quoteIdent, quoteLiteral, qualifiedName, roleName, identList, parseQualifiedName } from './quote.js'
export type { QualifiedName } from './quote.js'
