//! Virtual-table glue: the `sqlite3_module` callbacks, generic over a
//! [`Table`] and its [`Cursor`] written in safe Rust (`sql/tasks_table.rs`).
//!
//! Every callback runs its body under `catch_unwind`: an error or a panic
//! becomes a result code and a message (in `zErrMsg`, or the column's
//! context), never an unwind into SQLite. Only `xEof`, which cannot report
//! an error, answers "end of scan" if its body panics.
//!
//! The module is eponymous-only (no `xCreate`): the table exists on every
//! connection that registered it, under the module's name, without
//! CREATE VIRTUAL TABLE.

use super::conn::Conn;
use super::host;
use super::stmt::Stmt;
use super::value::{self, ValueRef};
use crate::error::{Error, Result};
use rusqlite::ffi as sys;
use std::ffi::{CStr, CString, c_void};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

/// A virtual table, one per connection.
pub trait Table: Sized + 'static {
    /// What the module is registered with, handed to every connect.
    type Aux: 'static;
    type Cursor: Cursor;
    /// The SQL name, prefixed to the table's error messages.
    const NAME: &'static str;

    /// The `CREATE TABLE` statement that declares the columns.
    fn declaration() -> &'static CStr;
    fn connect(aux: &Self::Aux) -> Result<Self>;
    /// Runs before the table is dropped (xDisconnect).
    fn disconnect(&self);
    fn best_index(&self, info: &mut IndexInfo<'_>) -> Result<()>;
    fn open(&self) -> Result<Self::Cursor>;
    /// xUpdate: `args` as SQLite passes them (DELETE: the old rowid;
    /// INSERT: NULL, the new rowid, the columns; UPDATE: the old rowid, the
    /// new one, the columns, those the UPDATE does not set marked
    /// [`ValueRef::unchanged`]). Returns the rowid of an inserted row.
    fn update(&self, args: &[ValueRef<'_>]) -> Result<Option<i64>>;
}

/// A scan of a [`Table`].
pub trait Cursor: Sized + 'static {
    fn filter(&mut self, idx_num: c_int, args: &[ValueRef<'_>]) -> Result<()>;
    fn next(&mut self) -> Result<()>;
    fn eof(&self) -> bool;
    fn column(&self, out: &mut ColumnResult<'_>, i: c_int) -> Result<()>;
    fn rowid(&self) -> Result<i64>;
}

#[repr(C)]
struct VTab<T> {
    base: sys::sqlite3_vtab,
    table: T,
}

#[repr(C)]
struct VCursor<C> {
    base: sys::sqlite3_vtab_cursor,
    cursor: C,
}

struct Module<T>(PhantomData<T>);

impl<T: Table> Module<T> {
    // A constant made of function pointers and integers: `&Self::MODULE`
    // is promoted to a `'static`, as SQLite needs.
    const MODULE: sys::sqlite3_module = sys::sqlite3_module {
        iVersion: 1,
        xCreate: None,
        xConnect: Some(connect::<T>),
        xBestIndex: Some(best_index::<T>),
        xDisconnect: Some(disconnect::<T>),
        xDestroy: Some(disconnect::<T>),
        xOpen: Some(open::<T>),
        xClose: Some(close::<T>),
        xFilter: Some(filter::<T>),
        xNext: Some(next::<T>),
        xEof: Some(eof::<T>),
        xColumn: Some(column::<T>),
        xRowid: Some(rowid::<T>),
        xUpdate: Some(update::<T>),
        xBegin: None,
        xSync: None,
        xCommit: None,
        xRollback: None,
        xFindFunction: None,
        xRename: None,
        xSavepoint: None,
        xRelease: None,
        xRollbackTo: None,
        xShadowName: None,
        // The linked SQLite's bindings are newer (3.44+ added it); with
        // iVersion 1 SQLite never reads it.
        #[cfg(feature = "static")]
        xIntegrity: None,
    };
}

/// Registers `T` as the eponymous table `name` on `conn`'s database.
pub fn register<T: Table>(conn: &Conn, name: &CStr, aux: T::Aux) -> Result<()> {
    let aux = Box::into_raw(Box::new(aux));
    // SAFETY: the module is 'static; aux is freed by `free_aux` when the
    // module is dropped, including when registration fails.
    let rc = unsafe {
        sys::sqlite3_create_module_v2(
            conn.raw(),
            name.as_ptr(),
            &Module::<T>::MODULE,
            aux.cast::<c_void>(),
            Some(free_aux::<T>),
        )
    };
    if rc != sys::SQLITE_OK {
        return Err(conn.last_error(rc));
    }
    Ok(())
}

unsafe extern "C" fn free_aux<T: Table>(p: *mut c_void) {
    if !p.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: p came from Box::into_raw in `register`.
            drop(unsafe { Box::from_raw(p.cast::<T::Aux>()) });
        }));
    }
}

