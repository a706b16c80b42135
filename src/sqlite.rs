//! A thin, safe layer over the host's SQLite C API, and the per-connection
//! cache of prepared statements.
//!
//! Why our own layer and not rusqlite's `Connection`: a function or virtual
//! table needs statements that outlive one call (re-preparing costs ~6 µs per
//! statement, more than the work itself) and that a virtual-table cursor can
//! own across `xFilter`/`xNext`. rusqlite statements borrow their connection,
//! which a cursor cannot hold. So statements here are raw handles, checked out
//! of [`Conn`]'s pool for the duration of one use and returned on drop.
//!
//! The trap with a cache: a prepared statement that is still alive makes
//! `sqlite3_close` fail with `SQLITE_BUSY`. SQLite disconnects every virtual
//! table, eponymous ones included, *before* it checks for live statements, so
//! the `tasks` table's `xDisconnect` empties the pool (see `vtab.rs`). The
//! pool only keeps statements while that table is connected; otherwise every
//! statement is finalized after use (slower, never leaks).

use crate::error::{Error, NOT_INITIALIZED, Result};
use rusqlite::ffi;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_void};
use std::os::raw::{c_char, c_int};
use std::ptr::{self, NonNull};
use std::rc::Rc;

/// The extension's view of one host connection. Shared (via `Rc`) by every
/// SQL function registered on that connection and by the `tasks` table.
///
/// SQLite serializes all calls on one connection (its mutex, or the
/// application's promise in multi-thread mode), so plain `Rc`/`RefCell` are
/// enough; no borrow is ever held across a call back into SQLite, which keeps
/// re-entrant use (a trigger on the storage calling `task_enqueue`) safe.
pub struct Conn {
    db: *mut ffi::sqlite3,
    /// Idle statements by SQL text, keyed by the text's address: the SQL is
    /// always a `&'static str`, so comparing addresses is exact and avoids
    /// hashing a kilobyte of SQL on every call (measured: ~6% of a claim).
    idle: RefCell<Vec<(usize, Vec<NonNull<ffi::sqlite3_stmt>>)>>,
    vtab_connected: Cell<bool>,
    probed: Cell<bool>,
    schema_checked: Cell<bool>,
    /// Rows recorded by `task__note()` during the extension's own UPDATEs.
    notes: RefCell<Vec<Vec<Owned>>>,
    /// Statements of ours running inside `finish_noted`.
    recording: Cell<u32>,
    claim_hint: RefCell<crate::ops::Hint>,
    /// Identity of the main database for process-wide state (write-back):
    /// its file name, or this connection's address for in-memory ones.
    key: String,
}

/// An owned SQL value, recorded by `task__note()`.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl Owned {
    pub fn from_value(v: Value<'_>) -> Owned {
        match v {
            Value::Null => Owned::Null,
            Value::Integer(i) => Owned::Integer(i),
            Value::Real(r) => Owned::Real(r),
            Value::Text(t) => Owned::Text(t.to_string()),
            Value::Blob(b) => Owned::Text(String::from_utf8_lossy(b).into_owned()),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Owned::Integer(i) => *i,
            Owned::Real(r) => *r as i64,
            _ => 0,
        }
    }

    /// The value as text (numbers formatted), `None` for NULL.
    pub fn into_text(self) -> Option<String> {
        match self {
            Owned::Text(t) => Some(t),
            Owned::Integer(i) => Some(i.to_string()),
            Owned::Real(r) => Some(r.to_string()),
            Owned::Null => None,
        }
    }
}

