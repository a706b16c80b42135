-- The `tasks` virtual table: reads with filters handed to the storage (and
-- the EXPLAIN QUERY PLAN lines that show it), INSERT as a second way to
-- enqueue, UPDATE to reschedule, cancel or retry, DELETE of finished tasks
-- with their descendants, and every refusal with its message.
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
.parameter init
.parameter set @a  "'0193c000-0000-7000-8000-00000000000a'"
.parameter set @a1 "'0193c000-0000-7000-8000-0000000000a1'"
.parameter set @a2 "'0193c000-0000-7000-8000-0000000000a2'"
.parameter set @b  "'0193c000-0000-7000-8000-00000000000b'"
.parameter set @c  "'0193c000-0000-7000-8000-00000000000c'"
.parameter set @d  "'0193c000-0000-7000-8000-00000000000d'"
.parameter set @e  "'0193c000-0000-7000-8000-00000000000e'"
.parameter set @unknown "'0193c000-0000-7000-8000-0000000000ff'"

.print == INSERT enqueues, with the same defaults as task_enqueue
SELECT 'init', task_init();
INSERT INTO tasks(id, type, details, queue, priority, max_attempts, now)
VALUES (@a, 'report', '{"month":"2026-10"}', 'q1', 2, 4, 1000);
SELECT 'last_insert_rowid is the seq', last_insert_rowid() = (SELECT seq FROM task_store WHERE id = @a);
INSERT INTO tasks(id, type, parent_id, queue, now, delay) VALUES (@a1, 'part', @a, 'q1', 1000, 500);
INSERT INTO tasks(id, type, parent_id, queue, status, run_at, now) VALUES (@a2, 'part', upper(@a), 'q2', 'queued', 7000, 1000);
SELECT 'changes() after one INSERT', changes();
INSERT INTO tasks(id, type, queue, now) VALUES (@b, 'email', 'q2', 1000), (@c, 'email', 'q1', 1000);
SELECT 'changes() after a two-row INSERT', changes();
INSERT INTO tasks(id, type, queue, max_attempts, now) VALUES (@d, 'report', 'q2', 1, 1000);
INSERT INTO tasks(id, type, queue, now) VALUES (@e, 'email', 'q3', 1000);
INSERT INTO tasks(type, now) VALUES ('generated', 1000);
SELECT 'generated id is v7 at now', substr(id, 1, 15) = '00000000-03e8-7', queue, status, max_attempts
  FROM tasks WHERE type = 'generated';
SELECT 'row', * FROM tasks WHERE type <> 'generated' ORDER BY rowid;
-- Give them their states: b running, c completed, d failed, e cancelled.
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "q2", "now": 2000}'), '$.id') = @b;
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "q2", "now": 2000}'), '$.id') = @d;
SELECT 'fail', task_fail(@d, 'boom', '{"now": 2000}');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": ["q1"], "now": 2000}'), '$.id') = @a;
SELECT 'claim', json_extract(task_claim('w1', '{"queue": ["q1"], "now": 2000}'), '$.id') = @c;
SELECT 'claim', json_extract(task_claim('w1', '{"queue": ["q1"], "now": 2000}'), '$.id') = @a1;
SELECT 'complete', task_complete(@c, '{"ok":1}', '{"now": 2000}');
SELECT 'fail a, back to queued', task_fail(@a, 'later', '{"delay": 0, "now": 2000}');
SELECT 'fail a1, back to queued', task_fail(@a1, 'later', '{"delay": 0, "now": 2000}');
SELECT 'cancel', task_cancel(@e, '{"now": 2000}');
SELECT 'cancel', task_cancel((SELECT id FROM tasks WHERE type = 'generated'), '{"now": 2000}');