/// Copies `msg` into memory SQLite frees itself (for zErrMsg / pzErr).
fn sqlite_string(msg: &str) -> *mut c_char {
    let clean = msg.replace('\0', " ");
    let Ok(c) = CString::new(clean) else {
        return ptr::null_mut();
    };
    let bytes = c.as_bytes_with_nul();
    // SAFETY: allocate len bytes and copy exactly that many.
    unsafe {
        let p = sys::sqlite3_malloc64(bytes.len() as u64).cast::<c_char>();
        if !p.is_null() {
            ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), p, bytes.len());
        }
        p
    }
}

/// Runs a callback body: errors and panics become `T`'s message on the
/// table and a result code.
unsafe fn guard<T: Table>(vtab: *mut sys::sqlite3_vtab, f: impl FnOnce() -> Result<()>) -> c_int {
    let e = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return sys::SQLITE_OK,
        Ok(Err(e)) => e,
        Err(_) => Error::internal(),
    };
    let e = e.context(T::NAME);
    // Reporting must not unwind either (it allocates).
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: vtab is live for the callback; the previous message
        // belongs to SQLite's allocator.
        unsafe {
            if !(*vtab).zErrMsg.is_null() {
                sys::sqlite3_free((*vtab).zErrMsg.cast::<c_void>());
            }
            (*vtab).zErrMsg = sqlite_string(&e.msg);
        }
    }));
    e.code
}

/// The table of a cursor.
///
/// # Safety
/// `cursor` must be one of ours, opened by `open::<T>`.
unsafe fn parts<'a, T: Table>(
    cursor: *mut sys::sqlite3_vtab_cursor,
) -> (*mut sys::sqlite3_vtab, &'a mut T::Cursor) {
    // SAFETY: guaranteed by the caller; SQLite set pVtab after xOpen.
    let c = unsafe { &mut *cursor.cast::<VCursor<T::Cursor>>() };
    (c.base.pVtab, &mut c.cursor)
}

unsafe extern "C" fn connect<T: Table>(
    db: *mut sys::sqlite3,
    aux: *mut c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp_vtab: *mut *mut sys::sqlite3_vtab,
    pz_err: *mut *mut c_char,
) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: db is live; the declaration is a NUL-terminated string.
        let rc = unsafe { sys::sqlite3_declare_vtab(db, T::declaration().as_ptr()) };
        if rc != sys::SQLITE_OK {
            // SAFETY: db is live.
            let msg = unsafe { CStr::from_ptr(sys::sqlite3_errmsg(db)) };
            return Err(Error::with_code(rc, msg.to_string_lossy()));
        }
        // SAFETY: aux is the T::Aux given at registration.
        let table = T::connect(unsafe { &*aux.cast::<T::Aux>() })?;
        Ok(Box::into_raw(Box::new(VTab {
            // SAFETY: an all-zero sqlite3_vtab is its documented initial state.
            base: unsafe { std::mem::zeroed() },
            table,
        })))
    }));
    let e = match r {
        Ok(Ok(t)) => {
            // SAFETY: pp_vtab is SQLite's out-pointer.
            unsafe { *pp_vtab = t.cast::<sys::sqlite3_vtab>() };
            return sys::SQLITE_OK;
        }
        Ok(Err(e)) => e,
        Err(_) => Error::internal(),
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: pz_err is SQLite's out-pointer for a message it frees.
        unsafe { *pz_err = sqlite_string(&e.clone().context(T::NAME).msg) };
    }));
    sys::SQLITE_ERROR
}

