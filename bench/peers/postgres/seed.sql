-- The backlogs the cycle and batch runs start from, made once per bench run: :n queued tasks
-- as raw's enqueue writes them (load.sql copies them into jobs before each run).
DROP TABLE IF EXISTS jobs_seed;
CREATE TABLE jobs_seed AS
  SELECT bench_uuid7() AS id, 'default'::text AS queue, 'bench'::text AS type,
         'queued'::text AS status, 0 AS priority, '{"n":' || i || '}' AS details,
         NULL::text AS result, NULL::text AS error, 0 AS attempts, 3 AS max_attempts,
         NULL::text AS worker, NULL::bigint AS lease_until, bench_ms() AS run_at,
         bench_ms() AS created_at, bench_ms() AS updated_at, NULL::bigint AS started_at,
         NULL::bigint AS completed_at
  FROM generate_series(1, :n) AS i;