.print == SELECT with filters
SELECT 'id =', id, status FROM tasks WHERE id = @b;
SELECT 'id = unknown', count(*) FROM tasks WHERE id = @unknown;
SELECT 'id = NULL', count(*) FROM tasks WHERE id = NULL;
SELECT 'id IN', id FROM tasks WHERE id IN (@c, @d, @unknown) ORDER BY id;
SELECT 'queue IN (every status)', id, status FROM tasks WHERE queue IN ('q2', 'q3', 'none') ORDER BY rowid;
SELECT 'status IN', id, status FROM tasks WHERE status IN ('running', 'failed') ORDER BY rowid;
SELECT 'status IN AND type IN', id, status FROM tasks WHERE status IN ('queued', 'cancelled') AND type IN ('email', 'part') ORDER BY rowid;
SELECT 'status = queued', id FROM tasks WHERE status = 'queued' ORDER BY rowid;
SELECT 'status = running', id FROM tasks WHERE status = 'running' ORDER BY rowid;
SELECT 'queue = q1 (every status)', id, status FROM tasks WHERE queue = 'q1' ORDER BY rowid;
SELECT 'queue = q2 (every status)', id, status FROM tasks WHERE queue = 'q2' ORDER BY rowid;
SELECT 'type = email', id, status FROM tasks WHERE type = 'email' ORDER BY rowid;
SELECT 'type = report AND queue = q2', id FROM tasks WHERE type = 'report' AND queue = 'q2' ORDER BY rowid;
SELECT 'status = queued AND queue = q1', id FROM tasks WHERE status = 'queued' AND queue = 'q1' ORDER BY rowid;
SELECT 'parent_id =', id FROM tasks WHERE parent_id = @a ORDER BY rowid;
SELECT 'priority > 0 (filtered by SQLite)', id, priority FROM tasks WHERE priority > 0 ORDER BY rowid;
SELECT 'join on parent_id', p.type, c.id FROM tasks p JOIN tasks c ON c.parent_id = p.id ORDER BY c.rowid;
SELECT 'count by status', status, count(*) FROM tasks GROUP BY status ORDER BY status;
SELECT 'every row once', count(*), count(DISTINCT id), (SELECT count(*) FROM task_store) FROM tasks;

.print == EXPLAIN QUERY PLAN: equality on id, queue, type, status, parent_id is handed to the storage
-- Values are bound as +?N; every query but a lookup by id ends with the
-- rowid bound (the last parameter: the highest rowid when the scan began).
EXPLAIN QUERY PLAN SELECT * FROM tasks;
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE id = '0193c000-0000-7000-8000-00000000000a';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE queue = 'q1';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE type = 'email';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE status = 'queued';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE parent_id = '0193c000-0000-7000-8000-00000000000a';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE status = 'queued' AND queue = 'q1';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE priority > 0 AND worker = 'w1';
EXPLAIN QUERY PLAN SELECT * FROM tasks p JOIN tasks c ON c.parent_id = p.id WHERE p.id = '0193c000-0000-7000-8000-00000000000a';
-- IN lists (this shell is SQLite 3.40, so 3.38 or newer): queue, type, id
-- and parent_id lists are handed to the storage one value at a time (the
-- same plans as equality); a status list is left to SQLite (INDEX 0, or
-- only the other filters), and a one-value list is an equality.
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE queue IN ('q1', 'q2');
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE id IN ('0193c000-0000-7000-8000-00000000000a', '0193c000-0000-7000-8000-00000000000b');
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE status IN ('queued', 'running');
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE status IN ('queued', 'running') AND type = 'email';
EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE status IN ('queued');

