/**
 * The one compiler from plan operations (./operations.ts) to SQL. Everything a step runs passes through
 * here, so for every step: identifiers are quoted, literals are quoted, drops say `IF EXISTS`, `RAISE`
 * texts are escaped (`%` and quotes), concurrent index builds are marked non-transactional, and the lock a
 * step declares is the strongest its statements take.
 */
import { identList, qualifiedName, quoteIdent, quoteLiteral, roleName } from '../sql/quote.js'
import type { Operation, PrivilegeObject, Rel, Value } from './operations.js'
import { LOCK_LEVELS, type LockLevel } from './steps.js'

const rel = (r: Rel): string => qualifiedName(r.schema, r.name)
const value = (v: Value): string => ('literal' in v ? quoteLiteral(v.literal) : v.sql)
const role = (r: string): string => (r === 'public' ? 'PUBLIC' : roleName(r))
/** A configuration parameter's name, each dot-separated part quoted (`"citus"."propagate_set_commands"`). */
const settingName = (name: string): string => name.split('.').map(quoteIdent).join('.')

/** Text for a RAISE format string: `%` (a placeholder there) doubled; quoting is quoteLiteral's. */
export function raiseText(text: string): string {
  return text.replaceAll('%', '%%')
}

function privilegeTarget(on: PrivilegeObject): string {
  switch (on.kind) {
    case 'table':
      return `TABLE ${rel(on.rel)}`
    case 'sequence':
      return `SEQUENCE ${rel(on.rel)}`
    case 'schema':
      return `SCHEMA ${on.names.map(quoteIdent).join(', ')}`
    case 'function':
      return `FUNCTION ${on.signature.sql}`
  }
}

