import type { Severity } from '../types.js'

/**
 * The live checks: what the probe (as the app role, inside BEGIN … ROLLBACK) and the pooler probe do.
 * A failed check becomes a finding with rule id `probe-<check>` / `pooler-<check>`.
 */
export interface LiveCheck {
  readonly id: string
  /** The finding's severity when the check fails. */
  readonly severity: Severity
  readonly summary: string
  readonly why: string
  readonly fixHint: string
}

const check = (id: string, severity: Severity, summary: string, why: string, fixHint: string): LiveCheck => ({ id, severity, summary, why, fixHint })

const LEAK = 'A tenant can reach another tenant\'s rows: row-level security is off, bypassed, or a policy admits them.'
const WRITE = 'A tenant can change another tenant\'s data.'
const FIX_RLS = 'Follow the lint findings for this table (RLS enabled and forced, one tenant policy for the app role, no bypass).'

/** Per-table checks, in the order they run. */
export const PROBE_CHECKS: readonly LiveCheck[] = Object.freeze([
  check('context-none', 'error', 'With no context set in the session, the app role sees no rows.', 'Code that forgets to set the tenant must fail closed, not see everyone.', 'Policies compare the tenant column with the context only; a missing context is NULL and matches nothing.'),
  check('read-own', 'warn', 'With tenant A\'s context the app role sees A\'s rows.', 'Not a leak: if the app cannot see its own rows the policy (or the context) is broken and the application will not work.', 'Check that the policy applies to the app role and reads the setting the runtime sets.'),
  check('read-other', 'error', 'With tenant A\'s context the app role cannot see tenant B\'s rows.', LEAK, FIX_RLS),
  check('count', 'error', 'count(*) with tenant A\'s context counts exactly A\'s rows.', 'Aggregates must not include other tenants\' rows (or any pre-existing ones: A is brand new).', FIX_RLS),
  check('join', 'error', 'A LEFT JOIN to the parent table with tenant A\'s context returns only A\'s rows.', LEAK, FIX_RLS),
  check('insert-other', 'error', 'Inserting a row for tenant B with tenant A\'s context fails.', WRITE, 'WITH CHECK (<tenant column> = <current tenant>) on every policy that allows INSERT; composite foreign keys.'),
  check('update-other', 'error', 'UPDATE of tenant B\'s rows with tenant A\'s context changes nothing.', WRITE, FIX_RLS),
  check('delete-other', 'error', 'DELETE of tenant B\'s rows with tenant A\'s context deletes nothing.', WRITE, FIX_RLS),
  check('update-move', 'error', 'UPDATE moving A\'s row to tenant B fails.', 'A tenant could hand rows to (or plant them in) another tenant.', 'WITH CHECK on UPDATE policies; composite foreign keys.'),
  check('upsert', 'error', 'INSERT … ON CONFLICT DO UPDATE on tenant B\'s key changes nothing of B.', 'ON CONFLICT reaches the conflicting row even when the caller cannot see it; only the UPDATE policy stops it.', FIX_RLS),
  check('merge', 'error', 'MERGE (PostgreSQL 15+) neither updates B\'s rows nor inserts rows for B.', 'MERGE applies UPDATE/INSERT/SELECT policies separately (CVE-2023-39418 was a bug here).', `Upgrade to a fixed minor release. ${FIX_RLS}`),
  check('copy-from', 'error', 'COPY … FROM STDIN of a row for tenant B fails.', 'COPY FROM is refused under row-level security; when it works, RLS does not apply to the app role at all.', FIX_RLS),
  check('copy-to', 'error', 'COPY … TO STDOUT with tenant A\'s context exports only A\'s rows.', 'Bulk exports must be filtered like queries.', FIX_RLS),
  check('select-for-update', 'error', 'SELECT … FOR UPDATE with tenant A\'s context locks only A\'s rows.', 'Row locks on other tenants\' rows reveal them and block their writes.', FIX_RLS),
  check('cte', 'error', 'Writable and read-only CTEs with tenant A\'s context see and change only A\'s rows.', 'CTEs are separate statements to the planner; each must be filtered.', FIX_RLS),
  check('insert-select', 'error', 'INSERT … SELECT neither copies B\'s rows nor writes rows for B.', 'INSERT … SELECT reads with SELECT policies and writes with INSERT policies; both must hold.', FIX_RLS),
  check('context-empty', 'error', 'With the context set to an empty string the app role sees no rows (or gets an error).', 'After a transaction ends a custom setting reads as \'\', not NULL: policies must treat it as no tenant.', 'nullif(current_setting(…, true), \'\') before the cast.'),
  check('context-garbage', 'error', 'With the context set to garbage (\'%\', \'*\', \' \', \'not-a-tenant\') the app role sees no rows (or gets an error).', 'LIKE-based or text-comparing policies may treat such values as wildcards.', 'Compare with =, cast to the tenant id type.'),
  check('context-reset', 'error', 'After RESET of the setting the app role sees no rows.', 'Poolers run RESET ALL / DISCARD ALL between clients: the next client must start with no tenant.', 'Same as context-empty.'),
  check('row-security-off', 'error', 'SET row_security = off makes queries of the app role fail instead of returning rows.', 'If row_security = off returns rows, row-level security does not apply to the app role (owner without FORCE, BYPASSRLS, or RLS disabled).', FIX_RLS),
  check('view-other', 'error', 'Through a view over tenant tables, tenant A\'s context shows none of B\'s values.', 'A view runs with its owner\'s rights unless it is security_invoker.', 'ALTER VIEW … SET (security_invoker = true).'),
  check('data-cross-tenant-reference', 'error', 'No existing row references a parent row of another tenant.', 'Such rows already mix tenants: the child is visible to one tenant, its parent to another.', 'Fix the rows, then add composite foreign keys (tenant, parent_id) → parent(tenant, id) and VALIDATE them.'),
  check('data-null-tenant', 'warn', 'No existing row has a NULL tenant column.', 'Rows without tenant belong to nobody; a backfill is incomplete.', 'Backfill, then SET NOT NULL (via a validated CHECK).'),
  check('data-misassigned-rows', 'error', 'No existing row is filed under another tenant than the rows that reference it (foreign keys from the tenant table, or between the tenant table and a table with a tenant column).', 'The referencing tenant reaches the row through the reference, and the tenant it is filed under reads it directly: e.g. org 2 points at settings row 20 filed under org 1, and org 1 reads org 2\'s settings.', 'Fix the rows (file each under the tenant that references it, or point the reference at a row of its own tenant), then make the reference carry the tenant: a composite foreign key (tenant, ref) → table(tenant, id).'),
  check('setting-flip', 'error', 'No value of a custom setting a permissive policy reads (on, true, 1, yes, \'\', tenant B\'s id), set by the app role with set_config(), shows tenant B\'s rows to tenant A.', 'Any session may set any custom setting: a policy branch gated by app.bypass or a second tenant setting is open to whoever can run SQL as the app role.', 'Drop the policy that reads the setting, or make its condition the tenant predicate (see the lint finding policy-permissive-without-tenant-filter for the SQL).'),
] satisfies LiveCheck[])

