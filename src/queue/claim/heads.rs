//! What an every-queue claim knows of the queues' heads, so that its cost
//! does not grow with the number of queues.
//!
//! Finding the task that comes first across every queue takes one seek
//! per queue in the ready index (its key starts with the queue). Done on
//! every claim, that made a claim over 10,000 queues hundreds of times
//! slower than over one. So the scan's result is kept, per connection, as
//! the queues' heads in claim order, and each claim reads again only the
//! head it is about to take (one seek: it may have been taken, or another
//! task may have come first in that queue since), and the heads of the
//! queues this connection enqueued into since. The scan of n queues is
//! repeated after n claims planned from it (so it costs a claim one step on
//! average; measured, a scan every n / 4 claims cost the cycle over 100
//! queues 20 %, every n claims 5 %), once a second of the claims' clock,
//! and whenever the known heads run out; so a claim finds nothing only
//! when a scan of every queue found nothing.
//!
//! A delayed task (run_at after the scan) that would come before its
//! queue's ready head, or in a queue with no ready task yet, makes that
//! queue's head due to be read again at its run_at: the scan notes the
//! earliest such run_at per queue (a seek or two per priority above the
//! queue's ready head, none for a queue whose first task is ready), and so
//! does this connection's own delayed enqueue. Once due, only that queue
//! is read again (its head, and its next such run_at), not every queue.
//!
//! What this gives up: a queue that another connection gave work since the
//! last scan, or an earlier head (a task of higher priority), is seen by
//! the next scan rather than at once: within as many claims as there are
//! queues, and within a second.

use super::plan::{Gate, HeadKey, gate_of};
use super::sql;
use crate::error::Result;
use crate::queue::Queue;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

/// How long a scan is trusted, in ms of the claims' clock.
pub const SCAN_MS: i64 = 1_000;

/// At most this many heads are kept (the first in claim order): a scan of
/// more queues costs a connection no more memory than this (a few MB).
const MAX_KEPT: usize = 65_536;

/// At most this many stale heads are read again in one plan before it
/// scans every queue instead.
const MAX_STALE: usize = 64;

/// The heads of every queue as the last scan found them, corrected by the
/// reads since; per connection.
#[derive(Debug, Default)]
pub struct Heads {
    /// In claim order: the head's key, the queue, whether it is gated.
    order: BTreeSet<(HeadKey, String, bool)>,
    /// Each known queue's entry in `order`.
    by_queue: HashMap<String, (HeadKey, bool)>,
    /// When the last scan was made (the claims' clock).
    scanned_at: i64,
    /// How many queues had queued tasks at the last scan (ready or not).
    scanned: usize,
    /// Claims planned since the last scan.
    uses: usize,
    /// Queues this connection enqueued into since their heads were read.
    touched: HashSet<String>,
    /// When a queue's head must be read again: the run_at of a delayed
    /// task of it that may come first once due; in time order, and by queue.
    due: BTreeSet<(i64, String)>,
    due_of: HashMap<String, i64>,
}

/// The queue an every-queue claim should take from: the first known head's
/// queue and whether it is gated, and how many queues had queued tasks.
pub struct Best {
    pub queue: Option<(String, bool)>,
    pub queues: usize,
}

impl Heads {
    /// Whether the next plan must scan every queue.
    fn stale(&self, now: i64) -> bool {
        self.order.is_empty()
            || !(0..SCAN_MS).contains(&(now - self.scanned_at))
            || self.uses >= self.scanned
    }

    /// Notes that this connection enqueued into `queue`: the next plan
    /// reads its head again, so a connection sees its own new work at once
    /// (and, delayed, once it is due).
    pub fn touched(&mut self, queue: &str) {
        if !self.order.is_empty() && !self.touched.contains(queue) {
            self.touched.insert(queue.to_string());
        }
    }

    /// Notes that `queue`'s head must be read again at `at`.
    fn due_at(&mut self, queue: &str, at: i64) {
        if let Some(&known) = self.due_of.get(queue) {
            if known <= at {
                return;
            }
            self.due.remove(&(known, queue.to_string()));
        }
        self.due.insert((at, queue.to_string()));
        self.due_of.insert(queue.to_string(), at);
    }

    /// Reads `queue`'s head again, and when it must be read next.
    fn refresh(&mut self, q: &Queue, queue: &str, now: i64) -> Result<()> {
        let Look { head, due } = look(q, queue, now)?;
        if let Some(at) = due {
            self.due_at(queue, at);
        }
        let Some(head) = head else {
            self.forget(queue);
            return Ok(());
        };
        let gated = match self.by_queue.get(queue).map(|e| e.1) {
            Some(g) => g,
            None => !matches!(gate_of(q, queue, now)?, Gate::Open),
        };
        self.insert(queue.to_string(), head, gated);
        Ok(())
    }

    /// Forgets everything (the next plan scans).
    pub fn clear(&mut self) {
        *self = Heads::default();
    }

    fn insert(&mut self, queue: String, key: HeadKey, gated: bool) {
        self.forget(&queue);
        self.order.insert((key, queue.clone(), gated));
        self.by_queue.insert(queue, (key, gated));
    }

    /// Passes over `queue` until the next scan reads it again (its head is
    /// gone, it closed, or a claim from it took nothing).
    pub fn forget(&mut self, queue: &str) {
        if let Some((key, gated)) = self.by_queue.remove(queue) {
            self.order.remove(&(key, queue.to_string(), gated));
        }
    }

