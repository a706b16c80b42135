-- The life of a task, verb by verb, in the sqlite3 shell: init, enqueue,
-- claim order, queue filters, progress and leases, complete, fail with
-- backoff, cancel, retry, lease expiry and fencing, expired leases before
-- queued work, batch claims.
-- Every call supplies the clock ({"now": ms}) and the ids, so the output is
-- the same on every run; the one random value (the backoff jitter) is only
-- compared against its bounds. One row per check: 'what' | value.
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL

.print == init and version
SELECT 'init', task_init();
SELECT 'init again is a no-op', task_init();
SELECT 'schema_version in task_meta', value FROM task_meta WHERE key = 'schema_version';
SELECT 'version', task_version();
SELECT 'debug starts with the version', task_debug() LIKE 'sqlite-task v0.1.0' || char(10) || '%';
SELECT 'debug names this host and the floor',
       instr(task_debug(), char(10) || 'sqlite ' || sqlite_version() || ' (floor 3.35.4)' || char(10)) > 0;
SELECT 'debug names the schema', instr(task_debug(), char(10) || 'schema 9 (this build: 9)') > 0;
-- The API: name, arities, and the flags that matter. The verbs (and
-- task_check) are neither innocuous nor direct-only, so triggers can call
-- them; task_init and the internal task__note are direct-only.
SELECT 'function', name, group_concat(narg, ','),
       CASE flags & 0x280800
         WHEN 0 THEN 'not innocuous'
         WHEN 0x080000 THEN 'directonly'
         WHEN 0x200000 THEN 'innocuous'
         WHEN 0x200800 THEN 'innocuous deterministic'
         ELSE 'flags ' || flags END
  FROM (SELECT * FROM pragma_function_list WHERE name LIKE 'task\_%' ESCAPE '\' ORDER BY name, narg)
 GROUP BY name ORDER BY name;
SELECT 'module', name FROM pragma_module_list WHERE name = 'tasks';

.print == enqueue
SELECT 'enqueue, defaults', task_enqueue('batch', '{"files":2}',
       '{"id": "0193a000-0000-7000-8000-000000000001", "now": 1000}');
-- Every option; the ids are given in upper case and come back canonical.
SELECT 'enqueue, every option', task_enqueue('resize', '{"path":"a.png","size":[64,64]}',
       '{"queue": "images", "priority": 7, "run_at": 5000, "max_attempts": 5,
         "parent_id": "0193A000-0000-7000-8000-000000000001",
         "id": "0193A000-0000-7000-8000-00000000000A", "now": 1000}');
SELECT 'enqueue, delay', task_enqueue('later', NULL,
       '{"queue": "images", "delay": 2500, "id": "0193a000-0000-7000-8000-00000000000b", "now": 1000}');
-- id|queue|type|status|priority|progress|details|result|error|attempts|max_attempts|
-- parent_id|worker|lease_until|run_at|created_at|updated_at|started_at|completed_at
SELECT * FROM tasks WHERE id IN ('0193a000-0000-7000-8000-000000000001',
  '0193a000-0000-7000-8000-00000000000a', '0193a000-0000-7000-8000-00000000000b') ORDER BY rowid;
SELECT 'rowid is the storage seq', count(*) FROM tasks t JOIN task_store s ON s.seq = t.rowid AND s.id = t.id;
-- Without an id, a time-ordered (v7) UUID whose timestamp is "now".
SELECT 'enqueue, generated id', length(task_enqueue('gen', NULL, '{"queue": "gen", "now": 1000}'));
SELECT 'generated id is v7 at now=1000 (0x3e8)', substr(id, 1, 15) = '00000000-03e8-7',
       substr(id, 20, 1) IN ('8', '9', 'a', 'b'), id = lower(id)
  FROM tasks WHERE queue = 'gen';
SELECT 'cancel the generated one', task_cancel((SELECT id FROM tasks WHERE queue = 'gen'), '{"now": 1000}');
-- Whole numbers may be written as reals (docs/concepts.md, common rules).
SELECT 'enqueue, whole reals', task_enqueue('reals', NULL,
       '{"queue": "reals", "priority": 2.0, "max_attempts": 5e0, "run_at": 1.5e3, "now": 1e3,
         "id": "0193a000-0000-7000-8000-00000000000c"}');
SELECT 'priority|max_attempts|run_at|created_at', priority, typeof(priority), max_attempts, run_at, created_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-00000000000c';
SELECT 'cancel it', task_cancel('0193a000-0000-7000-8000-00000000000c', '{"now": 1e3}');

.print == claim: run_at and delay are respected, the claim returns the task
SELECT 'claim images at 3499 (delayed to 3500)', task_claim('w-img', '{"queue": "images", "now": 3499}');
SELECT 'claim images at 3500', json_extract(task_claim('w-img', '{"queue": "images", "now": 3500}'), '$.type');
SELECT 'claim images at 4999 (run_at 5000)', task_claim('w-img', '{"queue": "images", "now": 4999}');
SELECT 'claim images at 5000', task_claim('w-img', '{"queue": "images", "now": 5000, "lease": 60000}');
SELECT 'claimed row', status, worker, attempts, lease_until, started_at, updated_at, progress
  FROM tasks WHERE id = '0193a000-0000-7000-8000-00000000000a';
SELECT 'complete later', task_complete('0193a000-0000-7000-8000-00000000000b', NULL, '{"now": 6000}');
SELECT 'complete resize', task_complete('0193a000-0000-7000-8000-00000000000a', NULL, '{"now": 6000}');

.print == claim order: priority, then run_at, then enqueue order
SELECT 'enqueue', task_enqueue('p0 fifo 1', NULL, '{"queue": "order", "id": "0193a000-0000-7000-8000-000000000011", "now": 100}');
SELECT 'enqueue', task_enqueue('p0 fifo 2', NULL, '{"queue": "order", "id": "0193a000-0000-7000-8000-000000000012", "now": 100}');
SELECT 'enqueue', task_enqueue('p0 run_at 50', NULL, '{"queue": "order", "run_at": 50, "id": "0193a000-0000-7000-8000-000000000013", "now": 100}');
SELECT 'enqueue', task_enqueue('p5', NULL, '{"queue": "order", "priority": 5, "id": "0193a000-0000-7000-8000-000000000014", "now": 100}');
SELECT 'enqueue', task_enqueue('p9 run_at 10000', NULL, '{"queue": "order", "priority": 9, "run_at": 10000, "id": "0193a000-0000-7000-8000-000000000015", "now": 100}');
SELECT 'enqueue', task_enqueue('p-1 run_at 0', NULL, '{"queue": "order", "priority": -1, "run_at": 0, "id": "0193a000-0000-7000-8000-000000000016", "now": 100}');
SELECT 'enqueue', task_enqueue('p0 fifo 3', NULL, '{"queue": "order", "id": "0193a000-0000-7000-8000-000000000017", "now": 100}');
SELECT 'claim 1', json_extract(task_claim('w1', '{"queue": "order", "now": 200}'), '$.type');
SELECT 'claim 2', json_extract(task_claim('w1', '{"queue": "order", "now": 200}'), '$.type');
SELECT 'claim 3', json_extract(task_claim('w1', '{"queue": "order", "now": 200}'), '$.type');
SELECT 'claim 4', json_extract(task_claim('w1', '{"queue": "order", "now": 200}'), '$.type');
SELECT 'claim 5', json_extract(task_claim('w1', '{"queue": "order", "now": 200}'), '$.type');
SELECT 'claim 6', json_extract(task_claim('w1', '{"queue": "order", "now": 200}'), '$.type');
SELECT 'claim 7 (only a future task left)', task_claim('w1', '{"queue": "order", "now": 200}');
SELECT 'claim at 9999', task_claim('w1', '{"queue": "order", "now": 9999}');
SELECT 'claim at 10000', json_extract(task_claim('w1', '{"queue": "order", "now": 10000}'), '$.type');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000011', NULL, '{"now": 10000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000012', NULL, '{"now": 10000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000013', NULL, '{"now": 10000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000014', NULL, '{"now": 10000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000015', NULL, '{"now": 10000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000016', NULL, '{"now": 10000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000017', NULL, '{"now": 10000}');

.print == queue filter: a name, or a JSON array of names; default every queue
SELECT 'enqueue', task_enqueue('in qa', NULL, '{"queue": "qa", "priority": 1, "id": "0193a000-0000-7000-8000-000000000021", "now": 20000}');
SELECT 'enqueue', task_enqueue('in qb', NULL, '{"queue": "qb", "priority": 2, "id": "0193a000-0000-7000-8000-000000000022", "now": 20000}');
SELECT 'enqueue', task_enqueue('in qc', NULL, '{"queue": "qc", "priority": 3, "id": "0193a000-0000-7000-8000-000000000023", "now": 20000}');
SELECT 'claim queue "nope"', task_claim('w1', '{"queue": "nope", "now": 20000}');
SELECT 'claim queue "qb"', json_extract(task_claim('w1', '{"queue": "qb", "now": 20000}'), '$.type');
SELECT 'claim queue "qb" again', task_claim('w1', '{"queue": "qb", "now": 20000}');
SELECT 'claim queue ["qa","qc"]', json_extract(task_claim('w1', '{"queue": ["qa", "qc"], "now": 20000}'), '$.type');
SELECT 'claim queue ["nope","qa"]', json_extract(task_claim('w1', '{"queue": ["nope", "qa"], "now": 20000}'), '$.type');
SELECT 'claim queue ["qa","qc"] again', task_claim('w1', '{"queue": ["qa", "qc"], "now": 20000}');
SELECT 'enqueue', task_enqueue('in qx', NULL, '{"queue": "qx", "priority": 1, "id": "0193a000-0000-7000-8000-000000000024", "now": 20000}');
SELECT 'enqueue', task_enqueue('in qy', NULL, '{"queue": "qy", "priority": 4, "id": "0193a000-0000-7000-8000-000000000025", "now": 20000}');
-- Every queue: qy (priority 4), qx (1), then the batch task in 'default' (0).
SELECT 'claim any queue', json_extract(task_claim('w1', '{"now": 20000}'), '$.queue');
SELECT 'claim any queue', json_extract(task_claim('w1', '{"now": 20000}'), '$.queue');
SELECT 'claim any queue', json_extract(task_claim('w1', '{"now": 20000}'), '$.queue');
SELECT 'claim any queue, none left', task_claim('w1', '{"now": 20000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000001', NULL, '{"now": 20000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000021', NULL, '{"now": 20000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000022', NULL, '{"now": 20000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000023', NULL, '{"now": 20000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000024', NULL, '{"now": 20000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000025', NULL, '{"now": 20000}');

.print == progress and heartbeat renew the lease once a quarter of it has passed (here 2500 ms); complete stores the result
SELECT 'enqueue', task_enqueue('work', '{"n":1}', '{"queue": "work", "id": "0193a000-0000-7000-8000-000000000031", "now": 30000}');
SELECT 'claim, lease 10000', task_claim('w1', '{"queue": "work", "lease": 10000, "now": 30000}');
SELECT 'progress 40', task_progress('0193a000-0000-7000-8000-000000000031', 40, '{"attempt": 1, "now": 31000}');
SELECT 'progress|lease_until', progress, typeof(progress), lease_until FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000031';
SELECT 'progress 12.5', task_progress('0193a000-0000-7000-8000-000000000031', 12.5, '{"now": 32000}');
SELECT 'progress|lease_until', progress, typeof(progress), lease_until FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000031';
SELECT 'progress 0', task_progress('0193a000-0000-7000-8000-000000000031', 0, '{"now": 33000}');
SELECT 'progress 100', task_progress('0193a000-0000-7000-8000-000000000031', 100, '{"attempt": 1, "now": 34000}');
SELECT 'progress|lease_until', progress, lease_until FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000031';
SELECT 'heartbeat', task_heartbeat('0193a000-0000-7000-8000-000000000031', '{"attempt": 1, "now": 39000}');
SELECT 'progress|lease_until|updated_at', progress, lease_until, updated_at FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000031';
-- The claim's lease would have run out at 40000; the renewals keep it.
SELECT 'claim by w2 at 45000', task_claim('w2', '{"queue": "work", "now": 45000}');
SELECT 'heartbeat with a new lease', task_heartbeat('0193a000-0000-7000-8000-000000000031', '{"attempt": 1, "lease": 60000, "now": 46000}');
SELECT 'lease_until', lease_until FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000031';
SELECT 'complete with a result', task_complete('0193a000-0000-7000-8000-000000000031', '{"out":"x.webp","sizes":[1,2]}', '{"attempt": 1, "now": 47000}');
SELECT 'completed row', status, progress, result, error, attempts, worker, lease_until, started_at, completed_at, updated_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000031';
SELECT 'enqueue', task_enqueue('work', NULL, '{"queue": "work", "id": "0193a000-0000-7000-8000-000000000032", "now": 48000}');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "work", "now": 48000}'), '$.id');
SELECT 'complete without a result', task_complete('0193a000-0000-7000-8000-000000000032');
SELECT 'completed row', status, progress, result FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000032';

.print == fail: retry after 1000ms * 2^(attempt-1) * [0.5, 1], then failed
SELECT 'enqueue', task_enqueue('flaky', NULL, '{"queue": "retry", "id": "0193a000-0000-7000-8000-000000000041", "now": 50000}');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "retry", "now": 50000}'), '$.attempt');
SELECT 'fail attempt 1', task_fail('0193a000-0000-7000-8000-000000000041', 'timeout', '{"attempt": 1, "now": 51000}');
SELECT 'after fail 1', status, error, attempts, lease_until, completed_at, run_at BETWEEN 51000 + 500 AND 51000 + 1000
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000041';
SELECT 'claim 1ms before run_at', task_claim('w1', json_object('queue', 'retry', 'now',
       (SELECT run_at - 1 FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000041')));
SELECT 'claim at 52000', json_extract(task_claim('w1', '{"queue": "retry", "now": 52000}'), '$.attempt');
SELECT 'fail attempt 2', task_fail('0193a000-0000-7000-8000-000000000041', 'timeout 2', '{"attempt": 2, "now": 53000}');
SELECT 'after fail 2', status, error, attempts, run_at BETWEEN 53000 + 1000 AND 53000 + 2000
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000041';
SELECT 'claim at 55000', json_extract(task_claim('w1', '{"queue": "retry", "now": 55000}'), '$.attempt');
SELECT 'fail attempt 3 of 3', task_fail('0193a000-0000-7000-8000-000000000041', 'timeout 3', '{"attempt": 3, "now": 56000}');
SELECT 'after fail 3', status, error, attempts, worker, lease_until, completed_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000041';
SELECT 'a failed task is not claimed', task_claim('w1', '{"queue": "retry", "now": 90000}');
SELECT 'enqueue', task_enqueue('flaky', NULL, '{"queue": "retry", "id": "0193a000-0000-7000-8000-000000000042", "now": 60000}');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "retry", "now": 60000}'), '$.attempt');
SELECT 'fail with a fixed delay', task_fail('0193a000-0000-7000-8000-000000000042', 'busy', '{"delay": 250, "now": 60100}');
SELECT 'run_at = now + delay', status, run_at FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000042';
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "retry", "now": 60350}'), '$.attempt');
SELECT 'fail, retry false', task_fail('0193a000-0000-7000-8000-000000000042', 'fatal', '{"retry": false, "attempt": 2, "now": 60400}');
SELECT 'failed with attempts left', status, error, attempts, max_attempts, completed_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000042';
SELECT 'enqueue', task_enqueue('once', NULL, '{"queue": "retry", "max_attempts": 1, "id": "0193a000-0000-7000-8000-000000000043", "now": 61000}');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "retry", "now": 61000}'), '$.max_attempts');
SELECT 'fail the only attempt', task_fail('0193a000-0000-7000-8000-000000000043', 'no luck', '{"now": 61100}');
-- The jitter, over 40 tasks failing their first attempt together: every
-- backoff is within [500, 1000] ms, and they do not all retry at once.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
SELECT 'enqueue 40', count(task_enqueue('jitter', NULL, json_object('queue', 'jitter',
       'id', printf('0193a000-0000-7000-8000-%012d', 1000 + i), 'now', 62000))) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
SELECT 'claim 40', count(task_claim('w1', '{"queue": "jitter", "now": 62000}')) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
SELECT 'fail 40', count(task_fail(printf('0193a000-0000-7000-8000-%012d', 1000 + i), 'overload',
       '{"attempt": 1, "now": 63000}')) FROM n;
SELECT 'backoffs in [500, 1000], not all equal', count(*), min(run_at) - 63000 >= 500,
       max(run_at) - 63000 <= 1000, count(DISTINCT run_at) > 1
  FROM tasks WHERE queue = 'jitter' AND status = 'queued';
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
SELECT 'cancel 40', count(task_cancel(printf('0193a000-0000-7000-8000-%012d', 1000 + i), '{"now": 63000}')) FROM n;
-- The cap: attempt 13 would wait 1000 * 2^12 ms; it waits 1 hour * [0.5, 1].
-- Claim and fail 13 times, one call per row, 10^8 ms apart.
SELECT 'enqueue', task_enqueue('hopeless', NULL, '{"queue": "cap", "max_attempts": 20, "id": "0193a000-0000-7000-8000-000000000044", "now": 64000}');
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 26)
SELECT 'claim, fail, 13 times', count(*) FROM k WHERE CASE i % 2
  WHEN 1 THEN task_claim('w1', json_object('queue', 'cap', 'now', (i + 1) / 2 * 100000000)) IS NOT NULL
  ELSE task_fail('0193a000-0000-7000-8000-000000000044', 'again', json_object('now', i / 2 * 100000000)) = 'queued' END;
SELECT 'attempt 13 waits [1800000, 3600000]', status, attempts, run_at - 1300000000 BETWEEN 1800000 AND 3600000
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000044';
SELECT 'cancel', task_cancel('0193a000-0000-7000-8000-000000000044', '{"now": 1300000000}');

.print == cancel: queued, or running (its worker learns at its next call)
SELECT 'enqueue', task_enqueue('doomed', NULL, '{"queue": "cancel", "id": "0193a000-0000-7000-8000-000000000051", "now": 70000}');
SELECT 'cancel queued', task_cancel('0193a000-0000-7000-8000-000000000051', '{"now": 70100}');
SELECT 'cancelled row', status, lease_until, completed_at, updated_at FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000051';
SELECT 'a cancelled task is not claimed', task_claim('w1', '{"queue": "cancel", "now": 70100}');
SELECT 'enqueue', task_enqueue('doomed', NULL, '{"queue": "cancel", "id": "0193a000-0000-7000-8000-000000000052", "now": 70200}');
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "cancel", "now": 70200}'), '$.attempt');
SELECT 'progress 30', task_progress('0193a000-0000-7000-8000-000000000052', 30, '{"attempt": 1, "now": 70250}');
SELECT 'cancel running', task_cancel('0193a000-0000-7000-8000-000000000052', '{"now": 70300}');
SELECT 'cancelled row', status, progress, lease_until, completed_at, updated_at FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000052';
SELECT 'progress after cancel', task_progress('0193a000-0000-7000-8000-000000000052', 50, '{"attempt": 1, "now": 70400}');
SELECT 'heartbeat after cancel', task_heartbeat('0193a000-0000-7000-8000-000000000052', '{"now": 70500}');
SELECT 'complete after cancel', task_complete('0193a000-0000-7000-8000-000000000052', '{"done":true}', '{"attempt": 1, "now": 70600}');
SELECT 'fail after cancel', task_fail('0193a000-0000-7000-8000-000000000052', 'oops', '{"attempt": 1, "now": 70700}');
SELECT 'cancelled row unchanged', status, progress, result, error, lease_until, completed_at, updated_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000052';

.print == retry: a failed or cancelled task runs again with a fresh budget
SELECT 'retry failed', task_retry('0193a000-0000-7000-8000-000000000041', '{"now": 80000}');
SELECT 'retried row', status, attempts, max_attempts, progress, run_at, lease_until, completed_at, updated_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000041';
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "retry", "now": 80000}'), '$.attempt');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000041', NULL, '{"attempt": 1, "now": 80100}');
SELECT 'retry cancelled', task_retry('0193a000-0000-7000-8000-000000000052', '{"now": 80200}');
SELECT 'retried row', status, attempts, progress, run_at, completed_at FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000052';
SELECT 'claim', json_extract(task_claim('w1', '{"queue": "cancel", "now": 80200}'), '$.attempt');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000052', NULL, '{"attempt": 1, "now": 80300}');

.print == lease expiry: the next claim takes the task as a new attempt; the old attempt is fenced
SELECT 'enqueue', task_enqueue('slow', NULL, '{"queue": "lease", "max_attempts": 2, "id": "0193a000-0000-7000-8000-000000000061", "now": 100000}');
SELECT 'w1 claims, lease 1000', json_extract(task_claim('w1', '{"queue": "lease", "lease": 1000, "now": 100000}'), '$.lease_until');
SELECT 'w2 claims at 100999', task_claim('w2', '{"queue": "lease", "now": 100999}');
SELECT 'w2 claims at 101000', task_claim('w2', '{"queue": "lease", "lease": 5000, "now": 101000}');
SELECT 'reclaimed row', status, attempts, worker, error, lease_until, started_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000061';
SELECT 'w1 progress', task_progress('0193a000-0000-7000-8000-000000000061', 90, '{"attempt": 1, "now": 101100}');
SELECT 'w1 heartbeat', task_heartbeat('0193a000-0000-7000-8000-000000000061', '{"attempt": 1, "now": 101100}');
SELECT 'w1 complete', task_complete('0193a000-0000-7000-8000-000000000061', '{"by":"w1"}', '{"attempt": 1, "now": 101100}');
SELECT 'w1 fail', task_fail('0193a000-0000-7000-8000-000000000061', 'w1 gave up', '{"attempt": 1, "now": 101100}');
SELECT 'row unchanged by w1', status, attempts, worker, progress, result, lease_until, updated_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000061';
SELECT 'w2 progress', task_progress('0193a000-0000-7000-8000-000000000061', 50, '{"attempt": 2, "now": 101200}');
SELECT 'w2 complete', task_complete('0193a000-0000-7000-8000-000000000061', '{"by":"w2"}', '{"attempt": 2, "now": 101300}');
SELECT 'w1 complete after w2', task_complete('0193a000-0000-7000-8000-000000000061', '{"by":"w1"}', '{"attempt": 1, "now": 101400}');
SELECT 'completed by w2', status, result, worker, attempts FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000061';
-- An expired lease nobody has taken over still lets its worker finish.
SELECT 'enqueue', task_enqueue('slow', NULL, '{"queue": "lease", "id": "0193a000-0000-7000-8000-000000000062", "now": 110000}');
SELECT 'claim, lease 1000', json_extract(task_claim('w1', '{"queue": "lease", "lease": 1000, "now": 110000}'), '$.attempt');
SELECT 'complete long after the lease', task_complete('0193a000-0000-7000-8000-000000000062', NULL, '{"attempt": 1, "now": 200000}');

.print == lease expiry on the last attempt: the next claim fails the task
SELECT 'nothing else is running', count(*) FROM tasks WHERE status = 'running';
SELECT 'enqueue', task_enqueue('stuck', NULL, '{"queue": "last", "max_attempts": 2, "id": "0193a000-0000-7000-8000-000000000071", "now": 300000}');
SELECT 'w1 claims', json_extract(task_claim('w1', '{"queue": "last", "lease": 1000, "now": 300000}'), '$.attempt');
SELECT 'w2 claims after expiry', json_extract(task_claim('w2', '{"queue": "last", "lease": 1000, "now": 301000}'), '$.attempt');
SELECT 'w3 claims after expiry', task_claim('w3', '{"queue": "last", "now": 302000}');
SELECT 'failed row', status, error, attempts, worker, lease_until, completed_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000071';
SELECT 'w2 complete', task_complete('0193a000-0000-7000-8000-000000000071', NULL, '{"attempt": 2, "now": 302100}');
SELECT 'enqueue', task_enqueue('stuck', NULL, '{"queue": "last", "max_attempts": 1, "id": "0193a000-0000-7000-8000-000000000072", "now": 310000}');
SELECT 'w1 claims', json_extract(task_claim('w1', '{"queue": "last", "lease": 1000, "now": 310000}'), '$.attempt');
SELECT 'w2 claims after expiry', task_claim('w2', '{"queue": "last", "now": 311000}');
SELECT 'failed row', status, error, attempts, worker, lease_until, completed_at
  FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000072';

.print == claim order: a task whose lease expired comes before any queued task
SELECT 'nothing is queued or running', count(*) FROM tasks WHERE status IN ('queued', 'running');
SELECT 'enqueue', task_enqueue('abandoned', NULL, '{"queue": "exp", "id": "0193a000-0000-7000-8000-000000000081", "now": 400000}');
SELECT 'w1 claims, lease 1000', json_extract(task_claim('w1', '{"queue": "exp", "lease": 1000, "now": 400000}'), '$.type', '$.attempt');
SELECT 'enqueue', task_enqueue('p9', NULL, '{"queue": "exp", "priority": 9, "id": "0193a000-0000-7000-8000-000000000082", "now": 400000}');
SELECT 'enqueue', task_enqueue('p5 elsewhere', NULL, '{"queue": "exp2", "priority": 5, "id": "0193a000-0000-7000-8000-000000000083", "now": 400000}');
-- The abandoned task's lease ran out at 401000: it is claimed first,
-- whatever the priorities, by any claim that covers its queue.
SELECT 'claim any queue', json_extract(task_claim('w2', '{"lease": 1000, "now": 402000}'), '$.type', '$.attempt');
SELECT 'claim ["exp2","exp"]', json_extract(task_claim('w3', '{"queue": ["exp2", "exp"], "now": 404000}'), '$.type', '$.attempt');
SELECT 'then by priority', json_extract(task_claim('w3', '{"now": 404000}'), '$.type', '$.attempt');
SELECT 'then by priority', json_extract(task_claim('w3', '{"now": 404000}'), '$.type', '$.attempt');
SELECT 'nothing left', task_claim('w3', '{"now": 404000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000081', NULL, '{"attempt": 3, "now": 404000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000082', NULL, '{"now": 404000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000083', NULL, '{"now": 404000}');
SELECT 'abandoned task', status, attempts, worker, error FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000081';

.print == a claim for one queue reclaims only that queue's expired tasks, and fails any queue's with no attempts left
SELECT 'enqueue', task_enqueue('mine', NULL, '{"queue": "rq1", "id": "0193a000-0000-7000-8000-000000000091", "now": 800000}');
SELECT 'enqueue', task_enqueue('last try', NULL, '{"queue": "rq2", "max_attempts": 1, "id": "0193a000-0000-7000-8000-000000000092", "now": 800000}');
SELECT 'w1 claims', json_extract(task_claim('w1', '{"queue": "rq1", "lease": 1000, "now": 800000}'), '$.type');
SELECT 'w1 claims', json_extract(task_claim('w1', '{"queue": "rq2", "lease": 1000, "now": 800000}'), '$.type');
SELECT 'enqueue', task_enqueue('other', NULL, '{"queue": "rq3", "id": "0193a000-0000-7000-8000-000000000093", "now": 800000}');
-- Both leases ran out at 801000. A claim for rq3 takes rq3's task, leaves
-- rq1's to rq1's workers, and fails rq2's (no attempts left).
SELECT 'claim rq3', json_extract(task_claim('w2', '{"queue": "rq3", "now": 802000}'), '$.type');
SELECT 'rq1 task untouched', status, attempts, worker, error FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000091';
SELECT 'rq2 task failed', status, attempts, worker, error, lease_until, completed_at FROM tasks WHERE id = '0193a000-0000-7000-8000-000000000092';
SELECT 'claim rq3 again (nothing)', task_claim('w2', '{"queue": "rq3", "now": 802000}');
SELECT 'claim rq1', json_extract(task_claim('w2', '{"queue": "rq1", "now": 802000}'), '$.type', '$.attempt');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000091', NULL, '{"attempt": 2, "now": 802000}');
SELECT 'complete', task_complete('0193a000-0000-7000-8000-000000000093', NULL, '{"now": 802000}');

.print == task_claim_batch: up to limit tasks of one queue, in claim order, as a JSON array
SELECT 'nothing ready', task_claim_batch('w1', 10, '{"now": 900000}');
SELECT 'enqueue', task_enqueue('b1 p0', NULL, '{"queue": "batch", "id": "0193a000-0000-7000-8000-0000000000b1", "now": 900000}');
SELECT 'enqueue', task_enqueue('b2 p3', NULL, '{"queue": "batch", "priority": 3, "id": "0193a000-0000-7000-8000-0000000000b2", "now": 900000}');
SELECT 'enqueue', task_enqueue('b3 p0', '{"n":3}', '{"queue": "batch", "id": "0193a000-0000-7000-8000-0000000000b3", "now": 900000}');
SELECT 'enqueue', task_enqueue('b4 p9 later', NULL, '{"queue": "batch", "priority": 9, "run_at": 950000, "id": "0193a000-0000-7000-8000-0000000000b4", "now": 900000}');
SELECT 'enqueue', task_enqueue('b5 p3', NULL, '{"queue": "batch", "priority": 3, "id": "0193a000-0000-7000-8000-0000000000b5", "now": 900000}');
SELECT 'enqueue', task_enqueue('o1 p1', NULL, '{"queue": "batch-other", "priority": 1, "id": "0193a000-0000-7000-8000-0000000000b6", "now": 900000}');
-- Every queue: batch's head (priority 3) comes first, so the batch is
-- batch's best two; then batch-other's head (1) beats batch's (0).
SELECT 'batch of 2', (SELECT group_concat(json_extract(value, '$.type') || ':' || json_extract(value, '$.attempt'), ',')
                        FROM json_each(task_claim_batch('w1', 2, '{"now": 900000}')));
SELECT 'batch of 10', (SELECT group_concat(json_extract(value, '$.type'), ',') FROM json_each(task_claim_batch('w1', 10, '{"now": 900000}')));
SELECT 'batch of 10', task_claim_batch('w1', 10, '{"now": 900000, "lease": 100000}');
SELECT 'nothing ready', task_claim_batch('w1', 10, '{"now": 900000}');
SELECT 'batch of 1 at 950000', (SELECT group_concat(json_extract(value, '$.type'), ',')
                                  FROM json_each(task_claim_batch('w1', 1, '{"queue": ["nope", "batch"], "now": 950000}')));
SELECT 'claimed rows', count(*), group_concat(DISTINCT worker), min(attempts), max(attempts), min(started_at), max(started_at)
  FROM tasks WHERE queue IN ('batch', 'batch-other');
-- b1 and b3 were claimed with a 100000 ms lease: at 1000000 a batch for
-- the queue takes them again (attempt 2), with b7, queued meanwhile.
-- Listed sorted: docs/concepts.md gives no order among expired tasks.
SELECT 'enqueue', task_enqueue('b7 p0', NULL, '{"queue": "batch", "id": "0193a000-0000-7000-8000-0000000000b7", "now": 960000}');
SELECT 'expired and queued, batch for queue batch', (SELECT group_concat(t, ',') FROM (
         SELECT json_extract(value, '$.type') || ':' || json_extract(value, '$.attempt') AS t
           FROM json_each(task_claim_batch('w2', 10, '{"queue": "batch", "now": 1000000}')) ORDER BY t));
SELECT 'complete every running one', count(task_complete(id, NULL, '{"now": 1000000}'))
  FROM tasks WHERE queue IN ('batch', 'batch-other') AND status = 'running';
SELECT 'batch rows', group_concat(substr(id, 35) || ':' || status || ':' || attempts || ':' || worker, ',')
  FROM (SELECT * FROM tasks WHERE queue IN ('batch', 'batch-other') ORDER BY rowid);

.print == in the end
SELECT 'status', status, count(*) FROM tasks GROUP BY status ORDER BY status;
