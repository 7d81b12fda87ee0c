/**
 * Errors raised by `tenantize/runtime`. Each carries a stable {@link TenantRuntimeError.code} to `switch`
 * on. None of them ever holds a tenant id — not in the message, not in a property, not in a cause —
 * because tenant ids are secrets for logging purposes and these errors end up in logs.
 */

/** The stable codes of runtime errors. */
export const TenantRuntimeErrorCodes = {
  /** Tenant-scoped work was attempted outside any `withTenant` context. */
  CONTEXT_MISSING: 'TZ_TENANT_CONTEXT_MISSING',
  /** `withTenant` was nested with a different tenant, or a transaction was used under another tenant. */
  CONTEXT_CONFLICT: 'TZ_TENANT_CONTEXT_CONFLICT',
  /** A resource belongs to a tenant other than the current one (see `assertSameTenant`). */
  ACCESS: 'TZ_TENANT_ACCESS',
  /** A tenant id does not match the configured id type. */
  INVALID_TENANT_ID: 'TZ_INVALID_TENANT_ID',
  /** System work was requested but no separate system pool is configured. */
  SYSTEM_CONTEXT: 'TZ_SYSTEM_CONTEXT',
} as const

export type TenantRuntimeErrorCode = (typeof TenantRuntimeErrorCodes)[keyof typeof TenantRuntimeErrorCodes]

/** The base class of every error `tenantize/runtime` raises on purpose. */
export class TenantRuntimeError extends Error {
  readonly code: TenantRuntimeErrorCode

  constructor(code: TenantRuntimeErrorCode, message: string) {
    super(message)
    this.name = 'TenantRuntimeError'
    this.code = code
  }

  /** `{ name, code, message }` — safe to log. */
  toJSON(): { name: string; code: TenantRuntimeErrorCode; message: string } {
    return { name: this.name, code: this.code, message: this.message }
  }
}

/** Code `TZ_TENANT_CONTEXT_MISSING`: there is no current tenant. */
export class TenantContextMissingError extends TenantRuntimeError {
  constructor(message = 'no tenant context: run this inside withTenant(tenantId, fn), or use asSystem() for system work') {
    super(TenantRuntimeErrorCodes.CONTEXT_MISSING, message)
    this.name = 'TenantContextMissingError'
  }
}

/** Code `TZ_TENANT_CONTEXT_CONFLICT`: a different tenant is already current. */
export class TenantContextConflictError extends TenantRuntimeError {
  constructor(message = 'a different tenant is already current: pass { allowNested: true } to withTenant to switch tenants on purpose') {
    super(TenantRuntimeErrorCodes.CONTEXT_CONFLICT, message)
    this.name = 'TenantContextConflictError'
  }
}

/** Code `TZ_TENANT_ACCESS`: the resource is not the current tenant's. */
export class TenantAccessError extends TenantRuntimeError {
  constructor(message = "the resource does not belong to the current tenant") {
    super(TenantRuntimeErrorCodes.ACCESS, message)
    this.name = 'TenantAccessError'
  }
}

/** Code `TZ_INVALID_TENANT_ID`: the id is not a valid id of the configured type. The id itself is never included. */
export class InvalidTenantIdError extends TenantRuntimeError {
  /** The id type the value was checked against. */
  readonly idType: string

  constructor(idType: string, reason: string) {
    super(TenantRuntimeErrorCodes.INVALID_TENANT_ID, `invalid tenant id for id type ${idType}: ${reason}`)
    this.name = 'InvalidTenantIdError'
    this.idType = idType
  }
}

/** Code `TZ_SYSTEM_CONTEXT`: system work needs a separately configured system pool. */
export class SystemContextError extends TenantRuntimeError {
  constructor(message: string) {
    super(TenantRuntimeErrorCodes.SYSTEM_CONTEXT, message)
    this.name = 'SystemContextError'
  }
}

export function isTenantRuntimeError(error: unknown): error is TenantRuntimeError {
  return error instanceof TenantRuntimeError
}
