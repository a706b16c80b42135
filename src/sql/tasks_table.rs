//! The `tasks` table: the live view of the queue, and a second way to
//! enqueue (INSERT), reschedule, cancel or retry (UPDATE) and purge
//! (DELETE), with the same rules as the functions (it calls the queue).
//!
//! HOW IT WORKS. The table is eponymous (`SELECT * FROM tasks` works
//! without CREATE VIRTUAL TABLE) and reads `task_store` through ordinary
//! SQL. `xBestIndex` passes equality constraints on the five columns of
//! [`FILTERS`] down to the storage; the idxNum it picks is a bit set:
//!
//! | bit | constraint | storage |
//! |---|---|---|
//! | 0 (1) | `id = ?` | `task_store_id`: one row, no rowid bound |
//! | 1 (2) | `queue = ?` | split by status (see `tasks_query.rs`) |
//! | 2 (4) | `type = ?` | split by status |
//! | 3 (8) | `status = ?` | the status's partial index, or the table for completed |
//! | 4 (16) | `parent_id = ?` | `task_store_parent` |
//! | 5 (32) | `rowid = ?` (UPDATE's own lookup, never chosen by the planner) | the rowid |
//!
//! The values of the used constraints reach `xFilter` in bit order, and the
//! storage query for each idxNum is a static string generated at build
//! time (`build.rs`); `EXPLAIN QUERY PLAN` shows it as the idxStr. A scan
//! that is not a lookup by id is bounded by the highest rowid when it
//! began, so rows it causes to be added are not read.
//!
//! Its connect and disconnect are also where the connection's statement
//! pool is anchored and emptied: SQLite disconnects the table before
//! `sqlite3_close` checks for unfinalized statements (see `ffi/conn.rs`).

use super::args::{Arg, Name};
use super::tasks_query::{BY_ID, BY_PARENT, BY_SEQ, Col, FILTERS, FLAGS, SEQ, VISIBLE};
use crate::error::{Error, Result};
use crate::ffi::{self, ColumnResult, IndexInfo, Stmt, Value, ValueRef};
use crate::queue::model::{flags, quoted};
use crate::queue::{self, NewTask, Queue, Reschedule, Status, tree, writeback};
use std::ffi::CStr;
use std::os::raw::c_int;
use std::rc::Rc;

// The declaration and the storage SELECT for each idxNum, generated at
// build time from `tasks_query.rs`: static tables, so nothing is allocated
// that a host unloading the library (dlclose) would leak.
include!(concat!(env!("OUT_DIR"), "/tasks_sql.rs"));

fn select_sql(idx: usize) -> &'static CStr {
    SELECT_SQL
        .get(idx)
        .copied()
        .unwrap_or(c"SELECT NULL WHERE 0")
}

/// The storage query a given idxNum runs.
fn query_for(idx: usize) -> &'static str {
    select_sql(idx).to_str().unwrap_or("SELECT NULL WHERE 0")
}

/// Registers the table on `conn`'s database.
pub fn register(conn: &ffi::Conn, q: Rc<Queue>) -> Result<()> {
    ffi::register_table::<Tasks>(conn, c"tasks", q)
}

pub struct Tasks {
    q: Rc<Queue>,
}

pub struct Scan {
    q: Rc<Queue>,
    stmt: Option<Stmt>,
    /// Highest rowid when this cursor's first scan began; later rows are
    /// not read.
    bound: Option<i64>,
}

impl ffi::Table for Tasks {
    type Aux = Rc<Queue>;
    type Cursor = Scan;
    const NAME: &'static str = "tasks";

