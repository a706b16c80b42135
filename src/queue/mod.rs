//! The queue, as plain Rust over one host connection: every rule about
//! tasks lives here once, and both the SQL functions and the `tasks` table
//! (`sql/`) call it. No unsafe code and no C API: statements come from the
//! connection's pool in `ffi/`.
//!
//! Every operation is exactly one write statement. That is what makes it
//! all-or-nothing in every context the extension is called from: a
//! statement is atomic on its own (SQLite's statement journal), whereas a
//! SAVEPOINT cannot be opened inside a trigger or a virtual-table write. One
//! statement is also what keeps `SELECT task_claim(...)` free of
//! SQLITE_BUSY_SNAPSHOT: the statement takes the write lock before it reads,
//! so its snapshot can never be stale. When a write matches no row, a
//! read-only follow-up explains why (`refusal.rs`); nothing has changed by
//! then. The bulk verbs (`bulk/`) are the exception: several of these
//! statements in one savepoint.
//!
//! | file | holds |
//! |---|---|
//! | `model.rs` | statuses, limits and defaults, the clock |
//! | `ids.rs`, `json.rs` | task ids; the JSON check and writer |
//! | `enqueue.rs` | `task_enqueue`, `INSERT INTO tasks` |
//! | `claim/` | `task_claim`, `task_claim_batch`: the plan and its SQL |
//! | `worker.rs` | progress, heartbeat, complete, fail |
//! | `admin.rs` | cancel, retry, reschedule, delete |
//! | `bulk/` | the batch verbs and `task_complete_next` |
//! | `writeback.rs` | progress held in memory between writes |
//! | `flow.rs` | workflows: what follows when a linked task finishes |
//! | `tree.rs` | a parent's rollup; retrying a parent with its children |
//! | `deps.rs` | the dependencies of a task, read back |
//! | `txn.rs` | all-or-nothing for verbs of more than one statement |
//! | `notes.rs` | how an UPDATE reports the rows it changed |
//! | `refusal.rs` | why a write matched nothing |
//! | `check.rs` | `task_check()` |

/// The row of a task this connection claimed: the seq its claim noted (the
/// parameter `$seq`, ?5 unless given) and ?1, its id. A rowid seek; the id
/// is checked because the row is a hint (the task may have been deleted and
/// its rowid reused since).
macro_rules! mine {
    () => {
        mine!("?5")
    };
    ($seq:literal) => {
        concat!("seq = ", $seq, " AND id = +?1")
    };
}

/// The condition, in SQL, for a task that no other task waits on or for,
/// that holds no unique key and that does not count toward a queue's
/// concurrency limit: no parent, no children, no dependents, no key, no
/// flags 64. Such a task's verbs are one statement each; the others take
/// the workflow path (`flow.rs`), which keeps the flags below.
macro_rules! plain_task {
    () => {
        "parent_id IS NULL AND children = 0 AND dependents = 0 AND unique_key IS NULL
         AND NOT flags & 64"
    };
}

/// The condition, in SQL, for a task that has not finished: every status
/// but completed, failed and cancelled; `unfinished!("c.")` for the row of
/// the alias `c`.
macro_rules! unfinished {
    () => {
        unfinished!("")
    };
    ($t:literal) => {
        concat!(
            "(",
            $t,
            "status = 'queued' OR ",
            $t,
            "status = 'running' OR ",
            $t,
            "status = 'blocked' OR ",
            $t,
            "status = 'waiting')"
        )
    };
}

/// How many children of the task row `$t` (a name or alias of
/// `task_store`) have not finished: its row in `task_parent_store` (storage
/// version 8), 0 for a task without children. An SQL expression.
macro_rules! children_open {
    ($t:literal) => {
        concat!(
            "CASE WHEN ",
            $t,
            ".children > 0 THEN coalesce((SELECT o.unfinished \
             FROM main.task_parent_store AS o WHERE o.seq = ",
            $t,
            ".seq AND o.id = ",
            $t,
            ".id), 0) ELSE 0 END"
        )
    };
}
pub(crate) use children_open;

