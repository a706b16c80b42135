-- sqlite-task playlist: the workflow the project started from, in the sqlite3 shell
-- (`sqlite3 /tmp/playlist.db < sql/playlist.sql`, from the repository root).
-- A parent task fetches a playlist's metadata and enqueues one child per video;
-- twelve downloads run (one fails once and is retried); a "zip" task depends on all
-- of them; the parent waits for its children and completes with the last one. The
-- tree and its rollup are printed between steps. The clock is supplied ({"now": ms}),
-- so the output is the same on every run.
.load ./dist/task0
.mode box
.headers on
PRAGMA journal_mode = WAL;
SELECT task_init() AS schema_version;

CREATE TEMP VIEW tree AS
SELECT printf('%.*c%s', depth * 2, ' ', type) AS task, status, round(progress, 1) AS progress,
       children AS kids, children_done AS done, worker
  FROM task_tree('00000000-0000-7000-8000-00000000000a');

.print
.print == 1. The user pastes a playlist URL: one task, the parent
SELECT task_enqueue('playlist', '{"url":"https://example.com/playlist/42"}',
                    '{"id":"00000000-0000-7000-8000-00000000000a","queue":"meta","now":1000}') AS id;

.print
.print == 2. A worker fetches the metadata and enqueues a download per video, and the zip
-- Twelve children (parent_id), then a zip that depends on all of them (depends_on).
SELECT json_extract(task_claim('meta-worker', '{"queue":"meta","now":2000}'), '$.type') AS claimed;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)
SELECT count(task_enqueue('download', json_object('video', i),
                          json_object('id', printf('00000000-0000-7000-8000-0000000001%02d', i),
                                      'queue', 'downloads', 'parent_id', '00000000-0000-7000-8000-00000000000a',
                                      'max_attempts', 2, 'now', 2100))) AS downloads
  FROM n;
SELECT task_enqueue('zip', NULL,
                    json_object('id', '00000000-0000-7000-8000-0000000000ff', 'queue', 'zip',
                                'parent_id', '00000000-0000-7000-8000-00000000000a', 'now', 2100,
                                'depends_on', (SELECT json_group_array(id) FROM tasks
                                                WHERE parent_id = '00000000-0000-7000-8000-00000000000a'
                                                  AND type = 'download'))) AS zip;
SELECT status, depends_on IS NOT NULL AS has_dependencies FROM tasks WHERE type = 'zip';
-- Its own work done, the parent waits for its children.
SELECT task_complete('00000000-0000-7000-8000-00000000000a', '{"videos":12}', '{"now":2200}') AS parent;
SELECT * FROM tree;

.print
.print == 3. Two download workers start; progress rolls up into the parent
CREATE TEMP TABLE claimed (worker TEXT, id TEXT);
INSERT INTO claimed SELECT 'dl-1', json_extract(task_claim('dl-1', '{"queue":"downloads","now":3000}'), '$.id');
INSERT INTO claimed SELECT 'dl-2', json_extract(task_claim('dl-2', '{"queue":"downloads","now":3000}'), '$.id');
SELECT task_progress(id, 40, '{"now":3500}') AS dl_1 FROM claimed WHERE worker = 'dl-1';
SELECT task_progress(id, 90, '{"now":3500}') AS dl_2 FROM claimed WHERE worker = 'dl-2';
SELECT * FROM tree WHERE kids > 0 OR status = 'running';

.print
.print == 4. Video 2 fails once (it will be retried), video 1 completes
SELECT task_fail(id, 'connection reset', '{"now":4000,"delay":0}') AS dl_2 FROM claimed WHERE worker = 'dl-2';
SELECT task_complete(id, '{"bytes":1048576}', '{"now":4000}') AS dl_1 FROM claimed WHERE worker = 'dl-1';
SELECT * FROM tree WHERE kids > 0 OR task LIKE '%download' AND status <> 'queued';

.print
.print == 5. dl-1 drains the downloads (one call a task: complete it, claim the next)
-- task_complete_next completes a task and claims the next in one commit.
WITH RECURSIVE loop(step, id) AS (
  SELECT 1, json_extract(task_claim('dl-1', '{"queue":"downloads","now":5000}'), '$.id')
  UNION ALL
  SELECT step + 1, json_extract(task_complete_next(id, '{"bytes":1048576}', 'dl-1',
                                                   json_object('queue', 'downloads', 'now', 5000 + step)), '$.id')
    FROM loop WHERE id IS NOT NULL)
SELECT count(*) - 1 AS completed FROM loop;
SELECT * FROM tree WHERE kids > 0 OR task LIKE '%zip';

.print
.print == 6. The zip was released by the last download: it runs, and the parent completes with it
SELECT json_extract(task_claim('zipper', '{"queue":"zip","now":6000}'), '$.type') AS claimed;
SELECT task_complete('00000000-0000-7000-8000-0000000000ff', '{"file":"playlist-42.zip"}', '{"now":7000}') AS zip;
SELECT * FROM tree WHERE kids > 0 OR task LIKE '%zip';
SELECT status, completed_at FROM tasks WHERE id = '00000000-0000-7000-8000-00000000000a';
SELECT task_check() AS check_;
