//! `task_enqueue` and `INSERT INTO tasks`: adding a task, with its parent,
//! its dependencies and its unique key.
//!
//! A plain task is one INSERT. A task with only a unique key is one INSERT
//! too (`ON CONFLICT`, against the unique index). A child or a task with
//! dependencies needs its parent's and its dependencies' counters updated
//! with it: those run together (`txn::atomically`).

use super::Queue;
use super::events;
use super::ids::{new_id, parse_id};
use super::json::check_json;
use super::model::{
    DEFAULT_QUEUE, MAX_ATTEMPTS_LIMIT, MAX_BATCH, MAX_TIME_MS, PRIORITY_RANGE, Status, check_range,
    clock, flags, quoted,
};
use super::txn::atomically;
use crate::error::{Error, Result, code};

/// What `task_enqueue` and `INSERT INTO tasks` accept.
#[derive(Debug, Default, Clone)]
pub struct NewTask<'a> {
    pub kind: &'a str,
    pub details: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub priority: Option<i64>,
    pub run_at: Option<i64>,
    pub delay: Option<i64>,
    pub max_attempts: Option<i64>,
    pub parent_id: Option<&'a str>,
    pub id: Option<&'a str>,
    pub now: Option<i64>,
    /// Ids of the tasks that must complete before this one may run.
    pub depends_on: Vec<String>,
    pub unique_key: Option<&'a str>,
    /// `keep` (default), `replace` or `error`: what enqueueing a key that
    /// is taken does.
    pub on_conflict: Option<&'a str>,
    /// `active` (default) or `completed`: the statuses in which a key is
    /// taken.
    pub unique_scope: Option<&'a str>,
    /// `fail` (default) or `continue`: what a child that fails for good or
    /// is cancelled does to this task.
    pub on_child_failure: Option<&'a str>,
    /// No work of its own: it waits for its children from the start and
    /// completes with the last of them (it is never claimed).
    pub wait_for_children: Option<bool>,
}

/// A task just added (or, for a unique key that is taken, the task that
/// holds it): its id and its storage rowid.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub id: String,
    pub seq: i64,
}

/// What enqueueing a unique key that another task holds does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OnConflict {
    /// Return the holder's id; change nothing.
    Keep,
    /// Give a queued holder the new details and run_at; return its id.
    Replace,
    /// Refuse, naming the holder.
    Error,
}

/// One of `allowed`, or an error naming the option and the choices.
pub(crate) fn choice<T: Copy>(
    what: &str,
    given: Option<&str>,
    allowed: &[(&str, T)],
) -> Result<Option<T>> {
    let Some(given) = given else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, v)| Some(*v))
        .ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("'{n}'")).collect();
            let list = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                _ => names.join(""),
            };
            Error::new(format!("{what} must be {list}, got {}", quoted(given)))
        })
}

/// The row an enqueue inserts.
struct Row<'a> {
    id: String,
    queue: &'a str,
    kind: &'a str,
    priority: i64,
    /// `None`: the queue's default, else the built-in one.
    max_attempts: Option<i64>,
    run_at: i64,
    now: i64,
    details: Option<&'a str>,
    parent: Option<String>,
    unique_key: Option<&'a str>,
    flags: i64,
}

/// Checks where a task goes: its queue (default `default`), priority
/// (default 0) and `max_attempts` (`None`: the default). Shared with
/// schedules, which check the tasks they will enqueue when registered.
pub(crate) fn placement(
    queue: Option<&str>,
    priority: Option<i64>,
    max_attempts: Option<i64>,
) -> Result<(&str, i64, Option<i64>)> {
    let queue = queue.unwrap_or(DEFAULT_QUEUE);
    if queue.is_empty() {
        return Err(Error::new("queue must not be empty"));
    }
    let (lo, hi) = PRIORITY_RANGE;
    let priority = check_range("priority", priority.unwrap_or(0), lo, hi)?;
    let max_attempts = max_attempts
        .map(|m| check_range("max_attempts", m, 1, MAX_ATTEMPTS_LIMIT))
        .transpose()?;
    Ok((queue, priority, max_attempts))
}

