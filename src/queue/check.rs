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
use super::model::{Status, quoted};
use crate::error::Result;

/// Most problems listed; the rest are counted.
const MAX_LINES: usize = 100;

const ROWS_SQL: &str = "\
SELECT id, status, worker, lease_until, completed_at, attempts, max_attempts, progress,
       details, result, started_at, typeof(progress)
  FROM main.task_store ORDER BY seq";

const ORPHANS_SQL: &str = "\
SELECT c.id, c.parent_id FROM main.task_store AS c
 WHERE c.parent_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM main.task_store AS p WHERE p.id = c.parent_id)
 ORDER BY c.seq";

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
            Some(Status::Queued) => {
                if has(3) {
                    report(format!("{who}: queued but holds a lease"));
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
    if problems.is_empty() {
        return Ok("ok".to_string());
    }
    if more > 0 {
        problems.push(format!("… and {more} more"));
    }
    Ok(problems.join("\n"))
}
