//! The shape of the `tasks` table and the storage query behind each of its
//! filter combinations. Plain constants and one pure function, shared with
//! `build.rs`, which turns every combination into a static string table
//! (so the library holds no heap-allocated statics: hosts that unload it
//! with dlclose would leak them).

/// Visible columns, in declaration order. The storage SELECT returns them in
/// this order, followed by `seq` (the rowid).
pub const COLUMNS: [&str; 19] = [
    "id",
    "queue",
    "type",
    "status",
    "priority",
    "progress",
    "details",
    "result",
    "error",
    "attempts",
    "max_attempts",
    "parent_id",
    "worker",
    "lease_until",
    "run_at",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
];

/// Columns whose equality filters are passed to the storage, in idxNum bit
/// order, and whether the filter is selective through an index of its own.
pub const FILTERS: [(&str, bool); 5] = [
    ("id", true),
    ("queue", false),
    ("type", false),
    ("status", false),
    ("parent_id", true),
];

/// idxNum bit for a rowid (seq) lookup, used by UPDATE.
pub const BY_SEQ: usize = 1 << FILTERS.len();

/// Each status branch's condition, and the status a `status = ?` filter
/// must equal for that branch to be read. `status` is CHECKed to be one of
/// the five values, so the branches hold every row. Queued, running, failed
/// and cancelled tasks are read through their partial indexes; completed
/// tasks are in none (see `schema.rs`), so their branch reads the table.
const STATUS_BRANCHES: [(&str, Option<&str>); 4] = [
    ("status = 'queued'", Some("queued")),
    ("status = 'running'", Some("running")),
    ("(status = 'failed' OR status = 'cancelled')", None),
    ("status = 'completed'", Some("completed")),
];

/// The storage query for one combination of filters (an idxNum).
///
/// Every query reads a fixed set of rows decided when the scan starts, so a
/// statement that changes tasks while it reads them
/// (`SELECT task_cancel(id) FROM tasks WHERE type = 'x'`,
/// `SELECT task_enqueue(type) FROM tasks`) sees each task once: rows added
/// after the cursor's first scan began are excluded by a rowid bound (the
/// last parameter, which the cursor fixes once), and a status/queue/type
/// scan collects the matching rowids first (an `IN (subquery)` is run to
/// completion before the outer loop starts), then reads each row. A lookup
/// by id needs neither: ids are unique and never change.
///
/// Filters on id and parent_id are selective through their own indexes and
/// go into one WHERE clause. Every other filter (status, queue, type) is
/// split into one branch per status: queued tasks through
/// `task_store_ready`, running ones through `task_store_running`, failed
/// and cancelled ones through `task_store_failed`, completed ones from the
/// table. A partial index is only usable when
/// the query names its status as a literal, so a bound status is compared
/// with each branch's literal (a constant test SQLite evaluates once)
/// rather than row by row. Bound values are written `+?N` so that matching
/// partial indexes never makes SQLite re-prepare the statement on each bind
/// (see `ops.rs`). There is no index on queue or type for every
/// row: it would cost a page write on every enqueue.
pub fn build_select(mask: usize) -> String {
    let head = format!("SELECT {}, seq FROM main.task_store", COLUMNS.join(", "));
    let mut terms: Vec<(&str, String)> = Vec::new();
    for (bit, (name, _)) in FILTERS.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            terms.push((name, format!("{name} = +?{}", terms.len() + 1)));
        }
    }
    if mask & BY_SEQ != 0 {
        terms.push(("seq", format!("seq = +?{}", terms.len() + 1)));
    }
    // The rowid bound: the highest rowid when the scan began, bound by the
    // cursor as the last parameter. A lookup by id needs none.
    let bound = format!("seq <= +?{}", terms.len() + 1);
    if terms.is_empty() {
        return format!("{head} WHERE {bound}");
    }
    if mask & 1 != 0 || mask & BY_SEQ != 0 {
        let all: Vec<&str> = terms.iter().map(|(_, t)| t.as_str()).collect();
        return format!("{head} WHERE {}", all.join(" AND "));
    }
    let selective = mask & BY_SEQ != 0
        || FILTERS
            .iter()
            .enumerate()
            .any(|(bit, (_, sel))| *sel && mask & (1 << bit) != 0);
    if selective {
        let all: Vec<&str> = terms.iter().map(|(_, t)| t.as_str()).collect();
        return format!("{head} WHERE {} AND {bound}", all.join(" AND "));
    }
    let branches = STATUS_BRANCHES
        .iter()
        .map(|(cond, literal)| {
            let mut parts = vec![cond.to_string()];
            for (i, (name, term)) in terms.iter().enumerate() {
                match (*name, literal) {
                    ("status", Some(lit)) => parts.push(format!("+?{} = '{lit}'", i + 1)),
                    _ => parts.push(term.clone()),
                }
            }
            format!(
                "SELECT seq FROM main.task_store WHERE {}",
                parts.join(" AND ")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!("{head} WHERE seq IN ({branches}) AND {bound}")
}
