//! The batch verbs and the worker-loop verb: several single-task operations
//! from `worker.rs` and `claim/` committed as one unit (a savepoint), so a
//! worker pays one commit for many tasks. Each call is all-or-nothing: the
//! first item that fails rolls every item back, and the error names that
//! item.

mod items;

use super::Queue;
use super::claim::{self, ClaimArgs, Claimed};
use super::ids::parse_id;
use super::model::{MAX_LEASE_MS, MAX_TIME_MS, Status, check_opt, check_range, clock};
use super::txn::savepoint;
use super::worker::{self, FailArgs, WorkerArgs};
use super::writeback;
use crate::error::{Error, Result};

/// Runs `f` in a savepoint. Write-back values the items' verbs forget are
/// put back if the savepoint rolls back, so a refused call changes nothing
/// there either.
fn all_or_nothing<T>(q: &Queue, ids: &[&str], f: impl FnOnce() -> Result<T>) -> Result<T> {
    if !writeback::any() {
        return savepoint(q, f);
    }
    let held: Vec<(String, writeback::Held)> = ids
        .iter()
        .filter_map(|id| {
            let id = parse_id("id", id).ok()?;
            writeback::get(q.key(), &id).map(|h| (id, h))
        })
        .collect();
    let out = savepoint(q, f);
    if out.is_err() {
        for (id, h) in held {
            writeback::wrote(q.key(), &id, h);
        }
    }
    out
}

/// Validates the clock every item shares before any item runs, so that
/// an empty batch refuses a bad one too.
fn check_clock(now: Option<i64>) -> Result<()> {
    if now.is_some() {
        clock(now)?;
    }
    Ok(())
}

/// An item's error, prefixed with its position.
fn at_item(i: usize, e: Error) -> Error {
    Error::with_code(e.code, format!("item {i}: {}", e.msg))
}

/// Completes every item, or none. Returns how many were completed.
pub fn complete_batch(q: &Queue, json: &str, now: Option<i64>) -> Result<i64> {
    check_clock(now)?;
    let items = items::items(json, false)?;
    let ids: Vec<&str> = items.iter().map(|it| it.id.as_ref()).collect();
    all_or_nothing(q, &ids, || {
        for (i, it) in items.iter().enumerate() {
            let w = WorkerArgs {
                attempt: it.attempt,
                now,
                ..WorkerArgs::default()
            };
            worker::complete(q, &it.id, it.result, &w).map_err(|e| at_item(i, e))?;
        }
        Ok(items.len() as i64)
    })
}

/// Fails every item, or none. Returns the resulting statuses, in order.
pub fn fail_batch(q: &Queue, json: &str, f: &FailArgs) -> Result<Vec<(String, Status)>> {
    check_clock(f.worker.now)?;
    if let Some(d) = f.delay_ms {
        check_range("delay", d, 0, MAX_TIME_MS)?;
    }
    let items = items::items(json, true)?;
    let ids: Vec<&str> = items.iter().map(|it| it.id.as_ref()).collect();
    all_or_nothing(q, &ids, || {
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let args = FailArgs {
                worker: WorkerArgs {
                    attempt: it.attempt,
                    ..f.worker
                },
                ..*f
            };
            let status = worker::fail(q, &it.id, it.error.as_deref().unwrap_or(""), &args)
                .map_err(|e| at_item(i, e))?;
            out.push((it.id.to_string(), status));
        }
        Ok(out)
    })
}

/// The worker loop in one call and one commit: completes `id`, then claims
/// the next task. If the completion is refused, nothing is claimed.
pub fn complete_next(
    q: &Queue,
    id: &str,
    result: Option<&str>,
    w: &WorkerArgs,
    next: &ClaimArgs<'_>,
) -> Result<Option<Claimed>> {
    check_clock(w.now)?;
    check_opt("lease", next.lease_ms, (1, MAX_LEASE_MS))?;
    all_or_nothing(q, &[id], || {
        worker::complete(q, id, result, w)?;
        Ok(claim::claim(q, next, 1)?.into_iter().next())
    })
}
