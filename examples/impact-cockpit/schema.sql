-- Impact cockpit (seed 003), as the team had it before row-level security.
--
-- Companies see their social-impact dashboards (SROI, VIS) at <slug>.cockpit.example. The data is
-- already per company — every table reaches `companies` — but only the application's WHERE clauses
-- keep companies apart. Roles and permissions are one global RBAC matrix; API keys give programmatic
-- access; admin actions go to an audit log; a company can override the metric weights (each change
-- kept in a history table by a trigger); integrations push metrics to partner platforms and log each
-- delivery.

CREATE TYPE user_role_enum AS ENUM ('VIEWER', 'MANAGER', 'ADMIN', 'SUPER_ADMIN');

CREATE TABLE companies (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name           varchar(255) NOT NULL,
  slug           varchar(100) NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
  tenant_enabled boolean NOT NULL DEFAULT true,
  tenant_config  jsonb NOT NULL DEFAULT '{}',
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  email         varchar(255) NOT NULL UNIQUE,
  name          varchar(255) NOT NULL,
  role          user_role_enum NOT NULL DEFAULT 'VIEWER',
  password_hash text,
  last_login_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_users_company_id ON users (company_id);

-- Sign-in sessions; the slug is the tenant the session was opened on (tenant routing).
CREATE TABLE sessions (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash            varchar(64) NOT NULL UNIQUE,
  tenant_slug           varchar(100),
  created_at            timestamptz NOT NULL DEFAULT now(),
  expires_at            timestamptz NOT NULL,
  last_tenant_switch_at timestamptz,
  ip_address            inet,
  user_agent            text
);
CREATE INDEX idx_sessions_user_id ON sessions (user_id);

-- RBAC: one matrix for every company.
CREATE TABLE role_hierarchy (
  role        user_role_enum PRIMARY KEY,
  level       integer NOT NULL UNIQUE,
  description text
);

CREATE TABLE permissions (
  id          serial PRIMARY KEY,
  name        varchar(100) NOT NULL UNIQUE,
  resource    varchar(50) NOT NULL,
  action      varchar(50) NOT NULL,
  description text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE role_permissions (
  role          user_role_enum NOT NULL REFERENCES role_hierarchy (role),
  permission_id integer NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
  PRIMARY KEY (role, permission_id)
);

CREATE TABLE api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name         varchar(255) NOT NULL,
  key_hash     varchar(255) NOT NULL UNIQUE,   -- looked up before the company is known
  key_prefix   varchar(16) NOT NULL,
  scopes       text[] NOT NULL DEFAULT ARRAY['read:metrics'],
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
  last_used_at timestamptz,
  expires_at   timestamptz,
  revoked_at   timestamptz,
  revoked_by   uuid REFERENCES users (id) ON DELETE SET NULL,
  metadata     jsonb NOT NULL DEFAULT '{}',
  CONSTRAINT api_keys_valid_expiry CHECK (expires_at IS NULL OR expires_at > created_at),
  CONSTRAINT api_keys_valid_revocation CHECK (revoked_at IS NULL OR revoked_at > created_at)
);
CREATE INDEX idx_api_keys_company_id ON api_keys (company_id);

-- One row per key and endpoint and minute: the hottest table.
CREATE TABLE api_key_usage (
  id            bigserial PRIMARY KEY,
  api_key_id    uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
  used_at       timestamptz NOT NULL DEFAULT now(),
  endpoint      varchar(255) NOT NULL,
  ip_address    inet,
  user_agent    text,
  request_count integer NOT NULL DEFAULT 1
);
CREATE INDEX idx_api_key_usage_api_key_id ON api_key_usage (api_key_id);
CREATE INDEX idx_api_key_usage_used_at ON api_key_usage (used_at);

CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
  user_email  varchar(255),
  user_role   user_role_enum,
  action      varchar(100) NOT NULL,
  resource    varchar(100) NOT NULL,
  resource_id varchar(255),
  severity    varchar(20) NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'error')),
  details     jsonb,
  ip_address  inet,
  request_id  varchar(128)
);
CREATE INDEX idx_audit_log_company_id ON audit_log (company_id);
CREATE INDEX idx_audit_log_occurred_at ON audit_log (occurred_at DESC);