/// The event a write statement records for each row it changes (see
/// `events.rs`): `task__event(<returns>, <level>, kind, id, status,
/// attempt, worker, error, progress)` returns its first argument, so it
/// wraps the value a column gets anyway (`updated_at`, or the
/// `task__note(…)` that gives it), and the statement writes the event in
/// the same statement as the transition. `$queue` names the task's queue:
/// its `events` setting decides what is kept. The other arguments are SQL
/// for the row's values *after* the write (an UPDATE's SET sees the old
/// row, so a changed status is spelled as the statement's CASE).
macro_rules! event {
    // With the queue's events setting given as SQL (NULL: none), for a
    // statement that has read it already.
    (level = $level:expr; $returns:expr, $kind:expr, $id:expr, $status:expr, $attempt:expr,
     $worker:expr, $error:expr, $progress:expr) => {
        concat!(
            "task__event(",
            $returns,
            ", ",
            $level,
            ", ",
            $kind,
            ", ",
            $id,
            ", ",
            $status,
            ", ",
            $attempt,
            ", ",
            $worker,
            ", ",
            $error,
            ", ",
            $progress,
            ")"
        )
    };
    ($returns:expr, $queue:expr, $kind:expr, $status:expr, $attempt:expr, $worker:expr,
     $error:expr, $progress:expr) => {
        event!(
            $returns, $queue, $kind, "id", $status, $attempt, $worker, $error, $progress
        )
    };
    ($returns:expr, $queue:expr, $kind:expr, $id:expr, $status:expr, $attempt:expr,
     $worker:expr, $error:expr, $progress:expr) => {
        event!(
            level = concat!(
                "(SELECT ev.events FROM main.task_queue_store AS ev WHERE ev.name = ",
                $queue,
                ")"
            );
            $returns, $kind, $id, $status, $attempt, $worker, $error, $progress
        )
    };
}

/// An event kind's code, as SQL (`events::Kind` has the same codes; a
/// unit test compares them). 0: no event (a statement's CASE for a row
/// that makes no transition); `reclaimed` is two events, the lease that
/// expired and the new claim.
macro_rules! kind {
    (none) => {
        "0"
    };
    (enqueued) => {
        "1"
    };
    (claimed) => {
        "2"
    };
    (progress) => {
        "3"
    };
    (completed) => {
        "4"
    };
    (failed) => {
        "5"
    };
    (cancelled) => {
        "6"
    };
    (retried) => {
        "7"
    };
    (expired) => {
        "8"
    };
    (released) => {
        "9"
    };
    (waiting) => {
        "10"
    };
    (updated) => {
        "11"
    };
    (reclaimed) => {
        "12"
    };
}

/// The event of a blocked task that one of its dependencies no longer
/// holds: released (queued) when it was the last, none otherwise.
macro_rules! released_event {
    ($returns:expr) => {
        event!(
            $returns,
            "queue",
            concat!(
                "CASE WHEN waiting_for <= 1 THEN ",
                kind!(released),
                " ELSE ",
                kind!(none),
                " END"
            ),
            "'queued'",
            "attempts",
            "NULL",
            "NULL",
            "NULL"
        )
    };
}

/// `flags` for a task that has just failed or been cancelled: it leaves its
/// parent's rollup index (16), gives up its unique key (32) and stops
/// counting toward its queue's limit (64).
///
/// Those bits are what the indexes `task_store_busy` (16) and
/// `task_store_unique` (32 or 64) are partial on. Only the workflow path writes
/// `flags`, so the plain task's claim and completion, which write `status`
/// and `progress` but never `flags`, do not touch those indexes at all
/// (SQLite maintains an index in an UPDATE only when the UPDATE sets a
/// column the index or its WHERE names).
macro_rules! flags_ended {
    () => {
        "flags & ~112"
    };
}

/// A queue's default, in SQL: `$given` unless NULL, else setting `$column`
/// of queue `$queue` (one seek in `task_queue_store`, a table of a page,
/// read only when it is needed), else `$otherwise`. A statement that needs
/// several settings of the row it writes reads them with `queue_settings!`.
macro_rules! queue_default {
    ($given:literal; $column:literal, $queue:literal, $otherwise:literal) => {
        concat!(
            "coalesce(",
            $given,
            ", (SELECT d.",
            $column,
            " FROM main.task_queue_store AS d WHERE d.name = ",
            $queue,
            "), ",
            $otherwise,
            ")"
        )
    };
}

/// The settings of the queue of the row an UPDATE writes, as the FROM of a
/// row-value subquery (`SET (a, b) = (SELECT … FROM queue_settings!(…))`):
/// `$columns` of its `task_queue_store` row `s`, each aliased to a name no
/// column of task_store has (`lv_…`), so that the task's own columns stay in
/// scope. Read as an aggregate (`max(lv_…)`), the subquery has a row whether
/// the queue has settings or not, and SQLite evaluates it once per row
/// written: one seek for every setting the statement uses, where a subquery
/// per use made one each (measured on the claim, which uses its lease three
/// times and its events level once: 5.4k instructions of 82.9k for the
/// three leases, with callgrind on the plain cycle).
macro_rules! queue_settings {
    ($columns:literal) => {
        concat!(
            "(SELECT ",
            $columns,
            " FROM main.task_queue_store AS s WHERE s.name = task_store.queue)"
        )
    };
}

