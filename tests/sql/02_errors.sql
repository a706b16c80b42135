-- Bad input, one call per line. Each failing call prints its error (the
-- message names the function and the problem) and is followed by a check
-- that it changed nothing: 'storage unchanged|1' compares every row and
-- column of task_store and task_meta with a snapshot taken before.
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
-- @q queued, @r running (worker w1, attempt 1), @c completed, @x cancelled,
-- @f failed, @unknown a UUID no task has.
.parameter init
.parameter set @q "'0193b000-0000-7000-8000-000000000001'"
.parameter set @r "'0193b000-0000-7000-8000-000000000002'"
.parameter set @c "'0193b000-0000-7000-8000-000000000003'"
.parameter set @x "'0193b000-0000-7000-8000-000000000004'"
.parameter set @f "'0193b000-0000-7000-8000-000000000005'"
.parameter set @unknown "'0193b000-0000-7000-8000-0000000000ff'"

.print == before task_init: every verb and the tasks table fail; version and debug work
SELECT task_enqueue('t');
SELECT task_claim('w');
SELECT task_claim_batch('w', 10);
SELECT task_progress(@r, 1);
SELECT task_heartbeat(@r);
SELECT task_complete(@r);
SELECT task_fail(@r, 'e');
SELECT task_cancel(@r);
SELECT task_retry(@r);
SELECT * FROM tasks;
INSERT INTO tasks(type) VALUES ('t');
UPDATE tasks SET priority = 1;
DELETE FROM tasks;
SELECT 'version', task_version();
SELECT 'debug says there is no storage', instr(task_debug(), char(10) || 'schema none: run SELECT task_init()') > 0;
SELECT 'nothing was created', count(*) FROM sqlite_master;

.print == setup
SELECT 'init', task_init();
SELECT 'enqueue', task_enqueue('t', '{"n":1}', json_object('id', @q, 'now', 1000));
SELECT 'enqueue', task_enqueue('t', '{"n":2}', json_object('id', @r, 'now', 1000));
SELECT 'enqueue', task_enqueue('t', '{"n":3}', json_object('id', @c, 'now', 1000, 'queue', 'side'));
SELECT 'enqueue', task_enqueue('t', '{"n":4}', json_object('id', @x, 'now', 1000, 'queue', 'side'));
SELECT 'enqueue', task_enqueue('t', '{"n":5}', json_object('id', @f, 'now', 1000, 'queue', 'side', 'max_attempts', 1));
SELECT 'claim', json_extract(task_claim('w0', '{"queue": "side", "now": 2000}'), '$.id') = @c;
SELECT 'complete', task_complete(@c, '{"ok":true}', '{"now": 2000}');
SELECT 'cancel', task_cancel(@x, '{"now": 2000}');
SELECT 'claim', json_extract(task_claim('w0', '{"queue": "side", "now": 2000}'), '$.id') = @f;
SELECT 'fail', task_fail(@f, 'boom', '{"now": 2000}');
SELECT 'claim', json_extract(task_claim('w1', '{"now": 3000}'), '$.id') = @q;
SELECT 'claim', json_extract(task_claim('w1', '{"now": 3000}'), '$.id') = @r;
SELECT 'requeue', task_fail(@q, 'again', '{"delay": 0, "now": 3000}');
SELECT 'state', id, status, attempts, worker FROM tasks ORDER BY rowid;
CREATE TEMP TABLE snapshot AS SELECT * FROM main.task_store;
CREATE TEMP TABLE snapshot_meta AS SELECT * FROM main.task_meta;
CREATE TEMP VIEW unchanged AS SELECT 'storage unchanged',
  (SELECT count(*) FROM main.task_store) = (SELECT count(*) FROM snapshot)
  AND NOT EXISTS (SELECT * FROM main.task_store EXCEPT SELECT * FROM snapshot)
  AND NOT EXISTS (SELECT * FROM snapshot EXCEPT SELECT * FROM main.task_store)
  AND NOT EXISTS (SELECT * FROM main.task_meta EXCEPT SELECT * FROM snapshot_meta)
  AND NOT EXISTS (SELECT * FROM snapshot_meta EXCEPT SELECT * FROM main.task_meta);
SELECT * FROM unchanged;

.print == wrong number of arguments (refused when the statement is prepared)
SELECT task_version(1);
SELECT task_debug(1);
SELECT task_init(1);
SELECT task_enqueue();
SELECT task_enqueue('t', NULL, NULL, NULL);
SELECT task_claim();
SELECT task_claim('w', NULL, NULL);
SELECT task_claim_batch('w');
SELECT task_claim_batch('w', 1, NULL, NULL);
SELECT task_progress(@r);
SELECT task_progress(@r, 1, NULL, NULL);
SELECT task_heartbeat();
SELECT task_heartbeat(@r, NULL, NULL);
SELECT task_complete();
SELECT task_complete(@r, NULL, NULL, NULL);
SELECT task_fail(@r);
SELECT task_fail(@r, 'e', NULL, NULL);
SELECT task_cancel();
SELECT task_cancel(@q, NULL, NULL);
SELECT task_retry();
SELECT task_retry(@f, NULL, NULL);
SELECT * FROM unchanged;