/** One operation as one SQL statement (no trailing semicolon). */
export function compile(o: Operation): string {
  switch (o.op) {
    case 'createSchema':
      return `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(o.schema)}`
    case 'createFunction':
      return `CREATE FUNCTION ${rel(o.name)}(${o.args}) RETURNS ${o.returns} LANGUAGE ${o.language} ${o.attributes} ${o.standardBody === true ? o.body : `AS $tenantize$${o.body}$tenantize$`}`
    case 'dropFunction':
      return `DROP FUNCTION IF EXISTS ${rel(o.name)}(${o.args})`
    case 'commentOnFunction':
      return `COMMENT ON FUNCTION ${rel(o.name)}(${o.args}) IS ${quoteLiteral(o.comment)}`
    case 'createTable':
      return `CREATE TABLE ${rel(o.table)} ${o.body.sql}`
    case 'dropTable':
      return `DROP TABLE IF EXISTS ${rel(o.table)}`
    case 'insert':
      return `INSERT INTO ${rel(o.table)} (${identList(o.columns)}) VALUES (${o.values.map(value).join(', ')})`
    case 'insertSelect':
      return `INSERT INTO ${rel(o.table)} (${identList(o.columns)}) ${o.select.sql}`
    case 'select':
      return o.sql.sql
    case 'addColumn':
      return `ALTER TABLE ${rel(o.table)} ADD COLUMN ${quoteIdent(o.column)} ${o.type}${o.notNull ? ' NOT NULL' : ''}${o.default === undefined ? '' : ` DEFAULT ${value(o.default)}`}`
    case 'dropColumn':
      return `ALTER TABLE ${rel(o.table)} DROP COLUMN IF EXISTS ${quoteIdent(o.column)}`
    case 'setDefault':
      return `ALTER TABLE ${rel(o.table)} ALTER COLUMN ${quoteIdent(o.column)} SET DEFAULT ${value(o.default)}`
    case 'setNotNull':
      return `ALTER TABLE ${rel(o.table)} ALTER COLUMN ${quoteIdent(o.column)} SET NOT NULL`
    case 'dropNotNull':
      return `ALTER TABLE ${rel(o.table)} ALTER COLUMN ${quoteIdent(o.column)} DROP NOT NULL`
    case 'addCheck':
      return `ALTER TABLE ${rel(o.table)} ADD CONSTRAINT ${quoteIdent(o.name)} CHECK (${o.check.sql})${o.notValid ? ' NOT VALID' : ''}`
    case 'addForeignKey':
      return `ALTER TABLE ${rel(o.table)} ADD CONSTRAINT ${quoteIdent(o.name)} FOREIGN KEY (${identList(o.columns)}) REFERENCES ${rel(o.references)} (${identList(o.refColumns)})${o.onUpdate === undefined ? '' : ` ON UPDATE ${o.onUpdate.sql}`}${o.onDelete === undefined ? '' : ` ON DELETE ${o.onDelete.sql}`}${o.deferred ? ' DEFERRABLE INITIALLY DEFERRED' : ''}${o.notValid ? ' NOT VALID' : ''}`
    case 'addConstraintDefinition':
      return `ALTER TABLE ${rel(o.table)} ADD CONSTRAINT ${quoteIdent(o.name)} ${o.definition.sql}`
    case 'validateConstraint':
      return `ALTER TABLE ${rel(o.table)} VALIDATE CONSTRAINT ${quoteIdent(o.name)}`
    case 'dropConstraint':
      return `ALTER TABLE ${rel(o.table)} DROP CONSTRAINT ${o.ifExists ? 'IF EXISTS ' : ''}${quoteIdent(o.name)}`
    case 'swapUniqueConstraint': {
      const deferrable = o.deferrable === 'no' ? '' : ` DEFERRABLE INITIALLY ${o.deferrable === 'deferred' ? 'DEFERRED' : 'IMMEDIATE'}`
      return `ALTER TABLE ${rel(o.table)} DROP CONSTRAINT ${quoteIdent(o.name)}, ADD CONSTRAINT ${quoteIdent(o.name)} ${o.primary === true ? 'PRIMARY KEY' : 'UNIQUE'} USING INDEX ${quoteIdent(o.index)}${deferrable}`
    }
    case 'createIndex': {
      const head = `CREATE ${o.unique ? 'UNIQUE ' : ''}INDEX ${o.concurrently ? 'CONCURRENTLY ' : ''}IF NOT EXISTS ${quoteIdent(o.name)} ON ${o.only ? 'ONLY ' : ''}${rel(o.table)}`
      const include = o.include !== undefined && o.include.length > 0 ? ` INCLUDE (${identList(o.include)})` : ''
      return `${head}${o.method === undefined ? '' : ` USING ${o.method}`} (${identList(o.columns)})${include}${o.nullsNotDistinct === true ? ' NULLS NOT DISTINCT' : ''}${o.where === undefined ? '' : ` WHERE ${o.where.sql}`}`
    }
    case 'dropIndex':
      return `DROP INDEX ${o.concurrently ? 'CONCURRENTLY ' : ''}${o.ifExists ? 'IF EXISTS ' : ''}${rel(o.index)}`
    case 'renameIndex':
      return `ALTER INDEX ${rel(o.index)} RENAME TO ${quoteIdent(o.to)}`
    case 'attachIndex':
      return `ALTER INDEX ${rel(o.index)} ATTACH PARTITION ${rel(o.partitionIndex)}`
    case 'createTrigger':
      return `CREATE TRIGGER ${quoteIdent(o.name)} ${o.timing} ${o.events.sql} ON ${rel(o.table)} FOR EACH ${o.level ?? 'ROW'}${o.when === undefined ? '' : ` WHEN (${o.when.sql})`} EXECUTE FUNCTION ${rel(o.fn)}(${(o.args ?? []).map(value).join(', ')})`
    case 'createSequence':
      return `CREATE SEQUENCE IF NOT EXISTS ${rel(o.sequence)}`
    case 'dropSequence':
      return `DROP SEQUENCE IF EXISTS ${rel(o.sequence)}`
    case 'dropTrigger':
      return `DROP TRIGGER IF EXISTS ${quoteIdent(o.name)} ON ${rel(o.table)}`
    case 'createView':
      return `CREATE VIEW ${rel(o.view)} AS\n${o.query.sql}`
    case 'dropView':
      return `DROP VIEW IF EXISTS ${rel(o.view)}`
    case 'viewSecurityInvoker':
      return o.on ? `ALTER VIEW ${rel(o.view)} SET (security_invoker = true)` : `ALTER VIEW ${rel(o.view)} RESET (security_invoker)`
    case 'createRole':
      return `CREATE ROLE ${roleName(o.role)} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`
    case 'dropRole':
      return `DROP ROLE IF EXISTS ${roleName(o.role)}`
    case 'roleSetting':
      return o.value === null ? `ALTER ROLE ${roleName(o.role)} RESET ${settingName(o.setting)}` : `ALTER ROLE ${roleName(o.role)} SET ${settingName(o.setting)} = ${value(o.value)}`
    case 'grant':
      return `GRANT ${o.privileges.join(', ')} ON ${privilegeTarget(o.on)} TO ${role(o.role)}`
    case 'revoke':
      return `REVOKE ${o.privileges.join(', ')} ON ${privilegeTarget(o.on)} FROM ${role(o.role)}`
    case 'rowSecurity':
      return `ALTER TABLE ${rel(o.table)} ${o.action} ROW LEVEL SECURITY`
    case 'createPolicy': {
      const using = o.using === null ? '' : ` USING ${o.using.sql}`
      const check = o.withCheck === null ? '' : ` WITH CHECK ${o.withCheck.sql}`
      return `CREATE POLICY ${quoteIdent(o.name)} ON ${rel(o.table)} AS ${o.mode} FOR ${o.command} TO ${o.roles.map(role).join(', ')}${using}${check}`
    }
    case 'dropPolicy':
      return `DROP POLICY IF EXISTS ${quoteIdent(o.name)} ON ${rel(o.table)}`
    case 'raiseIfRows':
      return `DO $tenantize$
DECLARE
  n bigint;
BEGIN
  SELECT count(*) INTO n ${o.from.sql};
  IF n > 0 THEN
    RAISE EXCEPTION ${quoteLiteral(`% ${raiseText(o.message)}`)}, n
      USING HINT = ${quoteLiteral(o.hint)};
  END IF;
END
$tenantize$`
  }
}