/// Checks a unique key and its options: what a conflict does and whether a
/// completed task still holds the key. `owner` names what has the key in
/// the message ("a task", "a schedule"). Shared with schedules.
pub(crate) fn unique_options(
    unique_key: Option<&str>,
    on_conflict: Option<&str>,
    unique_scope: Option<&str>,
    owner: &str,
) -> Result<(Option<OnConflict>, Option<bool>)> {
    if unique_key == Some("") {
        return Err(Error::new("unique_key must not be empty"));
    }
    let conflict = choice(
        "on_conflict",
        on_conflict,
        &[
            ("keep", OnConflict::Keep),
            ("replace", OnConflict::Replace),
            ("error", OnConflict::Error),
        ],
    )?;
    let through_completed = choice(
        "unique_scope",
        unique_scope,
        &[("active", false), ("completed", true)],
    )?;
    if unique_key.is_none() && (conflict.is_some() || through_completed.is_some()) {
        return Err(Error::new(format!(
            "on_conflict and unique_scope apply to {owner} with a unique_key"
        )));
    }
    Ok((conflict, through_completed))
}

/// Adds a task.
pub fn enqueue(q: &Queue, t: &NewTask<'_>) -> Result<Enqueued> {
    if t.kind.is_empty() {
        return Err(Error::new("type must not be empty"));
    }
    if let Some(d) = t.details {
        check_json("details", d)?;
    }
    let (queue, priority, max_attempts) = placement(t.queue, t.priority, t.max_attempts)?;
    q.touched(queue);
    let now = clock(t.now)?;
    let run_at = match (t.run_at, t.delay) {
        (Some(_), Some(_)) => return Err(Error::new("give run_at or delay, not both")),
        (Some(at), None) => check_range("run_at", at, 0, MAX_TIME_MS)?,
        (None, Some(d)) => now + check_range("delay", d, 0, MAX_TIME_MS - now)?,
        (None, None) => now,
    };
    let id = match t.id {
        Some(s) => parse_id("id", s)?,
        None => new_id(now),
    };
    let parent = t.parent_id.map(|p| parse_id("parent_id", p)).transpose()?;
    let deps = dependencies(&t.depends_on, &id)?;
    let (conflict, through_completed) =
        unique_options(t.unique_key, t.on_conflict, t.unique_scope, "a task")?;
    let tolerant = choice(
        "on_child_failure",
        t.on_child_failure,
        &[("fail", false), ("continue", true)],
    )?;
    let group = t.wait_for_children == Some(true);
    if group && !deps.is_empty() {
        return Err(Error::new(
            "a task that only waits for its children has no work to wait for dependencies \
             with; give depends_on to its children",
        ));
    }
    let mut row_flags = 0;
    if group {
        row_flags |= flags::OWN_WORK_DONE;
    }
    if through_completed == Some(true) {
        row_flags |= flags::UNIQUE_THROUGH_COMPLETED;
    }
    if t.unique_key.is_some() {
        row_flags |= flags::HOLDS_KEY;
    }
    if tolerant == Some(true) {
        row_flags |= flags::CONTINUE_ON_CHILD_FAILURE;
    }
    let row = Row {
        id,
        queue,
        kind: t.kind,
        priority,
        max_attempts,
        run_at,
        now,
        details: t.details,
        parent,
        unique_key: t.unique_key,
        flags: row_flags,
    };
    let conflict = conflict.unwrap_or(OnConflict::Keep);
    if row.parent.is_none() && deps.is_empty() {
        if row.unique_key.is_none() && row.flags == 0 {
            return insert_plain(q, &row);
        }
        let status = if group {
            Status::Waiting
        } else {
            Status::Queued
        };
        return insert(q, &row, status, 0, conflict).map(|(t, _)| t);
    }
    atomically(q, || enqueue_linked(q, &row, &deps, conflict))
}

