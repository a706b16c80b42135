-- Operations without a daemon in the sqlite3 shell
-- (docs/reference/operations.md): a schedule and its occurrences, the
-- task_schedules view, catch-up after downtime, pause and delete; prune and
-- per-queue retention; stats; and the bad inputs, each followed by a check
-- that nothing changed. One row per check; a failing call in a statement of
-- its own (see run.sh).
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
SELECT 'init', task_init();
CREATE TEMP VIEW digest AS
SELECT (SELECT count(*) || ':' || ifnull(group_concat(status || updated_at, ','), '') FROM task_store)
       || '/' || (SELECT count(*) || ':' || ifnull(group_concat(name || paused || ifnull(next_at, '-') || updated_at, ','), '')
                    FROM task_schedule_store) AS d;

.print == a schedule: every day at 03:00 UTC, and every 10 minutes
SELECT 'nightly', json_extract(task_schedule('nightly', '0 3 * * *', 'report', '{"kind": "daily"}', '{"queue": "ops", "now": 0}'), '$.next_at');
SELECT 'ten', json_extract(task_schedule('ten', '*/10 * * * *', 'sync', NULL, '{"queue": "sync", "catch_up": "all", "now": 0}'), '$.next_at');
SELECT 'view', name, spec, queue, catch_up, paused, next_at FROM task_schedules ORDER BY name;

.print == a tick before anything is due enqueues nothing
SELECT 'early tick', task_tick('{"now": 599999}');

.print == after 35 minutes of downtime: catch-up all enqueues each missed occurrence
SELECT 'tick', task_tick('{"now": 2100000}');
SELECT 'occurrences', group_concat(run_at, ',') FROM (SELECT run_at FROM tasks WHERE queue = 'sync' ORDER BY run_at);
SELECT 'again at the same time', task_tick('{"now": 2100000}');

.print == a claim enqueues what is due, and takes it
SELECT 'claimed', json_extract(task_claim('w', '{"queue": "ops", "now": 10800000}'), '$.type', '$.run_at');
SELECT 'next nightly', next_at FROM task_schedules WHERE name = 'nightly';

.print == pause, resume, delete
SELECT 'paused', json_extract(task_schedule_pause('ten', '{"now": 10800001}'), '$.paused');
SELECT 'nothing while paused', task_tick('{"now": 12000000}');
SELECT 'resumed', json_extract(task_schedule_resume('ten', '{"now": 12000001}'), '$.paused');
SELECT 'deleted', task_unschedule('ten');
SELECT 'left', group_concat(name) FROM task_schedules;

.print == bad schedules change nothing
SELECT 'before', d FROM digest;
SELECT task_schedule('x', '61 * * * *', 't');
SELECT task_schedule('x', '* * *', 't');
SELECT task_schedule('x', '@every 500ms', 't');
SELECT task_schedule('x', '@reboot', 't');
SELECT task_schedule('x', '0 0 30 2 *', 't');
SELECT task_schedule('nightly', '@hourly', 't', NULL, '{"if_exists": "error"}');
SELECT task_schedule('x', '@hourly', 't', NULL, '{"catch_up": "some"}');
SELECT task_schedule('x', '@hourly', 't', 'not json');
SELECT task_schedule_pause('nope');
SELECT task_unschedule('nope');
SELECT 'after', d FROM digest;

.print == prune: finished tasks older than the cutoff, in steps
SELECT 'complete', task_complete(id, NULL, '{"now": 10800500}') FROM tasks WHERE status = 'running';
SELECT 'prune', json_extract(task_prune('{"before": 10800501, "step": 5, "now": 10900000}'), '$.deleted', '$.steps');
SELECT 'left', count(*), sum(status = 'queued') FROM tasks;
SELECT task_prune('{"older_than": -1}');
SELECT task_prune('{"status": "queued", "older_than": 1}');
SELECT task_prune('{}');

.print == retention on a queue, applied by ticks
SELECT 'retention', json_extract(task_queue('sync', '{"retention": 1000}'), '$.retention');
SELECT 'work', count(task_complete(json_extract(task_claim('w', '{"queue": "sync", "now": 20000000}'), '$.id'), NULL, '{"now": 20000000}')) FROM generate_series(1, 4);
SELECT 'tick too early', task_tick('{"now": 20001000}');
SELECT 'tick', task_tick('{"now": 20001001}');
SELECT 'sync left', count(*) FROM tasks WHERE queue = 'sync';
SELECT task_queue('sync', '{"retention": 0}');

.print == stats
SELECT 'stats', json_extract(task_stats('{"queue": "ops", "now": 90000000}'), '$.queues[0].queue', '$.queues[0].queued', '$.index_completed', '$.schedules.count');
SELECT task_stats('{"queues": "ops"}');
SELECT 'check', task_check();
