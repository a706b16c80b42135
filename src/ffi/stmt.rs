//! A prepared statement: one type whether it is pooled or not, as
//! rusqlite's `RawStatement` with its optional cache key. A pooled
//! statement (`sql` is its pool key) goes back to its connection's pool
//! when dropped; any other is finalized.

use super::conn::Conn;
use super::value::{Value, ValueRef};
use crate::error::{Error, Result};
use rusqlite::ffi as sys;
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;
use std::rc::Rc;

pub struct Stmt {
    conn: Rc<Conn>,
    /// The pool key, for a statement checked out of the pool.
    sql: Option<&'static str>,
    raw: NonNull<sys::sqlite3_stmt>,
}

impl Stmt {
    pub(super) fn new(
        conn: Rc<Conn>,
        sql: Option<&'static str>,
        raw: NonNull<sys::sqlite3_stmt>,
    ) -> Stmt {
        Stmt { conn, sql, raw }
    }

    fn raw(&self) -> *mut sys::sqlite3_stmt {
        self.raw.as_ptr()
    }

    pub fn bind_i64(&mut self, i: c_int, v: i64) -> Result<()> {
        // SAFETY: raw is a live statement owned by self.
        let rc = unsafe { sys::sqlite3_bind_int64(self.raw(), i, v) };
        self.check_bind(rc)
    }

    pub fn bind_f64(&mut self, i: c_int, v: f64) -> Result<()> {
        // SAFETY: as above.
        let rc = unsafe { sys::sqlite3_bind_double(self.raw(), i, v) };
        self.check_bind(rc)
    }

    pub fn bind_null(&mut self, i: c_int) -> Result<()> {
        // SAFETY: as above.
        let rc = unsafe { sys::sqlite3_bind_null(self.raw(), i) };
        self.check_bind(rc)
    }

    pub fn bind_text(&mut self, i: c_int, v: &str) -> Result<()> {
        let len = c_int::try_from(v.len()).map_err(|_| Error::new("text too long"))?;
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before returning.
        let rc = unsafe {
            sys::sqlite3_bind_text(
                self.raw(),
                i,
                v.as_ptr().cast::<c_char>(),
                len,
                sys::SQLITE_TRANSIENT(),
            )
        };
        self.check_bind(rc)
    }

    pub fn bind_opt_text(&mut self, i: c_int, v: Option<&str>) -> Result<()> {
        match v {
            Some(s) => self.bind_text(i, s),
            None => self.bind_null(i),
        }
    }

    pub fn bind_opt_i64(&mut self, i: c_int, v: Option<i64>) -> Result<()> {
        match v {
            Some(n) => self.bind_i64(i, n),
            None => self.bind_null(i),
        }
    }

    /// Binds a value SQLite passed in, as it is (type and bytes).
    pub fn bind_value(&mut self, i: c_int, v: ValueRef<'_>) -> Result<()> {
        // SAFETY: raw is live; v is valid for this call and SQLite copies it.
        let rc = unsafe { sys::sqlite3_bind_value(self.raw(), i, v.raw) };
        self.check_bind(rc)
    }

    fn check_bind(&self, rc: c_int) -> Result<()> {
        if rc == sys::SQLITE_OK {
            Ok(())
        } else {
            Err(self.conn.last_error(rc))
        }
    }

    /// Steps once: `Ok(true)` with a row, `Ok(false)` when done.
    pub fn step(&mut self) -> Result<bool> {
        // SAFETY: raw is a live statement owned by self.
        let rc = unsafe { sys::sqlite3_step(self.raw()) };
        match rc {
            sys::SQLITE_ROW => Ok(true),
            sys::SQLITE_DONE => Ok(false),
            _ => Err(self.conn.last_error(rc)),
        }
    }

    /// The integer in the first column of the first row (0: no row), for
    /// the one-value reads (`SELECT max(…)`, `count(*)`, a pragma).
    pub fn first_i64(&mut self) -> Result<i64> {
        Ok(if self.step()? { self.column_i64(0) } else { 0 })
    }

    /// Steps to the end, discarding rows. Statements with RETURNING commit
    /// only when they finish, so every write statement is run to completion.
    pub fn finish(&mut self) -> Result<()> {
        while self.step()? {}
        Ok(())
    }

    /// Rewinds the statement so it can run again with new bindings.
    pub fn reset(&mut self) {
        // SAFETY: raw is live; errors are reported by the next step.
        unsafe { sys::sqlite3_reset(self.raw()) };
    }

    // The column readers below need a current row: callers read only after
    // `step` returned true. A column index out of range reads as NULL.

    pub fn is_null(&self, i: c_int) -> bool {
        // SAFETY: raw is a live statement owned by self.
        unsafe { sys::sqlite3_column_type(self.raw(), i) == sys::SQLITE_NULL }
    }

    pub fn column_i64(&self, i: c_int) -> i64 {
        // SAFETY: as above.
        unsafe { sys::sqlite3_column_int64(self.raw(), i) }
    }

    pub fn column_f64(&self, i: c_int) -> f64 {
        // SAFETY: as above.
        unsafe { sys::sqlite3_column_double(self.raw(), i) }
    }

    pub fn column_opt_i64(&self, i: c_int) -> Option<i64> {
        if self.is_null(i) {
            None
        } else {
            Some(self.column_i64(i))
        }
    }

    /// Column text, copied. NULL gives `None`; invalid UTF-8 is replaced.
    pub fn column_text(&self, i: c_int) -> Option<String> {
        // SAFETY: as above; the pointer is valid until the next step/reset and
        // column_bytes is called after column_text, as SQLite requires.
        unsafe {
            if sys::sqlite3_column_type(self.raw(), i) == sys::SQLITE_NULL {
                return None;
            }
            let p = sys::sqlite3_column_text(self.raw(), i);
            if p.is_null() {
                return None;
            }
            let n = usize::try_from(sys::sqlite3_column_bytes(self.raw(), i)).unwrap_or(0);
            let bytes = std::slice::from_raw_parts(p, n);
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }

    /// A column, borrowed until the statement next moves (the borrow of
    /// `self` enforces it: `step` and `reset` take `&mut self`).
    pub fn column(&self, i: c_int) -> Value<'_> {
        // SAFETY: the value is valid until the next step/reset/drop.
        unsafe { Value::from_raw(sys::sqlite3_column_value(self.raw(), i)) }
    }

    /// The column's `sqlite3_value`, for `ColumnResult::set_column`.
    pub(super) fn column_raw(&self, i: c_int) -> *mut sys::sqlite3_value {
        // SAFETY: as `column`.
        unsafe { sys::sqlite3_column_value(self.raw(), i) }
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        match self.sql {
            Some(sql) => {
                // SAFETY: raw is live; reset ends the statement (releasing
                // its locks and read transaction) before anyone else can
                // reuse it.
                unsafe {
                    sys::sqlite3_reset(self.raw());
                    sys::sqlite3_clear_bindings(self.raw());
                }
                self.conn.give_back(sql, self.raw);
            }
            // SAFETY: owned, live, not used after this.
            None => unsafe {
                sys::sqlite3_finalize(self.raw());
            },
        }
    }
}
