//! sqlite-task: a durable task queue inside SQLite, as a loadable extension.
//!
//! This file is the entry point only: it checks the host, then registers the
//! SQL functions (`functions.rs`) and the `tasks` virtual table (`vtab.rs`)
//! on the connection that loads the extension. The queue itself is in
//! `ops.rs`, its storage in `schema.rs`.

pub mod batch;
pub mod check;
pub mod error;
pub mod functions;
pub mod host;
pub mod ops;
pub mod options;
pub mod schema;
pub mod sqlite;
pub mod vtab;
pub mod vtab_sql;
pub mod writeback;

use rusqlite::ffi;
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The oldest SQLite this extension runs on, checked before anything else
/// at load. rusqlite's bindings need 3.34.1; 3.35.4 is the oldest release
/// the test suite runs on (`make test-hosts` builds 3.33.0, 3.35.3, 3.35.4,
/// 3.36.0, 3.45.0 and 3.53.2 hosts and loads the extension into each).
pub const MIN_SQLITE_VERSION: i32 = 3_035_004;
pub const MIN_SQLITE_VERSION_TEXT: &str = "3.35.4";

/// Entry point. The sqlite3 shell derives the name from the file name:
/// `.load ./dist/task0` looks for `sqlite3_task_init`.
///
/// # Safety
/// Called by SQLite with a live connection and its API routines.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqlite3_task_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut ffi::sqlite3_api_routines,
) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { init(db, pz_err_msg, p_api) }));
    r.unwrap_or(ffi::SQLITE_ERROR)
}

unsafe fn init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut ffi::sqlite3_api_routines,
) -> c_int {
    if p_api.is_null() || db.is_null() {
        return ffi::SQLITE_ERROR;
    }
    // Check the host before anything calls through the API table: a host
    // older than the bindings makes later calls fail in ways that would
    // abort the process. Only `libversion_number` and `malloc` are used here.
    // SAFETY: p_api points at the host's routines for the duration of the call.
    let api = unsafe { &*p_api };
    let Some(version_fn) = api.libversion_number else {
        return ffi::SQLITE_ERROR;
    };
    let host = unsafe { version_fn() };
    if host < MIN_SQLITE_VERSION {
        let msg = format!(
            "sqlite-task needs SQLite {MIN_SQLITE_VERSION_TEXT} or newer; this host is {}.{}.{}",
            host / 1_000_000,
            host / 1_000 % 1_000,
            host % 1_000
        );
        unsafe { set_load_error(api, pz_err_msg, &msg) };
        return ffi::SQLITE_ERROR;
    }
    // SAFETY: the host passed its routine table; rusqlite stores it for ffi::*.
    if let Err(e) = unsafe { ffi::rusqlite_extension_init2(p_api) } {
        unsafe { set_load_error(api, pz_err_msg, &format!("sqlite-task: {e}")) };
        return ffi::SQLITE_ERROR;
    }
    // SAFETY: api is the host's table and `host` its version.
    unsafe { host::init(p_api, host) };
    // SAFETY: db is the live connection loading us; SQLite drops the
    // functions and module (and with them the Conn) before it closes.
    let conn = unsafe { sqlite::Conn::new(db) };
    if let Err(e) = functions::register(&conn).and_then(|()| vtab::register(&conn)) {
        unsafe { set_load_error(api, pz_err_msg, &format!("sqlite-task: {e}")) };
        return ffi::SQLITE_ERROR;
    }
    ffi::SQLITE_OK
}

/// Hands a message to the loader through `pz_err_msg`, allocated with the
/// host's `sqlite3_malloc` (the loader frees it with `sqlite3_free`).
unsafe fn set_load_error(api: &ffi::sqlite3_api_routines, pz_err_msg: *mut *mut c_char, msg: &str) {
    let Some(malloc) = api.malloc else { return };
    if pz_err_msg.is_null() {
        return;
    }
    let bytes = msg.as_bytes();
    let Ok(n) = c_int::try_from(bytes.len() + 1) else {
        return;
    };
    // SAFETY: n bytes are allocated and exactly n written (message + NUL).
    unsafe {
        let p = malloc(n).cast::<u8>();
        if p.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
        *pz_err_msg = p.cast::<c_char>();
    }
}