/** The strongest table lock an operation takes (PostgreSQL's documented lock for the statement). */
export function lockOf(o: Operation): LockLevel {
  switch (o.op) {
    case 'createSchema':
    case 'createSequence':
    case 'dropSequence':
    case 'createFunction':
    case 'dropFunction':
    case 'commentOnFunction':
    case 'select':
    case 'createView':
    case 'createRole':
    case 'dropRole':
    case 'roleSetting':
    case 'grant':
    case 'revoke':
      return 'none'
    case 'createTable':
      return o.references.length > 0 ? 'SHARE ROW EXCLUSIVE' : 'none'
    case 'insert':
    case 'insertSelect':
      return 'ROW EXCLUSIVE'
    case 'raiseIfRows':
      return 'ACCESS SHARE'
    case 'addForeignKey':
    case 'addConstraintDefinition':
    case 'createTrigger':
      return 'SHARE ROW EXCLUSIVE'
    case 'validateConstraint':
    case 'renameIndex':
    case 'attachIndex':
      return 'SHARE UPDATE EXCLUSIVE'
    case 'createIndex':
      return o.concurrently ? 'SHARE UPDATE EXCLUSIVE' : 'SHARE'
    case 'dropIndex':
      return o.concurrently ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE'
    default:
      return 'ACCESS EXCLUSIVE'
  }
}

/** Statements that cannot run inside a transaction block. */
export function needsOwnTransaction(o: Operation): boolean {
  return (o.op === 'createIndex' || o.op === 'dropIndex') && o.concurrently
}

/** The strongest of the locks. */
export function strongest(locks: readonly LockLevel[]): LockLevel {
  return locks.reduce<LockLevel>((a, b) => (LOCK_LEVELS.indexOf(b) > LOCK_LEVELS.indexOf(a) ? b : a), 'none')
}
