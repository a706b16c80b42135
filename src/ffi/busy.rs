//! The fair wait for the write lock: `task_busy_timeout(ms)` installs
//! [`fair_wait`] as the connection's busy handler.
//!
//! SQLite's own handler (`PRAGMA busy_timeout`) sleeps 1, 2, 5, 10, … 100 ms
//! between tries. A queue worker's write transaction lasts ~50 µs, so a
//! neighbour in a tight loop commits and takes the lock again many times
//! while a sleeper sleeps: the sleeper rarely finds the lock free, and in
//! a no-work loop one process can claim nothing for seconds. This handler
//! retries after short sleeps with random jitter instead: every waiter
//! looks again within a few milliseconds, and more often the longer it has
//! waited, so the longest waiter wins the lock; the jitter keeps two
//! waiters from retrying in step. The measurements are in BENCHMARKS.md.
//!
//! No state outlives a call: the timeout travels in the handler's argument
//! pointer (an integer, never dereferenced), and the start of the current
//! wait and the jitter's generator are thread-local (a busy handler runs
//! on the thread that is blocked in SQLite, one wait at a time). So closing
//! the connection, loading the extension twice or a later `PRAGMA
//! busy_timeout` (which replaces the handler) can leave nothing dangling.

use super::Conn;
use crate::error::Result;
use rusqlite::ffi as sys;
use std::cell::Cell;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::time::{Duration, Instant};

/// The sleep between two tries, by how long this wait has lasted: (waited
/// at least ms, shortest µs, longest µs). A new waiter looks every 2–4 ms,
/// which leaves a busy holder its lock and wakes little; one that has
/// waited 10 ms looks every 1–2 ms, and after 30 ms every 300–600 µs, so
/// it wins the lock over newer waiters: nobody waits long. (Shorter sleeps
/// were as fair but cost throughput on 2 cores with 8 waiters, each
/// wake-up taking CPU from the holder: BENCHMARKS.md, docs/concurrency.md.)
const SLEEPS: [(u64, u64, u64); 3] = [(0, 2_000, 4_000), (10, 1_000, 2_000), (30, 300, 600)];

thread_local! {
    static WAIT_START: Cell<Option<Instant>> = const { Cell::new(None) };
    static JITTER: Cell<u64> = const { Cell::new(0) };
}

/// A random sleep for a wait that has lasted `waited`, in the range
/// [`SLEEPS`] gives (xorshift64, seeded from the clock, the thread's stack
/// and the process id on first use).
fn jittered_sleep(waited: Duration) -> Duration {
    let ms = waited.as_millis() as u64;
    let (_, lo, hi) = SLEEPS
        .iter()
        .rev()
        .find(|(from, _, _)| ms >= *from)
        .copied()
        .unwrap_or(SLEEPS[0]);
    let x = JITTER.with(|j| {
        let mut x = j.get();
        if x == 0 {
            let marker = 0u8;
            let clock = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0);
            let seed =
                clock ^ (&marker as *const u8 as u64).rotate_left(17) ^ std::process::id() as u64;
            x = seed | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        j.set(x);
        x
    });
    Duration::from_micros(lo + x % (hi - lo + 1))
}

/// The busy handler: `count` is how many times SQLite called it for this
/// lock attempt (0 on the first), `arg` the timeout in ms. Returns 1 to
/// retry, 0 to give up (the statement then fails with SQLITE_BUSY).
extern "C" fn fair_wait(arg: *mut c_void, count: c_int) -> c_int {
    let timeout = Duration::from_millis(arg as usize as u64);
    let now = Instant::now();
    let start = WAIT_START.with(|s| {
        let start = match s.get() {
            Some(t) if count > 0 => t,
            _ => now,
        };
        s.set(Some(start));
        start
    });
    let waited = now.saturating_duration_since(start);
    if waited >= timeout {
        return 0;
    }
    std::thread::sleep(jittered_sleep(waited).min(timeout - waited));
    1
}

impl Conn {
    /// Installs the fair wait with a timeout of `ms` (0: none, as
    /// `PRAGMA busy_timeout = 0`: a locked database fails at once).
    pub fn set_fair_busy_timeout(&self, ms: u32) -> Result<()> {
        let rc = if ms == 0 {
            // SAFETY: db is live; no handler.
            unsafe { sys::sqlite3_busy_handler(self.raw(), None, std::ptr::null_mut()) }
        } else {
            // SAFETY: db is live; the argument is an integer the handler
            // never dereferences.
            unsafe {
                sys::sqlite3_busy_handler(self.raw(), Some(fair_wait), ms as usize as *mut c_void)
            }
        };
        if rc != sys::SQLITE_OK {
            return Err(self.last_error(rc));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_shorten_as_the_wait_lasts_and_are_spread() {
        for (waited_ms, lo, hi) in [(0, 2_000, 4_000), (12, 1_000, 2_000), (100, 300, 600)] {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..1000 {
                let d = jittered_sleep(Duration::from_millis(waited_ms)).as_micros() as u64;
                assert!((lo..=hi).contains(&d), "{waited_ms} ms: {d}");
                seen.insert((d - lo) * 10 / (hi - lo + 1));
            }
            assert_eq!(seen.len(), 10, "jitter covers the range: {seen:?}");
        }
    }

    #[test]
    fn the_wait_gives_up_after_its_timeout() {
        let arg = 5usize as *mut c_void;
        let start = Instant::now();
        assert_eq!(fair_wait(arg, 0), 1, "the first call retries");
        let mut count = 1;
        while fair_wait(arg, count) == 1 {
            count += 1;
            assert!(start.elapsed() < Duration::from_secs(60), "never gives up");
        }
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(5), "{waited:?}");
        // A new lock attempt (count 0) starts a new wait.
        assert_eq!(fair_wait(arg, 0), 1);
    }

    #[test]
    fn a_zero_timeout_gives_up_at_once() {
        assert_eq!(fair_wait(std::ptr::null_mut(), 0), 0);
    }
}
