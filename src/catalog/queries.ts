/**
 * The SQL that `introspect()` runs: one query per kind of object, never one per table. Every catalog
 * name is `pg_catalog`-qualified so a hostile `search_path` cannot shadow it; the only values are bind
 * parameters (`$1`: the schema filter, a `text[]` or NULL for every user schema). Nothing here builds
 * identifiers.
 *
 * A few catalog columns exist only from some version on; {@link catalogQueries} picks the text for the
 * server's `server_version_num`.
 */

/** The oldest server the queries are written for (`prosqlbody`, `reltuples` = -1 and `tgparentid`). */
export const MIN_SERVER_VERSION_NUM = 140000

/** Server identity and the settings the lints care about. Runs first: the other queries depend on the version. */
export const SERVER_QUERY = `
SELECT pg_catalog.current_setting('server_version') AS version,
       pg_catalog.current_setting('server_version_num')::int4 AS version_num,
       pg_catalog.current_database()::text AS database,
       CURRENT_USER::text AS current_user_name,
       pg_catalog.current_setting('row_security') AS row_security,
       pg_catalog.current_setting('search_path') AS search_path,
       pg_catalog.current_setting('default_transaction_isolation') AS default_transaction_isolation,
       pg_catalog.current_setting('lock_timeout') AS lock_timeout,
       pg_catalog.current_setting('statement_timeout') AS statement_timeout,
       pg_catalog.current_setting('max_connections') AS max_connections,
       pg_catalog.current_setting('server_encoding') AS server_encoding,
       pg_catalog.current_setting('standard_conforming_strings') AS standard_conforming_strings,
       pg_catalog.current_setting('is_superuser') AS is_superuser,
       pg_catalog.current_setting('jit') AS jit,
       pg_catalog.current_setting('max_parallel_workers_per_gather') AS max_parallel_workers_per_gather`

/**
 * Deparsed text (`pg_get_viewdef`, `pg_get_expr`, `format_type`, …) leaves out the schema of objects
 * on the search_path. Pinning it to `pg_catalog` for the snapshot's transaction makes every user object
 * in that text schema-qualified, whatever the caller's path.
 *
 * Also for the transaction: no JIT and no parallel workers. The queries' cost estimates (a subquery per
 * row) made the server JIT-compile them, about 330 ms for the relations query alone at 5,000 tables, and
 * plan a parallel worker that built its own hash of pg_constraint next to the leader's: CPU a catalog read
 * of a few seconds never won back (bench/introspect.bench.ts).
 */
export const PIN_SEARCH_PATH = `SELECT pg_catalog.set_config('search_path', 'pg_catalog', true),
       pg_catalog.set_config('jit', 'off', true), pg_catalog.set_config('max_parallel_workers_per_gather', '0', true)`

/**
 * Put the caller's search_path (and the planner settings {@link PIN_SEARCH_PATH} changes) back,
 * transaction-local, when introspecting inside the caller's transaction.
 */
export const RESTORE_SEARCH_PATH = `SELECT pg_catalog.set_config('search_path', $1, true),
       pg_catalog.set_config('jit', $2, true), pg_catalog.set_config('max_parallel_workers_per_gather', $3, true)`

/** User schemas: not pg_catalog, pg_toast, pg_temp_N, pg_toast_temp_N (no user schema may start with `pg_`) nor information_schema. */
const USER_SCHEMA = `n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND ($1::text[] IS NULL OR n.nspname = ANY ($1::text[]))`

/** `{oid, schema, name}` of the relation aliased `<r>` in namespace `<rn>`, as json. */
const relRef = (r: string, rn: string): string => `pg_catalog.json_build_object('oid', ${r}.oid, 'schema', ${rn}.nspname, 'name', ${r}.relname)`

/**
 * Names of `<rel>`'s columns listed in the int2[] `<keys>`, in array order (NULL for 0 = expression). One
 * index probe per key: as a LEFT JOIN the planner hashed the keys and read every attribute of the table,
 * system columns included, for each constraint and index.
 */
const attnames = (keys: string, rel: string, where = 'true'): string => `ARRAY(
         SELECT (SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = ${rel} AND a.attnum = k.attnum AND k.attnum > 0)
           FROM pg_catalog.unnest(${keys}) WITH ORDINALITY AS k(attnum, ord)
          WHERE ${where}
          ORDER BY k.ord)`

