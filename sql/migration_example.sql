-- An application's migration that adopts sqlite-task: a shop's customers and
-- orders, and a confirmation email for every order, sent by a worker.
--
-- Run it with the extension loaded: `.load ./dist/task0` then `.read
-- sql/migration_example.sql` in the shell, or your driver's load_extension
-- then exec of this file. Every statement is idempotent (task_init() too), so
-- running it twice changes nothing; a migration runner would also check
-- PRAGMA user_version, which the last statement sets.
--
-- The transactional outbox: the trigger enqueues the email task inside the
-- transaction that inserts the order, so the task exists if and only if the
-- order's transaction commits. No order is ever left without its email, and
-- no email goes out for an order that was rolled back. A worker then claims
-- the task (SELECT task_claim('mailer', '{"queue": "email"}')), sends the
-- email and completes it; tests/sql/13_migration.sql shows each step.
BEGIN IMMEDIATE;
SELECT task_init();

CREATE TABLE IF NOT EXISTS customers (
  id    INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
  id          INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
  status      TEXT NOT NULL DEFAULT 'placed'
              CHECK (status IN ('placed', 'confirmed', 'shipped', 'cancelled')),
  created_at  INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- Which tasks belong to which order: the trigger stores the id task_enqueue
-- returns, so the application finds an order's work with a plain join.
CREATE TABLE IF NOT EXISTS order_tasks (
  order_id INTEGER NOT NULL REFERENCES orders (id),
  kind     TEXT NOT NULL,
  task_id  TEXT NOT NULL UNIQUE,
  PRIMARY KEY (order_id, kind)
);

-- Every new order gets its confirmation email task, in the same transaction.
-- The details carry what the worker needs, read when the order is placed.
CREATE TRIGGER IF NOT EXISTS orders_confirmation AFTER INSERT ON orders BEGIN
  INSERT INTO order_tasks (order_id, kind, task_id)
  VALUES (NEW.id, 'confirmation',
          task_enqueue('send_confirmation',
                       json_object('order_id', NEW.id,
                                   'email', (SELECT email FROM customers WHERE id = NEW.customer_id),
                                   'total_cents', NEW.total_cents),
                       '{"queue": "email", "max_attempts": 5}'));
END;

-- A cancelled order cancels its work that has not finished: a queued email is
-- never sent, and a worker sending it learns from its next task_progress.
CREATE TRIGGER IF NOT EXISTS orders_cancel_tasks AFTER UPDATE OF status ON orders
WHEN NEW.status = 'cancelled' BEGIN
  SELECT task_cancel(task_id) FROM order_tasks
   WHERE order_id = NEW.id
     AND (SELECT status FROM tasks WHERE id = task_id) IN ('queued', 'running', 'blocked');
END;

PRAGMA user_version = 1;
COMMIT;
