//! `task_check()`: verifies the queue's invariants over the whole storage
//! and reports each violation on a line of its own, or `ok`.
//!
//! The functions never produce these states; they come from writes that
//! bypass the extension (by hand, with CHECK constraints ignored, or from
//! a damaged file). PRAGMA integrity_check covers the b-trees themselves;
//! this covers what the rows mean.

use super::Queue;
use super::ids::parse_id;
use super::json::check_json;
use super::model::{Status, flags, quoted};
use crate::error::Result;

/// Most problems listed; the rest are counted.
const MAX_LINES: usize = 100;

const ROWS_SQL: &str = "\
SELECT id, status, worker, lease_until, completed_at, attempts, max_attempts, progress,
       details, result, started_at, typeof(progress), unique_key, flags, parent_id, children
  FROM main.task_store ORDER BY seq";

const ORPHANS_SQL: &str = "\
SELECT c.id, c.parent_id FROM main.task_store AS c
 WHERE c.parent_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM main.task_store AS p WHERE p.id = c.parent_id)
 ORDER BY c.seq";

// The counters the workflows keep, against the rows they count: a
// parent's children on its row, its unfinished ones in task_parent_store.
const CHILDREN_SQL: &str = concat!(
    "SELECT p.id, p.status, p.children, ",
    children_open!("p"),
    ", count(c.seq), count(CASE WHEN ",
    unfinished!("c."),
    " THEN 1 END)
  FROM main.task_store AS p LEFT JOIN main.task_store AS c ON c.parent_id = p.id
 GROUP BY p.seq
HAVING p.children <> count(c.seq) OR (",
    children_open!("p"),
    ") <> count(CASE WHEN ",
    unfinished!("c."),
    " THEN 1 END)
    OR (p.status = 'waiting' AND count(c.seq) > 0 AND (",
    children_open!("p"),
    ") = 0)
 ORDER BY p.seq"
);

// Counts of unfinished children whose task is not there (deleted by hand).
const STRAY_COUNTS_SQL: &str = "\
SELECT o.id FROM main.task_parent_store AS o
 WHERE NOT EXISTS (SELECT 1 FROM main.task_store AS p WHERE p.seq = o.seq AND p.id = o.id)
 ORDER BY o.seq";

const DEPENDENCIES_SQL: &str = "\
SELECT t.id, t.status, t.waiting_for, t.dependents,
       (SELECT count(*) FROM main.task_deps AS x JOIN main.task_store AS d ON d.seq = x.dep
         WHERE x.task = t.seq AND d.status <> 'completed'),
       (SELECT count(*) FROM main.task_deps AS x WHERE x.dep = t.seq)
  FROM main.task_store AS t
 WHERE t.status = 'blocked' OR t.dependents > 0 OR t.flags & 1
    OR EXISTS (SELECT 1 FROM main.task_deps AS x WHERE x.dep = t.seq)
 ORDER BY t.seq";

const DANGLING_DEPS_SQL: &str = "\
SELECT x.dep, x.task FROM main.task_deps AS x
 WHERE NOT EXISTS (SELECT 1 FROM main.task_store WHERE seq = x.dep)
    OR NOT EXISTS (SELECT 1 FROM main.task_store WHERE seq = x.task)
 ORDER BY x.dep, x.task";

/// Returns `ok`, or one line per problem found.
pub fn check(q: &Queue) -> Result<String> {
    q.ensure_ready()?;
    let conn = q.conn();
    let mut problems: Vec<String> = Vec::new();
    let mut more = 0usize;
    let mut report = |line: String| {
        if problems.len() < MAX_LINES {
            problems.push(line);
        } else {
            more += 1;
        }
    };
    let mut st = conn.prepare_once(ROWS_SQL)?;
    while st.step()? {
        let id = st.column_text(0).unwrap_or_default();
        let status = st.column_text(1).unwrap_or_default();
        let has = |i| !st.is_null(i);
        let who = if parse_id("id", &id).is_ok() {
            format!("task {id}")
        } else {
            report(format!("task {}: id is not a UUID", quoted(&id)));
            format!("task {}", quoted(&id))
        };
        match Status::parse(&status) {
            Some(Status::Queued | Status::Blocked | Status::Waiting) => {
                if has(3) {
                    report(format!("{who}: {status} but holds a lease"));
                }
            }
            Some(Status::Running) => {
                if !has(2) {
                    report(format!("{who}: running without a worker"));
                }
                if !has(3) {
                    report(format!("{who}: running without a lease"));
                }
                if !has(10) {
                    report(format!("{who}: running without started_at"));
                }
            }
            Some(Status::Completed | Status::Failed | Status::Cancelled) => {
                if !has(4) {
                    report(format!("{who}: {status} without completed_at"));
                }
            }
            _ => report(format!("{who}: invalid status {}", quoted(&status))),
        }
        let attempts = st.column_i64(5);
        let max = st.column_i64(6);
        if max < 1 {
            report(format!("{who}: max_attempts is {max}, below 1"));
        }
        if attempts < 0 || attempts > max {
            report(format!(
                "{who}: attempts is {attempts}, outside 0 … max_attempts ({max})"
            ));
        }
        let numeric = matches!(st.column_text(11).as_deref(), Some("integer" | "real"));
        let progress = st.column_f64(7);
        if !numeric || !(0.0..=100.0).contains(&progress) {
            report(format!(
                "{who}: progress {} is not a number from 0 to 100",
                st.column_text(7).unwrap_or_else(|| "NULL".into())
            ));
        }
        for (col, name) in [(8, "details"), (9, "result")] {
            if let Some(text) = st.column_text(col)
                && check_json(name, &text).is_err()
            {
                report(format!("{who}: {name} is not valid JSON"));
            }
        }
        // The flags bits the workflow indexes are partial on.
        let bits = st.column_i64(13);
        let parsed = Status::parse(&status);
        let unfinished = parsed.is_some_and(|s| !s.is_finished());
        let key = st.column_text(12);
        let holds = key.is_some()
            && (unfinished
                || (parsed == Some(Status::Completed)
                    && bits & flags::UNIQUE_THROUGH_COMPLETED != 0));
        match (&key, holds, bits & flags::HOLDS_KEY != 0) {
            (Some(k), true, false) => report(format!(
                "{who}: {status} with unique key {}, but not holding it (flags 32 unset)",
                quoted(k)
            )),
            (Some(k), false, true) => report(format!(
                "{who}: {status}, but holding its unique key {} (flags 32)",
                quoted(k)
            )),
            (None, _, true) => report(format!(
                "{who}: holding a unique key it does not have (flags 32)"
            )),
            _ => {}
        }
        if bits & flags::COUNTS_TOWARD_LIMIT != 0 && parsed != Some(Status::Running) {
            report(format!(
                "{who}: {status}, but counted toward its queue's concurrency limit (flags 64)"
            ));
        }
        let at_work = has(14) && unfinished && (progress > 0.0 || st.column_i64(15) > 0);
        if at_work && bits & flags::IN_ROLLUP == 0 {
            report(format!(
                "{who}: a child with progress or children of its own, but not read by its \
                 parent's rollup (flags 16 unset)"
            ));
        }
    }
    drop(st);
    let mut st = conn.prepare_once(ORPHANS_SQL)?;
    while st.step()? {
        report(format!(
            "task {}: parent {} does not exist",
            st.column_text(0).unwrap_or_default(),
            st.column_text(1).unwrap_or_default()
        ));
    }
    drop(st);
    let mut st = conn.prepare_once(CHILDREN_SQL)?;
    while st.step()? {
        let who = format!("task {}", st.column_text(0).unwrap_or_default());
        let status = st.column_text(1).unwrap_or_default();
        let (kept, kept_open) = (st.column_i64(2), st.column_i64(3));
        let (has, has_open) = (st.column_i64(4), st.column_i64(5));
        if kept != has || kept_open != has_open {
            report(format!(
                "{who}: counts {kept} children ({kept_open} unfinished), has {has} ({has_open} \
                 unfinished)"
            ));
        } else if status == Status::Waiting.as_str() {
            report(format!("{who}: waiting, but no child of it is unfinished"));
        }
    }
    drop(st);
    let mut st = conn.prepare_once(STRAY_COUNTS_SQL)?;
    while st.step()? {
        report(format!(
            "task {}: counted in task_parent_store, but does not exist",
            st.column_text(0).unwrap_or_default()
        ));
    }
    drop(st);
    let mut st = conn.prepare_once(DEPENDENCIES_SQL)?;
    while st.step()? {
        let who = format!("task {}", st.column_text(0).unwrap_or_default());
        let blocked = st.column_text(1).as_deref() == Some(Status::Blocked.as_str());
        let (waiting_for, unfinished) = (st.column_i64(2), st.column_i64(4));
        let (dependents, has) = (st.column_i64(3), st.column_i64(5));
        if blocked && unfinished == 0 {
            report(format!(
                "{who}: blocked, but every dependency of it has completed"
            ));
        } else if blocked && waiting_for != unfinished {
            report(format!(
                "{who}: blocked waiting for {waiting_for} dependencies, {unfinished} have not \
                 completed"
            ));
        }
        if dependents != has {
            report(format!("{who}: counts {dependents} dependents, has {has}"));
        }
    }
    drop(st);
    let mut st = conn.prepare_once(DANGLING_DEPS_SQL)?;
    while st.step()? {
        report(format!(
            "dependency of task rowid {} on task rowid {}: one of them does not exist",
            st.column_i64(1),
            st.column_i64(0)
        ));
    }
    drop(st);
    if problems.is_empty() {
        return Ok("ok".to_string());
    }
    if more > 0 {
        problems.push(format!("… and {more} more"));
    }
    Ok(problems.join("\n"))
}