unsafe extern "C" fn disconnect<T: Table>(vtab: *mut sys::sqlite3_vtab) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: vtab came from Box::into_raw in `connect`; SQLite is done with it.
        let v = unsafe { Box::from_raw(vtab.cast::<VTab<T>>()) };
        v.table.disconnect();
        if !v.base.zErrMsg.is_null() {
            // SAFETY: the message was allocated by sqlite_string.
            unsafe { sys::sqlite3_free(v.base.zErrMsg.cast::<c_void>()) };
        }
    }));
    sys::SQLITE_OK
}

unsafe extern "C" fn best_index<T: Table>(
    vtab: *mut sys::sqlite3_vtab,
    info: *mut sys::sqlite3_index_info,
) -> c_int {
    // SAFETY: vtab is ours; info is live for this call.
    unsafe {
        guard::<T>(vtab, || {
            let table = &(*vtab.cast::<VTab<T>>()).table;
            table.best_index(&mut IndexInfo { raw: &mut *info })
        })
    }
}

unsafe extern "C" fn open<T: Table>(
    vtab: *mut sys::sqlite3_vtab,
    pp_cursor: *mut *mut sys::sqlite3_vtab_cursor,
) -> c_int {
    // SAFETY: vtab is ours; pp_cursor is SQLite's out-pointer.
    unsafe {
        guard::<T>(vtab, || {
            let table = &(*vtab.cast::<VTab<T>>()).table;
            let cursor = Box::new(VCursor {
                // SAFETY: zeroed is the documented initial state; SQLite fills pVtab.
                base: std::mem::zeroed(),
                cursor: table.open()?,
            });
            *pp_cursor = Box::into_raw(cursor).cast::<sys::sqlite3_vtab_cursor>();
            Ok(())
        })
    }
}

unsafe extern "C" fn close<T: Table>(cursor: *mut sys::sqlite3_vtab_cursor) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: cursor came from Box::into_raw in `open`.
        drop(unsafe { Box::from_raw(cursor.cast::<VCursor<T::Cursor>>()) });
    }));
    sys::SQLITE_OK
}

unsafe extern "C" fn filter<T: Table>(
    cursor: *mut sys::sqlite3_vtab_cursor,
    idx_num: c_int,
    _idx_str: *const c_char,
    argc: c_int,
    argv: *mut *mut sys::sqlite3_value,
) -> c_int {
    // SAFETY: cursor is ours; argv holds argc values for this call.
    unsafe {
        let (vtab, c) = parts::<T>(cursor);
        guard::<T>(vtab, || c.filter(idx_num, value::refs(argc, argv)))
    }
}

unsafe extern "C" fn next<T: Table>(cursor: *mut sys::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: cursor is ours.
    unsafe {
        let (vtab, c) = parts::<T>(cursor);
        guard::<T>(vtab, || c.next())
    }
}

unsafe extern "C" fn eof<T: Table>(cursor: *mut sys::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: cursor is ours.
    let (_, c) = unsafe { parts::<T>(cursor) };
    // xEof has no way to report an error: a panic ends the scan.
    c_int::from(catch_unwind(AssertUnwindSafe(|| c.eof())).unwrap_or(true))
}

unsafe extern "C" fn column<T: Table>(
    cursor: *mut sys::sqlite3_vtab_cursor,
    ctx: *mut sys::sqlite3_context,
    i: c_int,
) -> c_int {
    // SAFETY: cursor is ours; ctx is live for this call.
    let (_, c) = unsafe { parts::<T>(cursor) };
    let e = match catch_unwind(AssertUnwindSafe(|| {
        c.column(
            &mut ColumnResult {
                ctx,
                life: PhantomData,
            },
            i,
        )
    })) {
        Ok(Ok(())) => return sys::SQLITE_OK,
        Ok(Err(e)) => e,
        Err(_) => Error::internal(),
    };
    let e = e.context(T::NAME);
    // SAFETY: ctx is live; xColumn reports its error through it.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
        super::function::set_error(ctx, &e)
    }));
    e.code
}

