//! Progress write-back (opt-in per call with `{"writeback": ms}`).
//!
//! State transitions are always written through. Progress is the one write
//! a worker makes often, and most of it is worth little once a newer value
//! exists, so a worker may ask for it to be held in memory and written at
//! most every `ms` milliseconds: the first report of a task is written, later
//! ones within the interval only update memory, and the next report after it
//! is written again (renewing the lease, and learning of a cancellation).
//! The held value is written by the task's next heartbeat or failure, and
//! dropped by completion (which sets 100), cancellation and retry.
//!
//! The `tasks` table of any connection in this process, on the same database
//! file, shows the held value. What a crash loses is the progress reported
//! since the last write: at most one interval. Leases are not renewed by a
//! held report, so the interval is capped at half the task's lease.
//!
//! The held values live in one process-wide map (so every connection sees
//! them), keyed by database file and task id. It holds no heap memory while
//! empty, so unloading the library leaks nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// The attempt the value belongs to; a later attempt ignores it.
    pub attempt: i64,
    pub percent: f64,
    /// Clock (ms) of the last write to the database.
    pub written_at: i64,
    /// Effective interval: the requested one, capped at half the lease.
    pub interval: i64,
    /// The value last written to the database (a parent's rollup reads
    /// that one and adds what the held one adds to it).
    pub stored: f64,
    /// Rowid of the task's parent, 0 for none.
    pub parent: i64,
}

type Key = (String, String);

static HELD: Mutex<Option<HashMap<Key, Held>>> = Mutex::new(None);
/// Entries in HELD, read without the lock on the hot paths.
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn with<T>(f: impl FnOnce(&mut Option<HashMap<Key, Held>>) -> T) -> T {
    // A poisoned lock only means a panic elsewhere; the map is still valid.
    let mut guard = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let out = f(&mut guard);
    let n = guard.as_ref().map_or(0, HashMap::len);
    if n == 0 {
        *guard = None;
    }
    COUNT.store(n, Ordering::Release);
    out
}

/// True when any value is held (no lock taken).
pub fn any() -> bool {
    COUNT.load(Ordering::Acquire) != 0
}

/// Holds `percent` instead of writing it, if the task's last write is
/// recent enough and belongs to `attempt` (when given). Returns whether
/// the value was held; if not, the caller writes through.
pub fn hold(db: &str, id: &str, attempt: Option<i64>, percent: f64, now: i64) -> bool {
    if !any() {
        return false;
    }
    with(|map| {
        let Some(held) = map
            .as_mut()
            .and_then(|m| m.get_mut(&(db.to_string(), id.to_string())))
        else {
            return false;
        };
        let same_attempt = attempt.is_none_or(|a| a == held.attempt);
        if same_attempt && now >= held.written_at && now - held.written_at < held.interval {
            held.percent = percent;
            true
        } else {
            false
        }
    })
}

/// Records a write-through made with write-back requested.
pub fn wrote(db: &str, id: &str, held: Held) {
    with(|map| {
        map.get_or_insert_with(HashMap::new)
            .insert((db.to_string(), id.to_string()), held);
    });
}

/// The held value of a task, if any.
pub fn get(db: &str, id: &str) -> Option<Held> {
    if !any() {
        return None;
    }
    with(|map| {
        map.as_ref()
            .and_then(|m| m.get(&(db.to_string(), id.to_string())).copied())
    })
}

/// Forgets a task's held value, returning it.
pub fn take(db: &str, id: &str) -> Option<Held> {
    if !any() {
        return None;
    }
    with(|map| {
        map.as_mut()
            .and_then(|m| m.remove(&(db.to_string(), id.to_string())))
    })
}

/// What the values held for children of the task with rowid `parent` add
/// to the values stored for them, and for which children (by id).
pub fn held_children(db: &str, parent: i64) -> Vec<(String, f64)> {
    if !any() || parent == 0 {
        return Vec::new();
    }
    with(|map| {
        map.as_ref().map_or_else(Vec::new, |m| {
            m.iter()
                .filter(|((d, _), h)| d == db && h.parent == parent)
                .map(|((_, id), h)| (id.clone(), h.percent - h.stored))
                .collect()
        })
    })
}

/// Forgets every value held for database `db`.
pub fn forget_db(db: &str) {
    if !any() {
        return;
    }
    with(|map| {
        if let Some(m) = map.as_mut() {
            m.retain(|(d, _), _| d != db);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_held_within_the_interval_only() {
        let h = Held {
            attempt: 1,
            percent: 10.0,
            written_at: 1_000,
            interval: 500,
            stored: 10.0,
            parent: 7,
        };
        wrote("db-a", "t1", h);
        assert!(hold("db-a", "t1", None, 20.0, 1_200));
        assert!(hold("db-a", "t1", Some(1), 30.0, 1_499));
        assert!(!hold("db-a", "t1", Some(2), 40.0, 1_300), "another attempt");
        assert!(!hold("db-a", "t1", None, 50.0, 1_500), "interval over");
        assert!(!hold("db-b", "t1", None, 50.0, 1_200), "another database");
        assert_eq!(get("db-a", "t1").map(|h| h.percent), Some(30.0));
        assert_eq!(held_children("db-a", 7), vec![("t1".to_string(), 20.0)]);
        assert!(held_children("db-a", 8).is_empty());
        assert_eq!(take("db-a", "t1").map(|h| h.percent), Some(30.0));
        assert!(!any(), "the map is freed when empty");
    }
}