/// `flags` for a task that has just completed: out of the rollup index and
/// the limit's count, and its unique key given up unless it holds it
/// through completion (4).
macro_rules! flags_completed {
    () => {
        "flags & ~(CASE WHEN flags & 4 THEN 80 ELSE 112 END)"
    };
}

pub mod admin;
pub mod bulk;
pub mod check;
pub mod claim;
pub mod cron;
pub mod deps;
pub mod enqueue;
pub mod events;
pub mod flow;
pub mod ids;
pub mod json;
pub mod model;
pub mod notes;
pub mod prune;
pub mod refusal;
pub mod schedule;
pub mod settings;
pub mod stats;
pub mod tree;
pub mod txn;
pub mod wait;
pub mod worker;
pub mod writeback;

pub use admin::{Reschedule, cancel, delete, reschedule, retry};
pub use claim::{ClaimArgs, Claimed, Queues, claim};
pub use enqueue::{Enqueued, NewTask, enqueue};
pub use model::Status;
pub use worker::{FailArgs, WorkerArgs, complete, fail, progress};

use crate::error::{Error, Result};
use crate::ffi::{Conn, Stmt};
use crate::storage;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::rc::Rc;

/// The queue on one host connection: the connection, and what the queue
/// remembers between calls on it. Shared by every function and the table.
pub struct Queue {
    conn: Rc<Conn>,
    notes: notes::Notes,
    /// What the last claim learned, to skip reads next time.
    hint: RefCell<claim::Hint>,
    /// What the last every-queue claims learned of the queues' heads.
    heads: RefCell<claim::Heads>,
    /// Whether the storage was verified at this build's schema version.
    ready: Cell<bool>,
    /// Whether the database was found not to be a libSQL replica's copy
    /// (see [`Queue::ensure_writable`]).
    primary: Cell<bool>,
    /// The tasks this connection claimed lately: their row (seq) and how
    /// they are linked. Their verbs here find the row by its rowid, and one
    /// in a workflow skips the plain statement.
    claimed: RefCell<Claims>,
    /// The rows (seq) of the parents this connection's completions told
    /// lately, most recent last: their next child's completion tells them
    /// by rowid.
    parents: RefCell<Vec<(String, i64)>>,
    /// The file watch of this connection's waits, made by the first one
    /// (`wait.rs`).
    watch: RefCell<Option<crate::ffi::Watch>>,
}

/// A write statement that changes nothing: it takes the write lock of the
/// transaction it runs in (`Queue::ensure_writable`).
const LOCK_FIRST_SQL: &str = "DELETE FROM main.task_queue_store WHERE 0";

/// The file libSQL keeps beside a replica's database, if there is one.
fn replica_marker(conn: &Conn) -> Option<String> {
    if conn.in_memory() {
        return None;
    }
    let file = conn.key();
    let beside = std::path::Path::new(file)
        .parent()
        .map(|d| d.join("client_wal_index"));
    let embedded = std::path::PathBuf::from(format!("{file}-client_wal_index"));
    beside
        .into_iter()
        .chain([embedded])
        .find(|p| p.exists())
        .map(|p| p.display().to_string())
}

/// How a task this connection claimed is linked to others, as its claim
/// saw it (what has changed since, the statements' WHERE sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// A parent, children, dependents or a unique key.
    Workflow,
    /// None of those, but it counts toward its queue's concurrency limit
    /// (flags 64).
    LimitedOnly,
    /// A child with no children, dependents or unique key of its own.
    Leaf { parent: String },
    /// None of those: a plain task.
    Plain,
}

/// How many claimed tasks a connection remembers.
const CLAIMED_MEMORY: usize = 256;

/// How many parents' rows a connection remembers.
const PARENT_MEMORY: usize = 8;

/// The tasks a connection claimed lately, by id: their row and link, and the
/// order they are forgotten in. A map, so that a verb on a task that is not
/// in it (claimed elsewhere) costs one lookup whatever it holds.
#[derive(Default)]
struct Claims {
    by_id: HashMap<Rc<str>, (u64, i64, Link), BuildHasherDefault<IdHasher>>,
    /// Ids in claim order with the number of their claim; one taken since,
    /// or claimed again, is skipped when it comes to be forgotten.
    order: VecDeque<(u64, Rc<str>)>,
    claims: u64,
}