    fn declaration() -> &'static CStr {
        DECLARATION
    }

    fn connect(q: &Rc<Queue>) -> Result<Tasks> {
        q.table_connected(true);
        Ok(Tasks { q: Rc::clone(q) })
    }

    fn disconnect(&self) {
        self.q.table_connected(false);
    }

    fn best_index(&self, info: &mut IndexInfo<'_>) -> Result<()> {
        let cons = info.constraints();
        let mut mask = 0usize;
        let mut argv = 0;
        // argv order must match the WHERE order in build_select: by bit.
        for (bit, (col, _)) in FILTERS.iter().enumerate() {
            let found = cons.iter().enumerate().position(|(i, c)| {
                c.usable
                    && c.is_eq
                    && usize::try_from(c.column).ok() == Some(*col as usize)
                    // `status IN (...)` would be filtered once per value,
                    // and a task whose status a function changes between
                    // two values would be read twice: leave such lists to
                    // SQLite (detectable on SQLite 3.38+).
                    && !(*col == Col::Status && info.is_in_list(i))
            });
            if let Some(i) = found {
                mask |= 1 << bit;
                argv += 1;
                info.use_constraint(i, argv, true);
            }
        }
        info.set_idx_num(c_int::try_from(mask).unwrap_or(0));
        // The storage query, visible in EXPLAIN QUERY PLAN output of the
        // outer statement (tests check which index it uses).
        info.set_idx_str(select_sql(mask));
        // Rough selectivities: an id is unique, a parent has a few children,
        // a status/queue/type filter still matches many rows.
        let (rows, cost) = if mask & BY_ID != 0 {
            (1, 1.0)
        } else if mask & BY_PARENT != 0 {
            (10, 10.0)
        } else if mask != 0 {
            (
                10_000 >> mask.count_ones().min(3),
                10_000.0 / f64::from(mask.count_ones()),
            )
        } else {
            (1_000_000, 1_000_000.0)
        };
        info.set_estimate(rows, cost);
        if mask & BY_ID != 0 {
            info.set_unique();
        }
        Ok(())
    }

    fn open(&self) -> Result<Scan> {
        Ok(Scan {
            q: Rc::clone(&self.q),
            stmt: None,
            bound: None,
        })
    }

    fn update(&self, args: &[ValueRef<'_>]) -> Result<Option<i64>> {
        let q = &self.q;
        q.ensure_writable()?;
        let values: Vec<Value<'_>> = args.iter().map(|v| v.get()).collect();
        match values.as_slice() {
            [Value::Integer(seq)] => queue::delete(q, *seq).map(|_| None),
            [Value::Null, new_rowid, cols @ ..] => insert(q, *new_rowid, cols).map(Some),
            [Value::Integer(old), new_rowid, cols @ ..] => {
                // The columns the UPDATE sets (SQLite marks the others).
                let set: Vec<bool> = args.iter().skip(2).map(|v| !v.unchanged()).collect();
                update_row(q, *old, *new_rowid, cols, &set).map(|()| None)
            }
            _ => Err(Error::new("unsupported change")),
        }
    }
}

