//! The `tasks` virtual table: the live view of the queue, and a second way to
//! enqueue (INSERT), reschedule or cancel (UPDATE) and purge (DELETE).
//!
//! It is eponymous (`SELECT * FROM tasks` works without CREATE VIRTUAL
//! TABLE) and reads `task_store` through ordinary SQL: `xBestIndex` passes
//! equality constraints on id, queue, type, status and parent_id down as a
//! WHERE clause, and SQLite's planner picks the storage index for it (the
//! tests assert which). Writes go through `ops`, with the same validation as
//! the functions.
//!
//! Its `xDisconnect` is also where the connection's statement pool is
//! emptied: SQLite calls it before `sqlite3_close` checks for unfinalized
//! statements (see `sqlite.rs`).
//!
//! Every callback catches panics and reports errors through `zErrMsg`.

use crate::error::{Error, Result};
use crate::ops::{self, NewTask, Reschedule};
use crate::schema;
use crate::sqlite::{Conn, Statement, Stmt, Value};
use rusqlite::ffi;
use std::ffi::{CStr, CString, c_void};
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::rc::Rc;

const COL_ID: usize = 0;
const COL_QUEUE: usize = 1;
const COL_TYPE: usize = 2;
const COL_STATUS: usize = 3;
const COL_PRIORITY: usize = 4;
const COL_PROGRESS: usize = 5;
const COL_DETAILS: usize = 6;
const COL_MAX_ATTEMPTS: usize = 10;
const COL_PARENT: usize = 11;
const COL_RUN_AT: usize = 14;
/// Hidden, write-only columns for INSERT: a relative start time and a
/// supplied clock, the same as task_enqueue's `delay` and `now` options.
const COL_DELAY: usize = COLUMNS.len();
const COL_NOW: usize = COLUMNS.len() + 1;
const N_COLS: usize = COLUMNS.len() + 2;

const DECLARATION: &CStr = c"CREATE TABLE x(
  id TEXT, queue TEXT, type TEXT, status TEXT, priority INTEGER, progress NUMERIC,
  details TEXT, result TEXT, error TEXT, attempts INTEGER, max_attempts INTEGER,
  parent_id TEXT, worker TEXT, lease_until INTEGER, run_at INTEGER,
  created_at INTEGER, updated_at INTEGER, started_at INTEGER, completed_at INTEGER,
  delay INTEGER HIDDEN, now INTEGER HIDDEN)";

pub use crate::vtab_sql::{BY_SEQ, COLUMNS, FILTERS};

// The storage SELECT for each idxNum, generated at build time from
// `vtab_sql.rs` (build.rs): a static table, so nothing is allocated that a
// host unloading the library (dlclose) would leak.
include!(concat!(env!("OUT_DIR"), "/select_sql.rs"));

fn select_sql(idx: usize) -> &'static CStr {
    SELECT_SQL
        .get(idx)
        .copied()
        .unwrap_or(c"SELECT NULL WHERE 0")
}

/// The storage query a given idxNum runs.
pub fn query_for(idx_num: c_int) -> &'static str {
    select_sql(usize::try_from(idx_num).unwrap_or(0))
        .to_str()
        .unwrap_or("SELECT NULL WHERE 0")
}

#[repr(C)]
struct Table {
    base: ffi::sqlite3_vtab,
    conn: Rc<Conn>,
}

#[repr(C)]
struct Cursor {
    base: ffi::sqlite3_vtab_cursor,
    conn: Rc<Conn>,
    stmt: Option<Stmt>,
    /// Highest rowid when this cursor's first scan began; later rows are
    /// not read (see `vtab_sql.rs`).
    bound: Option<i64>,
}

static MODULE: ffi::sqlite3_module = ffi::sqlite3_module {
    iVersion: 1,
    // No xCreate: an eponymous-only table, there is exactly one `tasks`.
    xCreate: None,
    xConnect: Some(connect),
    xBestIndex: Some(best_index),
    xDisconnect: Some(disconnect),
    xDestroy: Some(disconnect),
    xOpen: Some(open),
    xClose: Some(close),
    xFilter: Some(filter),
    xNext: Some(next),
    xEof: Some(eof),
    xColumn: Some(column),
    xRowid: Some(rowid),
    xUpdate: Some(update),
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
};

