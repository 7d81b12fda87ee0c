export { quoteIdent, quoteLiteral, qualifiedName, roleName, identList, parseQualifiedName } from './quote.js'
export type { QualifiedName } from './quote.js'
export { indexDefinitionParts } from './index-definition.js'
export type { IndexDefinitionParts } from './index-definition.js'
