-- Inventory, single-tenant (seed 004, before organization support).
--
-- Items (the SKU is item_number) are stocked at locations (site + name). Every stock movement is one
-- row of the append-only inventory_ledger; a trigger keeps inventory_balances — the quantity per item
-- and location — in step with it, so screens never sum the ledger. Cycle counts are count sheets with
-- count lines; posting a sheet writes 'count' movements. Admin actions go to audit_logs; feature flags
-- switch features on per installation. One company runs this database today.

CREATE TABLE users (
  id            serial PRIMARY KEY,
  email         text NOT NULL UNIQUE,
  name          text NOT NULL,
  role          text NOT NULL DEFAULT 'counter' CHECK (role IN ('admin', 'manager', 'counter', 'viewer')),
  password_hash text NOT NULL,
  is_active     boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
  id              serial PRIMARY KEY,
  item_number     text NOT NULL UNIQUE,             -- the SKU
  description     text NOT NULL,
  category        text,
  unit_of_measure text NOT NULL DEFAULT 'EA',
  unit_cost       numeric(12, 4),
  reorder_point   numeric(14, 3),
  is_active       boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE locations (
  id         serial PRIMARY KEY,
  site       text NOT NULL,
  name       text NOT NULL,
  kind       text NOT NULL DEFAULT 'bin' CHECK (kind IN ('warehouse', 'store', 'truck', 'bin')),
  is_active  boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (site, name)
);

CREATE TABLE count_sheets (
  id            serial PRIMARY KEY,
  count_number  text NOT NULL UNIQUE,
  location_id   integer NOT NULL REFERENCES locations (id),
  status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'counting', 'submitted', 'posted', 'cancelled')),
  scheduled_for date NOT NULL,
  created_by    integer REFERENCES users (id),
  posted_at     timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE count_lines (
  id             serial PRIMARY KEY,
  count_sheet_id integer NOT NULL REFERENCES count_sheets (id) ON DELETE CASCADE,
  item_id        integer NOT NULL REFERENCES items (id),
  expected_qty   numeric(14, 3) NOT NULL,
  counted_qty    numeric(14, 3),
  counted_by     integer REFERENCES users (id),
  counted_at     timestamptz,
  UNIQUE (count_sheet_id, item_id)
);

CREATE TABLE inventory_ledger (
  id             bigserial PRIMARY KEY,
  item_id        integer NOT NULL REFERENCES items (id),
  location_id    integer NOT NULL REFERENCES locations (id),
  quantity_delta numeric(14, 3) NOT NULL CHECK (quantity_delta <> 0),
  reason         text NOT NULL CHECK (reason IN ('receipt', 'issue', 'transfer_in', 'transfer_out', 'adjustment', 'count')),
  reference      text,                              -- PO, order or transfer number
  count_sheet_id integer REFERENCES count_sheets (id),
  created_by     integer REFERENCES users (id),
  occurred_at    timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_ledger_item_location_idx ON inventory_ledger (item_id, location_id);
CREATE INDEX inventory_ledger_occurred_at_idx ON inventory_ledger (occurred_at);

-- Quantity on hand per item and location, kept by the trigger below; never written by the app.
CREATE TABLE inventory_balances (
  item_id          integer NOT NULL REFERENCES items (id),
  location_id      integer NOT NULL REFERENCES locations (id),
  quantity         numeric(14, 3) NOT NULL DEFAULT 0,
  last_movement_at timestamptz NOT NULL,
  PRIMARY KEY (item_id, location_id)
);

CREATE FUNCTION update_inventory_balance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO inventory_balances AS b (item_id, location_id, quantity, last_movement_at)
  VALUES (NEW.item_id, NEW.location_id, NEW.quantity_delta, NEW.occurred_at)
  ON CONFLICT (item_id, location_id) DO UPDATE
     SET quantity = b.quantity + EXCLUDED.quantity,
         last_movement_at = greatest(b.last_movement_at, EXCLUDED.last_movement_at);
  RETURN NEW;
END
$$;

CREATE TRIGGER inventory_ledger_balance_trigger
  AFTER INSERT ON inventory_ledger
  FOR EACH ROW EXECUTE FUNCTION update_inventory_balance();

CREATE TABLE audit_logs (
  id          bigserial PRIMARY KEY,
  user_id     integer REFERENCES users (id),
  action      text NOT NULL,
  entity_type text NOT NULL,
  entity_id   text,
  changes     jsonb,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at DESC);

CREATE TABLE feature_flags (
  id          serial PRIMARY KEY,
  key         text NOT NULL UNIQUE,
  enabled     boolean NOT NULL DEFAULT false,
  description text,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- What the stock screens read.
CREATE VIEW stock_on_hand AS
SELECT i.item_number, i.description, l.site, l.name AS location, b.quantity, i.unit_of_measure, b.last_movement_at
  FROM inventory_balances b
  JOIN items i ON i.id = b.item_id
  JOIN locations l ON l.id = b.location_id;

CREATE VIEW items_below_reorder_point AS
SELECT i.item_number, i.description, i.reorder_point, coalesce(sum(b.quantity), 0) AS on_hand
  FROM items i
  LEFT JOIN inventory_balances b ON b.item_id = i.id
 WHERE i.is_active AND i.reorder_point IS NOT NULL
 GROUP BY i.id, i.item_number, i.description, i.reorder_point
HAVING coalesce(sum(b.quantity), 0) < i.reorder_point;
