//! The shape of the `tasks` table: its columns, once, and the storage query
//! behind each combination of filters. Plain constants and pure functions,
//! shared with `build.rs`, which turns them into static strings (the
//! declaration, and one query per idxNum), so the library holds no
//! heap-allocated statics: hosts that unload it with dlclose would leak them.

/// Declares the columns once: the [`Col`] enum (a column's index is its
/// position) and [`COLUMNS`] (name and declared type, in that order).
macro_rules! columns {
    ($($col:ident $name:literal $decl:literal,)*) => {
        /// A column of the `tasks` table; `col as usize` is its index.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Col {
            $($col),*
        }

        impl Col {
            /// Every column, in declaration order.
            pub const ALL: &'static [Col] = &[$(Col::$col),*];
        }

        /// Name and declared type of each column, in [`Col`] order.
        pub const COLUMNS: &[(&str, &str)] = &[$(($name, $decl)),*];
    };
}

columns! {
    Id "id" "TEXT",
    Queue "queue" "TEXT",
    Type "type" "TEXT",
    Status "status" "TEXT",
    Priority "priority" "INTEGER",
    Progress "progress" "NUMERIC",
    Details "details" "TEXT",
    Result "result" "TEXT",
    Error "error" "TEXT",
    Attempts "attempts" "INTEGER",
    MaxAttempts "max_attempts" "INTEGER",
    ParentId "parent_id" "TEXT",
    Worker "worker" "TEXT",
    LeaseUntil "lease_until" "INTEGER",
    RunAt "run_at" "INTEGER",
    CreatedAt "created_at" "INTEGER",
    UpdatedAt "updated_at" "INTEGER",
    StartedAt "started_at" "INTEGER",
    CompletedAt "completed_at" "INTEGER",
    // Hidden, write-only columns for INSERT: a relative start time and a
    // supplied clock, the same as task_enqueue's `delay` and `now` options.
    Delay "delay" "INTEGER HIDDEN",
    Now "now" "INTEGER HIDDEN",
}

impl Col {
    pub fn name(self) -> &'static str {
        COLUMNS[self as usize].0
    }

    pub fn at(i: usize) -> Option<Col> {
        Col::ALL.get(i).copied()
    }
}

/// Visible columns: the storage SELECT returns them in this order,
/// followed by `seq` (the rowid) at index `VISIBLE`.
pub const VISIBLE: usize = Col::CompletedAt as usize + 1;

/// The declaration SQLite is given (`sqlite3_declare_vtab`).
pub fn declaration() -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|(name, decl)| format!("{name} {decl}"))
        .collect();
    format!("CREATE TABLE x({})", cols.join(", "))
}

/// Columns whose equality filters are passed to the storage, in idxNum bit
/// order, and whether the filter is selective through an index of its own.
pub const FILTERS: [(Col, bool); 5] = [
    (Col::Id, true),
    (Col::Queue, false),
    (Col::Type, false),
    (Col::Status, false),
    (Col::ParentId, true),
];

/// idxNum bit for a lookup by id (unique: no rowid bound needed).
pub const BY_ID: usize = 1;
/// idxNum bit for a parent_id filter.
pub const BY_PARENT: usize = 1 << 4;
/// idxNum bit for a rowid (seq) lookup, used by UPDATE.
pub const BY_SEQ: usize = 1 << FILTERS.len();
/// How many idxNums there are (every combination of the bits above).
pub const QUERIES: usize = BY_SEQ << 1;

/// Each status branch's condition, and the status a `status = ?` filter
/// must equal for that branch to be read. `status` is CHECKed to be one of
/// the five values, so the branches hold every row. Queued, running, failed
/// and cancelled tasks are read through their partial indexes; completed
/// tasks are in none (see `storage/`), so their branch reads the table.
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
/// (see `queue/claim/sql.rs`). There is no index on queue or type for every
/// row: it would cost a page write on every enqueue.
pub fn build_select(mask: usize) -> String {
    let names: Vec<&str> = COLUMNS[..VISIBLE].iter().map(|(name, _)| *name).collect();
    let head = format!("SELECT {}, seq FROM main.task_store", names.join(", "));
    let mut terms: Vec<(Option<Col>, String)> = Vec::new();
    for (bit, (col, _)) in FILTERS.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            terms.push((
                Some(*col),
                format!("{} = +?{}", col.name(), terms.len() + 1),
            ));
        }
    }
    if mask & BY_SEQ != 0 {
        terms.push((None, format!("seq = +?{}", terms.len() + 1)));
    }
    // The rowid bound: the highest rowid when the scan began, bound by the
    // cursor as the last parameter. A lookup by id needs none.
    let bound = format!("seq <= +?{}", terms.len() + 1);
    if terms.is_empty() {
        return format!("{head} WHERE {bound}");
    }
    let all = || {
        terms
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    if mask & (BY_ID | BY_SEQ) != 0 {
        return format!("{head} WHERE {}", all());
    }
    let selective = FILTERS
        .iter()
        .enumerate()
        .any(|(bit, (_, sel))| *sel && mask & (1 << bit) != 0);
    if selective {
        return format!("{head} WHERE {} AND {bound}", all());
    }
    let branches = STATUS_BRANCHES
        .iter()
        .map(|(cond, literal)| {
            let mut parts = vec![cond.to_string()];
            for (i, (col, term)) in terms.iter().enumerate() {
                match (col, literal) {
                    (Some(Col::Status), Some(lit)) => parts.push(format!("+?{} = '{lit}'", i + 1)),
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
