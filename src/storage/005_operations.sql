-- Storage schema version 5: recurring schedules and per-queue retention.
-- Additive: no table is rebuilt, no existing row changes.
--
-- A schedule is a row: its expression (5-field cron or @every, UTC), the
-- task each occurrence enqueues (type, details and the enqueue options it
-- passes on), its catch-up rule, and next_at, the first occurrence not yet
-- enqueued. task_tick() and claims enqueue what is due: they find it with
-- one seek of task_schedule_due, then move next_at forward with a
-- compare-and-set in the same transaction as the enqueue, so two processes
-- ticking at once cannot both enqueue an occurrence.
CREATE TABLE main.task_schedule_store (
  name            TEXT    NOT NULL PRIMARY KEY,
  spec            TEXT    NOT NULL,
  type            TEXT    NOT NULL,
  details         TEXT,
  queue           TEXT    NOT NULL,
  priority        INTEGER NOT NULL DEFAULT 0,
  max_attempts    INTEGER,
  unique_key      TEXT,
  on_conflict     TEXT,
  unique_scope    TEXT,
  catch_up        TEXT    NOT NULL DEFAULT 'latest'
                  CHECK (catch_up = 'latest' OR catch_up = 'all'),
  catch_up_window INTEGER CHECK (catch_up_window IS NULL OR catch_up_window > 0),
  paused          INTEGER NOT NULL DEFAULT 0 CHECK (paused = 0 OR paused = 1),
  next_at         INTEGER,
  last_at         INTEGER,
  last_task       TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- The schedules a tick or a claim may have to act on, by due time: the
-- check "is anything due" is the first entry of this index.
CREATE INDEX main.task_schedule_due ON task_schedule_store(next_at)
  WHERE paused = 0 AND next_at IS NOT NULL;

-- One row per enqueued occurrence: the storage's own guarantee that a
-- schedule enqueues an occurrence time once (the primary key), beside the
-- compare-and-set on next_at. Rows older than a prune's cutoff go with it.
CREATE TABLE main.task_schedule_runs (
  schedule TEXT    NOT NULL,
  at       INTEGER NOT NULL,
  task     TEXT    NOT NULL,
  PRIMARY KEY (schedule, at)
) WITHOUT ROWID;

-- The schedules with their next occurrence. Plain SQL: readable without the
-- extension.
CREATE VIEW main.task_schedules AS
SELECT name, spec, type, details, queue, priority, max_attempts, unique_key,
       catch_up, catch_up_window, paused = 1 AS paused, next_at, last_at, last_task,
       created_at, updated_at
  FROM main.task_schedule_store;

-- Per-queue retention: finished tasks of the queue older than this many ms
-- (by completed_at) are pruned by task_tick(), a bounded step at a time;
-- NULL keeps them. retention_cursor is where the queue's last step ended
-- (a seq), so steps walk the table instead of rereading its start.
ALTER TABLE main.task_queue_store ADD COLUMN retain_completed INTEGER;
ALTER TABLE main.task_queue_store ADD COLUMN retain_failed INTEGER;
ALTER TABLE main.task_queue_store ADD COLUMN retain_cancelled INTEGER;
ALTER TABLE main.task_queue_store ADD COLUMN retention_cursor INTEGER NOT NULL DEFAULT 0;
