-- After `tenantize apply` with "target": "citus" (docs/citus.md): Citus refuses a join of distributed
-- tables whose condition lacks the distribution column ("the query contains a join that requires
-- repartitioning"), row-level security notwithstanding. schema.sql's open_invoice joins invoice to
-- customer by id alone (it predates the tenant column), so on Citus every query of the view fails until
-- it joins on the composite key too. security_invoker stays on: CREATE OR REPLACE VIEW replaces the
-- view's options with those it names. Before `tenantize rollback` put schema.sql's join back (the
-- rollback drops org_id, which this definition uses).
CREATE OR REPLACE VIEW open_invoice WITH (security_invoker = true) AS
SELECT i.id, i.invoice_number, c.account_number, c.name AS customer_name, i.total, i.currency, i.due_on,
       i.due_on < current_date AS overdue
  FROM invoice i
  JOIN customer c ON c.org_id = i.org_id AND c.id = i.customer_id
 WHERE i.status IN ('issued', 'overdue');
