//! What the host SQLite offers beyond the API this build is compiled
//! against (rusqlite's 3.34.1 bindings). The routine table only grows, so a
//! field added in a later release can be read when the host is at least
//! that release. Values are kept in plain atomics (no heap: a host may
//! unload the library).

use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

type VtabIn = unsafe extern "C" fn(*mut ffi::sqlite3_index_info, c_int, c_int) -> c_int;

/// `sqlite3_api_routines` up to `vtab_in` (SQLite 3.38.0): the 3.34.1
/// layout, then the routines 3.36.1–3.38.0 appended, in sqlite3ext.h order.
#[repr(C)]
struct Routines338 {
    base: ffi::sqlite3_api_routines,
    changes64: *const c_void,
    total_changes64: *const c_void,
    autovacuum_pages: *const c_void,
    error_offset: *const c_void,
    vtab_rhs_value: *const c_void,
    vtab_distinct: *const c_void,
    vtab_in: Option<VtabIn>,
}

static VTAB_IN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Records the optional routines of a host at `version`.
///
/// # Safety
/// `api` must be the host's routine table, valid for the host's version.
pub unsafe fn init(api: *const ffi::sqlite3_api_routines, version: i32) {
    if version >= 3_038_000 && !api.is_null() {
        // SAFETY: a 3.38+ host's table has at least these fields.
        let ext = unsafe { &*api.cast::<Routines338>() };
        if let Some(f) = ext.vtab_in {
            VTAB_IN.store(f as *mut c_void, Ordering::Release);
        }
    }
}

/// `sqlite3_vtab_in`, when the host has it.
pub fn vtab_in() -> Option<VtabIn> {
    let p = VTAB_IN.load(Ordering::Acquire);
    if p.is_null() {
        None
    } else {
        // SAFETY: only ever stored from a VtabIn in `init`.
        Some(unsafe { std::mem::transmute::<*mut c_void, VtabIn>(p) })
    }
}
