//! A fake host for unit tests of the glue: a routine table holding the few
//! routines the error paths call (allocation, result errors, user data),
//! so callbacks can be driven without SQLite. Everything else in the table
//! is NULL: a glue path that reached for it would panic, and the test
//! would see that panic caught (or not).

use rusqlite::ffi as sys;
use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;
use std::ffi::{CStr, c_void};
use std::os::raw::{c_char, c_int};
use std::sync::Once;

thread_local! {
    /// The last error a callback reported through its context:
    /// (message, code).
    static RESULT_ERROR: RefCell<Option<(String, c_int)>> = const { RefCell::new(None) };
}

/// Takes the error reported through a context since the last call.
pub fn take_result_error() -> Option<(String, c_int)> {
    RESULT_ERROR.with(|e| e.borrow_mut().take())
}

const HEADER: usize = 16;

unsafe extern "C" fn malloc64(n: u64) -> *mut c_void {
    let size = usize::try_from(n).unwrap_or(usize::MAX - HEADER) + HEADER;
    let Ok(layout) = Layout::from_size_align(size, HEADER) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a non-zero layout; the size is kept in front for `free`.
    unsafe {
        let p = alloc(layout);
        if p.is_null() {
            return p.cast();
        }
        p.cast::<usize>().write(size);
        p.add(HEADER).cast()
    }
}

unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: p came from malloc64 above.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        let size = base.cast::<usize>().read();
        dealloc(base, Layout::from_size_align_unchecked(size, HEADER));
    }
}

unsafe extern "C" fn result_error(_: *mut sys::sqlite3_context, msg: *const c_char, n: c_int) {
    // SAFETY: msg is valid for n bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), usize::try_from(n).unwrap_or(0)) };
    let msg = String::from_utf8_lossy(bytes).into_owned();
    // As SQLite does: setting the message resets the code.
    RESULT_ERROR.with(|e| *e.borrow_mut() = Some((msg, sys::SQLITE_ERROR)));
}

unsafe extern "C" fn result_error_code(_: *mut sys::sqlite3_context, code: c_int) {
    RESULT_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        let msg = e.take().map(|(m, _)| m).unwrap_or_default();
        *e = Some((msg, code));
    });
}

/// The tests pass a function's user data as its context pointer.
unsafe extern "C" fn user_data(ctx: *mut sys::sqlite3_context) -> *mut c_void {
    ctx.cast()
}

unsafe extern "C" fn declare_vtab(_: *mut sys::sqlite3, _: *const c_char) -> c_int {
    sys::SQLITE_OK
}

unsafe extern "C" fn errmsg(_: *mut sys::sqlite3) -> *const c_char {
    c"fake host".as_ptr()
}

unsafe extern "C" fn libversion_number() -> c_int {
    3_053_002
}

/// Installs the fake host's routines (once per test process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: an all-NULL routine table is valid to hold; the fields
        // set are routines of the right types, and the table is leaked so
        // it lives as long as the bindings use it.
        unsafe {
            let api: &'static mut sys::sqlite3_api_routines =
                Box::leak(Box::new(std::mem::zeroed()));
            api.malloc64 = Some(malloc64);
            api.free = Some(free);
            api.result_error = Some(result_error);
            api.result_error_code = Some(result_error_code);
            api.user_data = Some(user_data);
            api.declare_vtab = Some(declare_vtab);
            api.errmsg = Some(errmsg);
            api.libversion_number = Some(libversion_number);
            sys::rusqlite_extension_init2(api).expect("fake host accepted");
        }
    });
}

/// Reads and frees a message the glue allocated for SQLite.
///
/// # Safety
/// `p` must be NULL or a string allocated through the fake `malloc64`.
pub unsafe fn take_message(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: as the caller guarantees.
    unsafe {
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        free(p.cast());
        Some(s)
    }
}

/// Runs `f` with panic messages silenced (the panics it expects are not
/// news), one caller at a time: the hook is process-wide.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = f();
    std::panic::set_hook(hook);
    out
}
