-- Storage schema version 8: a parent's count of unfinished children moves
-- to a narrow row of its own. No table is rebuilt, no task row is lost.
--
-- Every child that finishes counts its parent down. On the parent's
-- task_store row that count cost an UPDATE that rewrites all 27 columns
-- (about 10,500 instructions, a quarter of a plain task's completion); on
-- a row of three columns it costs about a third of that. The row also says
-- by itself when the last child has finished (unfinished reaches 0), so a
-- child's completion reads its parent's task row only then.
--
--   seq         the parent's rowid in task_store
--   id          the parent's id, checked on every use: a rowid is taken
--               again if the parent's row is deleted by hand
--   unfinished  its children that have not finished (completed, failed or
--               cancelled)
--
-- A row is made with a task's first child and goes when the task is
-- deleted. The tasks table's children_done is children - unfinished.
--
-- task_store.children_done is no longer kept. SQLite before 3.35 cannot
-- drop a column, so it is zeroed and renamed retired_children_done: a
-- query that still reads children_done from task_store fails instead of
-- reading a count that no longer moves.
CREATE TABLE main.task_parent_store (
  seq        INTEGER PRIMARY KEY,
  id         TEXT    NOT NULL,
  unfinished INTEGER NOT NULL
);

INSERT INTO main.task_parent_store (seq, id, unfinished)
SELECT seq, id, max(children - children_done, 0) FROM main.task_store WHERE children > 0;

UPDATE main.task_store SET children_done = 0 WHERE children_done <> 0;

ALTER TABLE main.task_store RENAME COLUMN children_done TO retired_children_done;