/// The dependency ids: canonical, without repeats, not the task itself.
fn dependencies(given: &[String], id: &str) -> Result<Vec<String>> {
    if given.len() > MAX_BATCH as usize {
        return Err(Error::new(format!(
            "depends_on lists at most {MAX_BATCH} tasks, got {}",
            given.len()
        )));
    }
    let mut deps: Vec<String> = Vec::with_capacity(given.len());
    for d in given {
        let d = parse_id("depends_on", d)?;
        if d == id {
            return Err(Error::new(format!("task {id} cannot depend on itself")));
        }
        if !deps.contains(&d) {
            deps.push(d);
        }
    }
    Ok(deps)
}

/// The new task's max_attempts: ?5 as given, else its queue's (?2)
/// default, else the built-in one (`DEFAULT_MAX_ATTEMPTS`).
macro_rules! max_attempts_of {
    () => {
        queue_default!("?5"; "max_attempts", "?2", "3")
    };
}

// updated_at gets ?7 from the call that also writes the enqueued event.
const ENQUEUE_SQL: &str = concat!(
    "INSERT INTO main.task_store
  (id, queue, type, status, priority, max_attempts, run_at, created_at, updated_at, details)
VALUES (?1, ?2, ?3, 'queued', ?4, ",
    max_attempts_of!(),
    ", ?6, ?7, ",
    event!(
        "?7",
        "?2",
        kind!(enqueued),
        "?1",
        "'queued'",
        "0",
        "NULL",
        "NULL",
        "NULL"
    ),
    ", ?8)"
);

/// A task with neither parent, dependencies nor unique key: one INSERT.
fn insert_plain(q: &Queue, r: &Row<'_>) -> Result<Enqueued> {
    let mut st = q.prepare(ENQUEUE_SQL)?;
    bind_common(&mut st, r)?;
    finish_insert(st.finish(), &r.id)?;
    drop(st);
    Ok(Enqueued {
        id: r.id.clone(),
        seq: q.conn().last_insert_rowid(),
    })
}

fn bind_common(st: &mut crate::ffi::Stmt, r: &Row<'_>) -> Result<()> {
    st.bind_text(1, &r.id)?;
    st.bind_text(2, r.queue)?;
    st.bind_text(3, r.kind)?;
    st.bind_i64(4, r.priority)?;
    st.bind_opt_i64(5, r.max_attempts)?;
    st.bind_i64(6, r.run_at)?;
    st.bind_i64(7, r.now)?;
    st.bind_opt_text(8, r.details)
}

/// A duplicate id becomes `task … already exists`.
fn finish_insert(outcome: Result<()>, id: &str) -> Result<()> {
    match outcome {
        Err(e) if e.code == code::CONSTRAINT_UNIQUE && e.msg.contains("task_store.id") => Err(
            Error::with_code(e.code, format!("task {id} already exists")),
        ),
        other => other,
    }
}

/// A task that holds its unique key (flags 32: set while it is unfinished,
/// or completed with unique_scope 'completed'), among the rows of the
/// storage's `task_store_unique` index: its WHERE, word for word (an upsert
/// names the index by repeating it; a unit test compares the two). The
/// index also holds the running tasks that count toward their queue's
/// limit (flags 64); with a key, such a task holds it (32), without one it
/// never conflicts (NULL keys are distinct), so in an index on
/// (queue, unique_key) `flags & 96` finds exactly the key holders.
macro_rules! unique_counts {
    () => {
        "flags & 96"
    };
}

/// The enqueued event of the row an insert below makes, nested in the
/// INSERT, so a row that is not inserted (a failed statement) leaves no
/// event. Its value is ?7, the row's updated_at.
macro_rules! insert_event {
    () => {
        event!(
            "?7",
            "?2",
            kind!(enqueued),
            "?1",
            "?9",
            "0",
            "NULL",
            "NULL",
            "NULL"
        )
    };
}

/// The INSERT of one task, with `$updated_at` for its updated_at (the
/// column the enqueued event, if any, is nested in).
macro_rules! insert_row {
    ($updated_at:expr) => {
        concat!(
            "INSERT INTO main.task_store
  (id, queue, type, status, priority, max_attempts, run_at, created_at, updated_at, details,
   parent_id, unique_key, flags, waiting_for)
VALUES (?1, ?2, ?3, ?9, ?4, ",
            max_attempts_of!(),
            ", ?6, ?7, ",
            $updated_at,
            ", ?8, ?10, ?11, ?12, ?13)"
        )
    };
}

/// A task whose unique key may be held (keep): the upsert inserts nothing
/// when a task holds the key, and then writes no event either: the same
/// condition, read by the same statement under the write lock. (A subquery
/// in VALUES, not INSERT … SELECT … WHERE NOT EXISTS: a SELECT that reads
/// the table it inserts into is first copied to a temporary table, measured
/// at 30k instructions an enqueue more.)
const INSERT_KEEP_SQL: &str = concat!(
    insert_row!(concat!(
        "CASE WHEN EXISTS (SELECT 1 FROM main.task_store AS h
                  WHERE h.queue = +?2 AND h.unique_key = +?11 AND h.",
        unique_counts!(),
        ") THEN ?7 ELSE ",
        insert_event!(),
        " END"
    )),
    "
ON CONFLICT (queue, unique_key) WHERE ",
    unique_counts!(),
    " DO NOTHING"
);
// Only a queued holder takes the new values: a running one is at work on
// the old ones. The event is written apart (a replaced holder makes none).
const INSERT_REPLACE_SQL: &str = concat!(
    insert_row!("?7"),
    "
ON CONFLICT (queue, unique_key) WHERE ",
    unique_counts!(),
    "
DO UPDATE SET details = excluded.details, run_at = excluded.run_at,
              updated_at = excluded.updated_at
        WHERE status = 'queued'"
);
/// Any other task: a conflict is an error, and leaves no event.
const INSERT_SQL: &str = insert_row!(insert_event!());

const ID_TAKEN_SQL: &str = "SELECT 1 FROM main.task_store WHERE id = +?1";

/// The task that holds a unique key.
const HOLDER_SQL: &str = concat!(
    "SELECT seq, id, status FROM main.task_store
 WHERE queue = +?1 AND unique_key = +?2 AND ",
    unique_counts!()
);

/// Inserts `r` with `status`. For a unique key that is taken, the holder
/// is returned (or, with `Error`, named in the error) and nothing is
/// inserted; the flag says whether the task is new.
fn insert(
    q: &Queue,
    r: &Row<'_>,
    status: Status,
    waiting_for: i64,
    conflict: OnConflict,
) -> Result<(Enqueued, bool)> {
    let sql = match (r.unique_key, conflict) {
        (None, _) | (Some(_), OnConflict::Error) => INSERT_SQL,
        (Some(_), OnConflict::Keep) => INSERT_KEEP_SQL,
        (Some(_), OnConflict::Replace) => INSERT_REPLACE_SQL,
    };
    let conn = q.conn();
    // A replaced holder and a new task both count one change; a holder
    // that already had this id (an enqueue repeated with its id) is not new.
    let existed = conflict == OnConflict::Replace && r.unique_key.is_some() && {
        let mut st = q.prepare(ID_TAKEN_SQL)?;
        st.bind_text(1, &r.id)?;
        st.step()?
    };
    let mut st = q.prepare(sql)?;
    bind_common(&mut st, r)?;
    st.bind_text(9, status.as_str())?;
    st.bind_opt_text(10, r.parent.as_deref())?;
    st.bind_opt_text(11, r.unique_key)?;
    st.bind_i64(12, r.flags)?;
    st.bind_i64(13, waiting_for)?;
    let outcome = st.finish();
    drop(st);
    // The rowid of the row inserted, read before its event is: that
    // INSERT takes last_insert_rowid() over.
    let seq = conn.last_insert_rowid();
    let Some(key) = r.unique_key else {
        finish_insert(outcome, &r.id)?;
        return Ok((
            Enqueued {
                id: r.id.clone(),
                seq,
            },
            true,
        ));
    };
    match outcome {
        Err(e) if e.code == code::CONSTRAINT_UNIQUE && e.msg.contains("task_store.unique_key") => {
            let (_, id, status) = holder(q, r.queue, key)?.unwrap_or_default();
            Err(Error::with_code(
                e.code,
                format!(
                    "unique key {} of queue {} is taken by task {id} ({status})",
                    quoted(key),
                    quoted(r.queue)
                ),
            ))
        }
        other => {
            finish_insert(other, &r.id)?;
            if conflict != OnConflict::Replace && conn.changes() == 1 {
                return Ok((
                    Enqueued {
                        id: r.id.clone(),
                        seq,
                    },
                    true,
                ));
            }
            // Nothing inserted (keep), or maybe the holder updated (replace):
            // the holder says which.
            let (seq, id, _) = holder(q, r.queue, key)?.ok_or_else(|| {
                Error::with_code(code::BUSY, "unique key changed concurrently; retry")
            })?;
            let fresh = conflict == OnConflict::Replace && id == r.id && !existed;
            if fresh {
                events::enqueued(q, &r.id, r.queue, status, r.now)?;
            }
            Ok((Enqueued { id, seq }, fresh))
        }
    }
}

const KEY_OF_SQL: &str = "SELECT queue, unique_key FROM main.task_store WHERE id = +?1";

/// `e` as it reads when it comes from the unique index, refusing to make
/// the task `id` count again (a retry): the key's holder named.
pub fn unique_refusal(q: &Queue, id: &str, e: Error) -> Error {
    if e.code != code::CONSTRAINT_UNIQUE || !e.msg.contains("task_store.unique_key") {
        return e;
    }
    let key_of = || -> Result<Option<(String, String)>> {
        let mut st = q.prepare(KEY_OF_SQL)?;
        st.bind_text(1, id)?;
        Ok(if st.step()? {
            st.column_text(0).zip(st.column_text(1))
        } else {
            None
        })
    };
    let Ok(Some((queue, key))) = key_of() else {
        return e;
    };
    match holder(q, &queue, &key) {
        Ok(Some((_, holder_id, status))) => Error::with_code(
            e.code,
            format!(
                "task {id} cannot run again: its unique key {} of queue {} is taken by task \
                 {holder_id} ({status})",
                quoted(&key),
                quoted(&queue)
            ),
        ),
        _ => e,
    }
}

fn holder(q: &Queue, queue: &str, key: &str) -> Result<Option<(i64, String, String)>> {
    let mut st = q.prepare(HOLDER_SQL)?;
    st.bind_text(1, queue)?;
    st.bind_text(2, key)?;
    Ok(if st.step()? {
        Some((
            st.column_i64(0),
            st.column_text(1).unwrap_or_default(),
            st.column_text(2).unwrap_or_default(),
        ))
    } else {
        None
    })
}

const LOOKUP_SQL: &str = "SELECT seq, status FROM main.task_store WHERE id = +?1";

/// A task's rowid and status, if it exists.
pub(super) fn lookup(q: &Queue, id: &str) -> Result<Option<(i64, String)>> {
    let mut st = q.prepare(LOOKUP_SQL)?;
    st.bind_text(1, id)?;
    Ok(if st.step()? {
        Some((st.column_i64(0), st.column_text(1).unwrap_or_default()))
    } else {
        None
    })
}

// A child that gains a child of its own is read by its parent's rollup.
const ADD_CHILD_SQL: &str = "\
UPDATE main.task_store
   SET children = children + 1, updated_at = ?2,
       flags = CASE WHEN parent_id IS NOT NULL THEN flags | 16 ELSE flags END
 WHERE seq = +?1";
// The parent ?1 (id ?2) has one more unfinished child: its count made with
// its first child (a row left by a task deleted by hand, whose rowid it
// took, starts over).
const OPEN_CHILD_SQL: &str = "\
INSERT INTO main.task_parent_store (seq, id, unfinished) VALUES (?1, ?2, 1)
  ON CONFLICT (seq) DO UPDATE
  SET unfinished = CASE WHEN id = excluded.id THEN unfinished + 1 ELSE 1 END, id = excluded.id";
const ADD_DEPENDENT_SQL: &str =
    "UPDATE main.task_store SET dependents = dependents + 1 WHERE seq = +?1";
const LINK_SQL: &str = "INSERT INTO main.task_deps (dep, task) VALUES (?1, ?2)";

// Whether `?1` (a task that is not finished) waits, through its
// dependencies and its children, for the task `?2`: a dependent waits for
// its dependencies, a parent for its children. Finished tasks wait for
// nothing. UNION, not UNION ALL: a diamond is walked once.
const WAITS_FOR_SQL: &str = "\
WITH RECURSIVE waits(seq, id) AS (
  SELECT seq, id FROM main.task_store WHERE seq = +?1
  UNION
  SELECT d.seq, d.id FROM waits JOIN main.task_deps AS x ON x.task = waits.seq
                              JOIN main.task_store AS d ON d.seq = x.dep
   WHERE d.status <> 'completed' AND d.status <> 'failed' AND d.status <> 'cancelled'
  UNION
  SELECT c.seq, c.id FROM waits JOIN main.task_store AS c ON c.parent_id = waits.id
   WHERE c.status <> 'completed' AND c.status <> 'failed' AND c.status <> 'cancelled')
SELECT 1 FROM waits WHERE id = +?2 LIMIT 1";

/// A child, or a task with dependencies: the checks, the insert, and the
/// counters of its parent and dependencies, as one unit.
fn enqueue_linked(
    q: &Queue,
    r: &Row<'_>,
    deps: &[String],
    conflict: OnConflict,
) -> Result<Enqueued> {
    let parent = match &r.parent {
        None => None,
        Some(p) => {
            let Some((seq, status)) = lookup(q, p)? else {
                return Err(Error::new(format!("parent task {p} not found")));
            };
            if Status::parse(&status).is_none_or(Status::is_finished) {
                return Err(Error::new(format!(
                    "parent task {p} is {status}; children can only be added to a task that \
                     has not finished"
                )));
            }
            Some(seq)
        }
    };
    let mut dep_seqs = Vec::with_capacity(deps.len());
    let mut waiting_for = 0;
    for d in deps {
        let Some((seq, status)) = lookup(q, d)? else {
            return Err(Error::new(format!("dependency task {d} not found")));
        };
        match Status::parse(&status) {
            Some(Status::Completed) => {}
            Some(Status::Failed | Status::Cancelled) | None => {
                return Err(Error::new(format!(
                    "dependency task {d} is {status}; retry it first"
                )));
            }
            Some(_) => {
                waiting_for += 1;
                if let Some(p) = &r.parent
                    && waits_for(q, seq, p)?
                {
                    return Err(Error::new(format!(
                        "task {d} cannot be a dependency of a child of task {p}: it waits for \
                         task {p}, which would wait for this child"
                    )));
                }
            }
        }
        dep_seqs.push(seq);
    }
    let status = if r.flags & flags::OWN_WORK_DONE != 0 {
        Status::Waiting
    } else if waiting_for > 0 {
        Status::Blocked
    } else {
        Status::Queued
    };
    let mut row_flags = r.flags;
    if !deps.is_empty() {
        row_flags |= flags::HAS_DEPS;
    }
    let row = Row {
        id: r.id.clone(),
        parent: r.parent.clone(),
        flags: row_flags,
        ..*r
    };
    let (task, fresh) = insert(q, &row, status, waiting_for, conflict)?;
    if !fresh {
        return Ok(task);
    }
    if let (Some(p), Some(pid)) = (parent, &r.parent) {
        let mut st = q.prepare(ADD_CHILD_SQL)?;
        st.bind_i64(1, p)?;
        st.bind_i64(2, r.now)?;
        st.finish()?;
        drop(st);
        let mut st = q.prepare(OPEN_CHILD_SQL)?;
        st.bind_i64(1, p)?;
        st.bind_text(2, pid)?;
        st.finish()?;
    }
    for dep in dep_seqs {
        let mut st = q.prepare(LINK_SQL)?;
        st.bind_i64(1, dep)?;
        st.bind_i64(2, task.seq)?;
        st.finish()?;
        drop(st);
        let mut st = q.prepare(ADD_DEPENDENT_SQL)?;
        st.bind_i64(1, dep)?;
        st.finish()?;
    }
    Ok(task)
}

fn waits_for(q: &Queue, from: i64, id: &str) -> Result<bool> {
    let mut st = q.prepare(WAITS_FOR_SQL)?;
    st.bind_i64(1, from)?;
    st.bind_text(2, id)?;
    st.step()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upsert_names_the_unique_index_by_its_where() {
        // The index as the last migration that made it (004) has it.
        let ddl = include_str!("../storage/004_queues.sql");
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let index = squash(
            ddl.split("task_store_unique ON task_store(queue, unique_key)")
                .nth(1)
                .unwrap_or(""),
        );
        let index = index.trim_start().trim_start_matches("WHERE ");
        assert!(index.starts_with(&squash(unique_counts!())), "{index}");
        assert!(INSERT_KEEP_SQL.contains(unique_counts!()));
        assert!(INSERT_REPLACE_SQL.contains(unique_counts!()));
        assert!(HOLDER_SQL.contains(unique_counts!()));
    }

    #[test]
    fn the_sql_default_of_max_attempts_is_the_built_in_one() {
        let sql = max_attempts_of!();
        let built_in = crate::queue::model::DEFAULT_MAX_ATTEMPTS;
        assert!(sql.ends_with(&format!(", {built_in})")), "{sql}");
        assert!(ENQUEUE_SQL.contains(sql) && INSERT_KEEP_SQL.contains(sql));
    }

    #[test]
    fn choices_name_the_allowed_values() {
        let e = choice("on_conflict", Some("merge"), &[("keep", 1), ("error", 2)]).unwrap_err();
        assert_eq!(e.msg, "on_conflict must be 'keep' or 'error', got 'merge'");
        assert_eq!(
            choice("x", Some("error"), &[("keep", 1), ("error", 2)]).unwrap(),
            Some(2)
        );
        assert_eq!(choice::<i32>("x", None, &[]).unwrap(), None);
    }

    #[test]
    fn dependencies_are_canonical_and_listed_once() {
        let a = "0193C1F2-7A5B-7C3D-8E9F-0123456789AB".to_string();
        let b = "0193c1f2-7a5b-7c3d-8e9f-0123456789ab".to_string();
        assert_eq!(
            dependencies(&[a, b], "x").unwrap(),
            vec!["0193c1f2-7a5b-7c3d-8e9f-0123456789ab".to_string()]
        );
        let own = "0193c1f2-7a5b-7c3d-8e9f-0123456789ab";
        assert!(
            dependencies(&[own.to_string()], own)
                .unwrap_err()
                .msg
                .contains("itself")
        );
        assert!(
            dependencies(&["nope".into()], own)
                .unwrap_err()
                .msg
                .contains("must be a UUID")
        );
    }
}
