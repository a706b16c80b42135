-- Queue settings in the sqlite3 shell (docs/reference/queues.md): pause,
-- the concurrency limit, the task_queues view, the fair wait; and their bad
-- inputs, each followed by a check that the storage did not change. One
-- row per check; a failing call in a statement of its own (see run.sh).
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
SELECT 'init', task_init();
CREATE TEMP VIEW digest AS
SELECT (SELECT count(*) || ':' || group_concat(status || updated_at, ',') FROM task_store)
       || '/' || (SELECT count(*) || ':' || group_concat(name || paused || ifnull(concurrency, '-'), ',')
                    FROM task_queue_store) AS d;

.print == a queue without settings
SELECT 'defaults', task_queue('q');
SELECT 'no row made', count(*) FROM task_queue_store;

.print == pause
SELECT 'enqueue', task_enqueue('job', NULL, '{"id": "0193d000-0000-7000-8000-000000000001", "queue": "q", "now": 1000}');
SELECT 'enqueue', task_enqueue('job', NULL, '{"id": "0193d000-0000-7000-8000-000000000002", "queue": "q", "now": 1000}');
SELECT 'enqueue', task_enqueue('job', NULL, '{"id": "0193d000-0000-7000-8000-000000000003", "queue": "r", "now": 1000}');
SELECT 'pause', task_queue('q', '{"paused": true, "now": 1100}');
SELECT 'claim q', task_claim('w1', '{"queue": "q", "now": 1200}');
SELECT 'claim any: r', json_extract(task_claim('w1', '{"now": 1200}'), '$.id');
SELECT 'claim any', task_claim('w1', '{"now": 1200}');
SELECT 'batch', task_claim_batch('w1', 5, '{"queue": ["q", "r"], "now": 1200}');
SELECT 'view', name, paused, concurrency, queued, running FROM task_queues ORDER BY name;

.print == resume with a limit of 1
SELECT 'resume', task_queue('q', '{"paused": false, "concurrency": 1, "now": 1300}');
SELECT 'batch gets one', json_array_length(task_claim_batch('w1', 5, '{"queue": "q", "now": 1400}'));
SELECT 'claim at the limit', task_claim('w2', '{"queue": "q", "now": 1400}');
SELECT 'complete frees the slot', task_complete('0193d000-0000-7000-8000-000000000001', NULL, '{"now": 1500}');
SELECT 'claim', json_extract(task_claim('w2', '{"queue": "q", "now": 1600}'), '$.id');
SELECT 'view', name, paused, concurrency, queued, running FROM task_queues ORDER BY name;
SELECT 'remove the limit', task_queue('q', '{"concurrency": null, "now": 1700}');
SELECT 'check', task_check();

.print == the fair wait
SELECT 'busy timeout', task_busy_timeout(5000);
SELECT 'busy timeout off', task_busy_timeout(0);

.print == bad inputs change nothing
CREATE TEMP TABLE before AS SELECT d FROM digest;
SELECT task_queue(NULL);
SELECT task_queue('');
SELECT task_queue('q', '{"paused": "yes"}');
SELECT task_queue('q', '{"concurrency": 0}');
SELECT task_queue('q', '{"concurrency": 2.5}');
SELECT task_queue('q', '{"limit": 2}');
SELECT task_queue('q', 'not json');
SELECT task_busy_timeout(-1);
SELECT task_busy_timeout('soon');
SELECT 'storage unchanged', (SELECT d FROM digest) = (SELECT d FROM before);

.print == a claim from every queue over 500 queues
-- Two tasks in each of 500 queues; m123's are ahead (priority 1). Claims
-- from every queue come in claim order across the queues.
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
SELECT 'enqueued', count(task_enqueue('job', NULL, json_object(
         'queue', printf('m%03d', i % 500), 'priority', (i % 500 = 123), 'now', 2000 + i)))
  FROM n;
SELECT 'first', json_extract(task_claim('w1', '{"now": 5000}'), '$.queue');
SELECT 'second', json_extract(task_claim('w1', '{"now": 5000}'), '$.queue');
SELECT 'third', json_extract(task_claim('w1', '{"now": 5000}'), '$.queue');
SELECT 'by name among them', json_extract(task_claim('w1', '{"queue": "m499", "now": 5000}'), '$.queue');
SELECT 'from a list', json_extract(task_claim('w1', '{"queue": ["m300", "m200"], "now": 5000}'), '$.queue');
SELECT 'check', task_check();

.print == per-queue defaults: lease, max_attempts, backoff
SELECT 'defaults', task_queue('slow', '{"lease": 60000, "max_attempts": 5, "backoff": 10000, "backoff_max": 10000, "now": 9000}');
SELECT 'enqueue', task_enqueue('job', NULL, '{"id": "0193d000-0000-7000-8000-0000000000d1", "queue": "slow", "now": 9000}');
SELECT 'max_attempts from the queue', max_attempts FROM tasks WHERE id = '0193d000-0000-7000-8000-0000000000d1';
SELECT 'lease from the queue', json_extract(task_claim('w1', '{"queue": "slow", "now": 9100}'), '$.lease_until');
SELECT 'fail', task_fail('0193d000-0000-7000-8000-0000000000d1', 'boom', '{"now": 9200}');
SELECT 'backoff from the queue, jittered', run_at - 9200 BETWEEN 5000 AND 10000 FROM tasks WHERE id = '0193d000-0000-7000-8000-0000000000d1';

.print == a rate limit: 2 claims in any 1000 ms
SELECT 'rate', json_extract(task_queue('api', '{"rate": {"limit": 2, "interval": 1000}, "now": 9000}'), '$.rate');
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4)
SELECT 'enqueued', count(task_enqueue('call', NULL, '{"queue": "api", "now": 9000}')) FROM n;
SELECT 'claim at 10000', task_claim('w1', '{"queue": "api", "now": 10000}') IS NOT NULL;
SELECT 'claim at 10100', task_claim('w1', '{"queue": "api", "now": 10100}') IS NOT NULL;
SELECT 'claim at 10200', task_claim('w1', '{"queue": "api", "now": 10200}') IS NOT NULL;
SELECT 'batch at 11000', json_array_length(task_claim_batch('w1', 5, '{"queue": "api", "now": 11000}'));
SELECT 'batch at 11100', json_array_length(task_claim_batch('w1', 5, '{"queue": "api", "now": 11100}'));
SELECT 'view', name, rate_limit, rate_interval, lease, max_attempts FROM task_queues WHERE name IN ('api', 'slow') ORDER BY name;
SELECT task_queue('api', '{"rate": {"limit": 2}}');
SELECT task_queue('api', '{"lease": 0}');
SELECT 'check', task_check();

.print == blocked and waiting tasks are counted, and list their queues
SELECT 'enqueue', task_enqueue('dep', NULL, '{"queue": "deps", "depends_on": ["0193d000-0000-7000-8000-000000000002"], "now": 1800}') IS NOT NULL;
SELECT 'enqueue', task_enqueue('p', NULL, '{"id": "0193d000-0000-7000-8000-000000000009", "queue": "parents", "wait_for_children": true, "now": 1800}');
SELECT 'enqueue', task_enqueue('c', NULL, '{"queue": "kids", "parent_id": "0193d000-0000-7000-8000-000000000009", "now": 1800}') IS NOT NULL;
SELECT 'view', name, queued, running, blocked, waiting FROM task_queues WHERE name IN ('deps', 'kids', 'parents') ORDER BY name;
SELECT 'check', task_check();
