-- The queue people write by hand on Postgres, shaped like the raw SQLite table of
-- bench/src/queue.rs (RAW_SCHEMA): the same columns, text ids (a time-ordered UUIDv7, as raw's),
-- integer milliseconds for times, text for details and result. The one Postgres habit added is
-- the partial index the claim reads: only queued rows are in it, so completed rows cost the
-- claim nothing once vacuum has removed their old versions.
DROP TABLE IF EXISTS jobs;
CREATE TABLE jobs(
  id text PRIMARY KEY, queue text NOT NULL, type text NOT NULL, status text NOT NULL,
  priority integer NOT NULL DEFAULT 0, details text, result text, error text,
  attempts integer NOT NULL DEFAULT 0, max_attempts integer NOT NULL DEFAULT 3, worker text,
  lease_until bigint, run_at bigint NOT NULL, created_at bigint NOT NULL,
  updated_at bigint NOT NULL, started_at bigint, completed_at bigint);
CREATE INDEX jobs_ready ON jobs(queue, priority DESC, run_at) WHERE status = 'queued';

-- The transaction's time in milliseconds (an SQL function the planner inlines).
CREATE OR REPLACE FUNCTION bench_ms() RETURNS bigint LANGUAGE sql STABLE
  AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

-- A UUIDv7 as text: 48 bits of milliseconds, then the version nibble 7, then the random bits
-- and variant of a v4 UUID (Postgres 15 has no uuidv7(); the SQLite harness makes its ids with
-- uuid::now_v7). One expression, so the planner inlines it.
CREATE OR REPLACE FUNCTION bench_uuid7() RETURNS text LANGUAGE sql VOLATILE
  AS $$
  SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7'
          || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid::text
  $$;
