-- Storage schema version 3: workflows. Parents wait for their children,
-- tasks wait for their dependencies, unique keys are enforced.
--
-- Two statuses join the CHECK: 'blocked' (waiting for its dependencies;
-- in no claim index until released) and 'waiting' (its own work done,
-- waiting for its children). SQLite cannot alter a CHECK constraint, so
-- task_store is rebuilt: every row is copied with its rowid (seq) and id
-- into a new table, the old one dropped and the new one renamed, and the
-- indexes made again. task_init() drops the user's triggers and views that
-- name task_store before this step and recreates them after it.
--
-- New columns: the unique key, per parent how many children it has and
-- how many have finished, per task how many of its dependencies have not
-- completed yet and how many tasks depend on it, and flags (1: has
-- dependencies, 2: a failed child does not fail it, 4: its unique key
-- counts while completed too, 8: its own work is done, 16: a child its
-- parent's rollup reads, 32: it holds its unique key).

ALTER TABLE main.task_store RENAME TO task_store_v2;

CREATE TABLE main.task_store (
  seq          INTEGER PRIMARY KEY,
  id           TEXT    NOT NULL,
  queue        TEXT    NOT NULL,
  type         TEXT    NOT NULL,
  status       TEXT    NOT NULL
               CONSTRAINT task_status CHECK (status = 'queued' OR status = 'running' OR status = 'completed' OR status = 'failed' OR status = 'cancelled' OR status = 'blocked' OR status = 'waiting'),
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
  error        TEXT,
  unique_key   TEXT,
  children     INTEGER NOT NULL DEFAULT 0,
  children_done INTEGER NOT NULL DEFAULT 0,
  waiting_for  INTEGER NOT NULL DEFAULT 0,
  dependents   INTEGER NOT NULL DEFAULT 0,
  flags        INTEGER NOT NULL DEFAULT 0
);

INSERT INTO main.task_store
  (seq, id, queue, type, status, priority, progress, attempts, max_attempts, parent_id,
   worker, lease_until, lease_ms, run_at, created_at, updated_at, started_at, completed_at,
   details, result, error)
SELECT seq, id, queue, type, status, priority, progress, attempts, max_attempts, parent_id,
       worker, lease_until, lease_ms, run_at, created_at, updated_at, started_at, completed_at,
       details, result, error
  FROM main.task_store_v2 ORDER BY seq;

DROP TABLE main.task_store_v2;

CREATE UNIQUE INDEX main.task_store_id ON task_store(id);
CREATE INDEX main.task_store_ready ON task_store(queue, priority DESC, run_at)
  WHERE status = 'queued';
CREATE INDEX main.task_store_running ON task_store(lease_until)
  WHERE status = 'running';
CREATE INDEX main.task_store_parent ON task_store(parent_id)
  WHERE parent_id IS NOT NULL;
-- The tasks no claim takes and that have not completed: failed and
-- cancelled ones (the ones people look for), and those that wait, for their
-- dependencies (blocked) or for their children (waiting). One index for the
-- four: each index a status change may move a row in costs every claim and
-- completion a cursor (see storage/mod.rs). Its condition names the three
-- other statuses, running first: a claim and a completion test it on the
-- old and the new row, and this way it takes them 3 and 4 comparisons
-- instead of 8 and 8 (measured: 845 instructions a claimed row).
CREATE INDEX main.task_store_parked ON task_store(status, type, queue, completed_at)
  WHERE NOT (status = 'running' OR status = 'queued' OR status = 'completed');

-- The next two indexes are partial on flags bits, not on status or
-- progress: a plain task's claim and completion write status and progress
-- but never flags, so they do not maintain these indexes at all.
--
-- The children a parent's rollup must read (flags 16): unfinished ones
-- that have progress of their own or children of their own. A parent's
-- finished children are counted on the parent, and its untouched ones
-- count 0, so a rollup over 10,000 children reads only the few at work.
CREATE INDEX main.task_store_busy ON task_store(parent_id)
  WHERE flags & 16;

-- One task per queue and unique key while it holds the key (flags 32):
-- unfinished, or completed too when its flags say so (run once ever).
CREATE UNIQUE INDEX main.task_store_unique ON task_store(queue, unique_key)
  WHERE flags & 32;

-- Dependencies, by rowid: `task` waits for `dep` to complete.
CREATE TABLE main.task_deps (
  dep  INTEGER NOT NULL,
  task INTEGER NOT NULL,
  PRIMARY KEY (dep, task)
) WITHOUT ROWID;
CREATE INDEX main.task_deps_task ON task_deps(task);

-- parent_id had no consequence before this version; count the children it
-- already names, so that rollups and completions see them.
UPDATE main.task_store
   SET children = (SELECT count(*) FROM main.task_store AS c WHERE c.parent_id = task_store.id),
       children_done = (SELECT count(*) FROM main.task_store AS c
                         WHERE c.parent_id = task_store.id
                           AND (c.status = 'completed' OR c.status = 'failed'
                                OR c.status = 'cancelled'))
 WHERE id IN (SELECT parent_id FROM main.task_store WHERE parent_id IS NOT NULL);

-- The children of version 2 at work that a rollup reads.
UPDATE main.task_store SET flags = flags | 16
 WHERE parent_id IS NOT NULL AND (progress > 0 OR children > 0)
   AND (status = 'queued' OR status = 'running');
