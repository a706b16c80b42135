//! sqlite-task: a durable task queue inside SQLite, as a loadable extension.
//!
//! The layers, bottom up (docs/ARCHITECTURE.md walks through them):
//!
//! - [`error`]: the one error type, with SQLite result codes.
//! - [`ffi`]: the only place with unsafe code and calls into SQLite's C
//!   API: the entry point and host check, the connection and its statement
//!   pool, function registration and dispatch, the virtual-table glue.
//! - [`storage`]: the tables and their numbered migrations.
//! - [`queue`]: the queue as plain Rust over a connection: every rule about
//!   tasks, once.
//! - [`sql`]: what SQL sees: the function table, argument and option
//!   reading, the `tasks` table; thin adapters over the queue.
//!
//! The entry point SQLite calls is `sqlite3_task_init` (`ffi/entry.rs`);
//! it checks the host, then runs [`sql::register`] on the connection. Built
//! with the feature `static` instead of `loadable`, `register(&conn)` does
//! the same on a rusqlite connection of an application that links SQLite.

// Unsafe code is confined to `ffi`: anywhere else it does not compile.
#![deny(unsafe_code)]

pub mod error;
#[allow(unsafe_code)]
pub mod ffi;
pub mod queue;
pub mod sql;
pub mod storage;

#[cfg(feature = "static")]
pub use ffi::register;
#[cfg(feature = "loadable")]
pub use ffi::sqlite3_task_init;
