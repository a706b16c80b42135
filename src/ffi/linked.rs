//! The entry point of the build for applications that link SQLite into
//! themselves (the feature `static`: rusqlite with `bundled`); `entry.rs` is
//! the loadable extension's. The bindings are the linked SQLite's own: there
//! is no routine table to install, and the version is checked all the same.

use super::conn::Conn;
use super::host;
use rusqlite::ffi as sys;
use std::os::raw::c_int;

/// Registers the functions and the `tasks` table on `conn`, for an
/// application that links SQLite into itself (rusqlite's `bundled`): the
/// same queue as the loadable extension, with no `.so` and no
/// `load_extension`. Call it once per connection, before using the queue.
/// The functions and the table live as long as the connection.
///
/// ```no_run
/// let conn = rusqlite::Connection::open("app.db")?;
/// sqlite_task::register(&conn)?;
/// conn.query_row("SELECT task_init()", [], |_| Ok(()))?;
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub fn register(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let failure = |code: c_int, msg: String| {
        rusqlite::Error::SqliteFailure(sys::Error::new(code), Some(format!("sqlite-task: {msg}")))
    };
    // SAFETY: the linked SQLite's own routine.
    let version = unsafe { sys::sqlite3_libversion_number() };
    if let Some(msg) = host::refusal(version) {
        return Err(failure(sys::SQLITE_ERROR, msg));
    }
    host::init_linked();
    // SAFETY: the handle is live while `conn` is; SQLite drops the
    // functions and module (and with them the Conn) before it closes.
    let c = unsafe { Conn::new(conn.handle()) };
    crate::sql::register(&c).map_err(|e| failure(e.code, e.msg))
}
