-- sql/migration_example.sql, read by the shell as a migration runner would:
-- its tables and triggers, run twice; an order committed has its email task,
-- an order rolled back (or refused by a CHECK) has none; a worker claims the
-- task, confirms the order and completes the task in one transaction; a
-- cancelled order cancels its unfinished task. One row per check; a failing
-- call in a statement of its own (see run.sh). Task ids are generated, so
-- the checks show what a task holds, not its id.
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL

.print == the migration, run twice: the second run changes nothing
.read sql/migration_example.sql
CREATE TEMP TABLE first_run AS SELECT type, name, tbl_name, sql FROM sqlite_schema;
.read sql/migration_example.sql
SELECT 'schema objects', count(*),
       (SELECT count(*) FROM (SELECT type, name, tbl_name, sql FROM sqlite_schema EXCEPT SELECT * FROM first_run)),
       (SELECT count(*) FROM (SELECT * FROM first_run EXCEPT SELECT type, name, tbl_name, sql FROM sqlite_schema))
  FROM sqlite_schema;
SELECT 'tables', group_concat(name, ',') FROM
  (SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'task%' ORDER BY name);
SELECT 'triggers', group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = 'trigger' ORDER BY name);
SELECT 'user_version', user_version FROM pragma_user_version;
SELECT 'storage version', task_init();
INSERT INTO customers (id, email, name) VALUES (1, 'ann@example.com', 'Ann');

.print == an order committed: its task exists, inside the transaction and after it
BEGIN;
INSERT INTO orders (id, customer_id, total_cents) VALUES (1, 1, 2500);
SELECT 'inside', count(*) FROM tasks WHERE type = 'send_confirmation';
COMMIT;
SELECT 'after commit', t.type, t.queue, t.status, t.max_attempts, t.details
  FROM order_tasks o JOIN tasks t ON t.id = o.task_id WHERE o.order_id = 1;

.print == an order rolled back: no task
BEGIN;
INSERT INTO orders (id, customer_id, total_cents) VALUES (2, 1, 1200);
SELECT 'inside', count(*) FROM tasks WHERE type = 'send_confirmation';
ROLLBACK;
SELECT 'after rollback', (SELECT count(*) FROM orders), (SELECT count(*) FROM order_tasks),
       (SELECT count(*) FROM tasks WHERE type = 'send_confirmation');

.print == an order its CHECK refuses: no task
INSERT INTO orders (id, customer_id, total_cents) VALUES (3, 1, -5);
SELECT 'after the refusal', (SELECT count(*) FROM orders),
       (SELECT count(*) FROM tasks WHERE type = 'send_confirmation');

.print == a worker picks the task up, confirms the order and completes the task
CREATE TEMP TABLE claimed AS SELECT task_claim('mailer', '{"queue": "email"}') AS t;
SELECT 'claimed', json_extract(t, '$.type'), json_extract(t, '$.attempt'), json_extract(t, '$.details')
  FROM claimed;
SELECT 'running', status, worker FROM tasks WHERE id = (SELECT task_id FROM order_tasks WHERE order_id = 1);
BEGIN IMMEDIATE;
UPDATE orders SET status = 'confirmed' WHERE id = (SELECT json_extract(t, '$.details.order_id') FROM claimed);
SELECT 'completed', task_complete(json_extract(t, '$.id'), '{"sent": true}',
                                  json_object('attempt', json_extract(t, '$.attempt')))
  FROM claimed;
COMMIT;
SELECT 'order 1', o.status, t.status, t.result, t.progress
  FROM orders o JOIN order_tasks ot ON ot.order_id = o.id JOIN tasks t ON t.id = ot.task_id WHERE o.id = 1;

.print == a cancelled order cancels its unfinished task, which no worker then gets
INSERT INTO orders (id, customer_id, total_cents) VALUES (4, 1, 990);
SELECT 'order 4 placed', status FROM tasks WHERE id = (SELECT task_id FROM order_tasks WHERE order_id = 4);
UPDATE orders SET status = 'cancelled' WHERE id = 4;
SELECT 'order 4 cancelled', status FROM tasks WHERE id = (SELECT task_id FROM order_tasks WHERE order_id = 4);
SELECT 'next claim', task_claim('mailer', '{"queue": "email"}');
UPDATE orders SET status = 'cancelled' WHERE id = 1;
SELECT 'a finished task stays', status FROM tasks WHERE id = (SELECT task_id FROM order_tasks WHERE order_id = 1);
SELECT 'check', task_check();