/** A view's reloption `<name>` read with PostgreSQL's own parser (`on`, `1`, `true` … are all true), NULL when unset. */
const viewOption = (name: string, type: 'bool' | 'text'): string =>
  `(SELECT o.option_value::${type} FROM pg_catalog.pg_options_to_table(c.reloptions) o WHERE o.option_name = '${name}')`

export const SCHEMAS_QUERY = `
SELECT n.oid, n.nspname AS name, pg_catalog.pg_get_userbyid(n.nspowner) AS owner,
       ARRAY(SELECT g.name FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS name
               FROM pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a WHERE a.privilege_type = 'USAGE') AS g
              ORDER BY g.name COLLATE "C") AS usage
  FROM pg_catalog.pg_namespace n
 WHERE ${USER_SCHEMA}
 ORDER BY n.nspname`

/**
 * Tables, views, materialized views and sequences with their per-relation facts, grants, inheritance,
 * view dependencies and sequence ownership folded in as json.
 * A null relacl is replaced by `acldefault`: the owner holding every privilege (see RelationGrant).
 */
export const RELATIONS_QUERY = `
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, c.relpersistence,
       pg_catalog.pg_get_userbyid(c.relowner) AS owner,
       c.reltuples::float8 AS reltuples,
       CASE WHEN c.relkind IN ('r', 'p', 'f') THEN pg_catalog.pg_total_relation_size(c.oid) END AS total_bytes,
       c.relrowsecurity, c.relforcerowsecurity, c.relispartition, c.relispopulated,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       fs.srvname AS foreign_server,
       ext.extname AS extension,
       (SELECT pg_catalog.json_agg(${relRef('p', 'pn')} ORDER BY i.inhseqno)
          FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
          JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
         WHERE i.inhrelid = c.oid) AS parents,
       (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('oid', ch.oid, 'schema', chn.nspname, 'name', ch.relname, 'partition', ch.relispartition)
                                   ORDER BY chn.nspname, ch.relname)
          FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid
          JOIN pg_catalog.pg_namespace chn ON chn.oid = ch.relnamespace
         WHERE i.inhparent = c.oid) AS children,
       (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('grantee', a.grantee, 'grantor', a.grantor, 'privilege', a.privilege_type, 'grantable', a.is_grantable)
                                   ORDER BY a.grantee COLLATE "C", a.privilege_type COLLATE "C", a.grantor COLLATE "C")
          FROM (SELECT CASE WHEN x.grantee = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END AS grantee,
                       pg_catalog.pg_get_userbyid(x.grantor)::text AS grantor, x.privilege_type, x.is_grantable
                  FROM pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) x) a
       ) AS grants,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS view_definition,
       CASE WHEN c.relkind IN ('v', 'm') THEN ${viewOption('security_invoker', 'bool')} END AS security_invoker,
       CASE WHEN c.relkind IN ('v', 'm') THEN ${viewOption('security_barrier', 'bool')} END AS security_barrier,
       CASE WHEN c.relkind IN ('v', 'm') THEN ${viewOption('check_option', 'text')} END AS check_option,
       CASE WHEN c.relkind IN ('v', 'm') THEN (
         SELECT pg_catalog.json_agg(pg_catalog.json_build_object('oid', d.oid, 'schema', dn.nspname, 'name', d.relname, 'relkind', d.relkind)
                                    ORDER BY dn.nspname, d.relname)
           FROM (SELECT DISTINCT dep.refobjid
                   FROM pg_catalog.pg_rewrite rw
                   JOIN pg_catalog.pg_depend dep
                     ON dep.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND dep.objid = rw.oid
                  WHERE rw.ev_class = c.oid
                    AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND dep.refobjid <> c.oid) x
           JOIN pg_catalog.pg_class d ON d.oid = x.refobjid
           JOIN pg_catalog.pg_namespace dn ON dn.oid = d.relnamespace
          WHERE d.relkind IN ('r', 'p', 'f', 'v', 'm')) END AS view_dependencies,
       pg_catalog.format_type(seq.seqtypid, NULL) AS sequence_type,
       owned.owned_by
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.oid
  LEFT JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver
  LEFT JOIN pg_catalog.pg_sequence seq ON seq.seqrelid = c.oid
  LEFT JOIN pg_catalog.pg_depend extdep
    ON extdep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND extdep.objid = c.oid AND extdep.objsubid = 0
   AND extdep.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND extdep.deptype = 'e'
  LEFT JOIN pg_catalog.pg_extension ext ON ext.oid = extdep.refobjid
  LEFT JOIN LATERAL (
    SELECT pg_catalog.json_build_object('table', ${relRef('t', 'tn')}, 'column', a.attname, 'identity', d.deptype = 'i') AS owned_by
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
      JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE c.relkind = 'S'
       AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.objsubid = 0
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid > 0
       AND d.deptype IN ('a', 'i')
     LIMIT 1) owned ON true
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND ${USER_SCHEMA}
 ORDER BY n.nspname, c.relname`

