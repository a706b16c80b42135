//! Which task a claim takes: the plan that picks the queue and the claim
//! statement (`sql.rs`) for each round of [`super::claim`].
//!
//! Reads first decide whether anything is claimable and from which queue,
//! so no write lock is taken when nothing is ready: idle workers polling
//! the queue never contend with writers. Then one UPDATE claims, choosing
//! the row itself (expired lease first, else the queue's head in claim
//! order: priority, run_at, enqueue order).
//!
//! | claim over | reads before the UPDATE | statement |
//! |---|---|---|
//! | one queue, which had work last time (hint) | none | `CLAIM_ONE` / `CLAIM_BATCH` |
//! | one queue | its head, its expired leases | `CLAIM_ONE` / `CLAIM_BATCH` |
//! | every queue, one queue known to be the only one (hint) | none | `CLAIM_SOLE` (guarded) |
//! | every queue | the first known head (`heads.rs`: a scan of every queue's head, kept), expired leases | `CLAIM_SOLE`, `CLAIM_ONE_ANY_EXPIRED`, `CLAIM_BATCH[_ANY_EXPIRED]` |
//! | a list of queues | each listed queue's head and expired leases | `CLAIM_ONE` / `CLAIM_BATCH` |
//!
//! A batch comes from one queue: the one holding the oldest expired lease
//! if any, else the one whose head comes first.
//!
//! A gated queue (paused, or with a concurrency limit: `settings.rs`) is
//! read every time (its gate, then its head) and claimed from with
//! `CLAIM_GATED_ONE` / `CLAIM_GATED_BATCH`, which check the gate again
//! under the write lock; a paused or full queue is passed over. Every
//! plain statement refuses a gated queue's rows, so a gate set after the
//! plan read (or after the hint) holds: the claim plans again.

use super::Queues;
use super::heads::{self, head_of};
use super::sql;
use crate::error::Result;
use crate::queue::Queue;
use crate::queue::flow::{self, Finished};
use crate::queue::schedule;
use crate::queue::txn::atomically;
use std::cmp::Reverse;

/// What the last claim on this connection learned, to skip reads next time,
/// and when (the claim's clock). A hint is trusted for [`HINT_MS`]: the
/// reads it skips are also where expired tasks in workflows are failed
/// (`reap_linked`), so a busy worker does them at least that often.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Hint {
    #[default]
    None,
    /// The named queue had work.
    One(String, i64),
    /// An every-queue claim found this queue the only one with queued tasks.
    Sole(String, i64),
    /// The named queue is gated and had work: its gated statement checks
    /// the gate anyway, so the plan's reads can be skipped.
    Gated(String, i64),
    /// An every-queue claim found this gated queue the only one with
    /// queued tasks (as `Sole`, for the gated statement).
    GatedSole(String, i64),
}

/// How long a hint is trusted, in ms of the claims' clock.
pub const HINT_MS: i64 = 1_000;

impl Hint {
    /// Whether the hint may be used by a claim at `now`.
    pub fn usable(&self, now: i64) -> bool {
        match self {
            Hint::None => false,
            Hint::One(_, at) | Hint::Sole(_, at) | Hint::Gated(_, at) | Hint::GatedSole(_, at) => {
                (0..HINT_MS).contains(&(now - at))
            }
        }
    }
}

/// Which claim statement a round runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// The given queue's expired and ready tasks.
    Queue,
    /// Any queue's expired tasks, then the given queue's ready ones.
    AnyExpired,
    /// As AnyExpired, guarded: only if no other queue has queued tasks.
    Sole,
    /// The given queue is paused or limited: its own tasks only, with the
    /// gate checked inside the statement.
    Gated,
    /// As Gated, guarded as Sole is: only if no other queue has queued
    /// tasks.
    GatedSole,
}

impl Kind {
    pub fn sql(self, limit: i64) -> &'static str {
        match (limit, self) {
            (1, Kind::Queue) => sql::CLAIM_ONE_SQL,
            (1, Kind::AnyExpired) => sql::CLAIM_ONE_ANY_EXPIRED_SQL,
            (1, Kind::Sole) => sql::CLAIM_SOLE_SQL,
            (1, Kind::Gated) => sql::CLAIM_GATED_ONE_SQL,
            (1, Kind::GatedSole) => sql::CLAIM_GATED_SOLE_SQL,
            (_, Kind::Queue) => sql::CLAIM_BATCH_SQL,
            (_, Kind::Gated | Kind::GatedSole) => sql::CLAIM_GATED_BATCH_SQL,
            (_, _) => sql::CLAIM_BATCH_ANY_EXPIRED_SQL,
        }
    }
}