/** What the probe itself may report. */
export const PROBE_META: readonly LiveCheck[] = Object.freeze([
  check('probe-not-run', 'warn', 'The live probe could not run.', 'Without the probe, verify only knows what the catalog says, not what the app role can actually do.', 'Connect as a superuser or BYPASSRLS role that may SET ROLE to the app role.'),
  check('probe-unprobed', 'error', 'A tenant table the probe could not put a row of each tenant into, so none of its row checks ran.', 'Verify cannot pass what it did not check: without rows of two tenants, reads, writes and context checks of that table prove nothing. (--allow-unprobed makes this a warning.)', 'Read the reason (the seeder\'s failing statement and SQLSTATE): usually a constraint or trigger the probe\'s values do not satisfy. Make the table accept a valid row, or pass --allow-unprobed to accept the gap knowingly.'),
  check('probe-error', 'warn', 'A probe check could not be completed.', 'An unchecked protection is an unknown.', 'Read the detail; often a NOT NULL column of a type the probe cannot fill, or a check constraint.'),
])

/** Pooler checks (`--pooler-url`). */
export const POOLER_CHECKS: readonly LiveCheck[] = Object.freeze([
  check('session-context-leaks', 'warn', 'Context set with session scope by one client is seen by the next client of the pooler.', 'Through a transaction-mode pooler, SET / set_config(…, false) stays on the server connection and the next client — another user — runs as that tenant.', 'Set the tenant only transaction-locally (set_config(…, true) / SET LOCAL), as tenantize/runtime does.'),
  check('transaction-context-leaks', 'error', 'Context set transaction-locally is seen by another client after COMMIT.', 'Transaction-local settings end with the transaction; if one survives, the pooler or server is broken.', 'Investigate the pooler configuration; do not serve tenants through it.'),
])

