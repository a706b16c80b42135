//! `task_tree(root)`: a task and all its descendants, one row each, in
//! tree order (each task before its children, children in enqueue order),
//! with their depth below the root and their progress (for a task with
//! children, the rollup of theirs). An eponymous table-valued function:
//! `SELECT * FROM task_tree('0193…')`, whose hidden `root` column takes
//! the argument.

use super::args::{Arg, Name};
use crate::error::{Error, Result};
use crate::ffi::{self, ColumnResult, IndexInfo, Stmt, ValueRef};
use crate::queue::{Queue, Status, children_open, ids::parse_id, tree, writeback};
use std::ffi::CStr;
use std::os::raw::c_int;
use std::rc::Rc;

/// The columns: those of the query below, in its order, then `root`.
const DECLARATION: &CStr = c"CREATE TABLE x(id TEXT, parent_id TEXT, depth INTEGER, queue TEXT, \
    type TEXT, status TEXT, progress NUMERIC, children INTEGER, children_done INTEGER, \
    worker TEXT, error TEXT, root TEXT HIDDEN)";
const PROGRESS: c_int = 6;
const CHILDREN: c_int = 7;
const CHILDREN_DONE: c_int = 8;
const ID: c_int = 0;
const STATUS: c_int = 5;
const ROOT: c_int = 11;
/// After the declared columns: the rowid and the attempt.
const SEQ: c_int = 11;
const ATTEMPTS: c_int = 12;

// Depth first: the queue of the recursion is ordered deepest first, then by
// rowid, so each task is followed by its subtree before its next sibling.
// Deeper than 64 is not descended (a parent cycle made by hand).
const TREE_SQL: &str = concat!(
    "\
WITH RECURSIVE tree(id, parent_id, depth, queue, type, status, progress, children,
                    children_done, worker, error, seq, attempts) AS (
  SELECT id, parent_id, 0, queue, type, status, progress, children, children - (",
    children_open!("task_store"),
    "), worker,
         error, seq, attempts
    FROM main.task_store WHERE id = +?1
  UNION ALL
  SELECT c.id, c.parent_id, tree.depth + 1, c.queue, c.type, c.status, c.progress, c.children,
         c.children - (",
    children_open!("c"),
    "), c.worker, c.error, c.seq, c.attempts
    FROM tree JOIN main.task_store AS c ON c.parent_id = tree.id
   WHERE tree.depth < 64
   ORDER BY 3 DESC, 12)
SELECT * FROM tree"
);

/// Registers the table on `conn`'s database.
pub fn register(conn: &ffi::Conn, q: Rc<Queue>) -> Result<()> {
    ffi::register_table::<TaskTree>(conn, c"task_tree", q)
}

pub struct TaskTree {
    q: Rc<Queue>,
}

pub struct Walk {
    q: Rc<Queue>,
    stmt: Option<Stmt>,
}

impl ffi::Table for TaskTree {
    type Aux = Rc<Queue>;
    type Cursor = Walk;
    const NAME: &'static str = "task_tree";

    fn declaration() -> &'static CStr {
        DECLARATION
    }

    fn connect(q: &Rc<Queue>) -> Result<TaskTree> {
        Ok(TaskTree { q: Rc::clone(q) })
    }

    fn disconnect(&self) {}

    fn best_index(&self, info: &mut IndexInfo<'_>) -> Result<()> {
        let root = info
            .constraints()
            .iter()
            .position(|c| c.usable && c.is_eq && c.column == ROOT);
        match root {
            Some(i) => {
                info.use_constraint(i, 1, true);
                info.set_idx_num(1);
                info.set_estimate(10, 10.0);
            }
            // Without a root there is nothing to walk: the plan SQLite
            // must not choose (xFilter says so if it does).
            None => info.set_estimate(1_000_000_000, 1e18),
        }
        Ok(())
    }

    fn open(&self) -> Result<Walk> {
        Ok(Walk {
            q: Rc::clone(&self.q),
            stmt: None,
        })
    }

    fn update(&self, _: &[ValueRef<'_>]) -> Result<Option<i64>> {
        Err(Error::new(
            "task_tree is read-only; change tasks through the tasks table",
        ))
    }
}

impl ffi::Cursor for Walk {
    fn filter(&mut self, idx_num: c_int, args: &[ValueRef<'_>]) -> Result<()> {
        self.stmt = None;
        let root = match (idx_num, args.first()) {
            (1, Some(v)) => Arg {
                value: v.get(),
                name: Name::Arg("root"),
            }
            .text()?,
            _ => {
                return Err(Error::new(
                    "give the id of the root task: SELECT * FROM task_tree('…')",
                ));
            }
        };
        let root = parse_id("root", root)?;
        self.q.ensure_ready()?;
        let mut st = self.q.prepare(TREE_SQL)?;
        st.bind_text(1, &root)?;
        if st.step()? {
            self.stmt = Some(st);
        }
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(st) = self.stmt.as_mut()
            && !st.step()?
        {
            self.stmt = None;
        }
        Ok(())
    }

    fn eof(&self) -> bool {
        self.stmt.is_none()
    }

    fn column(&self, out: &mut ColumnResult<'_>, i: c_int) -> Result<()> {
        let Some(st) = &self.stmt else {
            out.set_null();
            return Ok(());
        };
        if i == PROGRESS && st.column_i64(CHILDREN) > 0 {
            let done = st.column_text(STATUS).as_deref() == Some(Status::Completed.as_str());
            let p = if done {
                100.0
            } else {
                let id = st.column_text(ID).unwrap_or_default();
                tree::rollup(
                    &self.q,
                    &id,
                    st.column_i64(SEQ),
                    st.column_i64(CHILDREN),
                    st.column_i64(CHILDREN_DONE),
                )?
            };
            set_number(out, p);
        } else if let Some(h) = (i == PROGRESS && writeback::any())
            .then(|| held(&self.q, st))
            .flatten()
        {
            set_number(out, h);
        } else if i < ROOT {
            out.set_column(st, i);
        } else {
            out.set_null();
        }
        Ok(())
    }

    fn rowid(&self) -> Result<i64> {
        Ok(self.stmt.as_ref().map_or(0, |st| st.column_i64(SEQ)))
    }
}

/// The progress write-back holds for a running task of this process, if
/// any (as the tasks table shows it).
fn held(q: &Queue, st: &Stmt) -> Option<f64> {
    let running = st.column_text(STATUS).as_deref() == Some(Status::Running.as_str());
    let id = st.column_text(ID)?;
    writeback::get(q.key(), &id)
        .filter(|h| running && h.attempt == st.column_i64(ATTEMPTS))
        .map(|h| h.percent)
}

fn set_number(out: &mut ColumnResult<'_>, v: f64) {
    if v.fract() == 0.0 {
        out.set_i64(v as i64);
    } else {
        out.set_f64(v);
    }
}
