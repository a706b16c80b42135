-- Storage schema version 7: per-queue defaults and rate limits. Additive:
-- no table is rebuilt, no existing row changes.
--
-- A queue's defaults apply where a call gives none: the lease of a claim
-- of its tasks, the max_attempts of a task enqueued into it, the backoff
-- of a retry (base, doubled each attempt, capped). NULL: the built-in
-- default (5 minutes, 3, 1 s capped at 1 hour).
ALTER TABLE main.task_queue_store ADD COLUMN lease_ms INTEGER
  CHECK (lease_ms IS NULL OR lease_ms >= 1);
ALTER TABLE main.task_queue_store ADD COLUMN max_attempts INTEGER
  CHECK (max_attempts IS NULL OR max_attempts >= 1);
ALTER TABLE main.task_queue_store ADD COLUMN backoff_ms INTEGER
  CHECK (backoff_ms IS NULL OR backoff_ms >= 0);
ALTER TABLE main.task_queue_store ADD COLUMN backoff_max_ms INTEGER
  CHECK (backoff_max_ms IS NULL OR backoff_max_ms >= 0);

-- A rate limit: at most rate_limit claims of the queue's tasks in any
-- rate_interval_ms. Both or neither. A rate-limited queue is gated, as a
-- paused or a limited one is: the plain claim statements leave its rows.
ALTER TABLE main.task_queue_store ADD COLUMN rate_limit INTEGER
  CHECK (rate_limit IS NULL OR rate_limit >= 1);
ALTER TABLE main.task_queue_store ADD COLUMN rate_interval_ms INTEGER
  CHECK ((rate_interval_ms IS NULL) = (rate_limit IS NULL) AND
         (rate_interval_ms IS NULL OR rate_interval_ms >= 1));

-- The claims a rate limit counts: one row per claim round of a
-- rate-limited queue (n tasks at time at), written under the write lock in
-- the claim's transaction; rows older than the queue's interval are
-- deleted by the next claim of that queue. A plain queue never writes here.
CREATE TABLE main.task_rate_store (
  queue TEXT    NOT NULL,
  at    INTEGER NOT NULL,
  n     INTEGER NOT NULL
);
CREATE INDEX main.task_rate_store_queue ON task_rate_store(queue, at);

-- The queues view gains the new settings.
DROP VIEW main.task_queues;
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
       s.updated_at AS updated_at,
       s.lease_ms AS lease,
       s.max_attempts AS max_attempts,
       s.backoff_ms AS backoff,
       s.backoff_max_ms AS backoff_max,
       s.rate_limit AS rate_limit,
       s.rate_interval_ms AS rate_interval
  FROM names
  LEFT JOIN main.task_queue_store AS s ON s.name = names.name
  LEFT JOIN q ON q.name = names.name
  LEFT JOIN r ON r.name = names.name;
