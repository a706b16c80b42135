-- The storage is plain tables: after some work through the extension,
-- task_store and task_meta are read with plain SQL, then again on a second
-- connection that never loaded the extension. Also: before task_init(),
-- every function but task_version, task_debug and task_init fails with an
-- error that says what to do.
--
-- The database is reopened by its path, which run.sh passes in
-- $TASK_TEST_DB (run by hand: TASK_TEST_DB=x.db sqlite3 x.db < this file).
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL

.print == before task_init
SELECT 'version', task_version();
SELECT 'debug', instr(task_debug(), 'schema none: run SELECT task_init()') > 0;
SELECT task_enqueue('t', NULL, '{"id": "0193e000-0000-7000-8000-000000000001", "now": 1000}');
SELECT task_claim('w1', '{"now": 1000}');
SELECT task_claim_batch('w1', 10, '{"now": 1000}');
SELECT task_progress('0193e000-0000-7000-8000-000000000001', 10);
SELECT task_heartbeat('0193e000-0000-7000-8000-000000000001');
SELECT task_complete('0193e000-0000-7000-8000-000000000001');
SELECT task_fail('0193e000-0000-7000-8000-000000000001', 'e');
SELECT task_cancel('0193e000-0000-7000-8000-000000000001');
SELECT task_retry('0193e000-0000-7000-8000-000000000001');
SELECT task_check();
SELECT task_complete_next('0193e000-0000-7000-8000-000000000001', NULL, 'w1');
SELECT task_complete_batch('[]');
SELECT task_fail_batch('[]');
SELECT count(*) FROM tasks;
SELECT 'nothing created', count(*) FROM sqlite_master;
-- task_init inside a transaction that rolls back leaves no storage either.
BEGIN;
SELECT 'init in a transaction', task_init();
SELECT 'enqueue in it', task_enqueue('t', NULL, '{"id": "0193e000-0000-7000-8000-000000000001", "now": 1000}');
ROLLBACK;
SELECT 'rolled back', count(*) FROM sqlite_master;
SELECT task_enqueue('t', NULL, '{"id": "0193e000-0000-7000-8000-000000000001", "now": 1000}');
SELECT count(*) FROM tasks;

.print == some work
SELECT 'init', task_init();
SELECT 'enqueue', task_enqueue('resize', '{"path":"a.png"}', '{"id": "0193e000-0000-7000-8000-000000000001", "queue": "images", "priority": 3, "now": 1000}');
SELECT 'enqueue', task_enqueue('thumb', '{"path":"a.png","w":64}', '{"id": "0193e000-0000-7000-8000-000000000002", "queue": "images", "parent_id": "0193e000-0000-7000-8000-000000000001", "max_attempts": 2, "now": 1000}');
SELECT 'enqueue', task_enqueue('email', NULL, '{"id": "0193e000-0000-7000-8000-000000000003", "delay": 60000, "now": 1000}');
SELECT 'claim', json_extract(task_claim('w1', '{"lease": 30000, "now": 2000}'), '$.id');
SELECT 'progress', task_progress('0193e000-0000-7000-8000-000000000001', 25, '{"attempt": 1, "now": 2500}');
SELECT 'complete', task_complete('0193e000-0000-7000-8000-000000000001', '{"out":"a.webp"}', '{"attempt": 1, "now": 3000}');
SELECT 'claim', json_extract(task_claim('w2', '{"lease": 10000, "now": 3000}'), '$.id');
SELECT 'fail', task_fail('0193e000-0000-7000-8000-000000000002', 'disk full', '{"attempt": 1, "delay": 100, "now": 4000}');
SELECT 'cancel', task_cancel('0193e000-0000-7000-8000-000000000003', '{"now": 5000}');

.print == read with plain SQL
SELECT 'object', type, name, tbl_name FROM sqlite_master ORDER BY type DESC, name;
SELECT 'meta', key, value FROM task_meta;
SELECT 'columns', group_concat(name, ' ') FROM (SELECT name FROM pragma_table_info('task_store') ORDER BY cid);
-- seq|id|queue|type|status|priority|progress|attempts|max_attempts|parent_id|worker|lease_until|
-- lease_ms|run_at|created_at|updated_at|started_at|completed_at|details|result|error
SELECT 'row', seq, id, queue, type, status, priority, progress, attempts, max_attempts, parent_id,
       worker, lease_until, lease_ms, run_at, created_at, updated_at, started_at, completed_at,
       details, result, error
  FROM task_store ORDER BY seq;
SELECT 'the tasks table shows the same rows', -- but a parent's progress: its children's rollup
       (SELECT count(*) FROM (SELECT id, queue, type, status, priority, iif(children > 0, -1, progress), details, result, error,
                                     attempts, max_attempts, parent_id, worker, lease_until, run_at,
                                     created_at, updated_at, started_at, completed_at, seq FROM task_store
                              EXCEPT
                              SELECT id, queue, type, status, priority, iif(children > 0, -1, progress), details, result, error,
                                     attempts, max_attempts, parent_id, worker, lease_until, run_at,
                                     created_at, updated_at, started_at, completed_at, rowid FROM tasks)),
       (SELECT count(*) FROM tasks);

.print == reopened on a connection without the extension
.read '|printf ".open \"%s\"\n" "$TASK_TEST_DB"'
SELECT task_version();
SELECT * FROM tasks;
SELECT 'objects', count(*) FROM sqlite_master;
SELECT 'meta', key, value FROM task_meta;
SELECT 'status', status, count(*) FROM task_store GROUP BY status ORDER BY status;
SELECT 'ready to run at 5000', id FROM task_store WHERE status = 'queued' AND run_at <= 5000 ORDER BY priority DESC, run_at, seq;
SELECT 'results', id, json_extract(result, '$.out') FROM task_store WHERE result IS NOT NULL;
SELECT 'children', c.type, p.type FROM task_store c JOIN task_store p ON p.id = c.parent_id;
SELECT 'integrity_check', * FROM pragma_integrity_check;

.print == the extension loaded again on this connection carries on
.load ./dist/task0
SELECT 'claim', json_extract(task_claim('w3', '{"now": 6000}'), '$.id');
SELECT 'complete', task_complete('0193e000-0000-7000-8000-000000000002', NULL, '{"attempt": 2, "now": 6500}');
SELECT 'status', status, count(*) FROM tasks GROUP BY status ORDER BY status;

.print == status is CHECKed; the parked index (failed, cancelled, blocked and waiting tasks) is keyed by status, type, queue, completed_at
SELECT 'parked index', group_concat(name, ' ') FROM (SELECT name FROM pragma_index_info('task_store_parked') ORDER BY seqno);
SELECT 'partial indexes', group_concat(name, ' ') FROM (SELECT name FROM pragma_index_list('task_store') WHERE partial ORDER BY name);
-- As docs/storage.md shows them: a named CHECK, and status tests
-- written as OR chains.
SELECT 'status check', substr(sql, instr(sql, 'CONSTRAINT'), instr(sql, '),') - instr(sql, 'CONSTRAINT') + 1)
  FROM sqlite_master WHERE name = 'task_store';
SELECT 'index', name, replace(sql, char(10), ' ') FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name;
UPDATE task_store SET status = 'done' WHERE id = '0193e000-0000-7000-8000-000000000002';
INSERT INTO task_store(id, queue, type, status, max_attempts, run_at, created_at, updated_at)
VALUES ('0193e000-0000-7000-8000-000000000009', 'q', 't', 'Queued', 3, 0, 0, 0);
SELECT 'status', status, count(*) FROM tasks GROUP BY status ORDER BY status;