/// Registers the `tasks` module on `conn`'s database.
pub fn register(conn: &Rc<Conn>) -> Result<()> {
    let aux = Box::into_raw(Box::new(Rc::clone(conn)));
    // SAFETY: MODULE is static; aux is freed by `free_aux` when the module is
    // dropped, including when registration fails.
    let rc = unsafe {
        ffi::sqlite3_create_module_v2(
            conn.db(),
            c"tasks".as_ptr(),
            &MODULE,
            aux.cast::<c_void>(),
            Some(free_aux),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(conn.last_error(rc));
    }
    Ok(())
}

unsafe extern "C" fn free_aux(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: p came from Box::into_raw in `register`.
        drop(unsafe { Box::from_raw(p.cast::<Rc<Conn>>()) });
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
        let p = ffi::sqlite3_malloc64(bytes.len() as u64).cast::<c_char>();
        if !p.is_null() {
            ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), p, bytes.len());
        }
        p
    }
}

/// Reports `e` on the table and returns its result code.
unsafe fn fail_on(vtab: *mut ffi::sqlite3_vtab, e: &Error) -> c_int {
    let e = e.clone().context("tasks");
    // SAFETY: vtab is live; the previous message belongs to SQLite's allocator.
    unsafe {
        if !(*vtab).zErrMsg.is_null() {
            ffi::sqlite3_free((*vtab).zErrMsg.cast::<c_void>());
        }
        (*vtab).zErrMsg = sqlite_string(&e.msg);
    }
    e.code
}

/// Runs a callback body: converts errors and panics into a result code.
unsafe fn guard(vtab: *mut ffi::sqlite3_vtab, f: impl FnOnce() -> Result<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => ffi::SQLITE_OK,
        // SAFETY: vtab is live for the duration of the callback.
        Ok(Err(e)) => unsafe { fail_on(vtab, &e) },
        Err(_) => unsafe {
            fail_on(
                vtab,
                &Error::new("internal error in sqlite-task (a bug: please report it)"),
            )
        },
    }
}

unsafe extern "C" fn connect(
    db: *mut ffi::sqlite3,
    aux: *mut c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp_vtab: *mut *mut ffi::sqlite3_vtab,
    pz_err: *mut *mut c_char,
) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: aux is the Rc<Conn> given at registration; db is live.
        let conn = unsafe { &*aux.cast::<Rc<Conn>>() };
        let rc = unsafe { ffi::sqlite3_declare_vtab(db, DECLARATION.as_ptr()) };
        if rc != ffi::SQLITE_OK {
            return Err(conn.last_error(rc));
        }
        let table = Box::new(Table {
            // SAFETY: an all-zero sqlite3_vtab is its documented initial state.
            base: unsafe { std::mem::zeroed() },
            conn: Rc::clone(conn),
        });
        conn.set_vtab_connected(true);
        Ok(Box::into_raw(table))
    }));
    match r {
        Ok(Ok(t)) => {
            // SAFETY: pp_vtab is SQLite's out-pointer.
            unsafe { *pp_vtab = t.cast::<ffi::sqlite3_vtab>() };
            ffi::SQLITE_OK
        }
        Ok(Err(e)) => {
            // SAFETY: pz_err is SQLite's out-pointer for a message it frees.
            unsafe { *pz_err = sqlite_string(&e.context("tasks").msg) };
            ffi::SQLITE_ERROR
        }
        Err(_) => ffi::SQLITE_ERROR,
    }
}

unsafe extern "C" fn disconnect(vtab: *mut ffi::sqlite3_vtab) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: vtab came from Box::into_raw in `connect`; SQLite is done with it.
        let table = unsafe { Box::from_raw(vtab.cast::<Table>()) };
        table.conn.set_vtab_connected(false);
        if !table.base.zErrMsg.is_null() {
            unsafe { ffi::sqlite3_free(table.base.zErrMsg.cast::<c_void>()) };
        }
    }));
    ffi::SQLITE_OK
}

