//! Recurring schedules: `task_schedule`, `task_schedule_pause` /
//! `task_schedule_resume`, `task_unschedule`, and what `task_tick` and
//! claims do with them. The expressions are `cron.rs`; a schedule is a
//! row of `task_schedule_store` (storage version 5).
//!
//! No daemon: an occurrence becomes a task when something runs after it is
//! due, a `task_tick()` (from any process, a worker loop, the shell, cron)
//! or a claim that reads the queues (an idle worker's every claim, a busy
//! worker's at least once a second: see `claim/plan.rs`). Finding what is
//! due is one seek of `task_schedule_due`; with nothing due nothing else
//! happens, so the claim path does not slow down.
//!
//! Exactly once, across processes: the due schedule is read, its
//! occurrences computed, and then, under the write lock, `next_at` moved on
//! with a compare-and-set (`WHERE next_at = <read> AND updated_at = <read>`)
//! as the transaction's first write. The process that loses the race
//! changes nothing; the winner enqueues in the same transaction, and each
//! occurrence's row in `task_schedule_runs` (primary key: schedule and
//! time) is the storage's own refusal of a second task for it. An
//! occurrence's task has `run_at` = the occurrence time.
//!
//! Catch-up after downtime (a schedule due more than once): `latest` (the
//! default) enqueues only the latest missed occurrence; `all` enqueues
//! every one, or with `catch_up_window` those within that many ms before
//! the tick, at most [`MAX_CATCH_UP`] per tick (the next tick goes on).

use super::Queue;
use super::cron::Spec;
use super::enqueue::{NewTask, choice, enqueue, placement, unique_options};
use super::ids::new_id;
use super::json::{check_json, push_opt_int, push_opt_str};
use super::model::{MAX_TIME_MS, check_range, clock, quoted};
use super::txn::atomically;
use crate::error::{Error, Result, code};

/// Most occurrences one schedule enqueues in one tick (catch-up `all`).
pub const MAX_CATCH_UP: usize = 1_000;
/// Most schedules one tick acts on; the rest wait for the next tick.
pub const MAX_SCHEDULES_PER_TICK: usize = 1_000;

/// What `task_schedule` registers. `None`s take the defaults.
#[derive(Debug, Default, Clone)]
pub struct NewSchedule<'a> {
    pub name: &'a str,
    pub spec: &'a str,
    pub kind: &'a str,
    pub details: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub priority: Option<i64>,
    pub max_attempts: Option<i64>,
    pub unique_key: Option<&'a str>,
    pub on_conflict: Option<&'a str>,
    pub unique_scope: Option<&'a str>,
    /// `latest` (default) or `all`.
    pub catch_up: Option<&'a str>,
    pub catch_up_window: Option<i64>,
    pub paused: Option<bool>,
    /// `replace` (default), `keep` or `error`: what registering a name that
    /// exists does.
    pub if_exists: Option<&'a str>,
    pub now: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum IfExists {
    Replace,
    Keep,
    Error,
}

const EXISTING_SQL: &str = "\
SELECT spec, catch_up, catch_up_window, next_at, last_at
  FROM main.task_schedule_store WHERE name = +?1";

const INSERT_SQL: &str = "\
INSERT INTO main.task_schedule_store
  (name, spec, type, details, queue, priority, max_attempts, unique_key, on_conflict,
   unique_scope, catch_up, catch_up_window, paused, next_at, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, coalesce(?13, 0), ?14, ?15, ?15)";

const REPLACE_SQL: &str = "\
UPDATE main.task_schedule_store
   SET spec = ?2, type = ?3, details = ?4, queue = ?5, priority = ?6, max_attempts = ?7,
       unique_key = ?8, on_conflict = ?9, unique_scope = ?10, catch_up = ?11,
       catch_up_window = ?12, paused = coalesce(?13, paused), next_at = ?14, updated_at = ?15
 WHERE name = +?1";

const READ_SQL: &str = "\
SELECT name, spec, type, details, queue, priority, max_attempts, unique_key, catch_up,
       catch_up_window, paused, next_at, last_at, last_task, created_at, updated_at
  FROM main.task_schedule_store WHERE name = +?1";

const PAUSE_SQL: &str = "\
UPDATE main.task_schedule_store SET paused = ?2, updated_at = ?3 WHERE name = +?1";

