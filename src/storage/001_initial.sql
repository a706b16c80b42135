-- Storage schema version 1: the initial layout.
--
-- Applied by task_init() in one transaction with the other steps it needs,
-- then never edited: a later version adds a file of its own. Comments sit
-- between statements, never inside one, so the text SQLite keeps in
-- sqlite_master is the statement alone.

CREATE TABLE main.task_store (
  seq          INTEGER PRIMARY KEY,
  id           TEXT    NOT NULL,
  queue        TEXT    NOT NULL,
  type         TEXT    NOT NULL,
  status       TEXT    NOT NULL
               CONSTRAINT task_status CHECK (status = 'queued' OR status = 'running' OR status = 'completed' OR status = 'failed' OR status = 'cancelled'),
  priority     INTEGER NOT NULL DEFAULT 0,
  progress     NUMERIC NOT NULL DEFAULT 0,
  attempts     INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  parent_id    TEXT,
  worker       TEXT,
  lease_until  INTEGER,
  lease_ms     INTEGER,
  run_at       INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  started_at   INTEGER,
  completed_at INTEGER,
  details      TEXT,
  result       TEXT,
  error        TEXT
);
CREATE UNIQUE INDEX main.task_store_id ON task_store(id);
CREATE INDEX main.task_store_ready ON task_store(queue, priority DESC, run_at)
  WHERE status = 'queued';
CREATE INDEX main.task_store_running ON task_store(lease_until)
  WHERE status = 'running';
CREATE INDEX main.task_store_finished ON task_store(status, type, queue, completed_at)
  WHERE status = 'completed' OR status = 'failed' OR status = 'cancelled';
CREATE INDEX main.task_store_parent ON task_store(parent_id)
  WHERE parent_id IS NOT NULL;