.print == INSERT refusals
INSERT INTO tasks(type, worker) VALUES ('t', 'w1');
INSERT INTO tasks(type, attempts) VALUES ('t', 1);
INSERT INTO tasks(type, progress) VALUES ('t', 50);
INSERT INTO tasks(type, result) VALUES ('t', '{}');
INSERT INTO tasks(type, error) VALUES ('t', 'e');
INSERT INTO tasks(type, lease_until) VALUES ('t', 1);
INSERT INTO tasks(type, created_at) VALUES ('t', 1);
INSERT INTO tasks(type, completed_at) VALUES ('t', 1);
INSERT INTO tasks(type, status) VALUES ('t', 'running');
INSERT INTO tasks(queue) VALUES ('q1');
INSERT INTO tasks(type) VALUES ('');
INSERT INTO tasks(type) VALUES (42);
INSERT INTO tasks(rowid, type) VALUES (100, 't');
INSERT INTO tasks(type, priority) VALUES ('t', '5');
INSERT INTO tasks(type, priority) VALUES ('t', 2147483648);
INSERT INTO tasks(type, max_attempts) VALUES ('t', 0);
INSERT INTO tasks(type, run_at, delay) VALUES ('t', 5000, 10);
INSERT INTO tasks(type, delay, now) VALUES ('t', -1, 1000);
INSERT INTO tasks(type, details) VALUES ('t', '{"a":');
INSERT INTO tasks(type, id) VALUES ('t', 'not-a-uuid');
INSERT INTO tasks(type, id) VALUES ('t', '0193c000-0000-7000-8000-00000000000A');
INSERT INTO tasks(type, parent_id) VALUES ('t', '0193c000-0000-7000-8000-0000000000ff');
-- A multi-row INSERT is all or nothing: the first row is not kept.
INSERT INTO tasks(id, type, now) VALUES ('0193c000-0000-7000-8000-000000000099', 't', 3000), (@b, 't', 3000);
SELECT 'first row of the failed INSERT', count(*) FROM tasks WHERE id = '0193c000-0000-7000-8000-000000000099';
BEGIN;
INSERT INTO tasks(id, type, now) VALUES ('0193c000-0000-7000-8000-000000000099', 't', 3000), (@b, 't', 3000);
SELECT 'same inside a transaction', count(*) FROM tasks WHERE id = '0193c000-0000-7000-8000-000000000099';
COMMIT;
SELECT 'nothing was added', count(*) FROM tasks;

.print == UPDATE reschedules a queued task
UPDATE tasks SET priority = 9, run_at = 6000, queue = 'q9', max_attempts = 7, now = 3000 WHERE id = @a;
SELECT 'rescheduled', queue, priority, run_at, max_attempts, status, updated_at FROM tasks WHERE id = @a;
UPDATE tasks SET queue = 'q1' WHERE id = @a;
UPDATE tasks SET priority = priority WHERE id = @a;
SELECT 'no-op update', queue, priority FROM tasks WHERE id = @a;
UPDATE tasks SET priority = -3 WHERE parent_id = @a;
SELECT 'several rows', id, priority FROM tasks WHERE parent_id = @a ORDER BY rowid;

.print == UPDATE refusals
UPDATE tasks SET priority = 1 WHERE id = @b;
UPDATE tasks SET run_at = 1 WHERE id = @c;
UPDATE tasks SET worker = 'me' WHERE id = @a;
UPDATE tasks SET details = '{}' WHERE id = @a;
UPDATE tasks SET id = @unknown WHERE id = @a;
UPDATE tasks SET type = 'other' WHERE id = @a;
UPDATE tasks SET parent_id = NULL WHERE id = @a1;
UPDATE tasks SET rowid = 1000 WHERE id = @a;
UPDATE tasks SET status = 'cancelled', priority = 1 WHERE id = @a;
UPDATE tasks SET status = 'running' WHERE id = @a;
UPDATE tasks SET status = 'completed' WHERE id = @b;
UPDATE tasks SET status = NULL WHERE id = @a;
UPDATE tasks SET status = 'queued' WHERE id = @c;
UPDATE tasks SET status = 'cancelled' WHERE id = @c;
UPDATE tasks SET max_attempts = 1 WHERE id = @a;
UPDATE tasks SET max_attempts = 1001 WHERE id = @a;
UPDATE tasks SET priority = NULL WHERE id = @a;
UPDATE tasks SET priority = 'high' WHERE id = @a;
UPDATE tasks SET priority = 2147483648 WHERE id = @a;
UPDATE tasks SET run_at = -1 WHERE id = @a;
UPDATE tasks SET queue = '' WHERE id = @a;
UPDATE tasks SET queue = NULL WHERE id = @a;
-- A multi-row UPDATE is all or nothing: a (queued) keeps its priority when c
-- (completed) is refused.
UPDATE tasks SET priority = 5 WHERE id IN (@a, @c);
SELECT 'unchanged after the refusals', id, queue, type, status, priority, run_at, max_attempts, worker, details, parent_id
  FROM tasks WHERE id IN (@a, @a1, @b, @c) ORDER BY rowid;