const DELETE_SQL: &str = "DELETE FROM main.task_schedule_store WHERE name = +?1";
const DELETE_RUNS_SQL: &str = "DELETE FROM main.task_schedule_runs WHERE schedule = +?1";

/// Registers or replaces a schedule; returns it as JSON.
pub fn schedule(q: &Queue, s: &NewSchedule<'_>) -> Result<String> {
    if s.name.is_empty() {
        return Err(Error::new("name must not be empty"));
    }
    if s.kind.is_empty() {
        return Err(Error::new("type must not be empty"));
    }
    let spec = Spec::parse(s.spec)?;
    if let Some(d) = s.details {
        check_json("details", d)?;
    }
    let (queue, priority, max_attempts) = placement(s.queue, s.priority, s.max_attempts)?;
    unique_options(s.unique_key, s.on_conflict, s.unique_scope, "a schedule")?;
    let catch_up = choice(
        "catch_up",
        s.catch_up,
        &[("latest", "latest"), ("all", "all")],
    )?
    .unwrap_or("latest");
    let window = s
        .catch_up_window
        .map(|w| check_range("catch_up_window", w, 1, MAX_TIME_MS))
        .transpose()?;
    if window.is_some() && catch_up != "all" {
        return Err(Error::new("catch_up_window applies to catch_up 'all'"));
    }
    let if_exists = choice(
        "if_exists",
        s.if_exists,
        &[
            ("replace", IfExists::Replace),
            ("keep", IfExists::Keep),
            ("error", IfExists::Error),
        ],
    )?
    .unwrap_or(IfExists::Replace);
    let now = clock(s.now)?;
    atomically(q, || {
        let mut st = q.prepare(EXISTING_SQL)?;
        st.bind_text(1, s.name)?;
        let existing = if st.step()? {
            Some((
                st.column_text(0).unwrap_or_default(),
                st.column_text(1).unwrap_or_default(),
                st.column_opt_i64(2),
                st.column_opt_i64(3),
                st.column_opt_i64(4),
            ))
        } else {
            None
        };
        drop(st);
        let next_at = match &existing {
            Some(_) if if_exists == IfExists::Keep => return Ok(()),
            Some(_) if if_exists == IfExists::Error => {
                return Err(Error::new(format!(
                    "a schedule named {} exists (if_exists 'error')",
                    quoted(s.name)
                )));
            }
            // The same expression (by meaning: `@daily` is `0 0 * * *`) and
            // catch-up keep the next occurrence, so
            // that registering at every start-up loses nothing that was due.
            Some((old_spec, old_catch_up, old_window, next, _))
                if Spec::parse(old_spec).is_ok_and(|old| old == spec)
                    && old_catch_up == catch_up
                    && *old_window == window =>
            {
                *next
            }
            // A new expression starts after now, and after the last
            // occurrence it enqueued.
            Some((_, _, _, _, last)) => spec.next_after(now.max(last.unwrap_or(i64::MIN))),
            None => spec.next_after(now),
        };
        let mut st = q.prepare(if existing.is_some() {
            REPLACE_SQL
        } else {
            INSERT_SQL
        })?;
        st.bind_text(1, s.name)?;
        st.bind_text(2, s.spec)?;
        st.bind_text(3, s.kind)?;
        st.bind_opt_text(4, s.details)?;
        st.bind_text(5, queue)?;
        st.bind_i64(6, priority)?;
        st.bind_opt_i64(7, max_attempts)?;
        st.bind_opt_text(8, s.unique_key)?;
        st.bind_opt_text(9, s.on_conflict)?;
        st.bind_opt_text(10, s.unique_scope)?;
        st.bind_text(11, catch_up)?;
        st.bind_opt_i64(12, window)?;
        // Absent: a new schedule runs, a replaced one keeps its state.
        st.bind_opt_i64(13, s.paused.map(i64::from))?;
        st.bind_opt_i64(14, next_at)?;
        st.bind_i64(15, now)?;
        st.finish()
    })?;
    read(q, s.name)
}