unsafe extern "C" fn rowid<T: Table>(
    cursor: *mut sys::sqlite3_vtab_cursor,
    out: *mut i64,
) -> c_int {
    // SAFETY: cursor is ours; out is SQLite's out-pointer.
    unsafe {
        let (vtab, c) = parts::<T>(cursor);
        guard::<T>(vtab, || {
            *out = c.rowid()?;
            Ok(())
        })
    }
}

unsafe extern "C" fn update<T: Table>(
    vtab: *mut sys::sqlite3_vtab,
    argc: c_int,
    argv: *mut *mut sys::sqlite3_value,
    out_rowid: *mut i64,
) -> c_int {
    // SAFETY: vtab is ours; argv holds argc values for this call;
    // out_rowid is SQLite's out-pointer.
    unsafe {
        guard::<T>(vtab, || {
            let table = &(*vtab.cast::<VTab<T>>()).table;
            if let Some(rowid) = table.update(value::refs(argc, argv))? {
                *out_rowid = rowid;
            }
            Ok(())
        })
    }
}

/// One constraint of a WHERE clause, as xBestIndex sees it.
#[derive(Debug, Clone, Copy)]
pub struct Constraint {
    /// The column (-1: the rowid).
    pub column: c_int,
    /// `column = value`.
    pub is_eq: bool,
    /// Whether the plan being costed can use it.
    pub usable: bool,
}

/// xBestIndex's in/out structure, safely.
pub struct IndexInfo<'a> {
    raw: &'a mut sys::sqlite3_index_info,
}

impl IndexInfo<'_> {
    pub fn constraints(&self) -> Vec<Constraint> {
        let n = usize::try_from(self.raw.nConstraint).unwrap_or(0);
        if n == 0 || self.raw.aConstraint.is_null() {
            return Vec::new();
        }
        // SAFETY: SQLite passes nConstraint entries.
        let cons = unsafe { std::slice::from_raw_parts(self.raw.aConstraint, n) };
        cons.iter()
            .map(|c| Constraint {
                column: c.iColumn,
                is_eq: c_int::from(c.op) == sys::SQLITE_INDEX_CONSTRAINT_EQ,
                usable: c.usable != 0,
            })
            .collect()
    }

    /// Whether constraint `i` is an `IN (...)` list (SQLite 3.38+; false
    /// before, where SQLite cannot tell us).
    pub fn is_in_list(&mut self, i: usize) -> bool {
        let Some(vtab_in) = host::vtab_in() else {
            return false;
        };
        let Ok(i) = c_int::try_from(i) else {
            return false;
        };
        // SAFETY: raw is the live index info of this xBestIndex call.
        unsafe { vtab_in(ptr::from_mut(self.raw), i, -1) != 0 }
    }

    /// Passes constraint `i`'s value to xFilter as argument `argv_index`
    /// (from 1); `omit`: SQLite need not check it again.
    pub fn use_constraint(&mut self, i: usize, argv_index: c_int, omit: bool) {
        let n = usize::try_from(self.raw.nConstraint).unwrap_or(0);
        if i >= n || self.raw.aConstraintUsage.is_null() {
            return;
        }
        // SAFETY: SQLite passes nConstraint usage entries; i is in range.
        let usage = unsafe { &mut *self.raw.aConstraintUsage.add(i) };
        usage.argvIndex = argv_index;
        usage.omit = u8::from(omit);
    }

    pub fn set_idx_num(&mut self, n: c_int) {
        self.raw.idxNum = n;
    }

    /// A static string for the plan, shown by EXPLAIN QUERY PLAN (never
    /// freed by SQLite).
    pub fn set_idx_str(&mut self, s: &'static CStr) {
        self.raw.idxStr = s.as_ptr().cast_mut();
        self.raw.needToFreeIdxStr = 0;
    }

    pub fn set_estimate(&mut self, rows: i64, cost: f64) {
        self.raw.estimatedRows = rows;
        self.raw.estimatedCost = cost;
    }

    /// At most one row matches.
    pub fn set_unique(&mut self) {
        self.raw.idxFlags |= sys::SQLITE_INDEX_SCAN_UNIQUE;
    }
}

