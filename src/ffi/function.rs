//! Scalar SQL functions: registration and the one dispatcher every call
//! goes through. The table of functions itself is in `sql/functions.rs`.
//!
//! The dispatcher catches panics (a panic must never unwind into SQLite),
//! prefixes errors with the function's name, and reports the error code
//! after the message: `sqlite3_result_error` resets the code to
//! SQLITE_ERROR, so setting the code first (as rusqlite does) would turn
//! every SQLITE_BUSY into a plain error that callers cannot retry.

use super::conn::Conn;
use super::value::{self, Value};
use crate::error::{Error, Result};
use rusqlite::ffi as sys;
use std::ffi::{CString, c_void};
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a function returns to SQL.
pub enum Out {
    Null,
    Int(i64),
    Text(String),
    Static(&'static str),
}

/// `sqlite3_create_function_v2` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(c_int);

impl Flags {
    /// Text arguments arrive as UTF-8. Every function has it.
    pub const UTF8: Flags = Flags(sys::SQLITE_UTF8);

    /// Same result for the same arguments (the planner may call it once).
    pub const fn deterministic(self) -> Flags {
        Flags(self.0 | sys::SQLITE_DETERMINISTIC)
    }

    /// Harmless even in a schema written by someone else: allowed in
    /// triggers and views when `trusted_schema` is off.
    pub const fn innocuous(self) -> Flags {
        Flags(self.0 | sys::SQLITE_INNOCUOUS)
    }

    /// Only from top-level SQL, never from a trigger or view.
    pub const fn direct_only(self) -> Flags {
        Flags(self.0 | sys::SQLITE_DIRECTONLY)
    }
}

/// The Rust side of a function: its state (shared by its registrations)
/// and arguments in, a value or an error out.
pub type Handler<S> = fn(&S, &[Value<'_>]) -> Result<Out>;

struct Data<S> {
    state: S,
    name: &'static str,
    handler: Handler<S>,
}

/// Registers `name` for each of `arities` on `conn`'s database; each
/// registration keeps its own copy of `state`.
pub fn register<S: Clone + 'static>(
    conn: &Conn,
    name: &'static str,
    arities: &[c_int],
    flags: Flags,
    state: &S,
    handler: Handler<S>,
) -> Result<()> {
    let c_name = CString::new(name).map_err(|_| Error::new("bad function name"))?;
    for &n in arities {
        let data = Box::into_raw(Box::new(Data {
            state: state.clone(),
            name,
            handler,
        }));
        // SAFETY: the connection is live; `data` is freed by `destroy` when
        // SQLite drops the function (on close or re-registration), including
        // when this call fails.
        let rc = unsafe {
            sys::sqlite3_create_function_v2(
                conn.raw(),
                c_name.as_ptr(),
                n,
                flags.0,
                data.cast::<c_void>(),
                Some(call::<S>),
                None,
                None,
                Some(destroy::<S>),
            )
        };
        if rc != sys::SQLITE_OK {
            return Err(conn.last_error(rc));
        }
    }
    Ok(())
}

unsafe extern "C" fn destroy<S>(p: *mut c_void) {
    if !p.is_null() {
        // A panic in a destructor must not unwind into SQLite either.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: p came from Box::into_raw in `register`.
            drop(unsafe { Box::from_raw(p.cast::<Data<S>>()) });
        }));
    }
}

unsafe extern "C" fn call<S>(
    ctx: *mut sys::sqlite3_context,
    argc: c_int,
    argv: *mut *mut sys::sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: SQLite passes the user data given at registration and
        // `argc` valid values that live for this call.
        let data = unsafe { &*sys::sqlite3_user_data(ctx).cast::<Data<S>>() };
        let args = unsafe { value::values(argc, argv) };
        (data.handler)(&data.state, &args).map_err(|e| e.context(data.name))
    }));
    // SAFETY: ctx is the live function context of this call.
    unsafe {
        match outcome {
            Ok(Ok(out)) => set_result(ctx, out),
            Ok(Err(e)) => set_error(ctx, &e),
            Err(_) => set_error(ctx, &Error::internal()),
        }
    }
}

unsafe fn set_result(ctx: *mut sys::sqlite3_context, out: Out) {
    // SAFETY: ctx is live; SQLITE_TRANSIENT makes SQLite copy the text.
    unsafe {
        match out {
            Out::Null => sys::sqlite3_result_null(ctx),
            Out::Int(i) => sys::sqlite3_result_int64(ctx, i),
            Out::Text(s) => result_text(ctx, &s),
            Out::Static(s) => result_text(ctx, s),
        }
    }
}

unsafe fn result_text(ctx: *mut sys::sqlite3_context, s: &str) {
    // SAFETY: s is valid for its length; SQLite copies it.
    unsafe {
        sys::sqlite3_result_text64(
            ctx,
            s.as_ptr().cast::<c_char>(),
            s.len() as u64,
            sys::SQLITE_TRANSIENT(),
            sys::SQLITE_UTF8 as u8,
        )
    }
}

/// Sets the error message, then the code: `sqlite3_result_error` resets the
/// code to SQLITE_ERROR, so the order matters for SQLITE_BUSY to survive.
pub(super) unsafe fn set_error(ctx: *mut sys::sqlite3_context, e: &Error) {
    let len = c_int::try_from(e.msg.len()).unwrap_or(c_int::MAX);
    // SAFETY: ctx is live; the message is valid for len bytes and copied.
    unsafe {
        sys::sqlite3_result_error(ctx, e.msg.as_ptr().cast::<c_char>(), len);
        if e.code != sys::SQLITE_ERROR {
            sys::sqlite3_result_error_code(ctx, e.code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;
    use crate::ffi::testing;

    fn panics(_: &(), _: &[Value<'_>]) -> Result<Out> {
        panic!("a bug")
    }

    fn busy(_: &(), _: &[Value<'_>]) -> Result<Out> {
        Err(Error::with_code(code::BUSY, "database is locked"))
    }

    /// Calls the dispatcher as SQLite would, with no arguments; the fake
    /// host hands the context pointer back as the user data.
    fn call_with(handler: Handler<()>) -> Option<(String, c_int)> {
        testing::install();
        let data = Box::into_raw(Box::new(Data {
            state: (),
            name: "task_x",
            handler,
        }));
        // SAFETY: the context is the user data (see testing::user_data).
        unsafe {
            call::<()>(data.cast(), 0, std::ptr::null_mut());
            destroy::<()>(data.cast());
        }
        testing::take_result_error()
    }

    #[test]
    fn a_panic_becomes_an_error() {
        let got = testing::quietly(|| call_with(panics));
        assert_eq!(got, Some((Error::internal().msg, sys::SQLITE_ERROR)));
    }

    #[test]
    fn errors_are_named_and_keep_their_code() {
        // The message is set first, then the code: BUSY survives.
        assert_eq!(
            call_with(busy),
            Some(("task_x: database is locked".to_string(), sys::SQLITE_BUSY))
        );
    }
}