impl Claims {
    fn remember(&mut self, id: &str, seq: i64, link: Link) {
        if self.order.len() >= CLAIMED_MEMORY
            && let Some((n, old)) = self.order.pop_front()
            && self.by_id.get(&old).is_some_and(|e| e.0 == n)
        {
            self.by_id.remove(&old);
        }
        self.claims += 1;
        let id: Rc<str> = Rc::from(id);
        self.by_id.insert(Rc::clone(&id), (self.claims, seq, link));
        self.order.push_back((self.claims, id));
    }
}

/// A hash of task ids for [`Claims`], a few instructions a word (the
/// standard one is made to resist chosen keys, and costs more than the
/// lookup it serves saves; a map of 256 entries needs no such guard).
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        for &b in words.remainder() {
            self.add(u64::from(b));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Queue {
    pub fn new(conn: Rc<Conn>) -> Rc<Queue> {
        Rc::new(Queue {
            conn,
            notes: notes::Notes::default(),
            hint: RefCell::new(claim::Hint::None),
            heads: RefCell::new(claim::Heads::default()),
            ready: Cell::new(false),
            primary: Cell::new(false),
            claimed: RefCell::new(Claims::default()),
            parents: RefCell::new(Vec::new()),
            watch: RefCell::new(None),
        })
    }

    /// Remembers the task `id`, just claimed: its row and how it is linked.
    fn remember_claimed(&self, id: &str, seq: i64, link: Link) {
        self.claimed.borrow_mut().remember(id, seq, link);
    }

    /// The row of the task `id` and how it was linked, if this connection
    /// claimed it lately (and forgets it). The row is a hint: the
    /// statements that use it check the id as well.
    fn take_claimed(&self, id: &str) -> Option<(i64, Link)> {
        let (_, seq, link) = self.claimed.borrow_mut().by_id.remove(id)?;
        Some((seq, link))
    }

    /// The row of the task `id`, if this connection claimed it lately (and
    /// goes on remembering it). A hint, as in `take_claimed`.
    fn claimed_seq(&self, id: &str) -> Option<i64> {
        self.claimed.borrow().by_id.get(id).map(|e| e.1)
    }

    /// The row of the parent `id`, if a completion here told it lately.
    /// A hint: the statement that uses it checks the id as well.
    fn parent_seq(&self, id: &str) -> Option<i64> {
        let parents = self.parents.borrow();
        parents
            .iter()
            .rev()
            .find(|(p, _)| p == id)
            .map(|&(_, seq)| seq)
    }

    /// Remembers the row of the parent `id`.
    fn remember_parent(&self, id: &str, seq: i64) {
        let mut parents = self.parents.borrow_mut();
        parents.retain(|(p, _)| p != id);
        if parents.len() >= PARENT_MEMORY {
            parents.remove(0);
        }
        parents.push((id.to_string(), seq));
    }

    /// Forgets the row of the parent `id`.
    fn forget_parent(&self, id: &str) {
        self.parents.borrow_mut().retain(|(p, _)| p != id);
    }

    /// Makes the next every-queue claim scan every queue again: this
    /// connection is about to change what is queued other than by an
    /// enqueue (a retry, a release, a failure back to its queue, a
    /// resumed queue), which the heads it keeps would not show.
    pub(crate) fn forget_heads(&self) {
        self.heads.borrow_mut().clear();
    }

    /// Notes an enqueue into `queue` for the next every-queue claim.
    fn touched(&self, queue: &str) {
        self.heads.borrow_mut().touched(queue);
    }

    pub fn conn(&self) -> &Rc<Conn> {
        &self.conn
    }

    pub fn notes(&self) -> &notes::Notes {
        &self.notes
    }

    /// A pooled statement for one of the queue's constant SQL texts.
    pub fn prepare(&self, sql: &'static str) -> Result<Stmt> {
        self.conn.prepare(sql)
    }

    /// Verifies once per connection that the storage exists at this
    /// version. Cheap after the first call: no schema lookup on the hot path.
    pub fn ensure_ready(&self) -> Result<()> {
        if !self.ready.get() {
            storage::check_version(&self.conn)?;
            self.ready.set(true);
        }
        Ok(())
    }

    /// Takes the write lock of the transaction (or savepoint) open now, if
    /// it does not hold it yet: so that what the verb reads next cannot be
    /// changed by another connection before it writes.
    pub fn lock_first(&self) -> Result<()> {
        self.prepare(LOCK_FIRST_SQL)?.finish()
    }

    /// What every verb that writes checks before its first statement: the
    /// storage is ready, the database is not a libSQL read replica's copy,
    /// and, inside a transaction that has not touched the database yet
    /// (`BEGIN`, then this verb), the write lock is taken first.
    ///
    /// A replica (libSQL server's, or an embedded one) runs a statement
    /// that reads as a SELECT on its own copy and forwards only what reads
    /// as a write: `SELECT task_claim(…)` would claim on the copy alone,
    /// invisible to the primary and overwritten by the next replicated
    /// frame, while another worker claims the same task there. libSQL
    /// keeps a `client_wal_index` file beside a replica's database (or
    /// `<database>-client_wal_index` for an embedded replica), and only
    /// there; looking for it is a `stat`, never an open.
    ///
    /// Taking the write lock first matters because the verbs read before
    /// they write (a claim's plan, a refusal's reasons): in a deferred
    /// transaction those reads start a snapshot, and if another connection
    /// commits before the write, SQLite cannot upgrade the snapshot and
    /// fails at once with SQLITE_BUSY, which no busy timeout retries. With
    /// the lock taken first, the verb waits for it like any write.
    pub fn ensure_writable(&self) -> Result<()> {
        if !self.primary.get() {
            if let Some(marker) = replica_marker(&self.conn) {
                return Err(Error::with_code(
                    crate::error::code::READONLY,
                    format!(
                        "this database is a libSQL read replica's copy ({marker} exists): a write \
                         here would change the copy only; send the call in a transaction the \
                         replica forwards to its primary (BEGIN IMMEDIATE, the call and COMMIT \
                         as separate requests of one stream; see docs/scaling.md)"
                    ),
                ));
            }
            self.primary.set(true);
        }
        // Before the storage check, which reads (and would start the
        // snapshot); if the lock cannot be taken because there is no
        // storage, the check says so.
        if !self.conn.autocommit() && !self.conn.txn_open() {
            let locked = self.prepare(LOCK_FIRST_SQL).and_then(|mut st| st.finish());
            if let Err(e) = locked {
                self.ensure_ready()?;
                return Err(e);
            }
        }
        self.ensure_ready()
    }

    /// `task_init()`: creates or migrates the storage, and adds or drops
    /// the optional indexes of completed tasks (`index_completed`) and of
    /// the event log by task (`index_events`).
    pub fn init(&self, index_completed: Option<bool>, index_events: Option<bool>) -> Result<i64> {
        let version = storage::init(&self.conn)?;
        self.ready.set(true);
        if let Some(on) = index_completed {
            storage::index_completed(&self.conn, on)?;
        }
        if let Some(on) = index_events {
            storage::index_events(&self.conn, on)?;
        }
        Ok(version)
    }

    /// The `tasks` table connected or disconnected. A disconnect comes
    /// before the connection closes, and when SQLite resets its schema
    /// (another connection changed it): the pool is emptied and the storage
    /// checked again on the next call.
    pub fn table_connected(&self, connected: bool) {
        self.conn.anchor(connected);
        if !connected {
            self.ready.set(false);
        }
    }

    /// See `Conn::key`.
    pub fn key(&self) -> &str {
        self.conn.key()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Held progress of an in-memory database dies with its connection.
        if self.conn.in_memory() {
            writeback::forget_db(self.conn.key());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CLAIMED_MEMORY, Claims, Link};

    fn id(n: usize) -> String {
        format!("0193a000-0000-7000-8000-{n:012x}")
    }

    #[test]
    fn the_claims_memory_forgets_the_oldest_and_keeps_a_task_claimed_again() {
        let mut m = Claims::default();
        for n in 0..CLAIMED_MEMORY {
            m.remember(&id(n), n as i64, Link::Plain);
        }
        // Task 5 claimed again (its lease expired): when its first claim's
        // turn to be forgotten comes, the second stays.
        m.remember(&id(5), 1_000, Link::Plain);
        assert!(!m.by_id.contains_key(&*id(0)));
        for n in 0..5 {
            m.remember(&id(CLAIMED_MEMORY + n), 7, Link::Workflow);
        }
        assert!(!m.by_id.contains_key(&*id(4)));
        assert_eq!(m.by_id.get(&*id(5)).map(|e| e.1), Some(1_000));
        assert_eq!(m.by_id.get(&*id(6)).map(|e| e.1), Some(6));
        // Taken ones leave the map at once; the order forgets them in turn.
        assert!(m.by_id.remove(&*id(6)).is_some());
        for n in 0..3 * CLAIMED_MEMORY {
            m.remember(&id(10_000 + n), n as i64, Link::Plain);
        }
        assert_eq!(m.by_id.len(), CLAIMED_MEMORY);
        assert_eq!(m.order.len(), CLAIMED_MEMORY);
    }
}
