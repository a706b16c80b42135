-- The transactional outbox: a trigger enqueues a task with the business
-- row, inside the caller's transaction. The task exists if and only if the
-- row does: after COMMIT, not after ROLLBACK or ROLLBACK TO, not when the
-- statement fails. With PRAGMA trusted_schema = OFF, SQLite refuses the
-- trigger ('unsafe use of task_enqueue()') and the insert fails with it.
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
SELECT 'init', task_init();
CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT);
-- Task ids derive from the order id so the output is the same every run.
CREATE TRIGGER orders_ship AFTER INSERT ON orders BEGIN
  SELECT task_enqueue('ship', json_object('order', NEW.id),
    json_object('id', printf('0193d000-0000-7000-8000-%012d', NEW.id), 'queue', 'shipping', 'now', 1000));
END;
-- The view reads the plain storage table with innocuous functions only, so
-- it also works with trusted_schema = OFF (a view over the `tasks` virtual
-- table does not). The last 12 digits of a task id are its order's id.
CREATE VIEW outbox AS
  SELECT 'orders', (SELECT group_concat(id, ',') FROM (SELECT id FROM orders ORDER BY id)),
         'tasks', (SELECT group_concat(CAST(substr(id, 25) AS INTEGER), ',')
                     FROM (SELECT id FROM task_store WHERE type = 'ship' ORDER BY seq));
CREATE VIEW shipping AS SELECT id, status FROM tasks WHERE queue = 'shipping';

.print == autocommit
INSERT INTO orders VALUES (1, 'book');
SELECT * FROM outbox;
SELECT 'the task', id, queue, type, status, details FROM tasks WHERE type = 'ship';

.print == COMMIT keeps the task, ROLLBACK removes it
BEGIN;
INSERT INTO orders VALUES (2, 'pen');
SELECT * FROM outbox;
COMMIT;
SELECT * FROM outbox;
BEGIN;
INSERT INTO orders VALUES (3, 'ink');
SELECT * FROM outbox;
ROLLBACK;
SELECT * FROM outbox;

.print == SAVEPOINT and ROLLBACK TO
BEGIN;
INSERT INTO orders VALUES (4, 'cup');
SAVEPOINT s1;
INSERT INTO orders VALUES (5, 'mug');
SELECT * FROM outbox;
ROLLBACK TO s1;
SELECT * FROM outbox;
RELEASE s1;
SAVEPOINT s2;
INSERT INTO orders VALUES (6, 'pot');
RELEASE s2;
COMMIT;
SELECT * FROM outbox;
SAVEPOINT outer_sp;
INSERT INTO orders VALUES (7, 'pan');
ROLLBACK TO outer_sp;
RELEASE outer_sp;
SELECT * FROM outbox;

.print == a failing enqueue fails the INSERT, which leaves nothing behind
-- Order 1's task exists, so re-inserting order 1 after deleting it fails.
DELETE FROM orders WHERE id = 1;
INSERT INTO orders VALUES (1, 'book');
SELECT * FROM outbox;
-- A multi-row INSERT: order 8 is not kept when order 1 fails.
INSERT INTO orders VALUES (8, 'jar'), (1, 'book');
SELECT * FROM outbox;
BEGIN;
INSERT INTO orders VALUES (9, 'lid');
INSERT INTO orders VALUES (8, 'jar'), (1, 'book');
SELECT * FROM outbox;
COMMIT;
SELECT * FROM outbox;

.print == the same outbox through INSERT INTO tasks in a trigger
CREATE TABLE invoices (id INTEGER PRIMARY KEY);
CREATE TRIGGER invoices_send AFTER INSERT ON invoices BEGIN
  INSERT INTO tasks(id, type, details, now)
  VALUES (printf('0193d000-0000-7000-8000-1%011d', NEW.id), 'invoice', json_object('invoice', NEW.id), 2000);
END;
INSERT INTO invoices VALUES (1);
BEGIN;
INSERT INTO invoices VALUES (2);
ROLLBACK;
SELECT 'invoice tasks', group_concat(json_extract(details, '$.invoice')) FROM tasks WHERE type = 'invoice';

.print == the queue works on what the triggers enqueued
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "shipping", "now": 3000}'), '$.details.order');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "shipping", "now": 3000}'), '$.details.order');

.print == PRAGMA trusted_schema = OFF: the trigger is refused, the INSERT fails with it
PRAGMA trusted_schema = OFF;
INSERT INTO orders VALUES (10, 'box');
SELECT * FROM outbox;
BEGIN;
INSERT INTO orders VALUES (11, 'bag');
COMMIT;
SELECT * FROM outbox;
INSERT INTO invoices VALUES (3);
SELECT 'invoices', group_concat(id) FROM invoices;
SELECT 'invoice tasks', group_concat(json_extract(details, '$.invoice')) FROM tasks WHERE type = 'invoice';
-- The tasks table is not innocuous either: a view over it is refused.
SELECT count(*) FROM shipping;
-- Top-level calls are not affected.
SELECT 'top-level enqueue', task_enqueue('direct', NULL, '{"id": "0193d000-0000-7000-8000-200000000001", "now": 4000}');
SELECT 'top-level read', count(*) FROM tasks WHERE queue = 'shipping';
PRAGMA trusted_schema = ON;
INSERT INTO orders VALUES (10, 'box');
SELECT * FROM outbox;
SELECT 'view over tasks', count(*) FROM shipping;

.print == task_init is direct-only: refused in a trigger or a view, whatever trusted_schema
CREATE TABLE migrations (n INTEGER);
CREATE TRIGGER migrations_init AFTER INSERT ON migrations BEGIN
  SELECT task_init();
END;
INSERT INTO migrations VALUES (1);
SELECT 'migration rows', count(*) FROM migrations;
CREATE VIEW init_view AS SELECT task_init() AS v;
SELECT * FROM init_view;
SELECT 'top-level task_init', task_init();

.print == a SELECT making several calls is not one unit; INSERT INTO tasks ... SELECT is
-- docs/concepts.md, "Rules every function follows": the first call's task
-- stays when the second call fails, in autocommit mode (committed) as in a
-- transaction (until ROLLBACK, the remedy the docs give).
SELECT task_enqueue('multi', NULL, '{"id": "0193d000-0000-7000-8000-300000000001", "now": 5000}'), task_enqueue('');
SELECT 'kept in autocommit', count(*) FROM tasks WHERE type = 'multi';
BEGIN;
SELECT task_enqueue('multi', NULL, '{"id": "0193d000-0000-7000-8000-300000000002", "now": 5000}'), task_enqueue('');
SELECT 'kept in the transaction', count(*) FROM tasks WHERE type = 'multi';
ROLLBACK;
SELECT 'gone after ROLLBACK', count(*) FROM tasks WHERE type = 'multi';
-- One write statement is undone as a whole: no order's task when one fails.
INSERT INTO tasks(id, type, now)
  SELECT printf('0193d000-0000-7000-8000-4%011d', id), CASE WHEN id = 9 THEN '' ELSE 'bulk' END, 5000
    FROM orders ORDER BY id;
SELECT 'bulk tasks after the failed INSERT ... SELECT', count(*) FROM tasks WHERE type = 'bulk';
INSERT INTO tasks(id, type, now)
  SELECT printf('0193d000-0000-7000-8000-4%011d', id), 'bulk', 5000 FROM orders ORDER BY id;
SELECT 'bulk tasks', group_concat(CAST(substr(id, 26) AS INTEGER)) FROM tasks WHERE type = 'bulk';
