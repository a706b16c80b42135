//! The host connection as the extension uses it: its handle, the pool of
//! prepared statements kept across calls, and the few connection-wide
//! calls (errors, changes, exec).
//!
//! Why our own layer and not rusqlite's `Connection`: a function or virtual
//! table needs statements that outlive one call (re-preparing costs ~6 µs per
//! statement, more than the work itself) and that a virtual-table cursor can
//! own across `xFilter`/`xNext`. rusqlite statements borrow their connection,
//! which a cursor cannot hold, and `Context::get_connection()` hands out a
//! wrapper with a fresh statement cache on every call. So statements here
//! are raw handles, checked out of [`Conn`]'s pool for the duration of one
//! use and returned on drop (see `stmt.rs`).
//!
//! The trap with a cache: a prepared statement that is still alive makes
//! `sqlite3_close` fail with `SQLITE_BUSY`. SQLite disconnects every virtual
//! table, eponymous ones included, *before* it checks for live statements, so
//! the `tasks` table's `xDisconnect` empties the pool ([`Conn::anchor`]). The
//! pool only keeps statements while that table is connected; otherwise every
//! statement is finalized after use (slower, never leaks).

use super::stmt::Stmt;
use crate::error::{Error, NOT_INITIALIZED, Result};
use rusqlite::ffi as sys;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_void};
use std::os::raw::{c_char, c_int};
use std::ptr::{self, NonNull};
use std::rc::Rc;

/// One host connection. Shared (via `Rc`) by every SQL function registered
/// on it, by the `tasks` table and by every statement checked out.
///
/// SQLite serializes all calls on one connection (its mutex, or the
/// application's promise in multi-thread mode), so plain `Rc`/`RefCell` are
/// enough; no borrow is ever held across a call back into SQLite, which keeps
/// re-entrant use (a trigger on the storage calling `task_enqueue`) safe.
pub struct Conn {
    db: *mut sys::sqlite3,
    /// Idle statements by SQL text, keyed by the text's address: the SQL is
    /// always a `&'static str`, so comparing addresses is exact and avoids
    /// hashing a kilobyte of SQL on every call (measured: ~6% of a claim).
    idle: RefCell<Vec<(usize, Vec<NonNull<sys::sqlite3_stmt>>)>>,
    /// Whether the `tasks` table is connected (pooling is safe).
    anchored: Cell<bool>,
    /// Whether this connection cycle already tried to connect it.
    probed: Cell<bool>,
    /// Identity of the main database for process-wide state (write-back):
    /// its file name, or this connection's address for in-memory ones.
    key: String,
}

/// A statement that names the `tasks` table: preparing it makes SQLite
/// connect the (eponymous) table, which anchors the pool.
const ANCHOR_SQL: &str = "SELECT 1 FROM main.tasks WHERE 0";

