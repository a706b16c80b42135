-- Storage schema version 6: the event log. Additive: no table is rebuilt,
-- no existing row changes.
--
-- One row per transition of a task (enqueued, claimed, a written progress
-- report, completed, failed, cancelled, retried, an expired lease, released
-- by its dependencies, waiting for its children, changed by an UPDATE of
-- the tasks table), written by the statement that makes the transition:
-- a rolled-back transition leaves no event, a committed one has its event.
--
-- seq is the rowid: a new event takes the largest seq + 1 (no
-- AUTOINCREMENT, which would write sqlite_sequence in every transaction),
-- and pruning never deletes the newest event, so seq only grows. Rows are
-- appended to the table's last page, the one page an event costs its
-- transaction. No column has a constraint: an INSERT that cannot fail
-- needs no statement journal inside the transition's statement.
--
-- kind and status are small codes (the task_events view names them):
--   kind   1 enqueued, 2 claimed, 3 progress, 4 completed, 5 failed,
--          6 cancelled, 7 retried, 8 expired, 9 released, 10 waiting,
--          11 updated
--   status 1 queued, 2 running, 3 completed, 4 failed, 5 cancelled,
--          6 blocked, 7 waiting
CREATE TABLE main.task_event_store (
  seq      INTEGER PRIMARY KEY,
  task_id  TEXT,
  at       INTEGER,
  kind     INTEGER,
  status   INTEGER,
  attempt  INTEGER,
  worker   TEXT,
  error    TEXT,
  progress NUMERIC
);

-- Which events a queue keeps: 0 all (the default, also for a queue with no
-- settings row), 1 transitions only (no progress reports), 2 none.
ALTER TABLE main.task_queue_store ADD COLUMN events INTEGER NOT NULL DEFAULT 0;

-- The events, named, with the task's queue and type. Plain SQL: readable
-- without the extension. A follower reads
--   SELECT * FROM task_events WHERE seq > :cursor ORDER BY seq
-- which is a range of the table's rowid and one seek per event for its task.
-- The events of a deleted task are not shown.
CREATE VIEW main.task_events AS
SELECT e.seq AS seq,
       e.task_id AS task_id,
       t.queue AS queue,
       t.type AS type,
       CASE e.kind WHEN 1 THEN 'enqueued' WHEN 2 THEN 'claimed' WHEN 3 THEN 'progress'
                   WHEN 4 THEN 'completed' WHEN 5 THEN 'failed' WHEN 6 THEN 'cancelled'
                   WHEN 7 THEN 'retried' WHEN 8 THEN 'expired' WHEN 9 THEN 'released'
                   WHEN 10 THEN 'waiting' WHEN 11 THEN 'updated' END AS kind,
       CASE e.status WHEN 1 THEN 'queued' WHEN 2 THEN 'running' WHEN 3 THEN 'completed'
                     WHEN 4 THEN 'failed' WHEN 5 THEN 'cancelled' WHEN 6 THEN 'blocked'
                     WHEN 7 THEN 'waiting' END AS status,
       e.at AS at,
       e.attempt AS attempt,
       e.worker AS worker,
       e.error AS error,
       e.progress AS progress
  FROM main.task_event_store AS e
  JOIN main.task_store AS t ON t.id = e.task_id;