/**
 * Live columns of tables and views, with defaults and generation expressions. `<notNullValidated>` is
 * the expression for whether a NOT NULL column's constraint is validated (PostgreSQL 18 has NOT NULL
 * … NOT VALID: attnotnull is set while old rows may still hold NULL).
 */
const columnsQuery = (notNullValidated: string): string => `
SELECT a.attrelid AS relid, a.attname AS name, a.attnum AS position,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull, CASE WHEN a.attnotnull THEN ${notNullValidated} END AS not_null_validated,
       a.attidentity, a.attgenerated,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS expression
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
   AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND ${USER_SCHEMA}
 ORDER BY a.attrelid, a.attnum`

const NOT_NULL_VALIDATED_18 = `NOT EXISTS (
         SELECT FROM pg_catalog.pg_constraint nn
          WHERE nn.conrelid = a.attrelid AND nn.contype = 'n' AND nn.conkey[1] = a.attnum AND NOT nn.convalidated)`

const constraintsQuery = (enforced: string): string => `
SELECT con.oid, con.conname AS name, con.contype, con.conrelid AS table_oid,
       con.condeferrable, con.condeferred, con.convalidated, ${enforced} AS enforced,
       pg_catalog.pg_get_constraintdef(con.oid) AS definition,
       CASE WHEN con.conparentid = 0 THEN NULL ELSE con.conparentid END AS parent_oid,
       ${attnames('con.conkey', 'con.conrelid')} AS columns,
       CASE WHEN con.contype = 'f' THEN ${relRef('fc', 'fn')} END AS ref_table,
       CASE WHEN con.contype = 'f' THEN ${attnames('con.confkey', 'con.confrelid')} END AS ref_columns,
       con.confupdtype, con.confdeltype, con.confmatchtype,
       ic.relname AS index_name
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
  LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
  LEFT JOIN pg_catalog.pg_class ic ON ic.oid = con.conindid AND con.contype IN ('p', 'u', 'x')
 WHERE con.contype IN ('p', 'u', 'c', 'f', 'x')
   AND c.relkind IN ('r', 'p', 'f') AND ${USER_SCHEMA}
 ORDER BY con.conrelid, con.conname`

const indexesQuery = (nullsNotDistinct: string): string => `
SELECT i.indexrelid AS oid, n.nspname AS schema, ic.relname AS name, i.indrelid AS table_oid,
       ${attnames('i.indkey::int2[]', 'i.indrelid', 'k.ord <= i.indnkeyatts')} AS columns,
       ${attnames('i.indkey::int2[]', 'i.indrelid', 'k.ord > i.indnkeyatts')} AS include_columns,
       i.indisunique, i.indisprimary, ${nullsNotDistinct} AS nulls_not_distinct,
       pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS predicate,
       i.indexprs IS NOT NULL AS has_expressions,
       i.indisvalid, i.indisready, am.amname AS method,
       pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
       con.conname AS constraint_name,
       ic.relkind = 'I' AS partitioned
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_am am ON am.oid = ic.relam
  LEFT JOIN pg_catalog.pg_constraint con
    ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
 WHERE c.relkind IN ('r', 'p', 'm') AND ${USER_SCHEMA}
 ORDER BY i.indrelid, ic.relname`

