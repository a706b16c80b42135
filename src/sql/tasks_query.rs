//! The shape of the `tasks` table: its columns, once, and the storage query
//! behind each combination of filters. Plain constants and pure functions,
//! shared with `build.rs`, which turns them into static strings (the
//! declaration, and one query per idxNum), so the library holds no
//! heap-allocated statics: hosts that unload it with dlclose would leak them.

/// Declares the columns once: the [`Col`] enum (a column's index is its
/// position) and [`COLUMNS`] (name, declared type, and what the storage
/// query reads for it: a `task_store` column, or NULL for one the cursor
/// computes).
macro_rules! columns {
    ($($col:ident $name:literal $decl:literal $source:literal,)*) => {
        /// A column of the `tasks` table; `col as usize` is its index.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Col {
            $($col),*
        }

        impl Col {
            /// Every column, in declaration order.
            pub const ALL: &'static [Col] = &[$(Col::$col),*];
        }

        /// Name, declared type and storage source of each column, in
        /// [`Col`] order.
        pub const COLUMNS: &[(&str, &str, &str)] = &[$(($name, $decl, $source)),*];
    };
}

columns! {
    Id "id" "TEXT" "id",
    Queue "queue" "TEXT" "queue",
    Type "type" "TEXT" "type",
    Status "status" "TEXT" "status",
    Priority "priority" "INTEGER" "priority",
    // A parent's is the rollup of its children's (computed by the cursor).
    Progress "progress" "NUMERIC" "progress",
    Details "details" "TEXT" "details",
    Result "result" "TEXT" "result",
    Error "error" "TEXT" "error",
    Attempts "attempts" "INTEGER" "attempts",
    MaxAttempts "max_attempts" "INTEGER" "max_attempts",
    ParentId "parent_id" "TEXT" "parent_id",
    Worker "worker" "TEXT" "worker",
    LeaseUntil "lease_until" "INTEGER" "lease_until",
    RunAt "run_at" "INTEGER" "run_at",
    CreatedAt "created_at" "INTEGER" "created_at",
    UpdatedAt "updated_at" "INTEGER" "updated_at",
    StartedAt "started_at" "INTEGER" "started_at",
    CompletedAt "completed_at" "INTEGER" "completed_at",
    UniqueKey "unique_key" "TEXT" "unique_key",
    // The ids the task waits for, as a JSON array (from task_deps).
    DependsOn "depends_on" "TEXT" "NULL",
    Children "children" "INTEGER" "children",
    // children less the unfinished ones (task_parent_store, storage version
    // 8): `children_open!` written out, as build.rs reads this file too (a
    // unit test in tasks_table.rs holds the two equal).
    ChildrenDone "children_done" "INTEGER" "children - (CASE WHEN task_store.children > 0 THEN coalesce((SELECT o.unfinished FROM main.task_parent_store AS o WHERE o.seq = task_store.seq AND o.id = task_store.id), 0) ELSE 0 END)",
    // Hidden, write-only columns for INSERT: the task_enqueue options
    // that are not properties of the task.
    Delay "delay" "INTEGER HIDDEN" "NULL",
    Now "now" "INTEGER HIDDEN" "NULL",
    OnConflict "on_conflict" "TEXT HIDDEN" "NULL",
    UniqueScope "unique_scope" "TEXT HIDDEN" "NULL",
    OnChildFailure "on_child_failure" "TEXT HIDDEN" "NULL",
    WaitForChildren "wait_for_children" "INTEGER HIDDEN" "NULL",
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
/// followed by `seq` (the rowid) at index `VISIBLE` and `flags` after it.
pub const VISIBLE: usize = Col::ChildrenDone as usize + 1;
/// Index of `seq` and `flags` in the storage SELECT.
pub const SEQ: usize = VISIBLE;
pub const FLAGS: usize = VISIBLE + 1;

/// The declaration SQLite is given (`sqlite3_declare_vtab`).
pub fn declaration() -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|(name, decl, _)| format!("{name} {decl}"))
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
/// the seven values, so the branches hold every row. Queued and running
/// tasks are read through their partial indexes, failed, cancelled,
/// blocked and waiting ones through `task_store_parked`; completed tasks
/// are in none (see `storage/`), so their branch reads the table.
const STATUS_BRANCHES: [(&str, Option<&str>); 4] = [
    ("status = 'queued'", Some("queued")),
    ("status = 'running'", Some("running")),
    (
        "NOT (status = 'running' OR status = 'queued' OR status = 'completed')",
        None,
    ),
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
/// `task_store_ready`, running ones through `task_store_running`, failed,
/// cancelled, blocked and waiting ones through `task_store_parked`,
/// completed ones from the table. A partial index is only usable when
/// the query names its status as a literal, so a bound status is compared
/// with each branch's literal (a constant test SQLite evaluates once)
/// rather than row by row. Bound values are written `+?N` so that matching
/// partial indexes never makes SQLite re-prepare the statement on each bind
/// (see `queue/claim/sql.rs`). There is no index on queue or type for every
/// row: it would cost a page write on every enqueue.
pub fn build_select(mask: usize) -> String {
    let sources: Vec<&str> = COLUMNS[..VISIBLE].iter().map(|(_, _, src)| *src).collect();
    let head = format!(
        "SELECT {}, seq, flags FROM main.task_store",
        sources.join(", ")
    );
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