.print == UPDATE status cancels and retries
UPDATE tasks SET status = 'cancelled', now = 4000 WHERE id = @b;
SELECT 'cancelled running', status, completed_at, lease_until FROM tasks WHERE id = @b;
SELECT 'its worker learns', task_heartbeat(@b, '{"now": 4001}');
UPDATE tasks SET status = 'cancelled', now = 4000 WHERE parent_id = @a;
SELECT 'cancelled children', id, status FROM tasks WHERE parent_id = @a ORDER BY rowid;
UPDATE tasks SET status = 'queued', now = 5000 WHERE id IN (@b, @d);
SELECT 'retried', id, status, attempts, run_at, completed_at FROM tasks WHERE id IN (@b, @d) ORDER BY rowid;
UPDATE tasks SET status = 'cancelled', now = 6000 WHERE status = 'queued' AND queue = 'q2';
SELECT 'cancelled by queue', id, status FROM tasks WHERE queue = 'q2' ORDER BY rowid;
-- Every row matched by an UPDATE is changed exactly once, even when the
-- change moves it to another storage index (queued → cancelled).
INSERT INTO tasks(id, type, queue, now) VALUES
  ('0193c000-0000-7000-8000-000000000051', 't', 'q5', 6000),
  ('0193c000-0000-7000-8000-000000000052', 't', 'q5', 6000);
UPDATE tasks SET status = 'cancelled', now = 6000 WHERE queue = 'q5';
SELECT 'cancelled by queue alone', id, status FROM tasks WHERE queue = 'q5' ORDER BY rowid;
DELETE FROM tasks WHERE queue = 'q5';
SELECT 'deleted by queue alone', count(*) FROM tasks WHERE queue = 'q5';

.print == DELETE removes finished tasks with their descendants
SELECT 'count by status', status, count(*) FROM tasks GROUP BY status ORDER BY status;
DELETE FROM tasks WHERE id = @a;
SELECT 'claim a', json_extract(task_claim('w1', '{"queue": "q1", "now": 7000}'), '$.id') = @a;
DELETE FROM tasks WHERE id = @a;
SELECT 'complete a', task_complete(@a, NULL, '{"now": 7000}');
UPDATE tasks SET status = 'queued', now = 7000 WHERE id = @a1;
DELETE FROM tasks WHERE id = @a;
SELECT 'refused deletes changed nothing', count(*) FROM tasks;
UPDATE tasks SET status = 'cancelled', now = 7000 WHERE id = @a1;
DELETE FROM tasks WHERE id = @a;
SELECT 'a and its children are gone', count(*) FROM tasks WHERE @a IN (id, parent_id);
DELETE FROM tasks WHERE status = 'completed';
SELECT 'count by status', status, count(*) FROM tasks GROUP BY status ORDER BY status;
INSERT INTO tasks(id, type, now) VALUES ('0193c000-0000-7000-8000-000000000f00', 'parent', 8000);
INSERT INTO tasks(id, type, parent_id, now) VALUES ('0193c000-0000-7000-8000-000000000f01', 'child', '0193c000-0000-7000-8000-000000000f00', 8000);
UPDATE tasks SET status = 'cancelled', now = 8000 WHERE type IN ('parent', 'child');
-- Both rows match; the child is deleted with its parent, which is no error.
DELETE FROM tasks WHERE type IN ('parent', 'child');
SELECT 'family deleted in one statement', count(*) FROM tasks WHERE type IN ('parent', 'child');
DELETE FROM tasks;
SELECT 'all deleted', count(*) FROM tasks;
SELECT 'task_store agrees', count(*) FROM task_store;