/// A queue's gate, as the plan reads it (the statement checks it again).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Gate {
    /// No settings that stop a claim: the plain statements.
    Open,
    /// Paused or limited, but a claim may take something now.
    Gated,
    /// Paused, or at its limit: nothing to take (but an expired lease, when
    /// only at its concurrency limit; `paused` also when its rate is spent).
    Closed { paused: bool },
}

/// One round's plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing is claimable; `forget_hint`: what the hint said is stale.
    Nothing { forget_hint: bool },
    /// Run `kind`'s statement for `queue` (`None`: expired tasks only).
    Claim { queue: Option<String>, kind: Kind },
}

/// Claim order of a queue head: higher priority, then earlier run_at, then
/// earlier enqueue.
pub(super) type HeadKey = (Reverse<i64>, i64, i64);

/// Plans a round of a claim of up to `limit` tasks from `queues` at `now`.
pub fn plan(q: &Queue, queues: &Queues, limit: i64, now: i64, hint: &Hint) -> Result<Plan> {
    let usable = hint.usable(now);
    if !usable {
        reap_linked(q, now)?;
        // Occurrences of schedules that are due become tasks first, so this
        // claim can take them (one indexed read when nothing is due).
        // A schedule's usage error (a bad row written by hand) is
        // task_tick's to report; it must not stop claims.
        match schedule::tick(q, now, schedule::CLAIM) {
            Err(e) if e.code == crate::error::code::ERROR => {}
            other => {
                other?;
            }
        }
    }
    Ok(match queues {
        Queues::One(name) if usable && matches!(hint, Hint::One(h, _) if h == name) => {
            Plan::Claim {
                queue: Some(name.clone()),
                kind: Kind::Queue,
            }
        }
        Queues::One(name) if usable && matches!(hint, Hint::Gated(h, _) if h == name) => {
            Plan::Claim {
                queue: Some(name.clone()),
                kind: Kind::Gated,
            }
        }
        Queues::One(name) => match gate_of(q, name, now)? {
            Gate::Open => {
                let ready = head_of(q, name, now)?.is_some();
                let expired = expired_in(q, Some(name), now)?;
                if !ready && !expired {
                    return Ok(Plan::Nothing { forget_hint: false });
                }
                Plan::Claim {
                    queue: Some(name.clone()),
                    kind: Kind::Queue,
                }
            }
            gate => {
                if !gated_has_work(q, name, gate, now)? {
                    return Ok(Plan::Nothing { forget_hint: true });
                }
                Plan::Claim {
                    queue: Some(name.clone()),
                    kind: Kind::Gated,
                }
            }
        },
        Queues::All => match hint {
            Hint::Sole(sole, _) if usable && limit == 1 => Plan::Claim {
                queue: Some(sole.clone()),
                kind: Kind::Sole,
            },
            Hint::GatedSole(sole, _) if usable && limit == 1 => Plan::Claim {
                queue: Some(sole.clone()),
                kind: Kind::GatedSole,
            },
            _ => {
                let heads::Best {
                    queue: best,
                    queues: n,
                } = q.heads.borrow_mut().best(q, now)?;
                if let Some((name, true)) = best {
                    // The first head is a gated queue's. Expired leases of
                    // the other queues still come first (the plain
                    // statements take them); then the gated statement. (With
                    // the GatedSole hint, other queues' expired leases wait
                    // for the hint to run out, at most HINT_MS.)
                    if limit > 1 {
                        if let Some(eq) = oldest_expired_queue(q, now)? {
                            return Ok(Plan::Claim {
                                queue: Some(eq),
                                kind: Kind::Queue,
                            });
                        }
                    } else if expired_in(q, None, now)? {
                        return Ok(Plan::Claim {
                            queue: None,
                            kind: Kind::AnyExpired,
                        });
                    }
                    return Ok(Plan::Claim {
                        queue: Some(name),
                        kind: if n == 1 { Kind::GatedSole } else { Kind::Gated },
                    });
                }
                let best = best.map(|(name, _)| name);
                let expired_queue = if limit > 1 {
                    oldest_expired_queue(q, now)?
                } else {
                    None
                };
                let queue = expired_queue.or(best);
                if queue.is_none() && !expired_in(q, None, now)? {
                    return Ok(Plan::Nothing { forget_hint: true });
                }
                let kind = match (limit, n, &queue) {
                    (1, 1, _) => Kind::Sole,
                    (1, _, _) | (_, _, None) => Kind::AnyExpired,
                    _ => Kind::Queue,
                };
                Plan::Claim { queue, kind }
            }
        },
        Queues::Many(many) => {
            // A queue with an expired task goes first; otherwise the queue
            // whose head comes first.
            let mut pick: Option<((bool, HeadKey), &String, Kind)> = None;
            for name in many {
                let gate = gate_of(q, name, now)?;
                let (expired, head) = match gate {
                    Gate::Open => (expired_in(q, Some(name), now)?, head_of(q, name, now)?),
                    Gate::Closed { paused: true } => continue,
                    Gate::Closed { paused: false } => (expired_of(q, name, now)?, None),
                    Gate::Gated => (expired_of(q, name, now)?, head_of(q, name, now)?),
                };
                if !expired && head.is_none() {
                    continue;
                }
                let last = (Reverse(i64::MIN), i64::MAX, i64::MAX);
                let key = (!expired, head.unwrap_or(last));
                let kind = if gate == Gate::Open {
                    Kind::Queue
                } else {
                    Kind::Gated
                };
                if pick.as_ref().is_none_or(|(k, _, _)| key < *k) {
                    pick = Some((key, name, kind));
                }
            }
            match pick {
                None => Plan::Nothing { forget_hint: false },
                Some((_, name, kind)) => Plan::Claim {
                    queue: Some(name.clone()),
                    kind,
                },
            }
        }
    })
}

