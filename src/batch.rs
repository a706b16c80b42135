//! The batch verbs and the worker-loop verb: several single-task operations
//! from `ops.rs` committed as one unit (a savepoint), so a worker pays one
//! commit for many tasks. Each call is all-or-nothing: the first item that
//! fails rolls every item back, and the error names that item.

use crate::error::{Error, Result};
use crate::ops::{self, ClaimArgs, Claimed, FailArgs, WorkerArgs};
use crate::sqlite::Conn;
use crate::writeback;
use serde_json::Value as J;
use std::rc::Rc;

/// Runs `f` in a savepoint. Write-back values the items' verbs forget are
/// put back if the savepoint rolls back, so a refused call changes nothing
/// there either.
fn all_or_nothing<T>(conn: &Rc<Conn>, ids: &[&str], f: impl FnOnce() -> Result<T>) -> Result<T> {
    let held: Vec<(String, writeback::Held)> = ids
        .iter()
        .filter_map(|id| {
            let id = ops::parse_id("id", id).ok()?;
            writeback::get(conn.key(), &id).map(|h| (id, h))
        })
        .collect();
    let out = conn.savepoint(f);
    if out.is_err() {
        for (id, h) in held {
            writeback::wrote(conn.key(), &id, h);
        }
    }
    out
}

/// Validates the options every item shares before any item runs, so that
/// an empty batch refuses them too.
fn check_clock(now: Option<i64>) -> Result<()> {
    if let Some(n) = now {
        ops::check_range("now", n, 0, ops::MAX_TIME_MS)?;
    }
    Ok(())
}

/// One item of a batch: `{"id": …, "attempt": n, "result": …}` for
/// completions, `{"id": …, "attempt": n, "error": "…"}` for failures.
struct Item {
    id: String,
    attempt: Option<i64>,
    result: Option<String>,
    error: Option<String>,
}

fn items(json: &str, fail: bool) -> Result<Vec<Item>> {
    let v: J = serde_json::from_str(json)
        .map_err(|e| Error::new(format!("items are not valid JSON: {e}")))?;
    let J::Array(list) = v else {
        return Err(Error::new("items must be a JSON array of objects"));
    };
    if list.len() as i64 > ops::MAX_BATCH {
        return Err(Error::new(format!(
            "at most {} items per call, got {}",
            ops::MAX_BATCH,
            list.len()
        )));
    }
    let allowed: &[&str] = if fail {
        &["id", "attempt", "error"]
    } else {
        &["id", "attempt", "result"]
    };
    list.into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |msg: String| Error::new(format!("item {i}: {msg}"));
            let J::Object(map) = item else {
                return Err(at("must be an object".into()));
            };
            if let Some(bad) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(at(format!(
                    "unknown key \"{bad}\" (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            let id = match map.get("id") {
                Some(J::String(s)) => s.clone(),
                _ => return Err(at("\"id\" must be a task id string".into())),
            };
            let attempt = match map.get("attempt") {
                None | Some(J::Null) => None,
                Some(J::Number(n)) => Some(
                    n.as_i64()
                        .ok_or_else(|| at("\"attempt\" must be a whole number".into()))?,
                ),
                Some(_) => return Err(at("\"attempt\" must be a whole number".into())),
            };
            let result = match map.get("result") {
                None | Some(J::Null) => None,
                Some(v) => Some(v.to_string()),
            };
            let error = match map.get("error") {
                Some(J::String(s)) => Some(s.clone()),
                None if !fail => None,
                _ => return Err(at("\"error\" must be text".into())),
            };
            Ok(Item {
                id,
                attempt,
                result,
                error,
            })
        })
        .collect()
}

/// Completes every item, or none. Returns how many were completed.
pub fn complete_batch(conn: &Rc<Conn>, json: &str, now: Option<i64>) -> Result<i64> {
    check_clock(now)?;
    let items = items(json, false)?;
    let ids: Vec<&str> = items.iter().map(|it| it.id.as_str()).collect();
    all_or_nothing(conn, &ids, || {
        for (i, it) in items.iter().enumerate() {
            let w = WorkerArgs {
                attempt: it.attempt,
                now,
                ..WorkerArgs::default()
            };
            ops::complete(conn, &it.id, it.result.as_deref(), &w)
                .map_err(|e| Error::with_code(e.code, format!("item {i}: {}", e.msg)))?;
        }
        Ok(items.len() as i64)
    })
}

/// Fails every item, or none. Returns the resulting statuses, in order.
pub fn fail_batch(conn: &Rc<Conn>, json: &str, f: &FailArgs) -> Result<Vec<(String, String)>> {
    check_clock(f.worker.now)?;
    if let Some(d) = f.delay_ms {
        ops::check_range("delay", d, 0, ops::MAX_TIME_MS)?;
    }
    let items = items(json, true)?;
    let ids: Vec<&str> = items.iter().map(|it| it.id.as_str()).collect();
    all_or_nothing(conn, &ids, || {
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let args = FailArgs {
                worker: WorkerArgs {
                    attempt: it.attempt,
                    ..f.worker
                },
                ..*f
            };
            let status = ops::fail(conn, &it.id, it.error.as_deref().unwrap_or(""), &args)
                .map_err(|e| Error::with_code(e.code, format!("item {i}: {}", e.msg)))?;
            out.push((it.id.clone(), status));
        }
        Ok(out)
    })
}

/// The worker loop in one call and one commit: completes `id`, then claims
/// the next task. If the completion is refused, nothing is claimed.
pub fn complete_next(
    conn: &Rc<Conn>,
    id: &str,
    result: Option<&str>,
    w: &WorkerArgs,
    claim: &ClaimArgs<'_>,
) -> Result<Option<Claimed>> {
    check_clock(w.now)?;
    ops::check_range("lease", claim.lease_ms, 1, ops::MAX_LEASE_MS)?;
    all_or_nothing(conn, &[id], || {
        ops::complete(conn, id, result, w)?;
        Ok(ops::claim(conn, claim, 1)?.into_iter().next())
    })
}