.print == task_enqueue
SELECT task_enqueue(1);
SELECT * FROM unchanged;
SELECT task_enqueue(NULL);
SELECT * FROM unchanged;
SELECT task_enqueue(x'74');
SELECT * FROM unchanged;
SELECT task_enqueue('');
SELECT * FROM unchanged;
SELECT task_enqueue('t', 42);
SELECT * FROM unchanged;
SELECT task_enqueue('t', 1.5);
SELECT * FROM unchanged;
SELECT task_enqueue('t', '{"to":');
SELECT * FROM unchanged;
SELECT task_enqueue('t', 'hello');
SELECT * FROM unchanged;
SELECT task_enqueue('t', '{} {}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, 7);
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"queue":');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '"images"');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"prority": 1}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"lease": 1000}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"priority": 2147483648}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"priority": -2147483649}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"priority": 1.5}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"priority": 1e300}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"priority": "5"}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"max_attempts": 0}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"max_attempts": 1001}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"delay": -1, "now": 1000}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"run_at": -1}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"run_at": 253402300800000}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"run_at": 5000, "delay": 10}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"now": -1}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"now": 253402300800000}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"queue": ""}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"queue": 5}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"queue": ["a"]}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"id": ""}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"id": "not-a-uuid"}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, json_object('id', @q));
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, json_object('id', upper(@q)));
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, json_object('parent_id', @unknown));
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"parent_id": "nope"}');
SELECT * FROM unchanged;

.print == task_claim
SELECT task_claim(NULL);
SELECT * FROM unchanged;
SELECT task_claim(7);
SELECT * FROM unchanged;
SELECT task_claim('');
SELECT * FROM unchanged;
SELECT task_claim('w', 5);
SELECT * FROM unchanged;
SELECT task_claim('w', '{"queue":');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"queue": ""}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"queue": []}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"queue": ["a", 1]}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"queue": ["a", ""]}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"queue": 5}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"lease": 0}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"lease": -5}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"lease": 31622400001}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"lease": "1000"}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"now": -1}');
SELECT * FROM unchanged;
SELECT task_claim('w', '{"attempt": 1}');
SELECT * FROM unchanged;

.print == task_claim_batch (a ready task is queued: a failing call claims nothing)
SELECT task_claim_batch('w', 0);
SELECT * FROM unchanged;
SELECT task_claim_batch('w', -1);
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10001);
SELECT * FROM unchanged;
SELECT task_claim_batch('w', '10');
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10.0);
SELECT * FROM unchanged;
SELECT task_claim_batch('w', NULL);
SELECT * FROM unchanged;
SELECT task_claim_batch('', 10);
SELECT * FROM unchanged;
SELECT task_claim_batch(NULL, 10);
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10, '{"limit": 5}');
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10, '{"queue": []}');
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10, '{"lease": 0}');
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10, '{"now": 1.5}');
SELECT * FROM unchanged;
SELECT task_claim_batch('w', 10, '[]');
SELECT * FROM unchanged;

.print == task_progress
SELECT task_progress(@r, 101);
SELECT * FROM unchanged;
SELECT task_progress(@r, -1);
SELECT * FROM unchanged;
SELECT task_progress(@r, 100.5);
SELECT * FROM unchanged;
SELECT task_progress(@r, 1e999);
SELECT * FROM unchanged;
SELECT task_progress(@r, NULL);
SELECT * FROM unchanged;
SELECT task_progress(@r, '40');
SELECT * FROM unchanged;
SELECT task_progress(@r, x'28');
SELECT * FROM unchanged;
SELECT task_progress(42, 10);
SELECT * FROM unchanged;
SELECT task_progress(NULL, 10);
SELECT * FROM unchanged;
SELECT task_progress('nope', 10);
SELECT * FROM unchanged;
SELECT task_progress(@unknown, 10);
SELECT * FROM unchanged;
SELECT task_progress(@q, 10);
SELECT * FROM unchanged;
SELECT task_progress(@c, 10);
SELECT * FROM unchanged;
SELECT task_progress(@f, 10);
SELECT * FROM unchanged;
SELECT task_progress(@r, 10, '{"attempt": 2}');
SELECT * FROM unchanged;
SELECT task_progress(@r, 10, '{"attempt": 0}');
SELECT * FROM unchanged;
SELECT task_progress(@r, 10, '{"attempt": "1"}');
SELECT * FROM unchanged;
SELECT task_progress(@r, 10, '{"lease": 0}');
SELECT * FROM unchanged;
SELECT task_progress(@r, 10, '{"retry": true}');
SELECT * FROM unchanged;
SELECT task_progress(@r, 10, '[]');
SELECT * FROM unchanged;