impl Conn {
    /// # Safety
    /// `db` must be a live connection that outlives the returned value's use.
    pub unsafe fn new(db: *mut ffi::sqlite3) -> Rc<Conn> {
        // SAFETY: db is live; the returned name is valid while it is open.
        let file = unsafe {
            let p = ffi::sqlite3_db_filename(db, c"main".as_ptr());
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
            vtab_connected: Cell::new(false),
            probed: Cell::new(false),
            schema_checked: Cell::new(false),
            notes: RefCell::new(Vec::new()),
            recording: Cell::new(0),
            claim_hint: RefCell::new(crate::ops::Hint::None),
        })
    }

    pub fn claim_hint(&self) -> crate::ops::Hint {
        self.claim_hint.borrow().clone()
    }

    pub fn set_claim_hint(&self, hint: crate::ops::Hint) {
        *self.claim_hint.borrow_mut() = hint;
    }

    /// Runs `st` to completion and returns the rows its `task__note()`
    /// calls recorded. Notes nest like a stack, so a trigger that runs
    /// another verb inside the statement keeps its own.
    pub fn finish_noted(&self, mut st: Stmt) -> Result<Vec<Vec<Owned>>> {
        let rec = self.notes_mark();
        let outcome = st.finish();
        drop(st);
        let notes = self.take_notes(rec);
        outcome.map(|()| notes)
    }

    /// Where the rows a statement is about to note will start.
    fn notes_mark(&self) -> Recording<'_> {
        self.recording.set(self.recording.get() + 1);
        Recording {
            conn: self,
            mark: self.notes.borrow().len(),
            open: true,
        }
    }

    /// Records a row, only while one of the extension's statements runs (a
    /// direct `SELECT task__note(...)` by a user records nothing).
    pub fn note(&self, row: Vec<Owned>) {
        if self.recording.get() > 0 {
            self.notes.borrow_mut().push(row);
        }
    }

    /// Removes and returns the rows noted since `rec` began.
    fn take_notes(&self, mut rec: Recording<'_>) -> Vec<Vec<Owned>> {
        let taken = {
            let mut notes = self.notes.borrow_mut();
            let at = rec.mark.min(notes.len());
            notes.split_off(at)
        };
        rec.close();
        taken
    }

    pub fn db(&self) -> *mut ffi::sqlite3 {
        self.db
    }

    /// See the `key` field.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Called by the `tasks` table's xConnect and xDisconnect.
    pub fn set_vtab_connected(&self, connected: bool) {
        self.vtab_connected.set(connected);
        if !connected {
            self.flush();
            self.probed.set(false);
            self.schema_checked.set(false);
        }
    }

    /// Finalizes every idle statement.
    pub fn flush(&self) {
        let drained: Vec<_> = self.idle.borrow_mut().drain(..).collect();
        for (_, stmts) in drained {
            for s in stmts {
                // SAFETY: idle statements are owned by the pool and not in use.
                unsafe { ffi::sqlite3_finalize(s.as_ptr()) };
            }
        }
    }

    /// Whether the schema version was verified on this connection.
    pub fn schema_checked(&self) -> bool {
        self.schema_checked.get()
    }

    pub fn set_schema_checked(&self, ok: bool) {
        self.schema_checked.set(ok);
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
                self.ensure_vtab_connected();
                self.prepare_raw(sql)?
            }
        };
        Ok(Stmt {
            conn: Rc::clone(self),
            sql,
            raw,
        })
    }

    /// Prepares a statement that is finalized when dropped, never pooled.
    pub fn prepare_once(self: &Rc<Self>, sql: &str) -> Result<OwnedStmt> {
        let raw = self.prepare_raw(sql)?;
        Ok(OwnedStmt {
            conn: Rc::clone(self),
            raw,
        })
    }

    fn prepare_raw(&self, sql: &str) -> Result<NonNull<ffi::sqlite3_stmt>> {
        let mut raw: *mut ffi::sqlite3_stmt = ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| Error::new("statement too long"))?;
        // SAFETY: db is a live connection; sql is valid for len bytes.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.last_error(rc));
        }
        NonNull::new(raw).ok_or_else(|| Error::new("empty statement"))
    }

    /// Pooling is only safe while `tasks` is connected (its xDisconnect runs
    /// before `sqlite3_close` looks for live statements). Preparing a
    /// statement that names the table connects it; we try once per
    /// connection cycle.
    fn ensure_vtab_connected(&self) {
        if self.vtab_connected.get() || self.probed.get() {
            return;
        }
        self.probed.set(true);
        if let Ok(raw) = self.prepare_raw("SELECT 1 FROM main.tasks WHERE 0") {
            // SAFETY: just prepared, not shared.
            unsafe { ffi::sqlite3_finalize(raw.as_ptr()) };
        }
    }

    fn give_back(&self, sql: &'static str, raw: NonNull<ffi::sqlite3_stmt>) {
        if self.vtab_connected.get() {
            let key = sql.as_ptr() as usize;
            let mut idle = self.idle.borrow_mut();
            match idle.iter_mut().find(|(k, _)| *k == key) {
                Some((_, stack)) => stack.push(raw),
                None => idle.push((key, vec![raw])),
            }
        } else {
            // SAFETY: the statement was checked out and is no longer used.
            unsafe { ffi::sqlite3_finalize(raw.as_ptr()) };
        }
    }

    /// The connection's current error, as an [`Error`] carrying `rc`'s
    /// extended code. A missing storage table becomes the task_init() hint.
    pub fn last_error(&self, rc: c_int) -> Error {
        // SAFETY: db is live; errmsg returns a NUL-terminated string.
        let (msg, code) = unsafe {
            let p = ffi::sqlite3_errmsg(self.db);
            let msg = if p.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            };
            let ext = ffi::sqlite3_extended_errcode(self.db);
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
            ffi::sqlite3_exec(self.db, c.as_ptr(), None, ptr::null_mut(), ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.last_error(rc));
        }
        Ok(())
    }

    /// True when no transaction is open on this connection.
    pub fn autocommit(&self) -> bool {
        // SAFETY: db is live.
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    /// Runs `f` inside a savepoint: all of its writes commit together or
    /// none do. In autocommit mode the savepoint is the transaction, and the
    /// first statement `f` runs must be a write (the verbs' are), so the
    /// write lock is taken before anything is read. SQLite refuses to open a
    /// savepoint while another write statement is running (a trigger, a
    /// write to the `tasks` table): the batch verbs are for top-level calls.
    pub fn savepoint<T>(self: &Rc<Self>, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.prepare("SAVEPOINT task_batch")?.finish()?;
        let out = f();
        let end = match &out {
            Ok(_) => self
                .prepare("RELEASE task_batch")
                .and_then(|mut s| s.finish()),
            Err(_) => Err(Error::new("rolled back")),
        };
        if let Err(e) = end {
            let _ = self
                .prepare("ROLLBACK TO task_batch")
                .and_then(|mut s| s.finish());
            let _ = self
                .prepare("RELEASE task_batch")
                .and_then(|mut s| s.finish());
            return match out {
                Ok(_) => Err(e),
                Err(orig) => Err(orig),
            };
        }
        out
    }

    /// Rowid of the most recent successful INSERT on this connection.
    pub fn last_insert_rowid(&self) -> i64 {
        // SAFETY: db is live.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db) }
    }

    /// Rows changed by the most recent INSERT/UPDATE/DELETE on this connection.
    pub fn changes(&self) -> i64 {
        // SAFETY: db is live.
        i64::from(unsafe { ffi::sqlite3_changes(self.db) })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Reached from a function's destructor. After a successful close the
        // pool is already empty (close refuses while statements live). A
        // non-empty pool means the functions were re-registered on a live
        // connection (the extension loaded twice): finalize them.
        self.flush();
        // Held progress of an in-memory database dies with its connection.
        if self.key.starts_with("memory:") {
            crate::writeback::forget_db(&self.key);
        }
    }
}

