-- Energy billing, single-tenant (seeds 000 and 001, before the multi-tenant change).
--
-- One energy company runs this database. It bills on behalf of its clients (energy retailers, each
-- with its own portal); each client has customers with a meter that reports every 15 minutes.
-- Tariffs belong to a client; a billing period per customer and month turns readings into an invoice.
-- People sign in as energy admins (everything), client admins (one client) or customer users (one
-- customer account). There is no organization anywhere yet: that is what tenantize adds.

CREATE TABLE client (
  id                 serial PRIMARY KEY,
  code               text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9]{2,12}$'),
  name               text NOT NULL,
  contact_email      text,
  contact_phone      text,
  billing_day        smallint NOT NULL DEFAULT 1 CHECK (billing_day BETWEEN 1 AND 28),
  payment_terms_days smallint NOT NULL DEFAULT 30 CHECK (payment_terms_days > 0),
  currency           char(3) NOT NULL DEFAULT 'USD',
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
  settings           jsonb NOT NULL DEFAULT '{}',
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tariff_rate (
  id             serial PRIMARY KEY,
  client_id      integer NOT NULL REFERENCES client (id),
  name           text NOT NULL,
  rate_type      text NOT NULL CHECK (rate_type IN ('flat', 'tiered', 'time_of_use', 'demand')),
  energy_rate    numeric(10, 5) NOT NULL,          -- per kWh (flat, demand; the first block of tiered)
  on_peak_rate   numeric(10, 5),                   -- per kWh, time_of_use only
  mid_peak_rate  numeric(10, 5),
  off_peak_rate  numeric(10, 5),
  demand_rate    numeric(10, 4),                   -- per kW of monthly peak demand
  fixed_charge   numeric(10, 2) NOT NULL DEFAULT 0, -- per billing period
  effective_from date NOT NULL,
  effective_to   date,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (client_id, name, effective_from),
  CHECK (effective_to IS NULL OR effective_to > effective_from),
  CHECK (rate_type <> 'time_of_use' OR (on_peak_rate IS NOT NULL AND mid_peak_rate IS NOT NULL AND off_peak_rate IS NOT NULL))
);

CREATE TABLE tariff_block (
  id             serial PRIMARY KEY,
  tariff_rate_id integer NOT NULL REFERENCES tariff_rate (id) ON DELETE CASCADE,
  block_order    smallint NOT NULL CHECK (block_order > 0),
  from_kwh       numeric(12, 3) NOT NULL,
  to_kwh         numeric(12, 3),
  rate           numeric(10, 5) NOT NULL,
  UNIQUE (tariff_rate_id, block_order),
  CHECK (to_kwh IS NULL OR to_kwh > from_kwh)
);

CREATE TABLE customer (
  id              serial PRIMARY KEY,
  client_id       integer NOT NULL REFERENCES client (id),
  tariff_rate_id  integer REFERENCES tariff_rate (id),
  account_number  text NOT NULL UNIQUE,
  meter_number    text NOT NULL UNIQUE,
  name            text NOT NULL,
  email           text,
  service_address text NOT NULL,
  city            text NOT NULL,
  postal_code     text NOT NULL,
  customer_type   text NOT NULL DEFAULT 'residential' CHECK (customer_type IN ('residential', 'commercial', 'industrial')),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'moved_out', 'disconnected')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_client_id_idx ON customer (client_id);

CREATE TABLE users (
  id            serial PRIMARY KEY,
  email         text NOT NULL UNIQUE,
  name          text NOT NULL,
  password_hash text NOT NULL,
  role          text NOT NULL CHECK (role IN ('energy_admin', 'client_admin', 'customer_user')),
  client_id     integer REFERENCES client (id),
  customer_id   integer REFERENCES customer (id),
  last_login_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (role <> 'client_admin' OR client_id IS NOT NULL),
  CHECK (role <> 'customer_user' OR customer_id IS NOT NULL)
);