/// Where xColumn puts its value.
pub struct ColumnResult<'a> {
    ctx: *mut sys::sqlite3_context,
    life: PhantomData<&'a mut ()>,
}

impl ColumnResult<'_> {
    /// True when the column is read for an UPDATE that does not set it:
    /// the column may then be left without a value, and xUpdate sees it as
    /// [`ValueRef::unchanged`].
    pub fn unchanged(&self) -> bool {
        // SAFETY: ctx is live for the xColumn call.
        unsafe { sys::sqlite3_vtab_nochange(self.ctx) != 0 }
    }

    pub fn set_null(&mut self) {
        // SAFETY: ctx is live for the xColumn call.
        unsafe { sys::sqlite3_result_null(self.ctx) }
    }

    pub fn set_i64(&mut self, v: i64) {
        // SAFETY: as above.
        unsafe { sys::sqlite3_result_int64(self.ctx, v) }
    }

    pub fn set_f64(&mut self, v: f64) {
        // SAFETY: as above.
        unsafe { sys::sqlite3_result_double(self.ctx, v) }
    }

    pub fn set_text(&mut self, v: &str) {
        // SAFETY: as above; SQLITE_TRANSIENT makes SQLite copy the bytes.
        unsafe {
            sys::sqlite3_result_text64(
                self.ctx,
                v.as_ptr().cast::<c_char>(),
                v.len() as u64,
                sys::SQLITE_TRANSIENT(),
                sys::SQLITE_UTF8 as u8,
            )
        }
    }

    /// Column `i` of `st`'s current row, as it is (SQLite copies it).
    pub fn set_column(&mut self, st: &Stmt, i: c_int) {
        // SAFETY: as above; the column value is valid until st moves.
        unsafe { sys::sqlite3_result_value(self.ctx, st.column_raw(i)) }
    }
}

#[cfg(test)]
mod tests {
    //! Every callback of the module, driven through its C entry point with
    //! a table whose every method panics: each must return an error code
    //! (and a message) instead of unwinding into SQLite.

    use super::*;
    use crate::ffi::testing;

    struct Panicky;
    struct PanickyScan;

    impl Table for Panicky {
        type Aux = ();
        type Cursor = PanickyScan;
        const NAME: &'static str = "panicky";
        fn declaration() -> &'static CStr {
            c"CREATE TABLE x(a)"
        }
        fn connect(_: &()) -> Result<Self> {
            panic!("connect")
        }
        fn disconnect(&self) {
            panic!("disconnect")
        }
        fn best_index(&self, _: &mut IndexInfo<'_>) -> Result<()> {
            panic!("best_index")
        }
        fn open(&self) -> Result<PanickyScan> {
            panic!("open")
        }
        fn update(&self, _: &[ValueRef<'_>]) -> Result<Option<i64>> {
            panic!("update")
        }
    }

    impl Cursor for PanickyScan {
        fn filter(&mut self, _: c_int, _: &[ValueRef<'_>]) -> Result<()> {
            panic!("filter")
        }
        fn next(&mut self) -> Result<()> {
            panic!("next")
        }
        fn eof(&self) -> bool {
            panic!("eof")
        }
        fn column(&self, _: &mut ColumnResult<'_>, _: c_int) -> Result<()> {
            panic!("column")
        }
        fn rowid(&self) -> Result<i64> {
            panic!("rowid")
        }
    }