/// An open recording of `task__note()` rows; ends on `take_notes` or drop
/// (an early return by `?` included).
pub struct Recording<'a> {
    conn: &'a Conn,
    mark: usize,
    open: bool,
}

impl Recording<'_> {
    fn close(&mut self) {
        if self.open {
            self.open = false;
            let depth = &self.conn.recording;
            depth.set(depth.get().saturating_sub(1));
            if depth.get() == 0 {
                // Nothing of ours is running: drop rows nobody will read.
                self.conn.notes.borrow_mut().truncate(self.mark);
            }
        }
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Random bytes from SQLite's PRNG (the host's, seeded by its VFS).
pub fn randomness(buf: &mut [u8]) {
    let n = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
    // SAFETY: buf is valid for n bytes.
    unsafe { ffi::sqlite3_randomness(n, buf.as_mut_ptr().cast::<c_void>()) };
}

/// The host library's version number, e.g. 3040001.
pub fn libversion_number() -> i32 {
    // SAFETY: plain query of the loaded library.
    unsafe { ffi::sqlite3_libversion_number() }
}

pub fn libversion() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe {
        let p = ffi::sqlite3_libversion();
        if p.is_null() {
            return String::new();
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Statement access shared by pooled and one-shot statements.
pub trait Statement {
    fn raw(&self) -> *mut ffi::sqlite3_stmt;
    fn conn(&self) -> &Conn;

    fn bind_i64(&mut self, i: c_int, v: i64) -> Result<()> {
        // SAFETY: raw is a live statement owned by self.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.raw(), i, v) };
        self.check_bind(rc)
    }

    fn bind_f64(&mut self, i: c_int, v: f64) -> Result<()> {
        // SAFETY: as above.
        let rc = unsafe { ffi::sqlite3_bind_double(self.raw(), i, v) };
        self.check_bind(rc)
    }

    fn bind_null(&mut self, i: c_int) -> Result<()> {
        // SAFETY: as above.
        let rc = unsafe { ffi::sqlite3_bind_null(self.raw(), i) };
        self.check_bind(rc)
    }

    fn bind_text(&mut self, i: c_int, v: &str) -> Result<()> {
        let len = c_int::try_from(v.len()).map_err(|_| Error::new("text too long"))?;
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before returning.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.raw(),
                i,
                v.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        self.check_bind(rc)
    }

    fn bind_opt_text(&mut self, i: c_int, v: Option<&str>) -> Result<()> {
        match v {
            Some(s) => self.bind_text(i, s),
            None => self.bind_null(i),
        }
    }

    fn bind_opt_i64(&mut self, i: c_int, v: Option<i64>) -> Result<()> {
        match v {
            Some(n) => self.bind_i64(i, n),
            None => self.bind_null(i),
        }
    }

    fn check_bind(&self, rc: c_int) -> Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.conn().last_error(rc))
        }
    }

    /// Steps once: `Ok(true)` with a row, `Ok(false)` when done.
    fn step(&mut self) -> Result<bool> {
        // SAFETY: raw is a live statement owned by self.
        let rc = unsafe { ffi::sqlite3_step(self.raw()) };
        match rc {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => Err(self.conn().last_error(rc)),
        }
    }

    /// Steps to the end, discarding rows. Statements with RETURNING commit
    /// only when they finish, so every write statement is run to completion.
    fn finish(&mut self) -> Result<()> {
        while self.step()? {}
        Ok(())
    }

    /// Rewinds the statement so it can run again with new bindings.
    fn reset(&mut self) {
        // SAFETY: raw is live; errors are reported by the next step.
        unsafe { ffi::sqlite3_reset(self.raw()) };
    }

    fn column_type(&self, i: c_int) -> c_int {
        // SAFETY: raw has a current row (callers step first).
        unsafe { ffi::sqlite3_column_type(self.raw(), i) }
    }

    fn column_i64(&self, i: c_int) -> i64 {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_column_int64(self.raw(), i) }
    }

    fn column_f64(&self, i: c_int) -> f64 {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_column_double(self.raw(), i) }
    }

    fn column_opt_i64(&self, i: c_int) -> Option<i64> {
        if self.column_type(i) == ffi::SQLITE_NULL {
            None
        } else {
            Some(self.column_i64(i))
        }
    }

    /// Column text, copied. NULL gives `None`; invalid UTF-8 is replaced.
    fn column_text(&self, i: c_int) -> Option<String> {
        // SAFETY: as above; the pointer is valid until the next step/reset and
        // column_bytes is called after column_text, as SQLite requires.
        unsafe {
            if ffi::sqlite3_column_type(self.raw(), i) == ffi::SQLITE_NULL {
                return None;
            }
            let p = ffi::sqlite3_column_text(self.raw(), i);
            if p.is_null() {
                return None;
            }
            let n = usize::try_from(ffi::sqlite3_column_bytes(self.raw(), i)).unwrap_or(0);
            let bytes = std::slice::from_raw_parts(p, n);
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }

    fn column_value(&self, i: c_int) -> *mut ffi::sqlite3_value {
        // SAFETY: as above; valid until the next step/reset.
        unsafe { ffi::sqlite3_column_value(self.raw(), i) }
    }
}