/// Pauses (`paused`) or resumes a schedule; returns it as JSON. While
/// paused its occurrences are missed; on resume the catch-up rule decides
/// which of them the next tick enqueues.
pub fn pause(q: &Queue, name: &str, paused: bool, now: Option<i64>) -> Result<String> {
    let now = clock(now)?;
    let mut st = q.prepare(PAUSE_SQL)?;
    st.bind_text(1, name)?;
    st.bind_i64(2, i64::from(paused))?;
    st.bind_i64(3, now)?;
    st.finish()?;
    drop(st);
    if q.conn().changes() == 0 {
        return Err(unknown(name));
    }
    read(q, name)
}

/// Deletes a schedule and its record of enqueued occurrences. The tasks it
/// enqueued stay.
pub fn unschedule(q: &Queue, name: &str) -> Result<()> {
    atomically(q, || {
        let mut st = q.prepare(DELETE_SQL)?;
        st.bind_text(1, name)?;
        st.finish()?;
        drop(st);
        if q.conn().changes() == 0 {
            return Err(unknown(name));
        }
        let mut st = q.prepare(DELETE_RUNS_SQL)?;
        st.bind_text(1, name)?;
        st.finish()
    })
}

fn unknown(name: &str) -> Error {
    Error::new(format!("no schedule named {}", quoted(name)))
}

/// A schedule as JSON: its row, with `paused` as a boolean.
pub fn read(q: &Queue, name: &str) -> Result<String> {
    let mut st = q.prepare(READ_SQL)?;
    st.bind_text(1, name)?;
    if !st.step()? {
        return Err(unknown(name));
    }
    let mut out = String::with_capacity(256);
    out.push('{');
    let text = |out: &mut String, key: &str, v: Option<String>| {
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        push_opt_str(out, v.as_deref());
        out.push(',');
    };
    let int = |out: &mut String, key: &str, v: Option<i64>| {
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        push_opt_int(out, v);
        out.push(',');
    };
    text(&mut out, "name", st.column_text(0));
    text(&mut out, "spec", st.column_text(1));
    text(&mut out, "type", st.column_text(2));
    // Details are JSON: written as they are, not as a string.
    out.push_str("\"details\":");
    match st.column_text(3) {
        Some(d) => out.push_str(&d),
        None => out.push_str("null"),
    }
    out.push(',');
    text(&mut out, "queue", st.column_text(4));
    int(&mut out, "priority", st.column_opt_i64(5));
    int(&mut out, "max_attempts", st.column_opt_i64(6));
    text(&mut out, "unique_key", st.column_text(7));
    text(&mut out, "catch_up", st.column_text(8));
    int(&mut out, "catch_up_window", st.column_opt_i64(9));
    out.push_str("\"paused\":");
    out.push_str(if st.column_i64(10) != 0 {
        "true,"
    } else {
        "false,"
    });
    int(&mut out, "next_at", st.column_opt_i64(11));
    int(&mut out, "last_at", st.column_opt_i64(12));
    text(&mut out, "last_task", st.column_text(13));
    int(&mut out, "created_at", st.column_opt_i64(14));
    int(&mut out, "updated_at", st.column_opt_i64(15));
    out.pop();
    out.push('}');
    Ok(out)
}

// `+?1`: see claim/sql.rs on bound values and partial indexes.
const DUE_SQL: &str = "\
SELECT name, spec, type, details, queue, priority, max_attempts, unique_key, on_conflict,
       unique_scope, catch_up, catch_up_window, next_at, updated_at
  FROM main.task_schedule_store
 WHERE paused = 0 AND next_at IS NOT NULL AND next_at <= +?1
 ORDER BY next_at LIMIT +?2";

// The compare-and-set: the transaction's first write (so the write lock is
// taken before anything else is read), and a no-op when another connection
// acted on this schedule since it was read.
const ADVANCE_SQL: &str = "\
UPDATE main.task_schedule_store
   SET next_at = ?4, last_at = coalesce(?5, last_at), updated_at = ?6
 WHERE name = +?1 AND next_at = +?2 AND updated_at = +?3 AND paused = 0";

const RUN_SQL: &str = "\
INSERT INTO main.task_schedule_runs (schedule, at, task) VALUES (?1, ?2, ?3)
ON CONFLICT DO NOTHING";

const RUN_TASK_SQL: &str = "\
UPDATE main.task_schedule_runs SET task = ?3 WHERE schedule = +?1 AND at = +?2";

const UNRUN_SQL: &str = "DELETE FROM main.task_schedule_runs WHERE schedule = +?1 AND at = +?2";