    impl Drop for PanickyScan {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("close")
            }
        }
    }

    const INTERNAL: &str = "panicky: internal error in sqlite-task (a bug: please report it)";

    /// The table's error message, taken (and freed).
    fn take_err(vtab: *mut sys::sqlite3_vtab) -> Option<String> {
        // SAFETY: vtab is a live test table; its message came from sqlite_string.
        unsafe {
            let msg = testing::take_message((*vtab).zErrMsg);
            (*vtab).zErrMsg = ptr::null_mut();
            msg
        }
    }

    #[test]
    fn every_callback_turns_a_panic_into_an_error() {
        testing::install();
        testing::quietly(every_callback);
    }

    fn every_callback() {
        let m = &Module::<Panicky>::MODULE;
        let err = sys::SQLITE_ERROR;
        // SAFETY: each callback gets the structures SQLite would pass: a
        // table and a cursor of ours, live out-pointers, no arguments.
        unsafe {
            let mut aux = ();
            let mut out_vtab: *mut sys::sqlite3_vtab = ptr::null_mut();
            let mut pz_err: *mut c_char = ptr::null_mut();
            let x_connect = m.xConnect.unwrap();
            let rc = x_connect(
                ptr::null_mut(),
                ptr::from_mut(&mut aux).cast(),
                0,
                ptr::null(),
                &mut out_vtab,
                &mut pz_err,
            );
            assert_eq!(rc, err);
            assert!(out_vtab.is_null());
            assert_eq!(testing::take_message(pz_err).as_deref(), Some(INTERNAL));

            let vtab = Box::into_raw(Box::new(VTab {
                base: std::mem::zeroed(),
                table: Panicky,
            }))
            .cast::<sys::sqlite3_vtab>();
            let mut info: sys::sqlite3_index_info = std::mem::zeroed();
            assert_eq!(m.xBestIndex.unwrap()(vtab, &mut info), err);
            assert_eq!(take_err(vtab).as_deref(), Some(INTERNAL));
            let mut out_cursor: *mut sys::sqlite3_vtab_cursor = ptr::null_mut();
            assert_eq!(m.xOpen.unwrap()(vtab, &mut out_cursor), err);
            assert_eq!(take_err(vtab).as_deref(), Some(INTERNAL));
            let mut rowid = 0i64;
            assert_eq!(
                m.xUpdate.unwrap()(vtab, 0, ptr::null_mut(), &mut rowid),
                err
            );
            assert_eq!(take_err(vtab).as_deref(), Some(INTERNAL));

            let mut base: sys::sqlite3_vtab_cursor = std::mem::zeroed();
            base.pVtab = vtab;
            let cursor = Box::into_raw(Box::new(VCursor {
                base,
                cursor: PanickyScan,
            }))
            .cast::<sys::sqlite3_vtab_cursor>();
            let x_filter = m.xFilter.unwrap();
            assert_eq!(x_filter(cursor, 0, ptr::null(), 0, ptr::null_mut()), err);
            assert_eq!(take_err(vtab).as_deref(), Some(INTERNAL));
            assert_eq!(m.xNext.unwrap()(cursor), err);
            assert_eq!(take_err(vtab).as_deref(), Some(INTERNAL));
            assert_eq!(m.xRowid.unwrap()(cursor, &mut rowid), err);
            assert_eq!(take_err(vtab).as_deref(), Some(INTERNAL));
            // xEof cannot report an error: a panic ends the scan.
            assert_eq!(m.xEof.unwrap()(cursor), 1);
            // xColumn reports through its context.
            let ctx = ptr::NonNull::<sys::sqlite3_context>::dangling().as_ptr();
            assert_eq!(m.xColumn.unwrap()(cursor, ctx, 0), err);
            assert_eq!(
                testing::take_result_error(),
                Some((INTERNAL.to_string(), err))
            );
            assert_eq!(m.xClose.unwrap()(cursor), sys::SQLITE_OK);
            assert_eq!(m.xDisconnect.unwrap()(vtab), sys::SQLITE_OK);
        }
    }
}