impl ffi::Cursor for Scan {
    fn filter(&mut self, idx_num: c_int, args: &[ValueRef<'_>]) -> Result<()> {
        self.stmt = None;
        self.q.ensure_ready()?;
        let idx = usize::try_from(idx_num).unwrap_or(0);
        let mut st = self.q.prepare(query_for(idx))?;
        for (i, v) in args.iter().enumerate() {
            st.bind_value(c_int::try_from(i + 1).unwrap_or(0), *v)?;
        }
        if idx & (BY_ID | BY_SEQ) == 0 {
            let bound = match self.bound {
                Some(b) => b,
                None => {
                    let b = crate::queue::prune::max_seq(&self.q)?;
                    self.bound = Some(b);
                    b
                }
            };
            st.bind_i64(c_int::try_from(args.len() + 1).unwrap_or(0), bound)?;
        }
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
        // Read for an UPDATE that does not set it: no value needed (and
        // xUpdate then knows the column is not being set).
        if out.unchanged() {
            return Ok(());
        }
        let col = usize::try_from(i).ok().and_then(Col::at);
        match (&self.stmt, col) {
            (Some(st), Some(c)) if (c as usize) < VISIBLE => match shown(&self.q, st, c)? {
                Shown::Stored => out.set_column(st, i),
                Shown::Number(v) if v.fract() == 0.0 => out.set_i64(v as i64),
                Shown::Number(v) => out.set_f64(v),
                Shown::Text(t) => out.set_text(&t),
                Shown::Null => out.set_null(),
            },
            _ => out.set_null(),
        }
        Ok(())
    }

    fn rowid(&self) -> Result<i64> {
        let seq = c_int::try_from(SEQ).unwrap_or(0);
        Ok(self.stmt.as_ref().map_or(0, |st| st.column_i64(seq)))
    }
}

/// What a visible column shows, when it is not the stored value.
enum Shown {
    Stored,
    Number(f64),
    Text(String),
    Null,
}

fn int(st: &Stmt, c: Col) -> i64 {
    st.column_i64(c as c_int)
}

/// The value column `c` of the storage row `st` shows: a parent's progress
/// is the rollup of its children's; a held write-back value (any
/// connection of this process) is fresher than the stored one; the
/// dependencies are read from task_deps.
fn shown(q: &Queue, st: &Stmt, c: Col) -> Result<Shown> {
    match c {
        Col::Progress if int(st, Col::Children) > 0 => {
            let id = st.column_text(Col::Id as c_int).unwrap_or_default();
            let seq = st.column_i64(SEQ as c_int);
            if st.column_text(Col::Status as c_int).as_deref() == Some(Status::Completed.as_str()) {
                return Ok(Shown::Number(100.0));
            }
            let r = tree::rollup(
                q,
                &id,
                seq,
                int(st, Col::Children),
                int(st, Col::ChildrenDone),
            )?;
            Ok(Shown::Number(r))
        }
        Col::Progress if writeback::any() => {
            let held = st
                .column_text(Col::Id as c_int)
                .and_then(|id| writeback::get(q.key(), &id))
                .filter(|h| {
                    st.column_text(Col::Status as c_int).as_deref()
                        == Some(Status::Running.as_str())
                        && h.attempt == int(st, Col::Attempts)
                });
            Ok(held.map_or(Shown::Stored, |h| Shown::Number(h.percent)))
        }
        Col::DependsOn if st.column_i64(FLAGS as c_int) & flags::HAS_DEPS != 0 => {
            let ids = queue::deps::of(q, st.column_i64(SEQ as c_int))?;
            Ok(Shown::Text(queue::deps::json(&ids)))
        }
        Col::DependsOn => Ok(Shown::Null),
        _ => Ok(Shown::Stored),
    }
}

/// Column `c` of an INSERT or UPDATE (NULL when not given).
fn col<'a>(cols: &[Value<'a>], c: Col) -> Arg<'a> {
    Arg {
        value: cols.get(c as usize).copied().unwrap_or(Value::Null),
        name: Name::Column(c.name()),
    }
}

