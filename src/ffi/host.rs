//! The host SQLite: the version check made before anything else at load,
//! and what the host offers beyond the API this build is compiled against
//! (rusqlite's 3.34.1 bindings).
//!
//! The routine table only grows, so a field added in a later release can be
//! read when the host is at least that release. Values are kept in plain
//! atomics (no heap: a host may unload the library).

use rusqlite::ffi as sys;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The oldest SQLite this extension runs on, checked before anything else
/// at load. rusqlite's bindings need 3.34.1; 3.35.4 is the oldest release
/// the test suite runs on (`make test-hosts` builds 3.33.0, 3.35.3, 3.35.4,
/// 3.36.0, 3.45.0 and 3.53.2 hosts and loads the extension into each).
pub const MIN_SQLITE_VERSION: i32 = 3_035_004;
pub const MIN_SQLITE_VERSION_TEXT: &str = "3.35.4";

/// The refusal for a host older than the floor, or `None` for one at or
/// above it.
pub fn refusal(host_version: i32) -> Option<String> {
    (host_version < MIN_SQLITE_VERSION).then(|| {
        format!(
            "sqlite-task needs SQLite {MIN_SQLITE_VERSION_TEXT} or newer; this host is {}.{}.{}",
            host_version / 1_000_000,
            host_version / 1_000 % 1_000,
            host_version % 1_000
        )
    })
}

type VtabIn = unsafe extern "C" fn(*mut sys::sqlite3_index_info, c_int, c_int) -> c_int;

/// `sqlite3_api_routines` up to `vtab_in` (SQLite 3.38.0): the 3.34.1
/// layout, then the routines 3.36.1–3.38.0 appended, in sqlite3ext.h order.
#[cfg(feature = "loadable")]
#[repr(C)]
struct Routines338 {
    base: sys::sqlite3_api_routines,
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
#[cfg(feature = "loadable")]
pub(super) unsafe fn init(api: *const sys::sqlite3_api_routines, version: i32) {
    if version >= 3_038_000 && !api.is_null() {
        // SAFETY: a 3.38+ host's table has at least these fields.
        let ext = unsafe { &*api.cast::<Routines338>() };
        if let Some(f) = ext.vtab_in {
            VTAB_IN.store(f as *mut c_void, Ordering::Release);
        }
    }
}

/// `sqlite3_vtab_in`, when the host has it.
/// As `init`, for a linked SQLite: its bindings have the routine.
#[cfg(feature = "static")]
pub(super) fn init_linked() {
    VTAB_IN.store(sys::sqlite3_vtab_in as *mut c_void, Ordering::Release);
}

pub(super) fn vtab_in() -> Option<VtabIn> {
    let p = VTAB_IN.load(Ordering::Acquire);
    if p.is_null() {
        None
    } else {
        // SAFETY: only ever stored from a VtabIn in `init`.
        Some(unsafe { std::mem::transmute::<*mut c_void, VtabIn>(p) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_below_the_floor_are_refused_by_name() {
        assert_eq!(
            refusal(3_035_003).as_deref(),
            Some("sqlite-task needs SQLite 3.35.4 or newer; this host is 3.35.3")
        );
        assert_eq!(refusal(MIN_SQLITE_VERSION), None);
        assert_eq!(refusal(3_053_002), None);
    }
}
