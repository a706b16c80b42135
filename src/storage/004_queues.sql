-- Storage schema version 4: queue settings.
--
-- One row per queue that has settings; a queue without a row has none
-- (not paused, no limit). Every claim seeks its queue's name here (the
-- gate check): in an empty table, or one of a few rows, that is one page. Settings are ordinary rows: they replicate,
-- survive restarts and are read inside the claim statement, so a pause or
-- a limit set by any connection or process holds for the next claim
-- everywhere.
CREATE TABLE main.task_queue_store (
  name         TEXT    NOT NULL PRIMARY KEY,
  paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused = 0 OR paused = 1),
  concurrency  INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- The running tasks that count toward their queue's limit (flags 64: set
-- by the claim of a limited queue, cleared when the task stops running)
-- join the unique-key index, which becomes partial on flags 32 or 64. A
-- plain task never has either bit, and its statements never write flags,
-- so it costs a plain task nothing: an index of its own would have cost
-- every enqueue a cursor (measured: 0.9k instructions, ~3% of an enqueue).
-- A task with flags 64 and no key is no unique-key holder (NULL keys never
-- conflict); one with a key holds it while it runs anyway (flags 32). The
-- running count of queue Q is the range queue = Q of this index: its
-- limited tasks, and its key holders, which the count filters out.
DROP INDEX main.task_store_unique;
CREATE UNIQUE INDEX main.task_store_unique ON task_store(queue, unique_key)
  WHERE flags & 96;

-- Every queue that has settings, queued or running tasks, with its live
-- counts. Plain SQL: readable without the extension.
CREATE VIEW main.task_queues AS
WITH q AS (SELECT queue AS name, count(*) AS n FROM main.task_store
            WHERE status = 'queued' GROUP BY queue),
     r AS (SELECT queue AS name, count(*) AS n FROM main.task_store
            WHERE status = 'running' GROUP BY queue),
     names AS (SELECT name FROM main.task_queue_store
               UNION SELECT name FROM q UNION SELECT name FROM r)
SELECT names.name AS name,
       coalesce(s.paused, 0) AS paused,
       s.concurrency AS concurrency,
       coalesce(q.n, 0) AS queued,
       coalesce(r.n, 0) AS running,
       s.created_at AS created_at,
       s.updated_at AS updated_at
  FROM names
  LEFT JOIN main.task_queue_store AS s ON s.name = names.name
  LEFT JOIN q ON q.name = names.name
  LEFT JOIN r ON r.name = names.name;