export const POLICIES_QUERY = `
SELECT p.oid, p.polname AS name, p.polrelid AS table_oid, p.polcmd, p.polpermissive,
       ARRAY(SELECT CASE WHEN r.role_oid = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(r.role_oid)::text END
               FROM pg_catalog.unnest(p.polroles) WITH ORDINALITY AS r(role_oid, ord)
              ORDER BY r.ord) AS roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expression,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE ${USER_SCHEMA}
 ORDER BY p.polrelid, p.polname`

/** Functions and procedures of user schemas (aggregates and window functions are left out). */
export const ROUTINES_QUERY = `
SELECT p.oid, n.nspname AS schema, p.proname AS name, p.prokind,
       pg_catalog.pg_get_function_identity_arguments(p.oid) AS identity_arguments,
       CASE WHEN p.prokind = 'f' THEN pg_catalog.pg_get_function_result(p.oid) END AS return_type,
       l.lanname AS language, p.provolatile, p.prosecdef, p.proleakproof,
       p.proconfig::text[] AS config,
       pg_catalog.pg_get_userbyid(p.proowner) AS owner,
       CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid) ELSE p.prosrc END AS body,
       ext.extname AS extension
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
  LEFT JOIN pg_catalog.pg_depend extdep
    ON extdep.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND extdep.objid = p.oid AND extdep.objsubid = 0
   AND extdep.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND extdep.deptype = 'e'
  LEFT JOIN pg_catalog.pg_extension ext ON ext.oid = extdep.refobjid
 WHERE p.prokind IN ('f', 'p') AND ${USER_SCHEMA}
 ORDER BY n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) COLLATE "C"`

/** User triggers (not the internal ones behind foreign keys), on tables and views. */
export const TRIGGERS_QUERY = `
SELECT t.oid, t.tgname AS name, t.tgrelid AS table_oid,
       pg_catalog.json_build_object('oid', f.oid, 'schema', fn.nspname, 'name', f.proname) AS function,
       t.tgtype::int4 AS tgtype, t.tgenabled,
       t.tgconstraint <> 0 AS constraint_trigger,
       CASE WHEN t.tgparentid = 0 THEN NULL ELSE t.tgparentid END AS parent_oid,
       pg_catalog.pg_get_triggerdef(t.oid) AS definition
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid
  JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
 WHERE NOT t.tgisinternal AND ${USER_SCHEMA}
 ORDER BY t.tgrelid, t.tgname`

/**
 * Every role of the cluster with its direct memberships (built-in `pg_*` roles included, so memberships
 * through them can be followed; introspect filters them out of the result unless asked).
 * `inherit` / `set` are per membership from PostgreSQL 16; before that, the member's rolinherit and true.
 */
const rolesQuery = (inherit: string, set: string): string => `
SELECT r.oid, r.rolname AS name, r.rolsuper, r.rolbypassrls, r.rolcanlogin, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
       (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('role', g.rolname, 'admin', m.admin_option,
                                                                'inherit', ${inherit}, 'set', ${set})
                                   ORDER BY g.rolname)
          FROM pg_catalog.pg_auth_members m
          JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
         WHERE m.member = r.oid) AS member_of
  FROM pg_catalog.pg_roles r
 ORDER BY r.rolname`

/** The version-dependent queries, in the order introspect runs them. */
export interface CatalogQueries {
  readonly schemas: string
  readonly relations: string
  readonly columns: string
  readonly constraints: string
  readonly indexes: string
  readonly policies: string
  readonly routines: string
  readonly triggers: string
  readonly roles: string
}

/** The query texts for a server of `server_version_num` = `versionNum`. */
export function catalogQueries(versionNum: number): CatalogQueries {
  return {
    schemas: SCHEMAS_QUERY,
    relations: RELATIONS_QUERY,
    columns: columnsQuery(versionNum >= 180000 ? NOT_NULL_VALIDATED_18 : 'true'),
    constraints: constraintsQuery(versionNum >= 180000 ? 'con.conenforced' : 'true'),
    indexes: indexesQuery(versionNum >= 150000 ? 'i.indnullsnotdistinct' : 'false'),
    policies: POLICIES_QUERY,
    routines: ROUTINES_QUERY,
    triggers: TRIGGERS_QUERY,
    roles: versionNum >= 160000 ? rolesQuery('m.inherit_option', 'm.set_option') : rolesQuery('r.rolinherit', 'true'),
  }
}