unsafe extern "C" fn best_index(
    _vtab: *mut ffi::sqlite3_vtab,
    info: *mut ffi::sqlite3_index_info,
) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: info and its arrays are valid for nConstraint entries.
        let info = unsafe { &mut *info };
        let n = usize::try_from(info.nConstraint).unwrap_or(0);
        let (cons, usage) = if n == 0 {
            (&[][..], &mut [][..])
        } else {
            unsafe {
                (
                    std::slice::from_raw_parts(info.aConstraint, n),
                    std::slice::from_raw_parts_mut(info.aConstraintUsage, n),
                )
            }
        };
        let mut mask = 0usize;
        let mut argv = 0;
        // argv order must match the WHERE order in select_sql: by FILTERS bit.
        for (bit, (name, _)) in FILTERS.iter().enumerate() {
            let col = COLUMNS.iter().position(|c| c == name);
            let found = cons.iter().enumerate().position(|(i, c)| {
                c.usable != 0
                    && c.op as c_int == ffi::SQLITE_INDEX_CONSTRAINT_EQ
                    && usize::try_from(c.iColumn).ok() == col
                    // `status IN (...)` would be filtered once per value,
                    // and a task whose status a function changes between
                    // two values would be read twice: leave such lists to
                    // SQLite (detectable on SQLite 3.38+).
                    && !(*name == "status" && unsafe { is_in_list(info, i) })
            });
            if let Some(i) = found {
                mask |= 1 << bit;
                argv += 1;
                usage[i].argvIndex = argv;
                usage[i].omit = 1;
            }
        }
        info.idxNum = c_int::try_from(mask).unwrap_or(0);
        // The storage query, visible in EXPLAIN QUERY PLAN output of the
        // outer statement (tests check which index it uses). Static text,
        // so SQLite must not free it.
        info.idxStr = select_sql(mask).as_ptr().cast_mut();
        info.needToFreeIdxStr = 0;
        // Rough selectivities: an id is unique, a parent has a few children,
        // a status/queue/type filter still matches many rows.
        let (rows, cost) = if mask & 1 != 0 {
            (1, 1.0)
        } else if mask & (1 << 4) != 0 {
            (10, 10.0)
        } else if mask != 0 {
            (
                10_000 >> mask.count_ones().min(3),
                10_000.0 / f64::from(mask.count_ones()),
            )
        } else {
            (1_000_000, 1_000_000.0)
        };
        info.estimatedRows = rows;
        info.estimatedCost = cost;
        if mask & 1 != 0 {
            info.idxFlags |= ffi::SQLITE_INDEX_SCAN_UNIQUE;
        }
    }));
    if r.is_ok() {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_ERROR
    }
}

/// Whether constraint `i` is an `IN (...)` list (SQLite 3.38+; false before).
unsafe fn is_in_list(info: *mut ffi::sqlite3_index_info, i: usize) -> bool {
    let Some(vtab_in) = crate::host::vtab_in() else {
        return false;
    };
    let Ok(i) = c_int::try_from(i) else {
        return false;
    };
    // SAFETY: info is the live index info of this xBestIndex call.
    unsafe { vtab_in(info, i, -1) != 0 }
}

unsafe extern "C" fn open(
    vtab: *mut ffi::sqlite3_vtab,
    pp_cursor: *mut *mut ffi::sqlite3_vtab_cursor,
) -> c_int {
    // SAFETY: vtab is our Table.
    let table = unsafe { &*vtab.cast::<Table>() };
    let cursor = Box::new(Cursor {
        // SAFETY: zeroed is the documented initial state; SQLite fills pVtab.
        base: unsafe { std::mem::zeroed() },
        conn: Rc::clone(&table.conn),
        stmt: None,
        bound: None,
    });
    // SAFETY: out-pointer.
    unsafe { *pp_cursor = Box::into_raw(cursor).cast::<ffi::sqlite3_vtab_cursor>() };
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: cursor came from Box::into_raw in `open`.
        drop(unsafe { Box::from_raw(cursor.cast::<Cursor>()) });
    }));
    ffi::SQLITE_OK
}

