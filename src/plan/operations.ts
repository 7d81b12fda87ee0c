/**
 * Plan steps as data: each statement a step runs is a typed, frozen operation, and one compiler
 * (./compile.ts) turns operations into SQL — the way Kysely compiles operation nodes. Quoting, `IF [NOT]
 * EXISTS`, `RAISE` escaping and the lock each statement takes are properties of the compiler, written once,
 * not of the templates of every step.
 */

/** A table, index or other relation: schema and name as in the catalog (unquoted). */
export interface Rel {
  readonly schema: string
  readonly name: string
}

/**
 * SQL text that is not a name: a column type from the catalog (`format_type`, already quoted where needed),
 * an expression deparsed by PostgreSQL, or a function body built from quoted parts. Never user input.
 */
export interface SqlText {
  readonly sql: string
}

export const sqlText = (sql: string): SqlText => Object.freeze({ sql })

/** A literal value (quoted by the compiler). */
export interface Literal {
  readonly literal: string
}

export const literal = (value: string): Literal => Object.freeze({ literal: value })

export type Value = SqlText | Literal

export type PrivilegeObject = { readonly kind: 'table' | 'sequence'; readonly rel: Rel } | { readonly kind: 'schema'; readonly names: readonly string[] } | { readonly kind: 'function'; readonly signature: SqlText }

export type Operation =
  | { readonly op: 'createSchema'; readonly schema: string }
  /** `standardBody`: `body` is a SQL-standard body (`RETURN …`), written as it is instead of quoted after AS. */
  | { readonly op: 'createFunction'; readonly name: Rel; readonly args: string; readonly returns: string; readonly language: 'sql' | 'plpgsql'; readonly attributes: string; readonly body: string; readonly standardBody?: boolean }
  | { readonly op: 'dropFunction'; readonly name: Rel; readonly args: string }
  | { readonly op: 'commentOnFunction'; readonly name: Rel; readonly args: string; readonly comment: string }
  /** `references`: tables the new table's foreign keys point at (they are locked SHARE ROW EXCLUSIVE). */
  | { readonly op: 'createTable'; readonly table: Rel; readonly body: SqlText; readonly references: readonly Rel[] }
  | { readonly op: 'dropTable'; readonly table: Rel }
  | { readonly op: 'insert'; readonly table: Rel; readonly columns: readonly string[]; readonly values: readonly Literal[] }
  | { readonly op: 'insertSelect'; readonly table: Rel; readonly columns: readonly string[]; readonly select: SqlText }
  | { readonly op: 'select'; readonly sql: SqlText }
  | { readonly op: 'addColumn'; readonly table: Rel; readonly column: string; readonly type: string; readonly notNull: boolean; readonly default?: Value }
  | { readonly op: 'dropColumn'; readonly table: Rel; readonly column: string }
  | { readonly op: 'setDefault'; readonly table: Rel; readonly column: string; readonly default: Value }
  | { readonly op: 'setNotNull'; readonly table: Rel; readonly column: string }
  | { readonly op: 'dropNotNull'; readonly table: Rel; readonly column: string }
  | { readonly op: 'addCheck'; readonly table: Rel; readonly name: string; readonly check: SqlText; readonly notValid: boolean }
  /** `onDelete`/`onUpdate`: the referential actions as SQL (`CASCADE`, `SET NULL ("x")`); none: NO ACTION. */
  | { readonly op: 'addForeignKey'; readonly table: Rel; readonly name: string; readonly columns: readonly string[]; readonly references: Rel; readonly refColumns: readonly string[]; readonly deferred: boolean; readonly notValid: boolean; readonly onDelete?: SqlText; readonly onUpdate?: SqlText }
  /** A constraint again as the catalog deparsed it (`pg_get_constraintdef`), for rollback. */
  | { readonly op: 'addConstraintDefinition'; readonly table: Rel; readonly name: string; readonly definition: SqlText }
  | { readonly op: 'validateConstraint'; readonly table: Rel; readonly name: string }
  | { readonly op: 'dropConstraint'; readonly table: Rel; readonly name: string; readonly ifExists: boolean }
  | { readonly op: 'swapUniqueConstraint'; readonly table: Rel; readonly name: string; readonly index: string; readonly deferrable: 'no' | 'immediate' | 'deferred'; readonly primary?: boolean }
  | {
      readonly op: 'createIndex'
      readonly table: Rel
      readonly name: string
      readonly columns: readonly string[]
      readonly unique: boolean
      readonly concurrently: boolean
      /** `ON ONLY`: the partitioned parent alone; partitions attach their own. */
      readonly only: boolean
      readonly method?: string
      readonly include?: readonly string[]
      readonly nullsNotDistinct?: boolean
      readonly where?: SqlText
    }
  | { readonly op: 'dropIndex'; readonly index: Rel; readonly concurrently: boolean; readonly ifExists: boolean }
  | { readonly op: 'renameIndex'; readonly index: Rel; readonly to: string }
  | { readonly op: 'attachIndex'; readonly index: Rel; readonly partitionIndex: Rel }
  /** `when`: the trigger's `WHEN (…)` condition; the function is not even called for the other rows. */
  | { readonly op: 'createTrigger'; readonly table: Rel; readonly name: string; readonly timing: 'BEFORE' | 'AFTER'; readonly events: SqlText; readonly fn: Rel; readonly level?: 'ROW' | 'STATEMENT'; readonly when?: SqlText; readonly args?: readonly Literal[] }
  | { readonly op: 'createSequence'; readonly sequence: Rel }
  | { readonly op: 'dropSequence'; readonly sequence: Rel }
  | { readonly op: 'dropTrigger'; readonly table: Rel; readonly name: string }
  | { readonly op: 'createView'; readonly view: Rel; readonly query: SqlText }
  | { readonly op: 'dropView'; readonly view: Rel }
  | { readonly op: 'viewSecurityInvoker'; readonly view: Rel; readonly on: boolean }
  | { readonly op: 'createRole'; readonly role: string }
  | { readonly op: 'dropRole'; readonly role: string }
  /** `ALTER ROLE … SET setting = value` (applies to the role's next sessions); `value` null: `RESET setting`. */
  | { readonly op: 'roleSetting'; readonly role: string; readonly setting: string; readonly value: Literal | null }
  | { readonly op: 'grant'; readonly privileges: readonly string[]; readonly on: PrivilegeObject; readonly role: string }
  | { readonly op: 'revoke'; readonly privileges: readonly string[]; readonly on: PrivilegeObject; readonly role: string }
  | { readonly op: 'rowSecurity'; readonly table: Rel; readonly action: 'ENABLE' | 'FORCE' | 'DISABLE' | 'NO FORCE' }
  | { readonly op: 'createPolicy'; readonly table: Rel; readonly name: string; readonly mode: 'PERMISSIVE' | 'RESTRICTIVE'; readonly command: string; readonly roles: readonly string[]; readonly using: SqlText | null; readonly withCheck: SqlText | null }
  | { readonly op: 'dropPolicy'; readonly table: Rel; readonly name: string }
  /**
   * Refuse to go on when rows are found: a DO block that counts `SELECT count(*) <from>` and raises
   * "<count> <message>" with `hint`. The texts are escaped for RAISE by the compiler.
   */
  | { readonly op: 'raiseIfRows'; readonly from: SqlText; readonly message: string; readonly hint: string }