.print == task_heartbeat
SELECT task_heartbeat(42);
SELECT * FROM unchanged;
SELECT task_heartbeat('nope');
SELECT * FROM unchanged;
SELECT task_heartbeat(@unknown);
SELECT * FROM unchanged;
SELECT task_heartbeat(@q);
SELECT * FROM unchanged;
SELECT task_heartbeat(@c);
SELECT * FROM unchanged;
SELECT task_heartbeat(@r, '{"attempt": 2}');
SELECT * FROM unchanged;
SELECT task_heartbeat(@r, '{"lease": 31622400001}');
SELECT * FROM unchanged;
SELECT task_heartbeat(@r, '{"now": -1}');
SELECT * FROM unchanged;
SELECT task_heartbeat(@r, '{"delay": 5}');
SELECT * FROM unchanged;

.print == task_complete
SELECT task_complete(@q);
SELECT * FROM unchanged;
SELECT task_complete(@c);
SELECT * FROM unchanged;
SELECT task_complete(@x);
SELECT * FROM unchanged;
SELECT task_complete(@f);
SELECT * FROM unchanged;
SELECT task_complete(@r, '{"sent":');
SELECT * FROM unchanged;
SELECT task_complete(@r, 'done');
SELECT * FROM unchanged;
SELECT task_complete(@r, 42);
SELECT * FROM unchanged;
SELECT task_complete(@r, NULL, '{"attempt": 2}');
SELECT * FROM unchanged;
SELECT task_complete(@r, NULL, '{"lease": 1000}');
SELECT * FROM unchanged;
SELECT task_complete(@unknown);
SELECT * FROM unchanged;
SELECT task_complete('nope');
SELECT * FROM unchanged;
SELECT task_complete(NULL);
SELECT * FROM unchanged;

.print == task_fail
SELECT task_fail(@r, NULL);
SELECT * FROM unchanged;
SELECT task_fail(@r, 42);
SELECT * FROM unchanged;
SELECT task_fail(@q, 'e');
SELECT * FROM unchanged;
SELECT task_fail(@c, 'e');
SELECT * FROM unchanged;
SELECT task_fail(@f, 'e');
SELECT * FROM unchanged;
SELECT task_fail(@r, 'e', '{"retry": "no"}');
SELECT * FROM unchanged;
SELECT task_fail(@r, 'e', '{"delay": -1, "now": 1000}');
SELECT * FROM unchanged;
SELECT task_fail(@r, 'e', '{"attempt": 2}');
SELECT * FROM unchanged;
SELECT task_fail(@r, 'e', '{"lease": 1000}');
SELECT * FROM unchanged;
SELECT task_fail(@unknown, 'e');
SELECT * FROM unchanged;
SELECT task_fail('nope', 'e');
SELECT * FROM unchanged;

.print == task_cancel
SELECT task_cancel(@c);
SELECT * FROM unchanged;
SELECT task_cancel(@x);
SELECT * FROM unchanged;
SELECT task_cancel(@f);
SELECT * FROM unchanged;
SELECT task_cancel(@unknown);
SELECT * FROM unchanged;
SELECT task_cancel('nope');
SELECT * FROM unchanged;
SELECT task_cancel(42);
SELECT * FROM unchanged;
SELECT task_cancel(@r, '{"attempt": 1}');
SELECT * FROM unchanged;
SELECT task_cancel(@r, '{"now": "soon"}');
SELECT * FROM unchanged;

.print == task_retry
SELECT task_retry(@q);
SELECT * FROM unchanged;
SELECT task_retry(@r);
SELECT * FROM unchanged;
SELECT task_retry(@c);
SELECT * FROM unchanged;
SELECT task_retry(@unknown);
SELECT * FROM unchanged;
SELECT task_retry('nope');
SELECT * FROM unchanged;
SELECT task_retry(@f, '{"delay": 10}');
SELECT * FROM unchanged;

.print == a failed call inside a transaction leaves it usable and changes nothing
BEGIN;
SELECT task_complete(@q);
SELECT * FROM unchanged;
SELECT 'enqueue in the same transaction', task_enqueue('t', NULL, '{"id": "0193b000-0000-7000-8000-000000000006", "now": 4000}');
ROLLBACK;
SELECT * FROM unchanged;

.print == options: what is not an object, and numbers that are not 64-bit integers
SELECT task_enqueue('t', NULL, '[{"queue": "images"}]');
SELECT * FROM unchanged;
SELECT task_claim('w1', 'null');
SELECT * FROM unchanged;
SELECT task_cancel(@q, '1000');
SELECT * FROM unchanged;
SELECT task_claim('w1', '{"lease": 1000.5}');
SELECT * FROM unchanged;
SELECT task_claim('w1', '{"now": 1e-3}');
SELECT * FROM unchanged;
SELECT task_enqueue('t', NULL, '{"priority": 9223372036854775808}');
SELECT * FROM unchanged;
SELECT task_fail(@r, 'e', '{"now": 18446744073709551615}');
SELECT * FROM unchanged;

.print == the tasks are as they were
SELECT 'state', id, status, attempts, worker FROM tasks ORDER BY rowid;
