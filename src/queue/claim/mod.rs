//! `task_claim` and `task_claim_batch`: handing ready tasks to a worker
//! with a lease. The plan that decides which statement runs (and so which
//! task is taken) is `plan.rs`; the statements are `sql.rs`; the claimed
//! task and its JSON are `claimed.rs`.

mod claimed;
mod heads;
mod plan;
mod rate;
mod sql;

pub use claimed::{Claimed, list_json};
pub use heads::Heads;
pub use plan::Hint;

use super::model::{self, MAX_BATCH, MAX_LEASE_MS, check_opt, check_range, clock};
use super::{Link, Queue};
use super::{wait, writeback};
use crate::error::{Error, Result};
use plan::Plan;
use sql::{ClaimNote, How};
use std::cmp::Reverse;
use std::time::{Duration, Instant};

/// Which queues a claim takes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Queues {
    All,
    One(String),
    /// Several queue names.
    Many(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ClaimArgs<'a> {
    pub worker: &'a str,
    pub queues: Queues,
    /// `None`: the claimed task's queue's default lease, else 5 minutes.
    pub lease_ms: Option<i64>,
    pub now: Option<i64>,
    /// A long poll: with nothing ready, wait up to this many ms for a task
    /// (`wait.rs`).
    pub wait_ms: Option<i64>,
}

/// Claims up to `limit` ready tasks for `worker` (all from one queue), in
/// claim order; with `wait_ms`, waits for one when none is ready.
pub fn claim(q: &Queue, a: &ClaimArgs<'_>, limit: i64) -> Result<Vec<Claimed>> {
    if a.worker.is_empty() {
        return Err(Error::new("worker must not be empty"));
    }
    let limit = check_range("limit", limit, 1, MAX_BATCH)?;
    let lease = check_opt("lease", a.lease_ms, (1, MAX_LEASE_MS))?;
    let wait = a
        .wait_ms
        .map(|w| check_range("wait", w, 0, wait::MAX_WAIT_MS))
        .transpose()?
        .unwrap_or(0);
    if wait > 0 {
        wait::check_waitable(q)?;
    }
    let claimed = claim_at(q, a, limit, lease, clock(a.now)?)?;
    if !claimed.is_empty() || wait == 0 {
        return Ok(claimed);
    }
    // The long poll: sleep until another connection commits, or until a
    // delayed task, an expired lease or a schedule falls due (with the
    // system clock), then claim again; until the wait is over.
    let deadline = Instant::now() + Duration::from_millis(wait as u64);
    let mut waiter = wait::Waiter::new(q)?;
    // A pass that claimed nothing and woke at once must not loop at once.
    let mut last_pass = Instant::now();
    loop {
        let mut wake = deadline;
        if a.now.is_none() {
            let now = model::now_ms();
            if let Some(due) = next_due(q, &a.queues, now)? {
                let ms = due.saturating_sub(now).clamp(0, wait);
                wake = wake.min(Instant::now() + Duration::from_millis(ms as u64));
            }
        }
        // Wake no sooner than a millisecond after the last pass: a due
        // time that the claim cannot act on (a lease of a paused queue)
        // costs a look a millisecond, not a spin.
        wake = wake.max(last_pass + Duration::from_millis(1)).min(deadline);
        if waiter.wait_until(q, wake)? == wait::Woke::Signal {
            // Nothing claimed (NULL), at once: the host handles the signal.
            return Ok(Vec::new());
        }
        last_pass = Instant::now();
        let claimed = claim_at(q, a, limit, lease, clock(a.now)?)?;
        if !claimed.is_empty() || Instant::now() >= deadline {
            return Ok(claimed);
        }
    }
}

// When something may become claimable without a commit: the earliest
// run_at of a delayed task, lease expiry (of the queue, when one is named),
// schedule occurrence and claim leaving a rate limit's window after now.
// Strictly after: what is due already and was not claimed (a paused
// queue's, another queue's) must not make the wait spin.
const NEXT_DUE_SQL: &str = "\
SELECT (SELECT min(run_at) FROM main.task_store
         WHERE status = 'queued' AND run_at > ?1 AND (?2 IS NULL OR +queue = ?2)),
       (SELECT min(lease_until) FROM main.task_store
         WHERE status = 'running' AND lease_until > ?1 AND (?2 IS NULL OR +queue = ?2)),
       (SELECT min(next_at) FROM main.task_schedule_store
         WHERE paused = 0 AND next_at IS NOT NULL AND next_at > ?1),
       (SELECT min(r.at + s.rate_interval_ms) FROM main.task_rate_store AS r
          JOIN main.task_queue_store AS s ON s.name = r.queue
         WHERE r.at + s.rate_interval_ms > ?1 AND (?2 IS NULL OR r.queue = ?2))";