const LAST_TASK_SQL: &str = "\
UPDATE main.task_schedule_store SET last_task = ?2 WHERE name = +?1";

/// A due schedule, as read before the write lock is taken.
struct Due {
    name: String,
    spec: String,
    kind: String,
    details: Option<String>,
    queue: String,
    priority: i64,
    max_attempts: Option<i64>,
    unique_key: Option<String>,
    on_conflict: Option<String>,
    unique_scope: Option<String>,
    catch_up_all: bool,
    window: Option<i64>,
    next_at: i64,
    updated_at: i64,
}

/// The schedules due at `now`, soonest first, at most `limit`.
fn due_at(q: &Queue, now: i64, limit: usize) -> Result<Vec<Due>> {
    let mut st = q.prepare(DUE_SQL)?;
    st.bind_i64(1, now)?;
    st.bind_i64(2, limit as i64)?;
    let mut out = Vec::new();
    while st.step()? {
        out.push(Due {
            name: st.column_text(0).unwrap_or_default(),
            spec: st.column_text(1).unwrap_or_default(),
            kind: st.column_text(2).unwrap_or_default(),
            details: st.column_text(3),
            queue: st.column_text(4).unwrap_or_default(),
            priority: st.column_i64(5),
            max_attempts: st.column_opt_i64(6),
            unique_key: st.column_text(7),
            on_conflict: st.column_text(8),
            unique_scope: st.column_text(9),
            catch_up_all: st.column_text(10).as_deref() == Some("all"),
            window: st.column_opt_i64(11),
            next_at: st.column_i64(12),
            updated_at: st.column_i64(13),
        });
    }
    Ok(out)
}

/// The occurrences of `d` that a tick at `now` enqueues, and the next
/// occurrence after them (`None`: the expression has no more).
fn occurrences(spec: &Spec, d: &Due, now: i64, max: usize) -> (Vec<i64>, Option<i64>) {
    if !d.catch_up_all {
        // Only the latest missed occurrence (next_at is one, so there is one).
        let at = spec
            .last_at_or_before(now)
            .unwrap_or(d.next_at)
            .max(d.next_at);
        return (vec![at], spec.next_after(now.max(at)));
    }
    let mut at = Some(d.next_at);
    if let Some(w) = d.window {
        let from = now.saturating_sub(w);
        if d.next_at < from {
            at = spec.next_after(from - 1);
        }
    }
    let mut due = Vec::new();
    while let Some(t) = at {
        if t > now || due.len() >= max.max(1) {
            break;
        }
        due.push(t);
        at = spec.next_after(t);
    }
    (due, at)
}

/// How much one tick does: `task_tick` acts on up to
/// [`MAX_SCHEDULES_PER_TICK`] schedules and [`MAX_CATCH_UP`] occurrences of
/// each; a claim, which should stay quick, on fewer (what is left waits for
/// the next tick or claim).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub schedules: usize,
    pub occurrences: usize,
}

pub const TICK: Budget = Budget {
    schedules: MAX_SCHEDULES_PER_TICK,
    occurrences: MAX_CATCH_UP,
};
pub const CLAIM: Budget = Budget {
    schedules: 10,
    occurrences: 10,
};