/// INSERT INTO tasks(...): the same as task_enqueue. Columns the queue
/// manages (worker, attempts, timestamps, ...) must be left out.
fn insert(q: &Queue, rowid: Value<'_>, cols: &[Value<'_>]) -> Result<i64> {
    if rowid != Value::Null {
        return Err(Error::new("rowid cannot be set; it is assigned on INSERT"));
    }
    const SETTABLE: [Col; 17] = [
        Col::Id,
        Col::Queue,
        Col::Type,
        Col::Status,
        Col::Priority,
        Col::Details,
        Col::MaxAttempts,
        Col::ParentId,
        Col::RunAt,
        Col::UniqueKey,
        Col::DependsOn,
        Col::Delay,
        Col::Now,
        Col::OnConflict,
        Col::UniqueScope,
        Col::OnChildFailure,
        Col::WaitForChildren,
    ];
    for &c in Col::ALL.iter().take(cols.len()) {
        if !SETTABLE.contains(&c) && col(cols, c).value != Value::Null {
            return Err(Error::new(format!(
                "column {} cannot be set on INSERT; the queue manages it",
                c.name()
            )));
        }
    }
    if let Some(s) = col(cols, Col::Status).opt_text()?
        && s != Status::Queued.as_str()
    {
        return Err(Error::new(format!(
            "a new task's status is 'queued', got {}",
            quoted(s)
        )));
    }
    let kind = match col(cols, Col::Type).opt_text()? {
        Some(t) if !t.is_empty() => t,
        _ => return Err(Error::new("type must be given and not empty")),
    };
    let task = NewTask {
        kind,
        details: col(cols, Col::Details).opt_text()?,
        queue: col(cols, Col::Queue).opt_text()?,
        priority: col(cols, Col::Priority).opt_whole()?,
        run_at: col(cols, Col::RunAt).opt_whole()?,
        delay: col(cols, Col::Delay).opt_whole()?,
        max_attempts: col(cols, Col::MaxAttempts).opt_whole()?,
        parent_id: col(cols, Col::ParentId).opt_text()?,
        id: col(cols, Col::Id).opt_text()?,
        now: col(cols, Col::Now).opt_whole()?,
        depends_on: ids_column(col(cols, Col::DependsOn))?,
        unique_key: col(cols, Col::UniqueKey).opt_text()?,
        on_conflict: col(cols, Col::OnConflict).opt_text()?,
        unique_scope: col(cols, Col::UniqueScope).opt_text()?,
        on_child_failure: col(cols, Col::OnChildFailure).opt_text()?,
        wait_for_children: col(cols, Col::WaitForChildren).opt_whole()?.map(|g| g != 0),
    };
    queue::enqueue(q, &task).map(|t| t.seq)
}

/// `depends_on` as written to the table: a JSON array of ids, or NULL.
fn ids_column(arg: Arg<'_>) -> Result<Vec<String>> {
    let Some(text) = arg.opt_text()? else {
        return Ok(Vec::new());
    };
    serde_json::from_str::<Vec<String>>(text)
        .map_err(|_| Error::new("column depends_on must be a JSON array of task ids"))
}

/// Values equal as SQL would store them (an integer equals the same real).
fn same(a: Value<'_>, b: Value<'_>) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Real(y)) | (Value::Real(y), Value::Integer(x)) => {
            (x as f64) == y
        }
        _ => a == b,
    }
}

