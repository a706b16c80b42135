-- Workflows in the sqlite3 shell (docs/reference/workflows.md): parents and
-- children, dependencies, unique keys, task_tree; and their bad inputs,
-- each followed by a check that the storage did not change. One row per
-- check; a failing call in a statement of its own (see run.sh).
.load ./dist/task0
.mode list
.headers off
.nullvalue NULL
SELECT 'init', task_init();
CREATE TEMP VIEW digest AS
SELECT count(*) || ':' || total(seq) || ':' || group_concat(status || updated_at, ',') AS d FROM task_store;

.print == a parent waits for its children and completes with the last one
SELECT 'parent', task_enqueue('p', NULL, '{"id":"0193d000-0000-7000-8000-000000000001","queue":"p","now":0}');
SELECT 'claim', json_extract(task_claim('w', '{"queue":"p","now":1}'), '$.id');
SELECT 'child', task_enqueue('c', NULL, '{"id":"0193d000-0000-7000-8000-000000000002","queue":"c","parent_id":"0193d000-0000-7000-8000-000000000001","now":2}');
SELECT 'child', task_enqueue('c', NULL, '{"id":"0193d000-0000-7000-8000-000000000003","queue":"c","parent_id":"0193d000-0000-7000-8000-000000000001","now":2}');
SELECT 'own work done', task_complete('0193d000-0000-7000-8000-000000000001', NULL, '{"now":3}');
SELECT 'claim child', json_extract(task_claim('w', '{"queue":"c","now":4}'), '$.id');
SELECT 'progress', task_progress('0193d000-0000-7000-8000-000000000002', 50, '{"now":5}');
SELECT 'rollup', status, progress, children, children_done FROM tasks WHERE id = '0193d000-0000-7000-8000-000000000001';
SELECT 'tree', depth, id, status, progress FROM task_tree('0193d000-0000-7000-8000-000000000001');
SELECT 'complete child', task_complete('0193d000-0000-7000-8000-000000000002', NULL, '{"now":6}');
SELECT 'complete last', task_complete(json_extract(task_claim('w', '{"queue":"c","now":7}'), '$.id'), NULL, '{"now":8}');
SELECT 'parent after', status, progress, completed_at FROM tasks WHERE id = '0193d000-0000-7000-8000-000000000001';

.print == a child that fails for good fails its parent and cancels the rest
SELECT 'parent', task_enqueue('p', NULL, '{"id":"0193d000-0000-7000-8000-000000000011","queue":"p2","now":10}');
SELECT 'child', task_enqueue('c', NULL, '{"id":"0193d000-0000-7000-8000-000000000012","queue":"c2","max_attempts":1,"parent_id":"0193d000-0000-7000-8000-000000000011","now":10}');
SELECT 'child', task_enqueue('c', NULL, '{"id":"0193d000-0000-7000-8000-000000000013","queue":"c2","parent_id":"0193d000-0000-7000-8000-000000000011","now":10}');
SELECT 'fail', task_fail(json_extract(task_claim('w', '{"queue":"c2","now":11}'), '$.id'), 'boom', '{"now":12}');
SELECT 'family', id, status, error FROM tasks WHERE id BETWEEN '0193d000-0000-7000-8000-000000000011' AND '0193d000-0000-7000-8000-000000000013' ORDER BY id;
SELECT 'retry the parent', task_retry('0193d000-0000-7000-8000-000000000011', '{"now":13}');
SELECT 'family', id, status, attempts FROM tasks WHERE id BETWEEN '0193d000-0000-7000-8000-000000000011' AND '0193d000-0000-7000-8000-000000000013' ORDER BY id;
SELECT 'cancel the parent', task_cancel('0193d000-0000-7000-8000-000000000011', '{"now":14}');
SELECT 'family', id, status FROM tasks WHERE id BETWEEN '0193d000-0000-7000-8000-000000000011' AND '0193d000-0000-7000-8000-000000000013' ORDER BY id;

