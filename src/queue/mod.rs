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
//! | `notes.rs` | how an UPDATE reports the rows it changed |
//! | `refusal.rs` | why a write matched nothing |
//! | `check.rs` | `task_check()` |

pub mod admin;
pub mod bulk;
pub mod check;
pub mod claim;
pub mod enqueue;
pub mod ids;
pub mod json;
pub mod model;
pub mod notes;
pub mod refusal;
pub mod worker;
pub mod writeback;

pub use admin::{Reschedule, cancel, delete, reschedule, retry};
pub use claim::{ClaimArgs, Claimed, Queues, claim};
pub use enqueue::{Enqueued, NewTask, enqueue};
pub use model::Status;
pub use worker::{FailArgs, WorkerArgs, complete, fail, progress};

use crate::error::Result;
use crate::ffi::{Conn, Stmt};
use crate::storage;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The queue on one host connection: the connection, and what the queue
/// remembers between calls on it. Shared by every function and the table.
pub struct Queue {
    conn: Rc<Conn>,
    notes: notes::Notes,
    /// What the last claim learned, to skip reads next time.
    hint: RefCell<claim::Hint>,
    /// Whether the storage was verified at this build's schema version.
    ready: Cell<bool>,
}

impl Queue {
    pub fn new(conn: Rc<Conn>) -> Rc<Queue> {
        Rc::new(Queue {
            conn,
            notes: notes::Notes::default(),
            hint: RefCell::new(claim::Hint::None),
            ready: Cell::new(false),
        })
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

    /// `task_init()`: creates or migrates the storage.
    pub fn init(&self) -> Result<i64> {
        let version = storage::init(&self.conn)?;
        self.ready.set(true);
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
