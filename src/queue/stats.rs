//! `task_stats([options])`: the numbers a dashboard polls, per queue.
//!
//! Every figure is read from an index that already exists for the claim
//! path or the parked tasks, so keeping stats costs the cycle nothing:
//! queued tasks from `task_store_ready` (count, how many are ready, the
//! oldest ready one), running ones from `task_store_running`, failed,
//! cancelled, blocked and waiting ones (with failures in the last minute
//! and hour) from `task_store_parked`. Each read is proportional to the
//! unfinished and failed tasks, never to the completed ones, which a busy
//! queue has by the million.
//!
//! Completed tasks are in no index (storage/mod.rs: an index entry per
//! completion costs the plain cycle about 8% of its instructions, and
//! counters updated by every completion cost more, about 27%: both measured
//! with callgrind). So throughput and run times (completions in the last
//! minute and hour, mean and p95 run time of the latest completions) are
//! read only when the database was given `task_store_done` with
//! `task_init('{"index_completed": true}')`; otherwise they are null. The
//! choice is the user's: stats for ~8% of the cycle.

use super::Queue;
use super::json::{push_int, push_opt_int, push_str};
use super::model::clock;
use crate::error::Result;
use std::collections::BTreeMap;

/// How many of a queue's latest completions its run-time figures cover
/// (the LIMIT of `RUN_TIMES_SQL`).
pub const RUN_SAMPLE: i64 = 1_000;

#[derive(Debug, Default, Clone)]
struct QueueStats {
    paused: bool,
    concurrency: Option<i64>,
    queued: i64,
    ready: i64,
    oldest_ready_at: Option<i64>,
    running: i64,
    expired: i64,
    blocked: i64,
    waiting: i64,
    failed: i64,
    cancelled: i64,
    failed_last_minute: i64,
    failed_last_hour: i64,
    completed_last_minute: Option<i64>,
    completed_last_hour: Option<i64>,
    run_ms_avg: Option<f64>,
    run_ms_p95: Option<i64>,
    run_sample: i64,
}

// ?1 now, ?2 the queue (NULL: every queue). The status literals pick the
// partial indexes; `+?2` keeps the plans fixed (see claim/sql.rs).
const QUEUED_SQL: &str = "\
SELECT queue, count(*), sum(run_at <= ?1), min(CASE WHEN run_at <= ?1 THEN run_at END)
  FROM main.task_store
 WHERE status = 'queued' AND (?2 IS NULL OR queue = +?2)
 GROUP BY queue";

const RUNNING_SQL: &str = "\
SELECT queue, count(*), sum(lease_until <= ?1)
  FROM main.task_store
 WHERE status = 'running' AND (?2 IS NULL OR +queue = +?2)
 GROUP BY queue";

// The parked tasks (failed, cancelled, blocked, waiting) are counted group
// by group of `task_store_parked` (status, type, queue): a seek finds each
// group, a count reads its entries and nothing else, and the failures of
// the last minute and hour are two range counts on completed_at. Measured
// on 69k parked tasks in 20 groups: ~2 ms, where one GROUP BY over the
// index took 9 ms (in the index's order) or 28 ms (by queue first, through
// a temporary b-tree). Every statement names the index's condition so that
// SQLite uses it.
macro_rules! parked {
    () => {
        "NOT (status = 'running' OR status = 'queued' OR status = 'completed')"
    };
}

// The next group after (?1, ?2, ?3): the next queue of the same status and
// type, else the next type of the status, else the next status. Three
// seeks, as a row-value `(status, type, queue) > (?, ?, ?)` seeks on
// status alone and reads the group's entries to get past it (measured:
// 0.9 ms past a group of 5,800).
const NEXT_QUEUE_SQL: &str = concat!(
    "SELECT status, type, queue FROM main.task_store WHERE ",
    parked!(),
    " AND status = ?1 AND type = ?2 AND queue > ?3 ORDER BY queue LIMIT 1"
);
const NEXT_TYPE_SQL: &str = concat!(
    "SELECT status, type, queue FROM main.task_store WHERE ",
    parked!(),
    " AND status = ?1 AND type > ?2 ORDER BY type, queue LIMIT 1"
);
const NEXT_STATUS_SQL: &str = concat!(
    "SELECT status, type, queue FROM main.task_store WHERE ",
    parked!(),
    " AND status > ?1 ORDER BY status, type, queue LIMIT 1"
);

const PARKED_COUNT_SQL: &str = concat!(
    "SELECT count(*) FROM main.task_store WHERE ",
    parked!(),
    " AND status = ?1 AND type = ?2 AND queue = ?3"
);

const PARKED_SINCE_SQL: &str = concat!(
    "SELECT count(*) FROM main.task_store WHERE ",
    parked!(),
    " AND status = ?1 AND type = ?2 AND queue = ?3 AND completed_at >= ?4"
);

const SETTINGS_SQL: &str = "\
SELECT name, paused, concurrency FROM main.task_queue_store WHERE (?2 IS NULL OR name = +?2)
   AND ?1 IS NOT NULL";

