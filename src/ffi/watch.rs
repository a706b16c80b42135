//! Waiting for another connection's commit without a busy loop: the
//! operating system's file-change notification on the database's files.
//!
//! A commit writes the `-wal` file (WAL mode) or the database file
//! (rollback journal), so an `inotify` watch on those paths (Linux) wakes a
//! waiter as soon as another process or connection writes; the caller then
//! confirms with `PRAGMA data_version`, which changes only for commits of
//! other connections. An idle waiter sleeps in `poll(2)` and costs no CPU.
//!
//! The trap this avoids: closing any descriptor of a database file drops
//! every POSIX lock the process holds on it, and SQLite's locking then
//! fails silently. A watch is made on a path; no descriptor of the
//! database, `-wal` or `-shm` file is ever opened or closed here. The only
//! descriptor is the inotify instance's own.
//!
//! Elsewhere (or when inotify is unavailable) [`Watch::new`] returns `None`
//! and the caller polls.

use std::time::Duration;

/// How a [`Watch::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A watched file changed (the events are read and dropped).
    Changed,
    /// The timeout passed with no change.
    Quiet,
    /// A signal arrived: the caller returns, so that the host's handler
    /// runs (Ctrl-C in Python, a SIGTERM handler).
    Signal,
}

/// A watch on a few paths. Kept by its connection for all its waits:
/// closing an inotify instance takes the kernel milliseconds (measured:
/// 5–19 ms), which a wait per call would add to every wake.
pub struct Watch {
    #[cfg(target_os = "linux")]
    fd: std::os::raw::c_int,
    /// How many of the paths it was given are watched.
    watching: usize,
}

#[cfg(target_os = "linux")]
impl Watch {
    /// A watch on every path of `paths` that exists (at least one must).
    pub fn new(paths: &[String]) -> Option<Watch> {
        // SAFETY: plain syscalls on our own descriptor; the paths are
        // NUL-terminated copies that live across the calls.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let mut w = Watch { fd, watching: 0 };
            for p in paths {
                let Ok(c) = std::ffi::CString::new(p.as_str()) else {
                    continue;
                };
                let mask = libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_DELETE_SELF;
                if libc::inotify_add_watch(fd, c.as_ptr(), mask) >= 0 {
                    w.watching += 1;
                }
            }
            (w.watching > 0).then_some(w)
        }
    }

    /// Sleeps until a watched file changes, `timeout` passes or a signal
    /// arrives.
    pub fn wait(&self, timeout: Duration) -> Wake {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: one pollfd on our own descriptor, a timespec on the
        // stack, no signal mask; the buffer is ours and read with its length.
        unsafe {
            let n = libc::ppoll(&mut pfd, 1, &ts, std::ptr::null());
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                return Wake::Signal;
            }
            if n <= 0 {
                return Wake::Quiet;
            }
            let mut buf = [0u8; 4096];
            while libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
        Wake::Changed
    }

    /// How many paths are watched.
    pub fn watching(&self) -> usize {
        self.watching
    }

    /// Drops the events that came before now (this connection's own
    /// writes since its last wait).
    /// Drops the changes seen so far; returns whether there were any.
    pub fn drain(&self) -> bool {
        self.wait(Duration::ZERO) == Wake::Changed
    }

    /// After a change: sleeps until the files have been quiet for `gap`
    /// (the writer has written its last frame), at most `max`.
    pub fn quiet(&self, gap: Duration, max: Duration) {
        let end = std::time::Instant::now() + max;
        while std::time::Instant::now() < end && self.wait(gap) == Wake::Changed {}
    }
}

#[cfg(target_os = "linux")]
impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: the inotify descriptor is ours, closed once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl Watch {
    pub fn new(_paths: &[String]) -> Option<Watch> {
        None
    }

    pub fn wait(&self, timeout: Duration) -> Wake {
        std::thread::sleep(timeout);
        Wake::Quiet
    }

    pub fn quiet(&self, _gap: Duration, _max: Duration) {}

    pub fn watching(&self) -> usize {
        0
    }

    pub fn drain(&self) -> bool {
        false
    }
}