unsafe extern "C" fn filter(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    idx_num: c_int,
    _idx_str: *const c_char,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) -> c_int {
    // SAFETY: cursor is ours; pVtab was set by SQLite after xOpen.
    let c = unsafe { &mut *cursor.cast::<Cursor>() };
    let vtab = c.base.pVtab;
    unsafe {
        guard(vtab, || {
            c.stmt = None;
            schema::ensure_ready(&c.conn)?;
            let mut st = c.conn.prepare(query_for(idx_num))?;
            let n = usize::try_from(argc).unwrap_or(0);
            for i in 0..n {
                let v = *argv.add(i);
                let rc = ffi::sqlite3_bind_value(st.raw(), c_int::try_from(i + 1).unwrap_or(0), v);
                st.check_bind(rc)?;
            }
            if usize::try_from(idx_num).unwrap_or(0) & (1 | BY_SEQ) == 0 {
                let bound = match c.bound {
                    Some(b) => b,
                    None => {
                        let b = max_seq(&c.conn)?;
                        c.bound = Some(b);
                        b
                    }
                };
                st.bind_i64(c_int::try_from(n + 1).unwrap_or(0), bound)?;
            }
            let has_row = st.step()?;
            if has_row {
                c.stmt = Some(st);
            }
            Ok(())
        })
    }
}

fn max_seq(conn: &Rc<Conn>) -> Result<i64> {
    let mut st = conn.prepare("SELECT ifnull(max(seq), 0) FROM main.task_store")?;
    Ok(if st.step()? { st.column_i64(0) } else { 0 })
}

