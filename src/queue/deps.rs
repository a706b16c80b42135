//! Dependencies as they are read back: the ids a task waits for.

use super::Queue;
use super::json::push_str;
use crate::error::Result;

const DEPS_SQL: &str = "\
SELECT d.id FROM main.task_deps AS x JOIN main.task_store AS d ON d.seq = x.dep
 WHERE x.task = +?1 ORDER BY x.dep";

/// The ids of the tasks the task with rowid `seq` depends on, in the
/// order they were enqueued.
pub fn of(q: &Queue, seq: i64) -> Result<Vec<String>> {
    let mut st = q.prepare(DEPS_SQL)?;
    st.bind_i64(1, seq)?;
    let mut ids = Vec::new();
    while st.step()? {
        ids.push(st.column_text(0).unwrap_or_default());
    }
    Ok(ids)
}

/// Ids as a JSON array.
pub fn json(ids: &[String]) -> String {
    let mut out = String::with_capacity(2 + 39 * ids.len());
    out.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, id);
    }
    out.push(']');
    out
}