const DONE_INDEX_SQL: &str =
    "SELECT 1 FROM main.sqlite_master WHERE type = 'index' AND name = 'task_store_done'";

const COMPLETED_SQL: &str = "\
SELECT count(*), sum(completed_at >= ?1 - 60000)
  FROM main.task_store INDEXED BY task_store_done
 WHERE status = 'completed' AND queue = +?2 AND completed_at >= ?1 - 3600000";

const DONE_QUEUES_SQL: &str = "\
SELECT queue FROM main.task_store INDEXED BY task_store_done
 WHERE status = 'completed' AND queue > ?1 ORDER BY queue LIMIT 1";

const RUN_TIMES_SQL: &str = "\
SELECT completed_at - started_at
  FROM main.task_store INDEXED BY task_store_done
 WHERE status = 'completed' AND queue = +?2 AND started_at IS NOT NULL AND ?1 IS NOT NULL
 ORDER BY completed_at DESC LIMIT 1000";

const SCHEDULES_SQL: &str = "\
SELECT count(*), coalesce(sum(paused), 0), min(CASE WHEN paused = 0 THEN next_at END)
  FROM main.task_schedule_store";

/// The stats of every queue (or of `queue`) at `now`, as JSON.
pub fn stats(q: &Queue, queue: Option<&str>, now: Option<i64>) -> Result<String> {
    let now = clock(now)?;
    let mut queues: BTreeMap<String, QueueStats> = BTreeMap::new();
    // The queue asked for is listed even when it has nothing.
    if let Some(name) = queue {
        queues.insert(name.to_string(), QueueStats::default());
    }
    let bind = |sql: &'static str| -> Result<crate::ffi::Stmt> {
        let mut st = q.prepare(sql)?;
        st.bind_i64(1, now)?;
        st.bind_opt_text(2, queue)?;
        Ok(st)
    };
    let mut st = bind(SETTINGS_SQL)?;
    while st.step()? {
        let s = queues
            .entry(st.column_text(0).unwrap_or_default())
            .or_default();
        s.paused = st.column_i64(1) != 0;
        s.concurrency = st.column_opt_i64(2);
    }
    drop(st);
    let mut st = bind(QUEUED_SQL)?;
    while st.step()? {
        let s = queues
            .entry(st.column_text(0).unwrap_or_default())
            .or_default();
        s.queued = st.column_i64(1);
        s.ready = st.column_i64(2);
        s.oldest_ready_at = st.column_opt_i64(3);
    }
    drop(st);
    let mut st = bind(RUNNING_SQL)?;
    while st.step()? {
        let s = queues
            .entry(st.column_text(0).unwrap_or_default())
            .or_default();
        s.running = st.column_i64(1);
        s.expired = st.column_i64(2);
    }
    drop(st);
    // The entries of a group, or (`since`) those that ended since then.
    let count = |group: &(String, String, String), since: Option<i64>| -> Result<i64> {
        let mut st = q.prepare(match since {
            None => PARKED_COUNT_SQL,
            Some(_) => PARKED_SINCE_SQL,
        })?;
        st.bind_text(1, &group.0)?;
        st.bind_text(2, &group.1)?;
        st.bind_text(3, &group.2)?;
        if let Some(t) = since {
            st.bind_i64(4, t)?;
        }
        st.first_i64()
    };
    let next = |g: &(String, String, String)| -> Result<Option<(String, String, String)>> {
        for (sql, n) in [
            (NEXT_QUEUE_SQL, 3),
            (NEXT_TYPE_SQL, 2),
            (NEXT_STATUS_SQL, 1),
        ] {
            let mut st = q.prepare(sql)?;
            st.bind_text(1, &g.0)?;
            if n >= 2 {
                st.bind_text(2, &g.1)?;
            }
            if n == 3 {
                st.bind_text(3, &g.2)?;
            }
            if st.step()? {
                return Ok(Some((
                    st.column_text(0).unwrap_or_default(),
                    st.column_text(1).unwrap_or_default(),
                    st.column_text(2).unwrap_or_default(),
                )));
            }
        }
        Ok(None)
    };
    let mut group = (String::new(), String::new(), String::new());
    while let Some(g) = next(&group)? {
        group = g;
        if queue.is_some_and(|name| name != group.2) {
            continue;
        }
        let n = count(&group, None)?;
        let s = queues.entry(group.2.clone()).or_default();
        match group.0.as_str() {
            "failed" => {
                s.failed += n;
                s.failed_last_minute += count(&group, Some(now - 60_000))?;
                s.failed_last_hour += count(&group, Some(now - 3_600_000))?;
            }
            "cancelled" => s.cancelled += n,
            "blocked" => s.blocked += n,
            "waiting" => s.waiting += n,
            _ => {}
        }
    }
    let mut st = q.prepare(DONE_INDEX_SQL)?;
    let indexed = st.step()?;
    drop(st);
    if indexed {
        // Queues whose tasks have all completed are listed too: one seek
        // per queue in the index, not a scan of it.
        if queue.is_none() {
            let mut after = String::new();
            loop {
                let mut st = q.prepare(DONE_QUEUES_SQL)?;
                st.bind_text(1, &after)?;
                if !st.step()? {
                    break;
                }
                after = st.column_text(0).unwrap_or_default();
                drop(st);
                queues.entry(after.clone()).or_default();
            }
        }
        for (name, s) in queues.iter_mut() {
            let mut st = q.prepare(COMPLETED_SQL)?;
            st.bind_i64(1, now)?;
            st.bind_text(2, name)?;
            if st.step()? {
                s.completed_last_hour = Some(st.column_i64(0));
                s.completed_last_minute = Some(st.column_opt_i64(1).unwrap_or(0));
            }
            drop(st);
            let mut st = q.prepare(RUN_TIMES_SQL)?;
            st.bind_i64(1, now)?;
            st.bind_text(2, name)?;
            let mut times = Vec::new();
            while st.step()? {
                times.push(st.column_i64(0).max(0));
            }
            drop(st);
            s.run_sample = times.len() as i64;
            if !times.is_empty() {
                let sum: i64 = times.iter().fold(0i64, |a, &t| a.saturating_add(t));
                s.run_ms_avg = Some(sum as f64 / times.len() as f64);
                times.sort_unstable();
                // The nearest-rank 95th percentile.
                let rank = (times.len() * 95).div_ceil(100).max(1) - 1;
                s.run_ms_p95 = times.get(rank).copied();
            }
        }
    }
    let mut st = q.prepare(SCHEDULES_SQL)?;
    let schedules = if st.step()? {
        (st.column_i64(0), st.column_i64(1), st.column_opt_i64(2))
    } else {
        (0, 0, None)
    };
    drop(st);
    Ok(write(now, indexed, &queues, schedules))
}

