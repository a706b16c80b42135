//! SQL values crossing the boundary: [`Value`] borrows one (a function
//! argument, a column of a row), [`Owned`] keeps one, [`ValueRef`] is a
//! handle on an `sqlite3_value` that is passed on unread (bound to a
//! statement as is, keeping its type and bytes).

use rusqlite::ffi as sys;
use std::marker::PhantomData;

/// A borrowed SQL value: a function argument or a column.
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
    pub(crate) unsafe fn from_raw<'a>(v: *mut sys::sqlite3_value) -> Value<'a> {
        // SAFETY: guaranteed by the caller. value_bytes is called after
        // value_text/value_blob, as SQLite requires.
        unsafe {
            match sys::sqlite3_value_type(v) {
                sys::SQLITE_INTEGER => Value::Integer(sys::sqlite3_value_int64(v)),
                sys::SQLITE_FLOAT => Value::Real(sys::sqlite3_value_double(v)),
                sys::SQLITE_TEXT => {
                    let p = sys::sqlite3_value_text(v);
                    let n = usize::try_from(sys::sqlite3_value_bytes(v)).unwrap_or(0);
                    if p.is_null() {
                        return Value::Text("");
                    }
                    let bytes = std::slice::from_raw_parts(p, n);
                    match std::str::from_utf8(bytes) {
                        Ok(s) => Value::Text(s),
                        Err(_) => Value::Blob(bytes),
                    }
                }
                sys::SQLITE_BLOB => {
                    let p = sys::sqlite3_value_blob(v).cast::<u8>();
                    let n = usize::try_from(sys::sqlite3_value_bytes(v)).unwrap_or(0);
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

    /// The value with its text copied.
    pub fn to_owned_value(self) -> Owned {
        match self {
            Value::Null => Owned::Null,
            Value::Integer(i) => Owned::Integer(i),
            Value::Real(r) => Owned::Real(r),
            Value::Text(t) => Owned::Text(t.to_string()),
            Value::Blob(b) => Owned::Text(String::from_utf8_lossy(b).into_owned()),
        }
    }
}

/// An owned SQL value (a blob is kept as lossy text: the values kept are
/// the extension's own columns, none of which holds a blob).
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl Owned {
    /// The value as an integer: reals truncated, anything else 0.
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

/// A value SQLite passed to a callback, valid for `'a` (the callback).
/// Transparent over the pointer, so SQLite's argument array can be viewed
/// as a slice of these without copying.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct ValueRef<'a> {
    pub(crate) raw: *mut sys::sqlite3_value,
    life: PhantomData<&'a ()>,
}

impl<'a> ValueRef<'a> {
    /// The value, read.
    pub fn get(self) -> Value<'a> {
        // SAFETY: valid for 'a by construction (`refs`).
        unsafe { Value::from_raw(self.raw) }
    }

    /// In xUpdate: a column the UPDATE does not set (its xColumn was left
    /// without a value, see `ColumnResult::unchanged`).
    pub fn unchanged(self) -> bool {
        // SAFETY: as above.
        unsafe { sys::sqlite3_value_nochange(self.raw) != 0 }
    }
}

/// The `argc` values at `argv`, as handles.
///
/// # Safety
/// `argv` must point at `argc` valid values (or `argc` be 0) for `'a`.
pub(crate) unsafe fn refs<'a>(
    argc: std::os::raw::c_int,
    argv: *mut *mut sys::sqlite3_value,
) -> &'a [ValueRef<'a>] {
    let n = usize::try_from(argc).unwrap_or(0);
    if n == 0 || argv.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller; ValueRef is a transparent wrapper
    // of the pointer (PhantomData is zero-sized), so the layouts agree.
    unsafe { std::slice::from_raw_parts(argv.cast::<ValueRef<'a>>(), n) }
}

/// The `argc` values at `argv`, read.
///
/// # Safety
/// As [`refs`].
pub(crate) unsafe fn values<'a>(
    argc: std::os::raw::c_int,
    argv: *mut *mut sys::sqlite3_value,
) -> Vec<Value<'a>> {
    // SAFETY: as the caller guarantees.
    unsafe { refs(argc, argv) }
        .iter()
        .map(|v| v.get())
        .collect()
}