.print == dependencies: blocked until every one completed; a failed one cancels
SELECT 'a', task_enqueue('a', NULL, '{"id":"0193d000-0000-7000-8000-000000000021","queue":"d","now":20}');
SELECT 'b', task_enqueue('b', NULL, '{"id":"0193d000-0000-7000-8000-000000000022","queue":"d","max_attempts":1,"now":20}');
SELECT 'c', task_enqueue('c', NULL, '{"id":"0193d000-0000-7000-8000-000000000023","queue":"d2","depends_on":["0193d000-0000-7000-8000-000000000021"],"now":20}');
SELECT 'd', task_enqueue('d', NULL, '{"id":"0193d000-0000-7000-8000-000000000024","queue":"d2","depends_on":["0193d000-0000-7000-8000-000000000021","0193d000-0000-7000-8000-000000000022"],"now":20}');
SELECT 'blocked', id, status, depends_on FROM tasks WHERE queue = 'd2' ORDER BY id;
SELECT 'nothing to claim', task_claim('w', '{"queue":"d2","now":21}');
SELECT 'complete a', task_complete(json_extract(task_claim('w', '{"queue":"d","now":21}'), '$.id'), NULL, '{"now":22}');
SELECT 'fail b', task_fail(json_extract(task_claim('w', '{"queue":"d","now":23}'), '$.id'), 'no', '{"now":24}');
SELECT 'after', id, status, error FROM tasks WHERE queue = 'd2' ORDER BY id;
SELECT 'retry d: blocked by b', task_retry('0193d000-0000-7000-8000-000000000024', '{"now":25}');

.print == unique keys: one task per queue and key
SELECT 'first', task_enqueue('u', '{"v":1}', '{"id":"0193d000-0000-7000-8000-000000000031","queue":"u","unique_key":"k","now":30}');
SELECT 'again', task_enqueue('u', '{"v":2}', '{"queue":"u","unique_key":"k","now":31}');
SELECT 'replace', task_enqueue('u', '{"v":3}', '{"queue":"u","unique_key":"k","on_conflict":"replace","now":32}');
SELECT 'other queue', task_enqueue('u', NULL, '{"id":"0193d000-0000-7000-8000-000000000032","queue":"u2","unique_key":"k","now":32}');
SELECT 'held', queue, unique_key, details FROM tasks WHERE unique_key = 'k' ORDER BY rowid;
INSERT INTO tasks(type, queue, unique_key, now) VALUES ('u', 'u', 'k', 33);
SELECT 'insert kept it', count(*) FROM tasks WHERE unique_key = 'k';

.print == bad inputs: an error, and nothing changed
CREATE TEMP TABLE before AS SELECT d FROM digest;
SELECT task_enqueue('c', NULL, '{"parent_id":"0193d000-0000-7000-8000-0000000000ff"}');
SELECT task_enqueue('c', NULL, '{"parent_id":"0193d000-0000-7000-8000-000000000001"}');
SELECT task_enqueue('c', NULL, '{"depends_on":["0193d000-0000-7000-8000-0000000000ff"]}');
SELECT task_enqueue('c', NULL, '{"id":"0193d000-0000-7000-8000-0000000000aa","depends_on":["0193d000-0000-7000-8000-0000000000aa"]}');
SELECT task_enqueue('c', NULL, '{"depends_on":"0193d000-0000-7000-8000-000000000021"}');
SELECT task_enqueue('c', NULL, '{"depends_on":["0193d000-0000-7000-8000-000000000022"]}');
SELECT task_enqueue('c', NULL, '{"unique_key":7}');
SELECT task_enqueue('c', NULL, '{"unique_key":"k2","on_conflict":"merge"}');
SELECT task_enqueue('c', NULL, '{"unique_key":"k2","unique_scope":"ever"}');
SELECT task_enqueue('c', NULL, '{"on_child_failure":"ignore"}');
SELECT task_enqueue('u', NULL, '{"queue":"u","unique_key":"k","on_conflict":"error"}');
SELECT * FROM task_tree;
SELECT * FROM task_tree('nope');
SELECT 'storage unchanged', (SELECT d FROM digest) = (SELECT d FROM before);
SELECT 'check', task_check();
