//! Rate limits: at most `limit` claims of a queue's tasks in any
//! `interval` ms, across every connection and process.
//!
//! A rate-limited queue is gated (`sql.rs`): only the gated statements
//! claim its tasks. Their claim runs in one savepoint that takes the write
//! lock first, counts the claims recorded in `task_rate_store` within the
//! interval before `now`, claims at most what is left, and records what it
//! claimed; so two processes cannot both take the last claim of a window.
//! Rows that left the window are deleted by the same savepoint. A queue
//! without a rate limit pays one seek in `task_queue_store` per gated
//! claim, and a plain queue nothing.

use super::Claimed;
use crate::error::Result;
use crate::queue::Queue;
use crate::queue::model::now_ms;
use crate::queue::settings::Rate;
use crate::queue::txn::atomically;

const RATE_SQL: &str = "\
SELECT rate_limit, rate_interval_ms FROM main.task_queue_store
 WHERE name = +?1 AND rate_limit IS NOT NULL";

/// How many claims of queue ?1 are recorded after ?2 (now minus the interval).
const USED_SQL: &str = "\
SELECT coalesce(sum(n), 0) FROM main.task_rate_store WHERE queue = +?1 AND at > +?2";

const RECORD_SQL: &str = "INSERT INTO main.task_rate_store (queue, at, n) VALUES (?1, ?2, ?3)";

const FORGET_SQL: &str = "DELETE FROM main.task_rate_store WHERE queue = +?1 AND at <= +?2";

/// Queue `name`'s rate limit, if it has one.
pub fn of(q: &Queue, name: &str) -> Result<Option<Rate>> {
    let mut st = q.prepare(RATE_SQL)?;
    st.bind_text(1, name)?;
    Ok(if st.step()? {
        Some(Rate {
            limit: st.column_i64(0),
            interval_ms: st.column_i64(1),
        })
    } else {
        None
    })
}

/// How many claims of queue `name` recorded after `since` count against its rate.
fn used(q: &Queue, name: &str, since: i64) -> Result<i64> {
    let mut st = q.prepare(USED_SQL)?;
    st.bind_text(1, name)?;
    st.bind_i64(2, since)?;
    Ok(if st.step()? { st.column_i64(0) } else { 0 })
}

/// When the claim's time is the clock's (`Clock::System`, read before the
/// claim waited for the write lock), the round reads it again once it holds
/// the lock: another process may have claimed meanwhile at a later time,
/// and dropped the records that left its window; counting from an earlier
/// time would miss those that are still in this one. Read under the lock,
/// the times of the records follow the order in which the claims were
/// made. A time the caller supplied is used as it is.
#[derive(Clone, Copy)]
pub enum Clock {
    System(i64),
    Supplied(i64),
}

/// Runs `round(max, now)`, a claim of at most `max` tasks of queue `name`
/// at `now`, with `max` no more than `limit` and what the rate leaves at
/// `now`, and records the tasks it claimed; all under the write lock, in
/// one unit. Returns what the round returned (nothing when the rate is
/// spent).
pub fn within<T>(
    q: &Queue,
    name: &str,
    rate: Rate,
    clock: Clock,
    limit: i64,
    round: impl FnOnce(i64, i64) -> Result<(Vec<Claimed>, T)>,
    nothing: T,
) -> Result<(Vec<Claimed>, T)> {
    atomically(q, || {
        q.lock_first()?;
        let now = match clock {
            Clock::System(before) => before.max(now_ms()),
            Clock::Supplied(now) => now,
        };
        let since = now.saturating_sub(rate.interval_ms);
        let mut st = q.prepare(FORGET_SQL)?;
        st.bind_text(1, name)?;
        st.bind_i64(2, since)?;
        st.finish()?;
        drop(st);
        let free = rate.limit - used(q, name, since)?;
        if free <= 0 {
            return Ok((Vec::new(), nothing));
        }
        let got = round(limit.min(free), now)?;
        if !got.0.is_empty() {
            let mut st = q.prepare(RECORD_SQL)?;
            st.bind_text(1, name)?;
            st.bind_i64(2, now)?;
            st.bind_i64(3, got.0.len() as i64)?;
            st.finish()?;
        }
        Ok(got)
    })
}