CREATE FUNCTION cleanup_old_audit_logs(retention_days integer DEFAULT 90) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  deleted integer;
BEGIN
  DELETE FROM audit_log WHERE occurred_at < now() - make_interval(days => retention_days);
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$$;

-- Custom SROI / VIS weights per company, and every change to them.
CREATE TABLE weight_overrides (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  category   varchar(20) NOT NULL CHECK (category IN ('sroi', 'vis')),
  weights    jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
  UNIQUE (company_id, category)
);

CREATE TABLE weight_override_history (
  id                 bigserial PRIMARY KEY,
  weight_override_id uuid NOT NULL REFERENCES weight_overrides (id) ON DELETE CASCADE,
  company_id         uuid NOT NULL,
  category           varchar(20) NOT NULL,
  old_weights        jsonb,
  new_weights        jsonb NOT NULL,
  changed_at         timestamptz NOT NULL DEFAULT now(),
  changed_by         uuid REFERENCES users (id) ON DELETE SET NULL,
  change_reason      text
);
CREATE INDEX idx_weight_override_history_override ON weight_override_history (weight_override_id);

CREATE FUNCTION track_weight_override_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO weight_override_history (weight_override_id, company_id, category, old_weights, new_weights, changed_at, changed_by)
  VALUES (NEW.id, NEW.company_id, NEW.category, OLD.weights, NEW.weights, NEW.updated_at, NEW.updated_by);
  RETURN NEW;
END
$$;

CREATE TRIGGER weight_override_update_trigger
  AFTER UPDATE OF weights ON weight_overrides
  FOR EACH ROW
  WHEN (OLD.weights IS DISTINCT FROM NEW.weights)
  EXECUTE FUNCTION track_weight_override_changes();

-- Partner platforms the metrics are pushed to, and every delivery.
CREATE TABLE integration_configs (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id            uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  platform              varchar(50) NOT NULL CHECK (platform IN ('benevity', 'goodera', 'workday')),
  enabled               boolean NOT NULL DEFAULT false,
  api_endpoint          text,
  credentials_encrypted text,
  config                jsonb NOT NULL DEFAULT '{}',
  last_synced_at        timestamptz,
  last_sync_status      varchar(20) CHECK (last_sync_status IN ('success', 'failed', 'pending')),
  error_message         text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, platform)
);

CREATE TABLE integration_delivery_log (
  id                    bigserial PRIMARY KEY,
  integration_config_id uuid NOT NULL REFERENCES integration_configs (id) ON DELETE CASCADE,
  company_id            uuid NOT NULL,
  platform              varchar(50) NOT NULL,
  delivered_at          timestamptz NOT NULL DEFAULT now(),
  status                varchar(20) NOT NULL CHECK (status IN ('queued', 'sending', 'success', 'failed', 'retrying')),
  payload_hash          varchar(64),
  error_message         text,
  retry_count           integer NOT NULL DEFAULT 0,
  response_status       integer,
  duration_ms           integer,
  metadata              jsonb
);
CREATE INDEX idx_integration_delivery_log_config_id ON integration_delivery_log (integration_config_id);
CREATE INDEX idx_integration_delivery_log_delivered_at ON integration_delivery_log (delivered_at DESC);

-- The admin console's overview.
CREATE VIEW company_overview AS
SELECT c.id, c.slug, c.name,
       (SELECT count(*) FROM users u WHERE u.company_id = c.id) AS users,
       (SELECT count(*) FROM api_keys k WHERE k.company_id = c.id AND k.revoked_at IS NULL) AS active_api_keys,
       (SELECT max(a.occurred_at) FROM audit_log a WHERE a.company_id = c.id) AS last_admin_action
  FROM companies c;