impl Conn {
    /// # Safety
    /// `db` must be a live connection that outlives the returned value's use.
    pub(crate) unsafe fn new(db: *mut sys::sqlite3) -> Rc<Conn> {
        // SAFETY: db is live; the returned name is valid while it is open.
        let file = unsafe {
            let p = sys::sqlite3_db_filename(db, c"main".as_ptr());
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let key = if file.is_empty() {
            format!("memory:{db:p}")
        } else {
            file
        };
        Rc::new(Conn {
            key,
            db,
            idle: RefCell::new(Vec::new()),
            anchored: Cell::new(false),
            probed: Cell::new(false),
        })
    }

    pub(crate) fn raw(&self) -> *mut sys::sqlite3 {
        self.db
    }

    /// See the `key` field.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the main database lives in memory (its process-wide state
    /// dies with this connection).
    pub fn in_memory(&self) -> bool {
        self.key.starts_with("memory:")
    }

    /// Called by the `tasks` table's xConnect (true) and xDisconnect
    /// (false): statements are pooled only in between.
    pub fn anchor(&self, connected: bool) {
        self.anchored.set(connected);
        if !connected {
            self.flush();
            self.probed.set(false);
        }
    }

    /// Finalizes every idle statement.
    pub fn flush(&self) {
        let drained: Vec<_> = self.idle.borrow_mut().drain(..).collect();
        for (_, stmts) in drained {
            for s in stmts {
                // SAFETY: idle statements are owned by the pool and not in use.
                unsafe { sys::sqlite3_finalize(s.as_ptr()) };
            }
        }
    }

    /// Checks a statement out of the pool, preparing it if none is idle.
    pub fn prepare(self: &Rc<Self>, sql: &'static str) -> Result<Stmt> {
        let key = sql.as_ptr() as usize;
        let pooled = self
            .idle
            .borrow_mut()
            .iter_mut()
            .find(|(k, _)| *k == key)
            .and_then(|(_, stack)| stack.pop());
        let raw = match pooled {
            Some(raw) => raw,
            None => {
                self.ensure_anchored();
                self.prepare_raw(sql)?
            }
        };
        Ok(Stmt::new(Rc::clone(self), Some(sql), raw))
    }

    /// Prepares a statement that is finalized when dropped, never pooled
    /// (SQL built at run time, or run once per connection).
    pub fn prepare_once(self: &Rc<Self>, sql: &str) -> Result<Stmt> {
        let raw = self.prepare_raw(sql)?;
        Ok(Stmt::new(Rc::clone(self), None, raw))
    }

    fn prepare_raw(&self, sql: &str) -> Result<NonNull<sys::sqlite3_stmt>> {
        let mut raw: *mut sys::sqlite3_stmt = ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| Error::new("statement too long"))?;
        // SAFETY: db is a live connection; sql is valid for len bytes.
        let rc = unsafe {
            sys::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast::<c_char>(),
                len,
                sys::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if rc != sys::SQLITE_OK {
            return Err(self.last_error(rc));
        }
        NonNull::new(raw).ok_or_else(|| Error::new("empty statement"))
    }

    /// Pooling is only safe while `tasks` is connected (its xDisconnect runs
    /// before `sqlite3_close` looks for live statements). Preparing a
    /// statement that names the table connects it; we try once per
    /// connection cycle.
    fn ensure_anchored(&self) {
        if self.anchored.get() || self.probed.get() {
            return;
        }
        self.probed.set(true);
        if let Ok(raw) = self.prepare_raw(ANCHOR_SQL) {
            // SAFETY: just prepared, not shared.
            unsafe { sys::sqlite3_finalize(raw.as_ptr()) };
        }
    }

    /// Takes back a pooled statement that was just reset.
    pub(super) fn give_back(&self, sql: &'static str, raw: NonNull<sys::sqlite3_stmt>) {
        if self.anchored.get() {
            let key = sql.as_ptr() as usize;
            let mut idle = self.idle.borrow_mut();
            match idle.iter_mut().find(|(k, _)| *k == key) {
                Some((_, stack)) => stack.push(raw),
                None => idle.push((key, vec![raw])),
            }
        } else {
            // SAFETY: the statement was checked out and is no longer used.
            unsafe { sys::sqlite3_finalize(raw.as_ptr()) };
        }
    }

    /// The connection's current error, as an [`Error`] carrying `rc`'s
    /// extended code. A missing storage table becomes the task_init() hint.
    pub fn last_error(&self, rc: c_int) -> Error {
        // SAFETY: db is live; errmsg returns a NUL-terminated string.
        let (msg, code) = unsafe {
            let p = sys::sqlite3_errmsg(self.db);
            let msg = if p.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            };
            let ext = sys::sqlite3_extended_errcode(self.db);
            let code = if ext & 0xff == rc & 0xff { ext } else { rc };
            (msg, code)
        };
        if msg.starts_with("no such table: main.task_") {
            return Error::with_code(code, NOT_INITIALIZED);
        }
        Error::with_code(code, msg)
    }

    /// Runs one or more statements with no result (DDL, transaction control).
    pub fn exec(&self, sql: &str) -> Result<()> {
        let c = CString::new(sql).map_err(|_| Error::new("statement contains NUL"))?;
        // SAFETY: db is live; c is a valid C string; no callback.
        let rc = unsafe {
            sys::sqlite3_exec(self.db, c.as_ptr(), None, ptr::null_mut(), ptr::null_mut())
        };
        if rc != sys::SQLITE_OK {
            return Err(self.last_error(rc));
        }
        Ok(())
    }

    /// True when no transaction is open on this connection.
    pub fn autocommit(&self) -> bool {
        // SAFETY: db is live.
        unsafe { sys::sqlite3_get_autocommit(self.db) != 0 }
    }

    /// True when a read or write transaction is open on the main database
    /// (a statement reading it, or BEGIN …): a wait for other connections'
    /// commits would then watch a snapshot that cannot change.
    pub fn txn_open(&self) -> bool {
        // SAFETY: db is live; "main" is a NUL-terminated schema name.
        unsafe { sys::sqlite3_txn_state(self.db, c"main".as_ptr()) != sys::SQLITE_TXN_NONE }
    }

    /// The files a commit of another connection writes: the database file
    /// and its `-wal` (empty for an in-memory database).
    pub fn commit_paths(&self) -> Vec<String> {
        if self.in_memory() {
            return Vec::new();
        }
        vec![format!("{}-wal", self.key), self.key.clone()]
    }

    /// Rowid of the most recent successful INSERT on this connection.
    pub fn last_insert_rowid(&self) -> i64 {
        // SAFETY: db is live.
        unsafe { sys::sqlite3_last_insert_rowid(self.db) }
    }

    /// Rows changed by the most recent INSERT/UPDATE/DELETE on this connection.
    pub fn changes(&self) -> i64 {
        // SAFETY: db is live.
        i64::from(unsafe { sys::sqlite3_changes(self.db) })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Reached when the last function or module holding the connection
        // is dropped. After a successful close the pool is already empty
        // (close refuses while statements live). A non-empty pool means the
        // functions were re-registered on a live connection (the extension
        // loaded twice): finalize them.
        self.flush();
    }
}

/// Random bytes from SQLite's PRNG (the host's, seeded by its VFS).
pub fn randomness(buf: &mut [u8]) {
    let n = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
    // SAFETY: buf is valid for n bytes.
    unsafe { sys::sqlite3_randomness(n, buf.as_mut_ptr().cast::<c_void>()) };
}

/// The host library's version, e.g. `3.40.1`.
pub fn libversion() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe {
        let p = sys::sqlite3_libversion();
        if p.is_null() {
            return String::new();
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