/**
 * On a Citus coordinator with distributed tables (src/verify/citus.ts): lints that need Citus's metadata
 * (`citus-…`, source lint) and the live checks that run there instead of the generic probe (source probe).
 */
export const CITUS_CHECKS: readonly LiveCheck[] = Object.freeze([
  check('policy-subquery', 'error', 'A policy on a tenant table of a Citus database has a sub-select.', 'Citus refuses sub-selects in policies on distributed tables: create_distributed_table fails on the table ("Subqueries are not supported in policies on distributed tables").', 'Call the helper directly: org_id = tenantize.current_tenant_id() (plan with target citus writes policies this way).'),
  check('restrictive-policy', 'error', 'A distributed table has a RESTRICTIVE policy.', 'Citus 13.2 copies policies to the shards without AS RESTRICTIVE: on the shards, where the queries run, it is OR-ed with the tenant policy and widens access.', 'Drop it and AND its condition into the tenant policy.'),
  check('context-not-propagated', 'warn', 'The app role does not send SET LOCAL to the workers.', 'set_config() never reaches the workers, and SET LOCAL only with citus.propagate_set_commands = \'local\': without it the app sees no rows (fails closed).', 'ALTER ROLE <app> SET citus.propagate_set_commands = \'local\', and the runtime\'s strategy \'set-local\'.'),
  check('app-nologin', 'warn', 'The app role cannot log in, and the coordinator connects to the workers as it.', 'Citus opens its connections to the workers as the current user, also after SET ROLE: every query on a distributed table fails (fails closed).', 'ALTER ROLE <app> LOGIN; pg_hba.conf on the workers and pg_dist_authinfo decide how it authenticates.'),
  check('shards', 'error', 'Every shard has the coordinator\'s row-level security (enabled, forced) and the same policies.', 'The queries run on the shards: a shard without row-level security, or with another policy, answers for every tenant.', 'Re-create the policy on the distributed table (Citus copies it to every shard), or run the fix on the shards with run_command_on_shards.'),
  check('no-context', 'error', 'With no context the app role sees no row of a distributed table.', 'Code that forgets to set the tenant must fail closed on every shard.', 'Policies compare the tenant column with the context only; see the table\'s lint findings.'),
  check('other-tenant', 'error', 'With a tenant\'s context the app role sees no row of another tenant, on any shard (the query without the tenant predicate asks every shard).', 'A tenant can read another tenant\'s rows.', 'Follow the lint findings for this table and the citus-shards check.'),
  check('own-rows', 'warn', 'With a tenant\'s context the app role sees exactly its rows, routed by the tenant predicate and across all shards.', 'Not a leak: if a tenant cannot see its rows, the context does not reach the workers and the app will not work.', 'SET LOCAL with citus.propagate_set_commands = \'local\' for the app role (set_config does not reach the workers).'),
])
