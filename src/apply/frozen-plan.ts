import { createHash } from 'node:crypto'
import type pg from 'pg'
import type { Plan, Step } from '../plan/steps.js'
import type { TenantizeConfig } from '../plan/config.js'

/**
 * The plan `apply` runs is computed once, from the catalog as it was before the first step, and kept in
 * `tenantize.plans`: later `apply` and `rollback` runs use the same steps even though the catalog has
 * changed under them. It is forgotten once everything is rolled back.
 */
export const PLANS_DDL = `
CREATE SCHEMA IF NOT EXISTS tenantize;
CREATE TABLE IF NOT EXISTS tenantize.plans (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at      timestamptz NOT NULL DEFAULT now(),
  config_checksum text NOT NULL,
  config          jsonb NOT NULL,
  plan            jsonb NOT NULL
);
COMMENT ON TABLE tenantize.plans IS 'The conversion plan tenantize apply is running (computed before its first step), kept for apply and rollback.';
`

type Queryable = Pick<pg.Client, 'query'>

export interface FrozenPlan {
  readonly id: number
  readonly configChecksum: string
  readonly plan: Plan
}

export function configChecksum(config: TenantizeConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex')
}

export async function readFrozenPlan(client: Queryable): Promise<FrozenPlan | undefined> {
  const exists = await client.query<{ ok: boolean }>(`SELECT to_regclass('tenantize.plans') IS NOT NULL AS ok`)
  if (exists.rows[0]?.ok !== true) return undefined
  const { rows } = await client.query<{ id: string; config_checksum: string; plan: Plan }>('SELECT id, config_checksum, plan FROM tenantize.plans ORDER BY id DESC LIMIT 1')
  const row = rows[0]
  return row === undefined ? undefined : { id: Number(row.id), configChecksum: row.config_checksum, plan: row.plan }
}

export async function saveFrozenPlan(client: Queryable, config: TenantizeConfig, plan: Plan): Promise<void> {
  await client.query(PLANS_DDL)
  await client.query('DELETE FROM tenantize.plans')
  await client.query('INSERT INTO tenantize.plans (config_checksum, config, plan) VALUES ($1, $2, $3)', [configChecksum(config), JSON.stringify(config), JSON.stringify(plan)])
}

export async function forgetFrozenPlan(client: Queryable): Promise<void> {
  await client.query(`DO $$ BEGIN IF to_regclass('tenantize.plans') IS NOT NULL THEN DELETE FROM tenantize.plans; END IF; END $$`)
}

/** The ledger name of a step: its position and id, e.g. `0004_add-column:public.users`. */
export function unitName(index: number, step: Step): string {
  return `${String(index + 1).padStart(4, '0')}_${step.id}`
}

export function stepChecksum(step: Step): string {
  return createHash('sha256').update(JSON.stringify({ up: step.up, backfill: step.backfill ?? null })).digest('hex')
}