-- 15-minute interval data: the big, hot table (every meter reports 96 rows a day).
CREATE TABLE meter_reading (
  id           bigserial PRIMARY KEY,
  customer_id  integer NOT NULL REFERENCES customer (id),
  meter_number text NOT NULL,
  reading_at   timestamptz NOT NULL,               -- start of the interval
  kwh          numeric(12, 3) NOT NULL CHECK (kwh >= 0),
  demand_kw    numeric(10, 3),
  tou_period   text NOT NULL CHECK (tou_period IN ('on_peak', 'mid_peak', 'off_peak')),
  quality      text NOT NULL DEFAULT 'actual' CHECK (quality IN ('actual', 'estimated', 'corrected')),
  received_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, reading_at)
);

CREATE TABLE billing_period (
  id             serial PRIMARY KEY,
  customer_id    integer NOT NULL REFERENCES customer (id),
  tariff_rate_id integer NOT NULL REFERENCES tariff_rate (id),
  period_start   date NOT NULL,
  period_end     date NOT NULL,                     -- exclusive
  total_kwh      numeric(12, 3) NOT NULL DEFAULT 0,
  on_peak_kwh    numeric(12, 3) NOT NULL DEFAULT 0,
  mid_peak_kwh   numeric(12, 3) NOT NULL DEFAULT 0,
  off_peak_kwh   numeric(12, 3) NOT NULL DEFAULT 0,
  peak_demand_kw numeric(10, 3),
  status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'calculated', 'invoiced')),
  calculated_at  timestamptz,
  UNIQUE (customer_id, period_start),
  CHECK (period_end > period_start)
);

CREATE TABLE invoice (
  id                serial PRIMARY KEY,
  invoice_number    text NOT NULL UNIQUE,
  customer_id       integer NOT NULL REFERENCES customer (id),
  billing_period_id integer NOT NULL UNIQUE REFERENCES billing_period (id),
  issued_on         date NOT NULL,
  due_on            date NOT NULL,
  energy_charges    numeric(10, 2) NOT NULL,
  demand_charges    numeric(10, 2) NOT NULL DEFAULT 0,
  fixed_charges     numeric(10, 2) NOT NULL DEFAULT 0,
  taxes             numeric(10, 2) NOT NULL DEFAULT 0,
  total             numeric(10, 2) NOT NULL,
  currency          char(3) NOT NULL DEFAULT 'USD',
  status            text NOT NULL DEFAULT 'issued' CHECK (status IN ('draft', 'issued', 'paid', 'overdue', 'void')),
  paid_at           timestamptz,
  pdf_path          text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (due_on >= issued_on)
);
CREATE INDEX invoice_customer_id_idx ON invoice (customer_id);

CREATE TABLE invoice_line (
  id          serial PRIMARY KEY,
  invoice_id  integer NOT NULL REFERENCES invoice (id) ON DELETE CASCADE,
  line_no     smallint NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('energy', 'demand', 'fixed', 'tax', 'adjustment')),
  description text NOT NULL,
  quantity    numeric(12, 3) NOT NULL DEFAULT 1,
  unit        text,
  unit_price  numeric(12, 5) NOT NULL,
  amount      numeric(10, 2) NOT NULL,
  UNIQUE (invoice_id, line_no)
);

-- Reports the portals read.
CREATE VIEW daily_consumption AS
SELECT customer_id,
       (reading_at AT TIME ZONE 'UTC')::date AS day,
       sum(kwh) AS kwh,
       max(demand_kw) AS peak_demand_kw,
       count(*) AS intervals
  FROM meter_reading
 GROUP BY customer_id, (reading_at AT TIME ZONE 'UTC')::date;

CREATE VIEW open_invoice AS
SELECT i.id, i.invoice_number, c.account_number, c.name AS customer_name, i.total, i.currency, i.due_on,
       i.due_on < current_date AS overdue
  FROM invoice i
  JOIN customer c ON c.id = i.customer_id
 WHERE i.status IN ('issued', 'overdue');
