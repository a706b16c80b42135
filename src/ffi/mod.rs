//! The one layer with unsafe code and calls into SQLite's C API (the
//! crate denies `unsafe` everywhere else). What it offers the rest is safe:
//!
//! - `entry.rs`: `sqlite3_task_init`, the host check, then `sql::register`
//!   (the loadable build); `linked.rs`: `register(&conn)` (the `static` build)
//! - `host.rs`: the version floor, and routines newer than the bindings
//! - `conn.rs`: a host connection and its pool of prepared statements
//! - `busy.rs`: the fair wait for the write lock (`task_busy_timeout`)
//! - `stmt.rs`: a prepared statement (pooled or not): bind, step, read
//! - `value.rs`: SQL values crossing the boundary
//! - `function.rs`: registering scalar functions; the dispatcher that turns
//!   panics into errors and keeps error codes
//! - `vtab.rs`: virtual-table glue over a safe `Table`/`Cursor` pair
//! - `watch.rs`: waiting for a change to the database's files (inotify)
//!
//! Inside, the raw bindings are `sys` (rusqlite's `ffi` module), so that
//! `ffi::` in the rest of the crate always means this safe layer.

mod busy;
mod conn;
#[cfg(feature = "loadable")]
mod entry;
mod function;
mod host;
#[cfg(feature = "static")]
mod linked;
mod stmt;
#[cfg(test)]
mod testing;
mod value;
mod vtab;
mod watch;

pub use conn::{Conn, libversion, randomness};
#[cfg(all(feature = "loadable", feature = "static"))]
compile_error!("sqlite-task: the features `loadable` and `static` are two builds; enable one");
#[cfg(not(any(feature = "loadable", feature = "static")))]
compile_error!("sqlite-task: enable the feature `loadable` (the extension) or `static`");

#[cfg(feature = "loadable")]
pub use entry::sqlite3_task_init;
pub use function::{Flags, Handler, Out, register as register_function};
pub use host::{MIN_SQLITE_VERSION, MIN_SQLITE_VERSION_TEXT};
#[cfg(feature = "static")]
pub use linked::register;
pub use stmt::Stmt;
pub use value::{Owned, Value, ValueRef};
pub use vtab::{ColumnResult, Constraint, Cursor, IndexInfo, Table, register as register_table};
pub use watch::{Wake, Watch};

#[cfg(test)]
mod tests {
    use crate::error::code;
    use rusqlite::ffi as sys;

    #[test]
    fn the_error_codes_are_sqlite_s() {
        assert_eq!(code::ERROR, sys::SQLITE_ERROR);
        assert_eq!(code::BUSY, sys::SQLITE_BUSY);
        assert_eq!(code::CONSTRAINT_UNIQUE, sys::SQLITE_CONSTRAINT_UNIQUE);
        assert_eq!(code::READONLY, sys::SQLITE_READONLY);
    }
}
