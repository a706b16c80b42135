-- Storage schema version 9: task_queues also counts each queue's blocked
-- tasks (waiting for their dependencies) and waiting ones (parents waiting
-- for their children), and lists a queue whose unfinished tasks are all of
-- those: a queue of a workflow's dependents is no longer missing from the
-- list while they wait. Only the view changes; no table, no row.
--
-- The two new counts read task_store_parked, whose first column is the
-- status: each one's WHERE names the index's condition so that SQLite uses
-- it, and reads the entries of that status and no others (not the failed
-- and cancelled ones, which a queue keeps until they are pruned).
DROP VIEW main.task_queues;
CREATE VIEW main.task_queues AS
WITH q AS (SELECT queue AS name, count(*) AS n FROM main.task_store
            WHERE status = 'queued' GROUP BY queue),
     r AS (SELECT queue AS name, count(*) AS n FROM main.task_store
            WHERE status = 'running' GROUP BY queue),
     b AS (SELECT queue AS name, count(*) AS n FROM main.task_store
            WHERE NOT (status = 'running' OR status = 'queued' OR status = 'completed')
              AND status = 'blocked' GROUP BY queue),
     w AS (SELECT queue AS name, count(*) AS n FROM main.task_store
            WHERE NOT (status = 'running' OR status = 'queued' OR status = 'completed')
              AND status = 'waiting' GROUP BY queue),
     names AS (SELECT name FROM main.task_queue_store
               UNION SELECT name FROM q UNION SELECT name FROM r
               UNION SELECT name FROM b UNION SELECT name FROM w)
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
       s.rate_interval_ms AS rate_interval,
       coalesce(b.n, 0) AS blocked,
       coalesce(w.n, 0) AS waiting
  FROM names
  LEFT JOIN main.task_queue_store AS s ON s.name = names.name
  LEFT JOIN q ON q.name = names.name
  LEFT JOIN r ON r.name = names.name
  LEFT JOIN b ON b.name = names.name
  LEFT JOIN w ON w.name = names.name;
