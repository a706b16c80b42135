//! What SQL sees: the functions (`functions.rs`), how their arguments and
//! options are read (`args.rs`, `options.rs`), the `tasks` table
//! (`tasks_table.rs`, with its columns and storage queries in
//! `tasks_query.rs`) and `task_tree(root)` (`task_tree.rs`). Each is a thin
//! adapter over the queue (`queue/`).

pub mod args;
pub mod functions;
pub mod options;
pub mod task_tree;
pub mod tasks_query;
pub mod tasks_table;

use crate::error::Result;
use crate::ffi::Conn;
use crate::queue::Queue;
use std::rc::Rc;

/// Registers the functions and the `tasks` table on the connection that
/// loads the extension; all of them share one [`Queue`].
pub fn register(conn: &Rc<Conn>) -> Result<()> {
    let q = Queue::new(Rc::clone(conn));
    functions::register(conn, &q)?;
    task_tree::register(conn, Rc::clone(&q))?;
    tasks_table::register(conn, q)
}
