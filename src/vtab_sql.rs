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

/// Each status index's condition, and the status a `status = ?` filter must
/// equal for that branch to be read. `status` is CHECKed to be one of the
/// five values, so the three branches hold every row.
const STATUS_BRANCHES: [(&str, Option<&str>); 3] = [
    ("status = 'queued'", Some("queued")),
    ("status = 'running'", Some("running")),
    ("status IN ('completed', 'failed', 'cancelled')", None),
];

/// The storage query for one combination of filters (an idxNum).
///
/// Every query reads a fixed set of rows decided when the scan starts, in
/// rowid (enqueue) order, so a statement that changes tasks while it reads
/// them (`SELECT task_cancel(id) FROM tasks WHERE type = 'x'`,
/// `SELECT task_enqueue(type) FROM tasks`) sees each task once: a full scan
/// stops at the highest rowid that existed when it began, and an indexed
/// scan collects the matching rowids first (an `IN (subquery)` is run to
/// completion before the outer loop starts), then reads each row. Lookups
/// by id or parent_id keep their index and get the same rowid bound.
///
/// Filters on id and parent_id are selective through their own indexes and
/// go into one WHERE clause. Every other filter (status, queue, type) is
/// split into one branch per status index: queued tasks through
/// `task_store_ready`, running ones through `task_store_running`, finished
/// ones through `task_store_finished`. A partial index is only usable when
/// the query names its status as a literal, so a bound status is compared
/// with each branch's literal (a constant test SQLite evaluates once)
/// rather than row by row. There is no index on queue or type for every
/// row: it would cost a page write on every enqueue.
pub fn build_select(mask: usize) -> String {
    let head = format!("SELECT {}, seq FROM main.task_store", COLUMNS.join(", "));
    let mut terms: Vec<(&str, String)> = Vec::new();
    for (bit, (name, _)) in FILTERS.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            terms.push((name, format!("{name} = ?{}", terms.len() + 1)));
        }
    }
    if mask & BY_SEQ != 0 {
        terms.push(("seq", format!("seq = ?{}", terms.len() + 1)));
    }
    if terms.is_empty() {
        return format!("{head} WHERE seq <= (SELECT max(seq) FROM main.task_store)");
    }
    let selective = mask & BY_SEQ != 0
        || FILTERS
            .iter()
            .enumerate()
            .any(|(bit, (_, sel))| *sel && mask & (1 << bit) != 0);
    if selective {
        let all: Vec<&str> = terms.iter().map(|(_, t)| t.as_str()).collect();
        return format!(
            "{head} WHERE {} AND seq <= (SELECT max(seq) FROM main.task_store)",
            all.join(" AND ")
        );
    }
    let branches = STATUS_BRANCHES
        .iter()
        .map(|(cond, literal)| {
            let mut parts = vec![cond.to_string()];
            for (i, (name, term)) in terms.iter().enumerate() {
                match (*name, literal) {
                    ("status", Some(lit)) => parts.push(format!("?{} = '{lit}'", i + 1)),
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
    format!("{head} WHERE seq IN ({branches})")
}