/// UPDATE tasks SET ...: the change is the columns the UPDATE sets (`set`,
/// as SQLite marks them) to a value other than the one stored (or shown).
/// Either a status change alone (to 'cancelled' to cancel, or to 'queued'
/// to retry a failed or cancelled task), or new queue, priority, run_at or
/// max_attempts for a task that has not started (a reschedule); anything
/// else is refused, naming the column.
fn update_row(
    q: &Queue,
    old: i64,
    new_rowid: Value<'_>,
    cols: &[Value<'_>],
    set: &[bool],
) -> Result<()> {
    if new_rowid != Value::Integer(old) {
        return Err(Error::new("rowid cannot be changed"));
    }
    let mut st = q.prepare(query_for(BY_SEQ))?;
    st.bind_i64(1, old)?;
    if !st.step()? {
        return Err(Error::new("the task was deleted concurrently"));
    }
    let id = st.column_text(Col::Id as c_int).unwrap_or_default();
    // The progress SQLite read may be a write-back value (see `column`).
    let held = writeback::get(q.key(), &id).map(|h| Value::Real(h.percent));
    let mut changed = Vec::new();
    for &c in &Col::ALL[..VISIBLE] {
        if !set.get(c as usize).copied().unwrap_or(true) {
            continue;
        }
        let current = st.column(c as c_int);
        let new = col(cols, c).value;
        // SQLite passes the value it read, which may be the one shown
        // rather than the one stored (see `shown`).
        let unchanged = same(current, new)
            || (c == Col::Progress && held.is_some_and(|h| same(h, new)))
            || match shown(q, &st, c)? {
                Shown::Stored => false,
                Shown::Number(v) => same(Value::Real(v), new),
                Shown::Text(t) => new == Value::Text(&t),
                Shown::Null => new == Value::Null,
            };
        if !unchanged {
            changed.push(c);
        }
    }
    drop(st);
    let now = col(cols, Col::Now).opt_whole()?;
    if changed.is_empty() {
        return Ok(());
    }
    if changed.contains(&Col::Status) {
        if changed.len() > 1 {
            return Err(Error::new(
                "change status in an UPDATE of its own (other columns changed too)",
            ));
        }
        let to = col(cols, Col::Status).opt_text()?;
        return match to.and_then(Status::parse) {
            Some(Status::Cancelled) => queue::cancel(q, &id, now),
            Some(Status::Queued) => queue::retry(q, &id, now).map(|_| ()),
            _ => Err(Error::new(format!(
                "status can only be set to 'cancelled' or to 'queued' (retry), got {}",
                to.map_or("NULL".to_string(), quoted)
            ))),
        };
    }
    const RESCHEDULABLE: [Col; 4] = [Col::Queue, Col::Priority, Col::RunAt, Col::MaxAttempts];
    if let Some(&bad) = changed.iter().find(|c| !RESCHEDULABLE.contains(c)) {
        return Err(Error::new(format!(
            "column {} cannot be changed; only queue, priority, run_at and max_attempts \
             of a queued task, or status",
            bad.name()
        )));
    }
    // A changed column's new value; NULL is refused (the storage needs one).
    let new_int = |c: Col| -> Result<Option<i64>> {
        if !changed.contains(&c) {
            return Ok(None);
        }
        col(cols, c)
            .opt_whole()?
            .map(Some)
            .ok_or_else(|| Error::new(format!("{} cannot be NULL", c.name())))
    };
    let r = Reschedule {
        queue: if changed.contains(&Col::Queue) {
            Some(
                col(cols, Col::Queue)
                    .opt_text()?
                    .ok_or_else(|| Error::new("queue cannot be NULL"))?
                    .to_string(),
            )
        } else {
            None
        },
        priority: new_int(Col::Priority)?,
        run_at: new_int(Col::RunAt)?,
        max_attempts: new_int(Col::MaxAttempts)?,
        now,
    };
    queue::reschedule(q, &id, &r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tasks_query::{COLUMNS, QUERIES, build_select, declaration};

    #[test]
    fn the_generated_strings_are_the_builder_s() {
        for (mask, sql) in SELECT_SQL.iter().enumerate() {
            assert_eq!(sql.to_str().unwrap(), build_select(mask));
        }
        assert_eq!(SELECT_SQL.len(), QUERIES);
        assert_eq!(DECLARATION.to_str().unwrap(), declaration());
    }

    #[test]
    fn columns_are_named_and_indexed_once() {
        assert_eq!(Col::ALL.len(), COLUMNS.len());
        for (i, c) in Col::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(Col::at(i), Some(*c));
        }
        assert_eq!(Col::MaxAttempts.name(), "max_attempts");
        assert_eq!(VISIBLE, 23);
        assert!(
            COLUMNS[VISIBLE..]
                .iter()
                .all(|(_, d, _)| d.ends_with("HIDDEN"))
        );
        assert!(
            COLUMNS[..VISIBLE]
                .iter()
                .all(|(_, d, _)| !d.contains("HIDDEN"))
        );
        assert_eq!(FILTERS[0].0, Col::Id);
        assert_eq!(FILTERS[4].0, Col::ParentId);
        assert_eq!(1 << 4, BY_PARENT);
    }

    #[test]
    fn children_done_reads_the_count_the_queue_keeps() {
        // tasks_query.rs writes children_open! out (build.rs reads it too).
        assert_eq!(
            COLUMNS[Col::ChildrenDone as usize].2,
            concat!(
                "children - (",
                crate::queue::children_open!("task_store"),
                ")"
            )
        );
    }
}