/// Enqueues the occurrences due at `now` of the schedules that are not
/// paused, each schedule in its own transaction, within `budget`. Returns
/// how many tasks were enqueued. With nothing due, this is one indexed
/// read.
pub fn tick(q: &Queue, now: i64, budget: Budget) -> Result<i64> {
    let mut enqueued = 0;
    for d in due_at(q, now, budget.schedules)? {
        let spec = Spec::parse(&d.spec).map_err(|e| {
            Error::new(format!(
                "schedule {}: its stored expression does not parse: {}",
                quoted(&d.name),
                e.msg
            ))
        })?;
        let (due, next) = occurrences(&spec, &d, now, budget.occurrences);
        enqueued += atomically(q, || {
            let mut st = q.prepare(ADVANCE_SQL)?;
            st.bind_text(1, &d.name)?;
            st.bind_i64(2, d.next_at)?;
            st.bind_i64(3, d.updated_at)?;
            st.bind_opt_i64(4, next)?;
            st.bind_opt_i64(5, due.last().copied())?;
            st.bind_i64(6, now)?;
            st.finish()?;
            drop(st);
            if q.conn().changes() == 0 {
                // Another connection ticked it first.
                return Ok(0);
            }
            let mut n = 0;
            let mut last = None;
            for &at in &due {
                let id = new_id(now);
                let mut st = q.prepare(RUN_SQL)?;
                st.bind_text(1, &d.name)?;
                st.bind_i64(2, at)?;
                st.bind_text(3, &id)?;
                st.finish()?;
                drop(st);
                if q.conn().changes() == 0 {
                    continue;
                }
                let task = match enqueue(
                    q,
                    &NewTask {
                        kind: &d.kind,
                        details: d.details.as_deref(),
                        queue: Some(&d.queue),
                        priority: Some(d.priority),
                        run_at: Some(at),
                        max_attempts: d.max_attempts,
                        id: Some(&id),
                        now: Some(now),
                        unique_key: d.unique_key.as_deref(),
                        on_conflict: d.on_conflict.as_deref(),
                        unique_scope: d.unique_scope.as_deref(),
                        ..NewTask::default()
                    },
                ) {
                    Ok(t) => t,
                    // A unique key held with on_conflict 'error': this
                    // occurrence is skipped, not the tick (nor every claim
                    // that ticks) failed while the holder runs.
                    Err(e) if e.code == code::CONSTRAINT_UNIQUE => {
                        let mut st = q.prepare(UNRUN_SQL)?;
                        st.bind_text(1, &d.name)?;
                        st.bind_i64(2, at)?;
                        st.finish()?;
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::with_code(
                            e.code,
                            format!("schedule {}: {}", quoted(&d.name), e.msg),
                        ));
                    }
                };
                if task.id != id {
                    // A unique key held by an earlier occurrence's task.
                    let mut st = q.prepare(RUN_TASK_SQL)?;
                    st.bind_text(1, &d.name)?;
                    st.bind_i64(2, at)?;
                    st.bind_text(3, &task.id)?;
                    st.finish()?;
                } else {
                    n += 1;
                }
                last = Some(task.id);
            }
            if let Some(id) = last {
                let mut st = q.prepare(LAST_TASK_SQL)?;
                st.bind_text(1, &d.name)?;
                st.bind_text(2, &id)?;
                st.finish()?;
            }
            Ok(n)
        })?;
    }
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(spec: &str, next_at: i64, all: bool, window: Option<i64>) -> (Spec, Due) {
        let s = Spec::parse(spec).unwrap();
        let d = Due {
            name: "s".into(),
            spec: spec.into(),
            kind: "t".into(),
            details: None,
            queue: "default".into(),
            priority: 0,
            max_attempts: None,
            unique_key: None,
            on_conflict: None,
            unique_scope: None,
            catch_up_all: all,
            window,
            next_at,
            updated_at: 0,
        };
        (s, d)
    }

    const MIN: i64 = 60_000;

    #[test]
    fn latest_takes_the_last_missed_occurrence_only() {
        let (s, d) = due("@every 1m", MIN, false, None);
        let (at, next) = occurrences(&s, &d, 10 * MIN + 5, MAX_CATCH_UP);
        assert_eq!(at, vec![10 * MIN]);
        assert_eq!(next, Some(11 * MIN));
    }

    #[test]
    fn all_takes_every_missed_occurrence_within_the_window() {
        let (s, d) = due("@every 1m", MIN, true, None);
        let (at, next) = occurrences(&s, &d, 4 * MIN, MAX_CATCH_UP);
        assert_eq!(at, vec![MIN, 2 * MIN, 3 * MIN, 4 * MIN]);
        assert_eq!(next, Some(5 * MIN));
        let (s, d) = due("@every 1m", MIN, true, Some(2 * MIN));
        let (at, _) = occurrences(&s, &d, 10 * MIN, MAX_CATCH_UP);
        assert_eq!(at, vec![8 * MIN, 9 * MIN, 10 * MIN]);
    }

    #[test]
    fn all_stops_at_the_per_tick_bound() {
        let (s, d) = due("@every 1s", 1_000, true, None);
        let (at, next) = occurrences(&s, &d, 10_000_000, MAX_CATCH_UP);
        assert_eq!(at.len(), MAX_CATCH_UP);
        assert_eq!(next, Some(1_000 * (MAX_CATCH_UP as i64 + 1)));
    }
}
