-- An application migration that adopts sqlite-task: run it with the extension
-- loaded (`.load ./dist/task0` in the shell, or load_extension from your driver).
-- task_init() is idempotent, so it is safe at the top of every migration.
BEGIN IMMEDIATE;
SELECT task_init();

CREATE TABLE IF NOT EXISTS uploads (
  id         INTEGER PRIMARY KEY,
  path       TEXT NOT NULL,
  created_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- Transactional outbox: every upload gets a thumbnail task in the same
-- transaction. Roll the insert back and the task is gone with it.
CREATE TRIGGER IF NOT EXISTS uploads_thumbnail AFTER INSERT ON uploads BEGIN
  SELECT task_enqueue('thumbnail', json_object('upload', NEW.id, 'path', NEW.path),
                      '{"queue": "images"}');
END;

-- Deleting an upload cancels its work that has not finished yet.
CREATE TRIGGER IF NOT EXISTS uploads_cancel AFTER DELETE ON uploads BEGIN
  SELECT task_cancel(id) FROM tasks
   WHERE status IN ('queued', 'running') AND type = 'thumbnail'
     AND json_extract(details, '$.upload') = OLD.id;
END;
COMMIT;