/// A pooled statement; returned to its connection's pool when dropped.
pub struct Stmt {
    conn: Rc<Conn>,
    sql: &'static str,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement for Stmt {
    fn raw(&self) -> *mut ffi::sqlite3_stmt {
        self.raw.as_ptr()
    }
    fn conn(&self) -> &Conn {
        &self.conn
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: raw is live; reset ends the statement (releasing its locks
        // and read transaction) before anyone else can reuse it.
        unsafe {
            ffi::sqlite3_reset(self.raw.as_ptr());
            ffi::sqlite3_clear_bindings(self.raw.as_ptr());
        }
        self.conn.give_back(self.sql, self.raw);
    }
}

/// A statement prepared for one use (SQL built at run time), finalized on drop.
pub struct OwnedStmt {
    conn: Rc<Conn>,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement for OwnedStmt {
    fn raw(&self) -> *mut ffi::sqlite3_stmt {
        self.raw.as_ptr()
    }
    fn conn(&self) -> &Conn {
        &self.conn
    }
}

impl Drop for OwnedStmt {
    fn drop(&mut self) {
        // SAFETY: owned, live, not used after this.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// A borrowed SQL value: a function argument or a virtual-table column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    /// Text that is not valid UTF-8, or a BLOB.
    Blob(&'a [u8]),
}

impl Value<'_> {
    /// Reads an `sqlite3_value`.
    ///
    /// # Safety
    /// `v` must be a valid protected or unprotected value that outlives `'a`.
    pub unsafe fn from_raw<'a>(v: *mut ffi::sqlite3_value) -> Value<'a> {
        // SAFETY: guaranteed by the caller.
        unsafe {
            match ffi::sqlite3_value_type(v) {
                ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_value_int64(v)),
                ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_value_double(v)),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_value_text(v);
                    let n = usize::try_from(ffi::sqlite3_value_bytes(v)).unwrap_or(0);
                    if p.is_null() {
                        return Value::Text("");
                    }
                    let bytes = std::slice::from_raw_parts(p, n);
                    match std::str::from_utf8(bytes) {
                        Ok(s) => Value::Text(s),
                        Err(_) => Value::Blob(bytes),
                    }
                }
                ffi::SQLITE_BLOB => {
                    let p = ffi::sqlite3_value_blob(v).cast::<u8>();
                    let n = usize::try_from(ffi::sqlite3_value_bytes(v)).unwrap_or(0);
                    if p.is_null() {
                        Value::Blob(&[])
                    } else {
                        Value::Blob(std::slice::from_raw_parts(p, n))
                    }
                }
                _ => Value::Null,
            }
        }
    }

    /// The SQL type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}