unsafe extern "C" fn next(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: cursor is ours.
    let c = unsafe { &mut *cursor.cast::<Cursor>() };
    let vtab = c.base.pVtab;
    unsafe {
        guard(vtab, || {
            if let Some(st) = c.stmt.as_mut()
                && !st.step()?
            {
                c.stmt = None;
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn eof(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: cursor is ours.
    let c = unsafe { &*cursor.cast::<Cursor>() };
    c_int::from(c.stmt.is_none())
}

unsafe extern "C" fn column(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    ctx: *mut ffi::sqlite3_context,
    i: c_int,
) -> c_int {
    // SAFETY: cursor is ours; ctx is live for this call.
    let c = unsafe { &*cursor.cast::<Cursor>() };
    match (&c.stmt, usize::try_from(i)) {
        (Some(st), Ok(COL_PROGRESS)) if crate::writeback::any() => unsafe {
            // A value held by write-back (any connection of this process)
            // is fresher than the stored one.
            let held = st
                .column_text(0)
                .and_then(|id| crate::writeback::get(c.conn.key(), &id))
                .filter(|h| {
                    st.column_text(3).as_deref() == Some("running") && h.attempt == st.column_i64(9)
                });
            match held {
                Some(h) if h.percent.fract() == 0.0 => {
                    ffi::sqlite3_result_int64(ctx, h.percent as i64)
                }
                Some(h) => ffi::sqlite3_result_double(ctx, h.percent),
                None => ffi::sqlite3_result_value(ctx, st.column_value(i)),
            }
        },
        (Some(st), Ok(col)) if col < COLUMNS.len() => unsafe {
            ffi::sqlite3_result_value(ctx, st.column_value(i));
        },
        _ => unsafe { ffi::sqlite3_result_null(ctx) },
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn rowid(cursor: *mut ffi::sqlite3_vtab_cursor, out: *mut i64) -> c_int {
    // SAFETY: cursor is ours; out is SQLite's out-pointer.
    let c = unsafe { &*cursor.cast::<Cursor>() };
    let seq_col = c_int::try_from(COLUMNS.len()).unwrap_or(0);
    unsafe { *out = c.stmt.as_ref().map_or(0, |st| st.column_i64(seq_col)) };
    ffi::SQLITE_OK
}

unsafe extern "C" fn update(
    vtab: *mut ffi::sqlite3_vtab,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
    out_rowid: *mut i64,
) -> c_int {
    // SAFETY: vtab is our Table; argv holds argc values for this call.
    let table = unsafe { &*vtab.cast::<Table>() };
    let n = usize::try_from(argc).unwrap_or(0);
    let args: Vec<Value<'_>> = (0..n)
        .map(|i| unsafe { Value::from_raw(*argv.add(i)) })
        .collect();
    unsafe {
        guard(vtab, || {
            schema::ensure_ready(&table.conn)?;
            match args.as_slice() {
                [Value::Integer(seq)] => ops::delete(&table.conn, *seq),
                [Value::Null, new_rowid, cols @ ..] => {
                    let seq = insert(&table.conn, *new_rowid, cols)?;
                    *out_rowid = seq;
                    Ok(())
                }
                [Value::Integer(old), new_rowid, cols @ ..] => {
                    update_row(&table.conn, *old, *new_rowid, cols)
                }
                _ => Err(Error::new("unsupported change")),
            }
        })
    }
}

fn col<'a>(cols: &'a [Value<'a>], i: usize) -> Value<'a> {
    cols.get(i).copied().unwrap_or(Value::Null)
}

fn col_text<'a>(cols: &'a [Value<'a>], i: usize) -> Result<Option<&'a str>> {
    match col(cols, i) {
        Value::Null => Ok(None),
        Value::Text(s) => Ok(Some(s)),
        v => Err(Error::new(format!(
            "column {} must be text, got {}",
            name(i),
            v.type_name()
        ))),
    }
}

fn col_int(cols: &[Value<'_>], i: usize) -> Result<Option<i64>> {
    match col(cols, i) {
        Value::Null => Ok(None),
        Value::Integer(n) => Ok(Some(n)),
        // As the functions' options accept them.
        Value::Real(r) if let Some(i) = crate::options::exact_whole(r) => Ok(Some(i)),
        v => Err(Error::new(format!(
            "column {} must be an integer, got {}",
            name(i),
            v.type_name()
        ))),
    }
}

fn name(i: usize) -> &'static str {
    match i {
        COL_DELAY => "delay",
        COL_NOW => "now",
        _ => COLUMNS.get(i).copied().unwrap_or("?"),
    }
}

/// INSERT INTO tasks(...): the same as task_enqueue. Columns the queue
/// manages (worker, attempts, timestamps, ...) must be left out.
fn insert(conn: &Rc<Conn>, rowid: Value<'_>, cols: &[Value<'_>]) -> Result<i64> {
    if rowid != Value::Null {
        return Err(Error::new("rowid cannot be set; it is assigned on INSERT"));
    }
    let settable = [
        COL_ID,
        COL_QUEUE,
        COL_TYPE,
        COL_STATUS,
        COL_PRIORITY,
        COL_DETAILS,
        COL_MAX_ATTEMPTS,
        COL_PARENT,
        COL_RUN_AT,
        COL_DELAY,
        COL_NOW,
    ];
    for i in 0..N_COLS.min(cols.len()) {
        if !settable.contains(&i) && col(cols, i) != Value::Null {
            return Err(Error::new(format!(
                "column {} cannot be set on INSERT; the queue manages it",
                name(i)
            )));
        }
    }
    if let Some(s) = col_text(cols, COL_STATUS)?
        && s != "queued"
    {
        return Err(Error::new(format!(
            "a new task's status is 'queued', got {}",
            ops::quoted(s)
        )));
    }
    let kind = match col_text(cols, COL_TYPE)? {
        Some(t) if !t.is_empty() => t,
        _ => return Err(Error::new("type must be given and not empty")),
    };
    let task = NewTask {
        kind,
        details: col_text(cols, COL_DETAILS)?,
        queue: col_text(cols, COL_QUEUE)?,
        priority: col_int(cols, COL_PRIORITY)?,
        run_at: col_int(cols, COL_RUN_AT)?,
        delay: col_int(cols, COL_DELAY)?,
        max_attempts: col_int(cols, COL_MAX_ATTEMPTS)?,
        parent_id: col_text(cols, COL_PARENT)?,
        id: col_text(cols, COL_ID)?,
        now: col_int(cols, COL_NOW)?,
    };
    ops::enqueue(conn, &task).map(|t| t.seq)
}

/// Values equal as SQL would store them (an integer equals the same real).
fn same(a: Value<'_>, b: Value<'_>) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Real(y)) | (Value::Real(y), Value::Integer(x)) => {
            (x as f64) == y
        }
        _ => a == b,
    }
}

/// UPDATE tasks SET ...: either a status change alone (to 'cancelled', or
/// to 'queued' to retry a failed or cancelled task), or new queue, priority,
/// run_at or max_attempts for a queued task.
fn update_row(conn: &Rc<Conn>, old: i64, new_rowid: Value<'_>, cols: &[Value<'_>]) -> Result<()> {
    if new_rowid != Value::Integer(old) {
        return Err(Error::new("rowid cannot be changed"));
    }
    let mut st = conn.prepare(query_for(c_int::try_from(BY_SEQ).unwrap_or(0)))?;
    st.bind_i64(1, old)?;
    if !st.step()? {
        return Err(Error::new("the task was deleted concurrently"));
    }
    let id = st.column_text(0).unwrap_or_default();
    // The progress SQLite read may be a write-back value (see `column`).
    let held = crate::writeback::get(conn.key(), &id).map(|h| Value::Real(h.percent));
    let mut changed = Vec::new();
    for i in 0..COLUMNS.len() {
        // SAFETY: the statement has a row; the value lives until the next step.
        let current = unsafe { Value::from_raw(st.column_value(c_int::try_from(i).unwrap_or(0))) };
        let new = col(cols, i);
        let unchanged =
            same(current, new) || (i == COL_PROGRESS && held.is_some_and(|h| same(h, new)));
        if !unchanged {
            changed.push(i);
        }
    }
    drop(st);
    let now = col_int(cols, COL_NOW)?;
    if changed.is_empty() {
        return Ok(());
    }
    if changed.contains(&COL_STATUS) {
        if changed.len() > 1 {
            return Err(Error::new(
                "change status in an UPDATE of its own (other columns changed too)",
            ));
        }
        return match col_text(cols, COL_STATUS)? {
            Some("cancelled") => ops::cancel(conn, &id, now),
            Some("queued") => ops::retry(conn, &id, now),
            other => Err(Error::new(format!(
                "status can only be set to 'cancelled' or to 'queued' (retry), got {}",
                other.map_or("NULL".to_string(), ops::quoted)
            ))),
        };
    }
    let allowed = [COL_QUEUE, COL_PRIORITY, COL_RUN_AT, COL_MAX_ATTEMPTS];
    if let Some(&bad) = changed.iter().find(|c| !allowed.contains(c)) {
        return Err(Error::new(format!(
            "column {} cannot be changed; only queue, priority, run_at and max_attempts \
             of a queued task, or status",
            name(bad)
        )));
    }
    let pick = |c: usize| changed.contains(&c);
    let r = Reschedule {
        queue: if pick(COL_QUEUE) {
            Some(
                col_text(cols, COL_QUEUE)?
                    .ok_or_else(|| Error::new("queue cannot be NULL"))?
                    .to_string(),
            )
        } else {
            None
        },
        priority: if pick(COL_PRIORITY) {
            Some(
                col_int(cols, COL_PRIORITY)?
                    .ok_or_else(|| Error::new("priority cannot be NULL"))?,
            )
        } else {
            None
        },
        run_at: if pick(COL_RUN_AT) {
            Some(col_int(cols, COL_RUN_AT)?.ok_or_else(|| Error::new("run_at cannot be NULL"))?)
        } else {
            None
        },
        max_attempts: if pick(COL_MAX_ATTEMPTS) {
            Some(
                col_int(cols, COL_MAX_ATTEMPTS)?
                    .ok_or_else(|| Error::new("max_attempts cannot be NULL"))?,
            )
        } else {
            None
        },
        now,
    };
    ops::reschedule(conn, &id, &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_constants_match_the_declared_columns() {
        assert_eq!(COLUMNS[COL_ID], "id");
        assert_eq!(COLUMNS[COL_QUEUE], "queue");
        assert_eq!(COLUMNS[COL_TYPE], "type");
        assert_eq!(COLUMNS[COL_STATUS], "status");
        assert_eq!(COLUMNS[COL_PRIORITY], "priority");
        assert_eq!(COLUMNS[COL_DETAILS], "details");
        assert_eq!(COLUMNS[COL_MAX_ATTEMPTS], "max_attempts");
        assert_eq!(COLUMNS[COL_PARENT], "parent_id");
        assert_eq!(COLUMNS[COL_RUN_AT], "run_at");
        let decl = DECLARATION.to_str().unwrap();
        let mut at = 0;
        for c in COLUMNS {
            let found = decl[at..].find(&format!(" {c} ")).expect(c);
            at += found + 1;
        }
    }

    #[test]
    fn the_generated_queries_are_the_builder_s() {
        for (mask, sql) in SELECT_SQL.iter().enumerate() {
            assert_eq!(sql.to_str().unwrap(), crate::vtab_sql::build_select(mask));
        }
        assert_eq!(SELECT_SQL.len(), BY_SEQ << 1);
    }
}
