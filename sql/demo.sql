-- sqlite-task demo: `make demo` runs this in the sqlite3 shell on a fresh database.
-- Two workers, alice and bob, share a queue: claims, progress, a failure that is
-- retried, a crashed worker whose task is taken over, completion, and the `tasks`
-- view between steps. The clock is supplied ({"now": ms}) so backoff and leases
-- play out instantly and the output is the same on every run.
.load ./dist/task0
.mode box
.headers on
PRAGMA journal_mode = WAL;
SELECT task_init() AS schema_version, task_version() AS version;

-- The claims the workers received (in an application, the worker keeps the JSON).
CREATE TEMP TABLE claims (worker TEXT, claim TEXT);
CREATE TEMP VIEW last_claim AS
SELECT worker, json_extract(claim, '$.type') AS type, json_extract(claim, '$.attempt') AS attempt,
       json_extract(claim, '$.details') AS details
  FROM claims WHERE rowid = (SELECT max(rowid) FROM claims);
CREATE TEMP VIEW board AS
SELECT substr(id, 25) AS id, queue, type, status, priority AS prio, progress, attempts AS att,
       worker, error, result
  FROM tasks ORDER BY rowid;

.print
.print == 1. Enqueue five tasks: one with high priority, one in another queue
SELECT task_enqueue('resize', '{"path":"cat.png"}', '{"id":"00000000-0000-7000-8000-000000000001","now":1000}') AS id
UNION ALL
SELECT task_enqueue('fetch', '{"url":"https://example.com/feed"}', '{"id":"00000000-0000-7000-8000-000000000002","now":1000}')
UNION ALL
SELECT task_enqueue('email', '{"to":"ann@example.com"}', '{"id":"00000000-0000-7000-8000-000000000003","now":1000,"priority":5}')
UNION ALL
SELECT task_enqueue('resize', '{"path":"dog.png"}', '{"id":"00000000-0000-7000-8000-000000000004","now":1000}')
UNION ALL
SELECT task_enqueue('report', '{"month":"2026-10"}', '{"id":"00000000-0000-7000-8000-000000000005","now":1000,"queue":"slow"}');
SELECT * FROM board;

.print
.print == 2. Both workers claim: alice gets the high-priority email, bob the oldest task
INSERT INTO claims SELECT 'alice', task_claim('alice', '{"queue":"default","now":2000,"lease":30000}');
SELECT * FROM last_claim;
INSERT INTO claims SELECT 'bob', task_claim('bob', '{"queue":"default","now":2000,"lease":30000}');
SELECT * FROM last_claim;
SELECT * FROM board WHERE status = 'running';

.print
.print == 3. Bob reports 40% on cat.png (a report renews the lease once a quarter of it has passed)
SELECT task_progress('00000000-0000-7000-8000-000000000001', 40, '{"attempt":1,"now":3000}') AS status;
SELECT * FROM board WHERE status = 'running';

.print
.print == 4. Alice sends the email and claims the next task
SELECT task_complete('00000000-0000-7000-8000-000000000003', '{"message_id":"<a1@example.com>"}',
                     '{"attempt":1,"now":4000}') AS email;
INSERT INTO claims SELECT 'alice', task_claim('alice', '{"queue":"default","now":4000,"lease":30000}');
SELECT * FROM last_claim;

.print
.print == 5. Bob finishes cat.png and claims dog.png
SELECT task_complete('00000000-0000-7000-8000-000000000001', '{"out":"cat.webp"}',
                     '{"attempt":1,"now":4500}') AS cat;
INSERT INTO claims SELECT 'bob', task_claim('bob', '{"queue":"default","now":4500,"lease":30000}');
SELECT * FROM last_claim;

.print
.print == 6. Alice's fetch fails: back to the queue after a backoff of 1 s x jitter [0.5, 1]
SELECT task_fail('00000000-0000-7000-8000-000000000002', 'connection reset',
                 '{"attempt":1,"now":5000}') AS fetch_is_now;
SELECT substr(id, 25) AS id, status, attempts, error,
       run_at - 5000 BETWEEN 500 AND 1000 AS backoff_between_half_and_one_second
  FROM tasks WHERE type = 'fetch';
SELECT task_claim('alice', '{"queue":"default","now":5001}') AS nothing_ready_yet;

.print
.print == 7. After the backoff alice claims the fetch again (attempt 2), and it works
INSERT INTO claims SELECT 'alice', task_claim('alice', '{"queue":"default","now":7000,"lease":30000}');
SELECT * FROM last_claim;
SELECT task_complete('00000000-0000-7000-8000-000000000002', '{"items":12}',
                     '{"attempt":2,"now":7500}') AS fetch;
SELECT * FROM board;

.print
.print == 8. Bob crashes while resizing dog.png. When his lease runs out (34500), alice takes over
SELECT task_claim('alice', '{"queue":"default","now":20000}') AS lease_still_held;
INSERT INTO claims SELECT 'alice', task_claim('alice', '{"queue":"default","now":34501,"lease":30000}');
SELECT * FROM last_claim;
.print -- dog.png is on attempt 2 now. If bob comes back, his calls with {"attempt":1} are
.print -- refused ("attempt 1 of task … is stale"): he cannot overwrite alice's work.
SELECT substr(id, 25) AS id, status, attempts, worker, error FROM tasks WHERE status = 'running';
SELECT task_complete('00000000-0000-7000-8000-000000000004', '{"out":"dog.webp"}',
                     '{"attempt":2,"now":36000}') AS dog;

.print
.print == 9. Nobody serves the "slow" queue today: the report is cancelled
SELECT task_cancel('00000000-0000-7000-8000-000000000005', '{"now":40000}') AS report;

.print
.print == Final state
SELECT * FROM board;
SELECT status, count(*) AS tasks FROM tasks GROUP BY status ORDER BY status;

.print
.print == Every transition is an event: dog.png's story, from the task_events view
SELECT seq, at, kind, status, attempt, worker, error FROM task_events
 WHERE task_id = '00000000-0000-7000-8000-000000000004' ORDER BY seq;