.print == a scan reads the tasks that existed when it started, each once
-- Statements that change the tasks they read, which moves them to another
-- storage index: each task is visited once, and none the statement added.
-- docs/reference/tasks-table.md promises no row order without ORDER BY
-- (rowid is the enqueue order), so the outputs below are ordered or order-free.
INSERT INTO tasks(id, type, queue, now) VALUES
  ('0193c000-0000-7000-8000-000000000061', 'scan', 'q6', 9000),
  ('0193c000-0000-7000-8000-000000000062', 'scan', 'q7', 9000),
  ('0193c000-0000-7000-8000-000000000063', 'scan', 'q6', 9000),
  ('0193c000-0000-7000-8000-000000000064', 'scan', 'q7', 9000),
  ('0193c000-0000-7000-8000-000000000065', 'scan', 'q6', 9000),
  ('0193c000-0000-7000-8000-000000000066', 'scan', 'q7', 9000);
-- Each visit claims q6's next task in claim order, whichever row it reads.
SELECT 'claim while reading q6', json_extract(task_claim('w6', '{"queue": "q6", "now": 9000}'), '$.id')
  FROM tasks WHERE queue = 'q6';
SELECT 'by rowid', group_concat(substr(id, 35) || ':' || status, ',')
  FROM (SELECT id, status FROM tasks WHERE type = 'scan' ORDER BY rowid);
SELECT 'enqueue while reading q7', count(task_enqueue('scan', NULL, '{"queue": "q7", "now": 9000}'))
  FROM (SELECT * FROM tasks WHERE queue = 'q7' LIMIT 100);
SELECT 'cancel while reading type scan', substr(id, 35), status, task_cancel(id, '{"now": 9000}')
  FROM tasks WHERE type = 'scan' AND rowid <= (SELECT seq FROM task_store WHERE id = '0193c000-0000-7000-8000-000000000066')
 ORDER BY rowid;
SELECT 'after', queue, status, count(*) FROM tasks WHERE type = 'scan' GROUP BY queue, status ORDER BY queue, status;
-- IN lists: each value is a scan of its own under the first scan's rowid
-- bound, and a status list is filtered by SQLite, so again each task is
-- visited once, and none the statement added. The retry moves cancelled
-- tasks to queued, a later value of the list in SQLite's (sorted) order.
SELECT 'retry while reading status IN', count(*), count(task_retry(id, '{"now": 9000}'))
  FROM tasks WHERE status IN ('cancelled', 'queued') AND queue = 'q6';
-- A row visited again would claim nothing (NULL): count(*) would exceed 3.
SELECT 'claim while reading status IN', count(*), count(task_claim('w6', '{"queue": "q6", "now": 9000}'))
  FROM tasks WHERE status IN ('queued', 'running') AND queue = 'q6';
SELECT 'enqueue while reading queue IN', count(task_enqueue('scan', NULL, json_object('queue', queue, 'now', 9000)))
  FROM (SELECT * FROM tasks WHERE queue IN ('q6', 'q7') LIMIT 100);
SELECT 'cancel while reading queue IN', count(*), count(task_cancel(id, '{"now": 9000}'))
  FROM tasks WHERE queue IN ('q7', 'q6') AND status IN ('queued', 'running');
SELECT 'after', queue, status, count(*) FROM tasks WHERE type = 'scan' GROUP BY queue, status ORDER BY queue, status;
-- INSERT ... SELECT, the all-or-nothing bulk enqueue of docs/concepts.md: the third row
-- is bad, so the two before it are not kept either.
WITH v(n, t) AS (VALUES (1, 'bulk'), (2, 'bulk'), (3, ''), (4, 'bulk'))
INSERT INTO tasks(type, details, now) SELECT t, json_object('n', n), 9000 FROM v ORDER BY n;
SELECT 'nothing of the failed INSERT ... SELECT', count(*) FROM tasks WHERE type = 'bulk';
WITH v(n, t) AS (VALUES (1, 'bulk'), (2, 'bulk'), (4, 'bulk'))
INSERT INTO tasks(type, details, now) SELECT t, json_object('n', n), 9000 FROM v ORDER BY n;
SELECT 'all of the good INSERT ... SELECT', group_concat(json_extract(details, '$.n')) FROM tasks WHERE type = 'bulk';
UPDATE tasks SET status = 'cancelled', now = 9000 WHERE status = 'queued';
DELETE FROM tasks;
SELECT 'all deleted', count(*) FROM tasks;
