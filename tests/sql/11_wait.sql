-- Waiting in the sqlite3 shell (docs/reference/workers.md, "Waiting for
-- work"): task_wait at its timeout, a long-poll claim on an empty queue, and
-- the refusals. One row per check; a failing call in a statement of its own
-- (see run.sh). The waits that end on another process's commit are tested
-- in tests/python/test_wait.py.
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
SELECT 'init', task_init();

.print == nothing commits: 0 at the timeout
SELECT 'wait 0', task_wait(0);
SELECT 'wait 30', task_wait(30);

.print == a long poll on an empty queue: NULL after the wait
SELECT 'claim', task_claim('w', '{"queue": "empty", "wait": 30}');
SELECT 'batch', task_claim_batch('w', 5, '{"queue": "empty", "wait": 30}');

.print == a ready task is claimed at once
SELECT 'enqueue', task_enqueue('job', NULL, '{"id": "0193e000-0000-7000-8000-000000000001", "queue": "ready"}');
SELECT 'claimed', json_extract(task_claim('w', '{"queue": "ready", "wait": 60000}'), '$.id');

.print == refusals
SELECT task_wait(-1);
SELECT task_wait(3600001);
SELECT task_wait('soon');
SELECT task_wait(NULL);
SELECT task_claim('w', '{"wait": -5}');
SELECT task_claim('w', '{"wait": "long"}');
BEGIN;
SELECT task_wait(10);
SELECT task_claim('w', '{"queue": "empty", "wait": 10}');
ROLLBACK;
SELECT task_wait(10) FROM task_store;
CREATE TABLE pokes (x);
CREATE TRIGGER poke AFTER INSERT ON pokes BEGIN SELECT task_wait(1); END;
INSERT INTO pokes VALUES (1);
SELECT 'pokes', count(*) FROM pokes;
SELECT 'check', task_check();