fn write(
    now: i64,
    indexed: bool,
    queues: &BTreeMap<String, QueueStats>,
    schedules: (i64, i64, Option<i64>),
) -> String {
    let mut out = String::with_capacity(128 + 512 * queues.len());
    out.push_str("{\"now\":");
    push_int(&mut out, now);
    out.push_str(",\"index_completed\":");
    out.push_str(if indexed { "true" } else { "false" });
    out.push_str(",\"queues\":[");
    for (i, (name, s)) in queues.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"queue\":");
        push_str(&mut out, name);
        out.push_str(",\"paused\":");
        out.push_str(if s.paused { "true" } else { "false" });
        out.push_str(",\"concurrency\":");
        push_opt_int(&mut out, s.concurrency);
        for (key, v) in [
            ("queued", s.queued),
            ("ready", s.ready),
            ("running", s.running),
            ("expired", s.expired),
            ("blocked", s.blocked),
            ("waiting", s.waiting),
            ("failed", s.failed),
            ("cancelled", s.cancelled),
            ("failed_last_minute", s.failed_last_minute),
            ("failed_last_hour", s.failed_last_hour),
        ] {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            push_int(&mut out, v);
        }
        out.push_str(",\"oldest_ready_age_ms\":");
        push_opt_int(&mut out, s.oldest_ready_at.map(|at| (now - at).max(0)));
        out.push_str(",\"completed_last_minute\":");
        push_opt_int(&mut out, s.completed_last_minute);
        out.push_str(",\"completed_last_hour\":");
        push_opt_int(&mut out, s.completed_last_hour);
        out.push_str(",\"run_ms_avg\":");
        match s.run_ms_avg {
            Some(v) if v.is_finite() => out.push_str(&format!("{v:.1}")),
            _ => out.push_str("null"),
        }
        out.push_str(",\"run_ms_p95\":");
        push_opt_int(&mut out, s.run_ms_p95);
        out.push_str(",\"run_sample\":");
        push_int(&mut out, s.run_sample);
        out.push('}');
    }
    out.push_str("],\"schedules\":{\"count\":");
    push_int(&mut out, schedules.0);
    out.push_str(",\"paused\":");
    push_int(&mut out, schedules.1);
    out.push_str(",\"next_at\":");
    push_opt_int(&mut out, schedules.2);
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_valid_json_with_every_figure() {
        let mut queues = BTreeMap::new();
        queues.insert(
            "a\"b".to_string(),
            QueueStats {
                queued: 3,
                oldest_ready_at: Some(900),
                run_ms_avg: Some(12.25),
                run_ms_p95: Some(30),
                run_sample: 4,
                ..QueueStats::default()
            },
        );
        let text = write(1_000, true, &queues, (2, 1, Some(5_000)));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let q = &v["queues"][0];
        assert_eq!(q["queue"], "a\"b");
        assert_eq!(q["queued"], 3);
        assert_eq!(q["oldest_ready_age_ms"], 100);
        assert_eq!(q["run_ms_p95"], 30);
        assert_eq!(q["completed_last_hour"], serde_json::Value::Null);
        assert_eq!(v["schedules"]["next_at"], 5_000);
    }
}
