-- Sell-out analytics, single-tenant (seed 002, before phase 1).
--
-- A brand's analysts upload the sell-out files retailers send them (CSV/Excel, one per retailer and
-- month). A Python pipeline parses each upload, maps EANs to the product catalog, writes one row per
-- product, store and month into sellout_entries2 (the second version of that table — the name stuck),
-- and logs each processing and transformation step and each e-mail it sends. Retailers are shared
-- reference data. One brand runs this database today; the plan is to serve several.

CREATE TABLE retailers (
  code       text PRIMARY KEY CHECK (code ~ '^[A-Z0-9_]{2,20}$'),
  name       text NOT NULL,
  country    char(2) NOT NULL,
  channel    text NOT NULL CHECK (channel IN ('grocery', 'drugstore', 'pharmacy', 'online', 'wholesale'))
);

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL UNIQUE,
  full_name     text,
  role          text NOT NULL DEFAULT 'analyst' CHECK (role IN ('admin', 'analyst', 'viewer')),
  is_active     boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz
);

CREATE TABLE products (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  ean        text NOT NULL UNIQUE CHECK (ean ~ '^[0-9]{8,14}$'),
  sku        text,
  name       text NOT NULL,
  brand      text,
  category   text,
  pack_size  text,
  is_active  boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE uploads (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id),
  retailer      text NOT NULL REFERENCES retailers (code),
  filename      text NOT NULL,
  file_size     bigint CHECK (file_size >= 0),
  content_hash  text,                                   -- sha256 of the file, to spot re-uploads
  period_year   smallint NOT NULL,
  period_month  smallint NOT NULL CHECK (period_month BETWEEN 1 AND 12),
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
  row_count     integer,
  error_message text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  processed_at  timestamptz
);
CREATE INDEX uploads_created_at_idx ON uploads (created_at DESC);
CREATE INDEX uploads_user_id_idx ON uploads (user_id);

CREATE TABLE sellout_entries2 (
  id         bigserial PRIMARY KEY,
  upload_id  uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  product_id uuid REFERENCES products (id),             -- NULL until the EAN is mapped
  ean        text NOT NULL,
  retailer   text NOT NULL REFERENCES retailers (code),
  store_code text,
  year       smallint NOT NULL,
  month      smallint NOT NULL CHECK (month BETWEEN 1 AND 12),
  quantity   integer NOT NULL,
  revenue    numeric(14, 2) NOT NULL,
  currency   char(3) NOT NULL DEFAULT 'EUR',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sellout_entries2_year_month_idx ON sellout_entries2 (year, month);
CREATE INDEX sellout_entries2_ean_idx ON sellout_entries2 (ean);
CREATE INDEX sellout_entries2_upload_id_idx ON sellout_entries2 (upload_id);

CREATE TABLE processing_logs (
  id          bigserial PRIMARY KEY,
  upload_id   uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  step        text NOT NULL CHECK (step IN ('parse', 'validate', 'map_products', 'load', 'notify')),
  status      text NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
  message     text,
  duration_ms integer,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transform_logs (
  id            bigserial PRIMARY KEY,
  upload_id     uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  rule          text NOT NULL,
  rows_in       integer NOT NULL,
  rows_out      integer NOT NULL,
  rows_rejected integer NOT NULL DEFAULT 0,
  details       jsonb NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_logs (
  id                  bigserial PRIMARY KEY,
  user_id             uuid REFERENCES users (id) ON DELETE SET NULL,
  upload_id           uuid REFERENCES uploads (id) ON DELETE SET NULL,
  recipient           text NOT NULL,
  subject             text NOT NULL,
  template            text NOT NULL,
  status              text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'bounced', 'failed')),
  provider_message_id text,
  sent_at             timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now()
);

-- What the dashboards read.
CREATE VIEW monthly_sellout AS
SELECT s.year, s.month, s.retailer, s.ean, p.name AS product_name, p.brand,
       sum(s.quantity) AS quantity, sum(s.revenue) AS revenue, count(DISTINCT s.store_code) AS stores
  FROM sellout_entries2 s
  LEFT JOIN products p ON p.id = s.product_id
 GROUP BY s.year, s.month, s.retailer, s.ean, p.name, p.brand;