/// What the next claim on this connection may assume after a round at
/// `now` of `kind` on `queue` that claimed something (`claimed`) or not.
/// A hint that was still in use keeps the time it was made.
pub fn next_hint(
    queues: &Queues,
    kind: Kind,
    claimed: bool,
    queue: Option<&str>,
    now: i64,
    old: &Hint,
) -> Hint {
    let since = match old {
        Hint::One(_, at) | Hint::Sole(_, at) | Hint::Gated(_, at) | Hint::GatedSole(_, at)
            if old.usable(now) =>
        {
            *at
        }
        _ => now,
    };
    match (queues, kind, claimed, queue) {
        (_, _, false, _) => Hint::None,
        (Queues::One(name), Kind::Gated, true, _) => Hint::Gated(name.clone(), since),
        (Queues::All, Kind::GatedSole, true, Some(name)) => {
            Hint::GatedSole(name.to_string(), since)
        }
        // A gated queue met in a claim over several is read every time.
        (_, Kind::Gated, _, _) => Hint::None,
        (Queues::One(name), _, true, _) => Hint::One(name.clone(), since),
        (Queues::All, Kind::Sole, true, Some(name)) => Hint::Sole(name.to_string(), since),
        _ => Hint::None,
    }
}

/// Fails the expired tasks in workflows that have no attempts left (the
/// claim UPDATE fails only plain ones), each in one unit with what follows
/// (`flow.rs`). A read first: a claim with nothing to reap takes no write
/// lock. At most 100 per call.
pub fn reap_linked(q: &Queue, now: i64) -> Result<()> {
    for _ in 0..100 {
        let mut st = q.prepare(sql::EXPIRED_LINKED_SQL)?;
        st.bind_i64(1, now)?;
        if !st.step()? {
            return Ok(());
        }
        let seq = st.column_i64(0);
        drop(st);
        atomically(q, || {
            let mut st = q.prepare(sql::REAP_LINKED_SQL)?;
            st.bind_i64(1, now)?;
            st.bind_i64(2, seq)?;
            match q.notes().first::<Finished>(st)? {
                Some(t) => flow::settle(q, vec![t], now),
                None => Ok(()),
            }
        })?;
    }
    Ok(())
}

fn oldest_expired_queue(q: &Queue, now: i64) -> Result<Option<String>> {
    let mut st = q.prepare(sql::OLDEST_EXPIRED_QUEUE_SQL)?;
    st.bind_i64(1, now)?;
    Ok(if st.step()? { st.column_text(0) } else { None })
}