    /// The queue whose ready head comes first in claim order among the
    /// queues that are not closed (paused, or at their limit), with
    /// whether it is gated; and how many queues have queued tasks.
    pub fn best(&mut self, q: &Queue, now: i64) -> Result<Best> {
        if self.stale(now) {
            self.scan(q, now)?;
            return self.first_open(q, now, true);
        }
        self.uses += 1;
        while let Some((at, queue)) = self.due.first().cloned() {
            if at > now {
                break;
            }
            self.due.remove(&(at, queue.clone()));
            self.due_of.remove(&queue);
            self.refresh(q, &queue, now)?;
        }
        for queue in std::mem::take(&mut self.touched) {
            self.refresh(q, &queue, now)?;
        }
        self.first_open(q, now, false)
    }

    /// The first known head that is still there and whose queue is open;
    /// `fresh`: the heads were just read. Heads found stale are corrected;
    /// when they run out (or too many were stale), every queue is scanned.
    fn first_open(&mut self, q: &Queue, now: i64, mut fresh: bool) -> Result<Best> {
        let mut reads = 0;
        let mut just_read: Option<String> = None;
        loop {
            let Some((key, queue, gated)) = self.order.first().cloned() else {
                if fresh {
                    return Ok(Best {
                        queue: None,
                        queues: self.scanned,
                    });
                }
                self.scan(q, now)?;
                fresh = true;
                continue;
            };
            if !fresh && just_read.as_deref() != Some(queue.as_str()) {
                reads += 1;
                if reads > MAX_STALE {
                    self.scan(q, now)?;
                    fresh = true;
                    continue;
                }
                match head_of(q, &queue, now)? {
                    Some(head) if head == key => {}
                    Some(head) => {
                        self.insert(queue.clone(), head, gated);
                        just_read = Some(queue);
                        continue;
                    }
                    None => {
                        self.forget(&queue);
                        continue;
                    }
                }
            }
            if gated && matches!(gate_of(q, &queue, now)?, Gate::Closed { .. }) {
                // Passed over until the next scan reads it again.
                self.forget(&queue);
                continue;
            }
            return Ok(Best {
                queue: Some((queue, gated)),
                queues: self.scanned,
            });
        }
    }

    /// Reads every queue's head: one seek per queue that has queued tasks.
    fn scan(&mut self, q: &Queue, now: i64) -> Result<()> {
        self.clear();
        self.scanned_at = now;
        let mut after = String::new();
        let mut st = q.prepare(sql::NEXT_QUEUE_SQL)?;
        loop {
            st.bind_text(1, &after)?;
            if !st.step()? {
                break;
            }
            let Some(queue) = st.column_text(0) else {
                break;
            };
            self.scanned += 1;
            let first = (st.column_i64(1), st.column_i64(2), st.column_i64(3));
            let gated = !st.is_null(4);
            st.reset();
            let Look { head, due } = look_from(q, &queue, first, now)?;
            if let Some(at) = due {
                self.due_at(&queue, at);
            }
            if let Some(key) = head {
                self.insert(queue.clone(), key, gated);
                if self.order.len() > MAX_KEPT
                    && let Some((_, last, _)) = self.order.pop_last()
                {
                    self.by_queue.remove(&last);
                }
            }
            after = queue;
        }
        Ok(())
    }
}

/// A queue's head at some time, and when it must be read again: the
/// earliest run_at of a delayed task that may come before the head (or be
/// the first ready one, when there is no head).
struct Look {
    head: Option<HeadKey>,
    due: Option<i64>,
}

/// Queue `queue`'s first queued task in claim order, ready or not:
/// priority, run_at, seq.
fn first_of(q: &Queue, queue: &str) -> Result<Option<(i64, i64, i64)>> {
    let mut st = q.prepare(sql::TOP_OF_SQL)?;
    st.bind_text(1, queue)?;
    Ok(if st.step()? {
        Some((st.column_i64(0), st.column_i64(1), st.column_i64(2)))
    } else {
        None
    })
}

/// Queue `queue`'s head at `now`, and when to read it again.
fn look(q: &Queue, queue: &str, now: i64) -> Result<Look> {
    match first_of(q, queue)? {
        Some(first) => look_from(q, queue, first, now),
        None => Ok(Look {
            head: None,
            due: None,
        }),
    }
}

/// As `look`, given the queue's first task in claim order (priority,
/// run_at, seq): that task when it is ready (nothing to read); else one
/// statement per lower priority down to the first with a ready task, each
/// priority passed over giving its earliest run_at. A delayed task of the
/// head's priority or below never comes before the head: its run_at is
/// later.
fn look_from(q: &Queue, queue: &str, first: (i64, i64, i64), now: i64) -> Result<Look> {
    let (mut above, run_at, seq) = first;
    if run_at <= now {
        return Ok(Look {
            head: Some((Reverse(above), run_at, seq)),
            due: None,
        });
    }
    let mut due = run_at;
    let mut st = q.prepare(sql::PRIORITY_SQL)?;
    loop {
        st.bind_text(1, queue)?;
        st.bind_i64(2, above)?;
        st.bind_i64(3, now)?;
        if !st.step()? {
            return Ok(Look {
                head: None,
                due: Some(due),
            });
        }
        let priority = st.column_i64(0);
        if !st.is_null(2) {
            return Ok(Look {
                head: Some((Reverse(priority), st.column_i64(1), st.column_i64(2))),
                due: Some(due),
            });
        }
        if !st.is_null(3) {
            due = due.min(st.column_i64(3));
        }
        st.reset();
        above = priority;
    }
}

/// Queue `queue`'s head at `now`, if it has a ready task.
pub fn head_of(q: &Queue, queue: &str, now: i64) -> Result<Option<HeadKey>> {
    Ok(look(q, queue, now)?.head)
}