fn next_due(q: &Queue, queues: &Queues, now: i64) -> Result<Option<i64>> {
    let mut st = q.prepare(NEXT_DUE_SQL)?;
    st.bind_i64(1, now)?;
    match queues {
        Queues::One(name) => st.bind_text(2, name)?,
        _ => st.bind_null(2)?,
    }
    if !st.step()? {
        return Ok(None);
    }
    Ok([
        st.column_opt_i64(0),
        st.column_opt_i64(1),
        st.column_opt_i64(2),
        st.column_opt_i64(3),
    ]
    .into_iter()
    .flatten()
    .min())
}

/// How many times a claim over several queues plans again after losing
/// the chosen queue's last ready task to another connection.
const MAX_RACES: u32 = 8;

/// One claim at `now`: the plan, the UPDATE, and again after a reap or a
/// stale hint.
fn claim_at(
    q: &Queue,
    a: &ClaimArgs<'_>,
    limit: i64,
    lease: Option<i64>,
    now: i64,
) -> Result<Vec<Claimed>> {
    // Reaping an exhausted expired task consumes a round; bound the rounds
    // so a pathological storage cannot spin forever.
    let mut races = 0;
    for _ in 0..1_000 {
        // A worker that just found work goes straight to the UPDATE (the
        // hint); one that found none reads first, so idle polling takes no
        // write lock.
        let hint = q.hint.borrow().clone();
        let (queue, kind) = match plan::plan(q, &a.queues, limit, now, &hint)? {
            Plan::Nothing { forget_hint } => {
                if forget_hint {
                    *q.hint.borrow_mut() = Hint::None;
                }
                return Ok(Vec::new());
            }
            Plan::Claim { queue, kind } => (queue, kind),
        };
        // One UPDATE of at most `max` tasks at `now`: what it claimed, how
        // many it reaped.
        let round = |max: i64, now: i64| -> Result<(Vec<Claimed>, usize)> {
            let mut st = q.prepare(kind.sql(max))?;
            st.bind_i64(1, now)?;
            st.bind_text(2, a.worker)?;
            st.bind_opt_i64(3, lease)?;
            st.bind_opt_text(4, queue.as_deref())?;
            if max > 1 {
                st.bind_i64(5, max)?;
            }
            let mut claimed: Vec<Claimed> = Vec::new();
            let mut reaped = 0;
            q.notes.run(st, |n: ClaimNote| match n.how {
                How::Reaped => {
                    // Failed for an expired lease: nothing held for it stays.
                    writeback::take(q.key(), &n.task.id);
                    reaped += 1;
                }
                How::Expired | How::Queued => {
                    let link = match (n.linked, &n.task.parent_id) {
                        (0, _) => Link::Plain,
                        (2, _) => Link::LimitedOnly,
                        (3, Some(parent)) => Link::Leaf {
                            parent: parent.clone(),
                        },
                        _ => Link::Workflow,
                    };
                    q.remember_claimed(&n.task.id, n.seq, link);
                    claimed.push(n.task);
                }
            })?;
            Ok((claimed, reaped))
        };
        // A gated queue may have a rate limit: then the round runs within it.
        let limited = match (&queue, kind) {
            (Some(name), plan::Kind::Gated | plan::Kind::GatedSole) => {
                rate::of(q, name)?.map(|r| (name, r))
            }
            _ => None,
        };
        let (mut claimed, reaped) = match limited {
            Some((name, r)) => {
                let clock = match a.now {
                    None => rate::Clock::System(now),
                    Some(_) => rate::Clock::Supplied(now),
                };
                rate::within(q, name, r, clock, limit, round, 0)
            }
            None => round(limit, now),
        }
        .inspect_err(|_| *q.hint.borrow_mut() = Hint::None)?;
        let hinted = hint.usable(now);
        *q.hint.borrow_mut() = plan::next_hint(
            &a.queues,
            kind,
            !claimed.is_empty(),
            queue.as_deref(),
            now,
            &hint,
        );
        if !claimed.is_empty() {
            for t in &claimed {
                // A value held for an earlier attempt is stale now.
                writeback::take(q.key(), &t.id);
            }
            if claimed.len() > 1 {
                // The UPDATE visits rows in rowid order; report claim order:
                // expired leases first, then priority, run_at, enqueue order
                // (the sort is stable).
                claimed.sort_by_key(|t| (!t.reclaimed, Reverse(t.priority), t.run_at));
            }
            return Ok(claimed);
        }
        // Nothing claimed: an expired task was reaped (claim again), or the
        // hint was stale (read the queues and claim again), or another
        // connection took the queue's last ready task between the plan's
        // reads and the UPDATE (when other queues may have some, plan
        // again, a few times), or there is nothing to claim.
        let raced = reaped == 0
            && queue.is_some()
            && !matches!(a.queues, Queues::One(_))
            && races < MAX_RACES;
        if raced {
            races += 1;
            // Read again at the next scan (it may have been paused since).
            if let Some(name) = &queue {
                q.heads.borrow_mut().forget(name);
            }
        } else if reaped == 0 && !hinted {
            return Ok(Vec::new());
        }
    }
    Ok(Vec::new())
}