/// Whether an expired lease is there to claim (in `queue`) or to reap.
fn expired_in(q: &Queue, queue: Option<&str>, now: i64) -> Result<bool> {
    let mut st = q.prepare(if queue.is_some() {
        sql::EXPIRED_IN_SQL
    } else {
        sql::EXPIRED_ANY_SQL
    })?;
    st.bind_i64(1, now)?;
    if let Some(name) = queue {
        st.bind_text(2, name)?;
    }
    st.step()
}

/// Queue `name`'s gate.
pub(super) fn gate_of(q: &Queue, name: &str, now: i64) -> Result<Gate> {
    let mut st = q.prepare(sql::GATE_SQL)?;
    st.bind_text(1, name)?;
    st.bind_i64(2, now)?;
    if !st.step()? {
        return Ok(Gate::Open);
    }
    // A spent rate closes the queue as a pause does: its expired leases
    // wait too (reclaiming one is a claim).
    let paused = st.column_i64(0) != 0 || st.column_i64(3) != 0;
    let full = !st.is_null(1) && st.column_i64(2) >= st.column_i64(1);
    Ok(if paused || full {
        Gate::Closed { paused }
    } else {
        Gate::Gated
    })
}

/// Whether a gated queue has something a claim may take now: not when
/// paused; when at its limit, only an expired lease (a reclaim keeps the
/// count).
fn gated_has_work(q: &Queue, name: &str, gate: Gate, now: i64) -> Result<bool> {
    Ok(match gate {
        Gate::Closed { paused: true } => false,
        Gate::Closed { paused: false } => expired_of(q, name, now)?,
        _ => expired_of(q, name, now)? || head_of(q, name, now)?.is_some(),
    })
}

/// Whether queue `name` has an expired lease a gated claim may take.
fn expired_of(q: &Queue, name: &str, now: i64) -> Result<bool> {
    let mut st = q.prepare(sql::EXPIRED_OF_QUEUE_SQL)?;
    st.bind_i64(1, now)?;
    st.bind_text(2, name)?;
    st.step()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_is_kept_only_after_a_claim_that_found_work() {
        let one = Queues::One("a".into());
        let none = Hint::None;
        assert_eq!(
            next_hint(&one, Kind::Queue, true, Some("a"), 5, &none),
            Hint::One("a".into(), 5)
        );
        assert_eq!(
            next_hint(&one, Kind::Queue, false, Some("a"), 5, &none),
            Hint::None
        );
        assert_eq!(
            next_hint(&Queues::All, Kind::Sole, true, Some("a"), 5, &none),
            Hint::Sole("a".into(), 5)
        );
        assert_eq!(
            next_hint(&Queues::All, Kind::AnyExpired, true, Some("a"), 5, &none),
            Hint::None
        );
        let many = Queues::Many(vec!["a".into(), "b".into()]);
        assert_eq!(
            next_hint(&many, Kind::Queue, true, Some("a"), 5, &none),
            Hint::None
        );
    }

    #[test]
    fn a_hint_is_trusted_for_a_second_of_the_claims_clock() {
        let h = Hint::One("a".into(), 1_000);
        assert!(h.usable(1_000) && h.usable(1_999));
        assert!(!h.usable(2_000), "expired");
        assert!(!h.usable(999), "the clock went back");
        assert!(!Hint::None.usable(0));
        // Renewed by a claim that used it, it keeps its time.
        let one = Queues::One("a".into());
        assert_eq!(
            next_hint(&one, Kind::Queue, true, Some("a"), 1_500, &h),
            Hint::One("a".into(), 1_000)
        );
        assert_eq!(
            next_hint(&one, Kind::Queue, true, Some("a"), 2_500, &h),
            Hint::One("a".into(), 2_500)
        );
    }

    #[test]
    fn each_kind_has_a_single_and_a_batch_statement() {
        assert_eq!(Kind::Queue.sql(1), sql::CLAIM_ONE_SQL);
        assert_eq!(Kind::Queue.sql(2), sql::CLAIM_BATCH_SQL);
        assert_eq!(Kind::Sole.sql(1), sql::CLAIM_SOLE_SQL);
        // A batch is never guarded: it may span what one head would not.
        assert_eq!(Kind::Sole.sql(32), sql::CLAIM_BATCH_ANY_EXPIRED_SQL);
        assert_eq!(Kind::AnyExpired.sql(32), sql::CLAIM_BATCH_ANY_EXPIRED_SQL);
    }
}
