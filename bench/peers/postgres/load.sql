-- Before each cycle or batch run (untimed): :n queued tasks in one transaction, then the
-- statistics and a checkpoint, as the SQLite cases checkpoint their WAL before timing.
TRUNCATE jobs;
INSERT INTO jobs SELECT * FROM jobs_seed LIMIT :n;
VACUUM ANALYZE jobs;
CHECKPOINT;
