//! The entry point SQLite calls when it loads the library (the build with
//! the feature `loadable`; `linked.rs` is the other build's). The sqlite3
//! shell derives the name from the file name: `.load ./dist/task0` looks for
//! `sqlite3_task_init`.
//!
//! Order matters: the host's version is checked through the routine table
//! it passed, before rusqlite's bindings are initialised with that table. A
//! host older than the bindings makes rusqlite's own check fail, and later
//! calls through a shorter table would abort the process; refused here, the
//! host gets an error message instead.

use super::conn::Conn;
use super::host;
use crate::error::Result;
use rusqlite::ffi as sys;
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

/// Entry point.
///
/// # Safety
/// Called by SQLite with a live connection and its API routines.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqlite3_task_init(
    db: *mut sys::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut sys::sqlite3_api_routines,
) -> c_int {
    // SAFETY: as the caller guarantees.
    let r = catch_unwind(AssertUnwindSafe(|| unsafe {
        load(db, pz_err_msg, p_api, crate::sql::register)
    }));
    r.unwrap_or(sys::SQLITE_ERROR)
}

/// Checks the host, initialises the bindings, then runs `register` on the
/// connection.
///
/// # Safety
/// As [`sqlite3_task_init`].
unsafe fn load(
    db: *mut sys::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut sys::sqlite3_api_routines,
    register: fn(&Rc<Conn>) -> Result<()>,
) -> c_int {
    if p_api.is_null() || db.is_null() {
        return sys::SQLITE_ERROR;
    }
    // Only `libversion_number` and `malloc` are used before the check.
    // SAFETY: p_api points at the host's routines for the duration of the call.
    let api = unsafe { &*p_api };
    let Some(version_fn) = api.libversion_number else {
        return sys::SQLITE_ERROR;
    };
    // SAFETY: the host's own routine.
    let version = unsafe { version_fn() };
    if let Some(msg) = host::refusal(version) {
        // SAFETY: as above.
        unsafe { set_load_error(api, pz_err_msg, &msg) };
        return sys::SQLITE_ERROR;
    }
    // SAFETY: the host passed its routine table; rusqlite stores it for sys::*.
    if let Err(e) = unsafe { sys::rusqlite_extension_init2(p_api) } {
        unsafe { set_load_error(api, pz_err_msg, &format!("sqlite-task: {e}")) };
        return sys::SQLITE_ERROR;
    }
    // SAFETY: api is the host's table and `version` its version.
    unsafe { host::init(p_api, version) };
    // SAFETY: db is the live connection loading us; SQLite drops the
    // functions and module (and with them the Conn) before it closes.
    let conn = unsafe { Conn::new(db) };
    if let Err(e) = register(&conn) {
        unsafe { set_load_error(api, pz_err_msg, &format!("sqlite-task: {e}")) };
        return sys::SQLITE_ERROR;
    }
    sys::SQLITE_OK
}

/// Hands a message to the loader through `pz_err_msg`, allocated with the
/// host's `sqlite3_malloc` (the loader frees it with `sqlite3_free`).
unsafe fn set_load_error(api: &sys::sqlite3_api_routines, pz_err_msg: *mut *mut c_char, msg: &str) {
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
