-- The event log in the sqlite3 shell (Debian 12's SQLite 3.40.1 runs the
-- statements that write it): every transition of a task is one row of
-- task_events, written in the transition's statement; a rolled-back one
-- leaves none; a queue's events can be turned off.
.load ./dist/task0
.headers off
.mode list
SELECT 'init', task_init();

SELECT 'enqueue', task_enqueue('resize', '{"w":1}', '{"id": "0193a000-0000-7000-8000-000000000001", "now": 1000, "max_attempts": 2}');
SELECT 'claim', json_extract(task_claim('w1', '{"now": 2000, "lease": 100}'), '$.attempt');
SELECT 'reclaim', json_extract(task_claim('w2', '{"now": 3000}'), '$.attempt');
SELECT 'progress', task_progress('0193a000-0000-7000-8000-000000000001', 40, '{"now": 3500}');
SELECT 'fail', task_fail('0193a000-0000-7000-8000-000000000001', 'disk full', '{"now": 4000}');
SELECT 'retry', task_retry('0193a000-0000-7000-8000-000000000001', '{"now": 5000}');
SELECT 'cancel', task_cancel('0193a000-0000-7000-8000-000000000001', '{"now": 6000}');
SELECT 'event', seq, kind, status, at, attempt, ifnull(worker, '-'), ifnull(error, '-'), ifnull(progress, '-')
  FROM task_events ORDER BY seq;

-- Rolled back: no event.
BEGIN;
SELECT 'enqueue in a transaction', task_enqueue('t', NULL, '{"id": "0193a000-0000-7000-8000-000000000002", "now": 7000}');
ROLLBACK;
SELECT 'events after the rollback', count(*), max(seq) FROM task_events;

-- A refused call: no event either.
SELECT task_complete('0193a000-0000-7000-8000-000000000001', NULL);
SELECT 'events after the refusal', count(*) FROM task_events;

-- Off for one queue, transitions only for another.
SELECT 'off', json_extract(task_queue('quiet', '{"events": "off"}'), '$.events');
SELECT 'transitions', json_extract(task_queue('some', '{"events": "transitions"}'), '$.events');
SELECT task_queue('quiet', '{"events": "loud"}');
SELECT 'quiet', task_enqueue('t', NULL, '{"id": "0193a000-0000-7000-8000-000000000003", "queue": "quiet", "now": 8000}');
SELECT 'some', task_enqueue('t', NULL, '{"id": "0193a000-0000-7000-8000-000000000004", "queue": "some", "now": 8000}');
SELECT 'claim some', json_extract(task_claim('w1', '{"queue": "some", "now": 8100}'), '$.id');
SELECT 'progress some', task_progress('0193a000-0000-7000-8000-000000000004', 50, '{"now": 8200}');
SELECT 'per queue', queue, group_concat(kind, ',') FROM task_events WHERE seq > 8 GROUP BY queue;

-- The feed: after a cursor, waking at once when there is something after it.
SELECT 'after 9', group_concat(seq || ':' || kind, ' ') FROM task_events WHERE seq > 9;
SELECT 'wait', task_wait(10000, '{"after_seq": 9}');
SELECT 'prune', json_extract(task_prune('{"before": 4500, "now": 9000}'), '$.events');
SELECT 'left', min(seq), max(seq) FROM task_events;
