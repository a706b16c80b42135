//! The optional last argument of every verb: a JSON object of options,
//! read into a typed struct per function. Each struct is declared once with
//! [`options!`], which gives its keys (for the unknown-key message) and its
//! reader from the same list, so a key is written once.
//!
//! Unknown keys and wrongly typed values are errors, so a typo such as
//! `{"prority": 5}` is reported instead of silently ignored. The checks run
//! in a fixed order, which the messages depend on: the JSON is parsed
//! whole first (a syntax error anywhere wins), then the least unknown key
//! is named, then each option is read in its declaration order. (serde's
//! `deny_unknown_fields` would report in document order, in its own words.)

use super::args::exact_whole;
use crate::error::{Error, Result};
use crate::queue::Queues;
use crate::queue::events::Level;
use crate::queue::settings::{Rate, Retain};
use serde_json::{Map, Value as J};

/// How an option's JSON value is read. `null` counts as absent.
pub trait Kind {
    type Out;
    fn read(key: &str, v: Option<J>) -> Result<Self::Out>;
}

/// Declares an options struct: `name: Kind` per key, in checking order.
macro_rules! options {
    ($($(#[$doc:meta])* pub struct $name:ident { $($key:ident: $kind:ty,)* })*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            $(pub $key: <$kind as Kind>::Out,)*
        }

        impl $name {
            /// The keys it accepts, in the order they are checked.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// Reads the options argument (NULL or absent: none).
            pub fn parse(text: Option<&str>) -> Result<Self> {
                // No options (the common case) reads no map at all.
                #[allow(unused_mut)]
                let mut map = text.map(|t| object(t, Self::KEYS)).transpose()?;
                #[allow(unused_mut, unused_variables)]
                let mut take = |key: &str| map.as_mut().and_then(|m| m.remove(key));
                // Struct fields are evaluated in the order written.
                Ok($name {
                    $($key: <$kind as Kind>::read(stringify!($key), take(stringify!($key)))?,)*
                })
            }
        }
    )*};
}

/// Parses `text` as a JSON object holding only `allowed` keys.
fn object(text: &str, allowed: &[&str]) -> Result<Map<String, J>> {
    let v: J = serde_json::from_str(text)
        .map_err(|e| Error::new(format!("options are not valid JSON: {e}")))?;
    let map = match v {
        J::Object(map) => map,
        other => {
            return Err(Error::new(format!(
                "options must be a JSON object, got {}",
                kind(&other)
            )));
        }
    };
    // The map is ordered by key: the least unknown key is named.
    if let Some(bad) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::new(format!(
            "unknown option \"{bad}\" (expected one of: {})",
            allowed.join(", ")
        )));
    }
    Ok(map)
}

/// A 64-bit integer. Whole numbers written as reals (`2.0`, `1e3`, as some
/// JSON encoders do) are accepted when they are exact.
pub struct Int;

impl Kind for Int {
    type Out = Option<i64>;
    fn read(key: &str, v: Option<J>) -> Result<Option<i64>> {
        match v {
            None | Some(J::Null) => Ok(None),
            Some(J::Number(n)) => whole(key, &n).map(Some),
            Some(other) => Err(wrong_type(key, "a whole number", &other)),
        }
    }
}

/// A 64-bit integer, or `null` for "none" (`None`: the key is absent).
pub struct IntOrNull;

impl Kind for IntOrNull {
    type Out = Option<Option<i64>>;
    fn read(key: &str, v: Option<J>) -> Result<Option<Option<i64>>> {
        match v {
            None => Ok(None),
            Some(J::Null) => Ok(Some(None)),
            Some(J::Number(n)) => whole(key, &n).map(|n| Some(Some(n))),
            Some(other) => Err(wrong_type(key, "a whole number or null", &other)),
        }
    }
}

/// A non-empty string.
pub struct Text;

impl Kind for Text {
    type Out = Option<String>;
    fn read(key: &str, v: Option<J>) -> Result<Option<String>> {
        match v {
            None | Some(J::Null) => Ok(None),
            Some(J::String(s)) if s.is_empty() => {
                Err(Error::new(format!("option \"{key}\" must not be empty")))
            }
            Some(J::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "a string", &other)),
        }
    }
}

/// `true` or `false`.
pub struct Flag;

impl Kind for Flag {
    type Out = Option<bool>;
    fn read(key: &str, v: Option<J>) -> Result<Option<bool>> {
        match v {
            None | Some(J::Null) => Ok(None),
            Some(J::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(wrong_type(key, "true or false", &other)),
        }
    }
}

/// A queue name, or a non-empty list of them; absent: every queue.
pub struct QueueNames;

impl Kind for QueueNames {
    type Out = Queues;
    fn read(key: &str, v: Option<J>) -> Result<Queues> {
        match v {
            None | Some(J::Null) => Ok(Queues::All),
            Some(J::String(q)) if !q.is_empty() => Ok(Queues::One(q)),
            Some(J::Array(items))
                if !items.is_empty()
                    && items
                        .iter()
                        .all(|q| q.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                Ok(Queues::Many(
                    items
                        .into_iter()
                        .filter_map(|q| match q {
                            J::String(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                ))
            }
            Some(_) => Err(Error::new(format!(
                "option \"{key}\" must be a queue name or a non-empty array of queue names"
            ))),
        }
    }
}

/// A JSON array of task ids (validated as ids by the queue); absent: none.
pub struct Ids;

impl Kind for Ids {
    type Out = Vec<String>;
    fn read(key: &str, v: Option<J>) -> Result<Vec<String>> {
        let bad = || Error::new(format!("option \"{key}\" must be an array of task ids"));
        match v {
            None | Some(J::Null) => Ok(Vec::new()),
            Some(J::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    J::String(s) => Ok(s),
                    _ => Err(bad()),
                })
                .collect(),
            Some(other) => Err(Error::new(format!(
                "option \"{key}\" must be an array of task ids, got {}",
                kind(&other)
            ))),
        }
    }
}

/// A JSON number as a 64-bit integer.
fn whole(key: &str, n: &serde_json::Number) -> Result<i64> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    let out_of_range = || {
        Error::new(format!(
            "option \"{key}\" is out of range for a 64-bit integer, got {n}"
        ))
    };
    if n.is_u64() {
        return Err(out_of_range());
    }
    match n.as_f64() {
        Some(f) if let Some(i) = exact_whole(f) => Ok(i),
        Some(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 => {
            Err(Error::new(format!(
                "option \"{key}\" must be written as an integer (a real this large may be rounded), got {n}"
            )))
        }
        Some(f) if f.fract() == 0.0 => Err(out_of_range()),
        _ => Err(Error::new(format!(
            "option \"{key}\" must be a whole number, got {n}"
        ))),
    }
}

fn kind(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

fn wrong_type(key: &str, want: &str, got: &J) -> Error {
    Error::new(format!(
        "option \"{key}\" must be {want}, got {}",
        kind(got)
    ))
}

// The options of each function. The order of the keys is the order they
// are listed in the unknown-key message and checked in.
options! {
    /// `task_enqueue`.
    pub struct Enqueue {
        queue: Text,
        priority: Int,
        run_at: Int,
        delay: Int,
        max_attempts: Int,
        parent_id: Text,
        id: Text,
        now: Int,
        depends_on: Ids,
        unique_key: Text,
        on_conflict: Text,
        unique_scope: Text,
        on_child_failure: Text,
        wait_for_children: Flag,
    }

    /// `task_claim`, `task_claim_batch`.
    pub struct Claim {
        queue: QueueNames,
        lease: Int,
        now: Int,
        wait: Int,
    }

    /// `task_progress`.
    pub struct Progress {
        attempt: Int,
        lease: Int,
        now: Int,
        writeback: Int,
    }

    /// `task_heartbeat`.
    pub struct Heartbeat {
        attempt: Int,
        lease: Int,
        now: Int,
    }

    /// `task_complete`.
    pub struct Complete {
        attempt: Int,
        now: Int,
    }

    /// `task_complete_next`: the completion's, then the claim's.
    pub struct CompleteNext {
        attempt: Int,
        now: Int,
        queue: QueueNames,
        lease: Int,
    }

    /// `task_fail`.
    pub struct Fail {
        attempt: Int,
        now: Int,
        retry: Flag,
        delay: Int,
    }

    /// `task_fail_batch`.
    pub struct FailBatch {
        now: Int,
        retry: Flag,
        delay: Int,
    }

    /// `task_complete_batch`, `task_cancel`, `task_retry`: the clock only.
    pub struct Clock {
        now: Int,
    }

    /// `task_queue`.
    pub struct QueueSettings {
        paused: Flag,
        concurrency: IntOrNull,
        rate: RateLimit,
        lease: IntOrNull,
        max_attempts: IntOrNull,
        backoff: IntOrNull,
        backoff_max: IntOrNull,
        retention: Retention,
        events: EventLevel,
        now: Int,
    }

    /// `task_init`.
    pub struct Init {
        index_completed: Flag,
        index_events: Flag,
    }

    /// `task_schedule`: what each occurrence's task gets, then the
    /// schedule's own settings.
    pub struct Schedule {
        queue: Text,
        priority: Int,
        max_attempts: Int,
        unique_key: Text,
        on_conflict: Text,
        unique_scope: Text,
        catch_up: Text,
        catch_up_window: Int,
        paused: Flag,
        if_exists: Text,
        now: Int,
    }

    /// `task_prune`.
    pub struct Prune {
        older_than: Int,
        before: Int,
        status: Statuses,
        queue: Text,
        step: Int,
        events: Flag,
        now: Int,
    }

    /// `task_wait`.
    pub struct Wait {
        after_seq: Int,
    }

    /// `task_stats`.
    pub struct Stats {
        queue: Text,
        now: Int,
    }
}

/// A retention in ms for every finished status (a number), per status (an
/// object of `completed`, `failed`, `cancelled`, each ms or null), or
/// `null` for none. `None`: the key is absent (left as it is).
pub struct Retention;

impl Kind for Retention {
    type Out = Option<Retain>;
    fn read(key: &str, v: Option<J>) -> Result<Option<Retain>> {
        let ms = |k: &str, v: Option<J>| -> Result<Option<i64>> {
            match Int::read(k, v)? {
                Some(n) if n < 1 => Err(Error::new(format!(
                    "option \"{k}\" must be at least 1 ms, got {n}"
                ))),
                other => Ok(other),
            }
        };
        match v {
            None => Ok(None),
            Some(J::Null) => Ok(Some(Retain::default())),
            Some(n @ J::Number(_)) => {
                let all = ms(key, Some(n))?;
                Ok(Some(Retain {
                    completed: all,
                    failed: all,
                    cancelled: all,
                }))
            }
            Some(J::Object(mut map)) => {
                const KEYS: &[&str] = &["cancelled", "completed", "failed"];
                if let Some(bad) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
                    return Err(Error::new(format!(
                        "unknown status \"{bad}\" in option \"{key}\" (expected one of: {})",
                        KEYS.join(", ")
                    )));
                }
                Ok(Some(Retain {
                    completed: ms("retention.completed", map.remove("completed"))?,
                    failed: ms("retention.failed", map.remove("failed"))?,
                    cancelled: ms("retention.cancelled", map.remove("cancelled"))?,
                }))
            }
            Some(other) => Err(wrong_type(
                key,
                "a number of ms, an object of them by status, or null",
                &other,
            )),
        }
    }
}

/// A rate limit: `{"limit": n, "interval": ms}`, or null for none.
pub struct RateLimit;

impl Kind for RateLimit {
    type Out = Option<Option<Rate>>;
    fn read(key: &str, v: Option<J>) -> Result<Option<Option<Rate>>> {
        match v {
            None => Ok(None),
            Some(J::Null) => Ok(Some(None)),
            Some(J::Object(mut map)) => {
                const KEYS: &[&str] = &["interval", "limit"];
                if let Some(bad) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
                    return Err(Error::new(format!(
                        "unknown key \"{bad}\" in option \"{key}\" (expected: limit, interval)"
                    )));
                }
                let limit = Int::read("rate.limit", map.remove("limit"))?;
                let interval = Int::read("rate.interval", map.remove("interval"))?;
                match (limit, interval) {
                    (Some(limit), Some(interval_ms)) => Ok(Some(Some(Rate { limit, interval_ms }))),
                    _ => Err(Error::new(format!(
                        "option \"{key}\" needs both limit (claims) and interval (ms), \
                         as in {{\"limit\": 10, \"interval\": 1000}}"
                    ))),
                }
            }
            Some(other) => Err(wrong_type(
                key,
                "an object {\"limit\": n, \"interval\": ms} or null",
                &other,
            )),
        }
    }
}

/// Which events a queue keeps: 'all', 'transitions' or 'off'.
pub struct EventLevel;

impl Kind for EventLevel {
    type Out = Option<Level>;
    fn read(key: &str, v: Option<J>) -> Result<Option<Level>> {
        match v {
            None | Some(J::Null) => Ok(None),
            Some(J::String(s)) => Level::parse(&s).map(Some).ok_or_else(|| {
                Error::new(format!(
                    "option \"{key}\" must be 'all', 'transitions' or 'off', got {}",
                    J::String(s)
                ))
            }),
            Some(other) => Err(wrong_type(key, "'all', 'transitions' or 'off'", &other)),
        }
    }
}

/// Finished statuses: one name or a non-empty array of them; absent: all
/// three. Out: (completed, failed, cancelled).
pub struct Statuses;

impl Kind for Statuses {
    type Out = (bool, bool, bool);
    fn read(key: &str, v: Option<J>) -> Result<(bool, bool, bool)> {
        let names: Vec<J> = match v {
            None | Some(J::Null) => return Ok((true, true, true)),
            Some(J::Array(items)) if !items.is_empty() => items,
            Some(s @ J::String(_)) => vec![s],
            Some(_) => {
                return Err(Error::new(format!(
                    "option \"{key}\" must be 'completed', 'failed' or 'cancelled', or a \
                     non-empty array of them"
                )));
            }
        };
        let mut out = (false, false, false);
        for n in names {
            match n.as_str() {
                Some("completed") => out.0 = true,
                Some("failed") => out.1 = true,
                Some("cancelled") => out.2 = true,
                _ => {
                    return Err(Error::new(format!(
                        "option \"{key}\" names finished statuses ('completed', 'failed', \
                         'cancelled'), got {n}"
                    )));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    options! {
        pub struct Sample {
            queue: Text,
            priority: Int,
            retry: Flag,
        }
    }

    #[test]
    fn absent_and_null_mean_no_options() {
        assert_eq!(Sample::parse(None).unwrap().queue, None);
        assert_eq!(
            Sample::parse(Some(r#"{"queue": null}"#)).unwrap().queue,
            None
        );
        let o = Sample::parse(Some(r#"{"retry": false, "queue": "q"}"#)).unwrap();
        assert_eq!((o.retry, o.queue.as_deref()), (Some(false), Some("q")));
    }

    #[test]
    fn unknown_keys_are_named_with_the_accepted_ones() {
        let e = Sample::parse(Some(r#"{"zeta": 1, "prority": 5}"#)).unwrap_err();
        assert_eq!(
            e.msg,
            "unknown option \"prority\" (expected one of: queue, priority, retry)"
        );
    }

    #[test]
    fn types_are_checked_in_declaration_order() {
        let e = Sample::parse(Some(r#"{"priority": 1.5, "queue": 3}"#)).unwrap_err();
        assert_eq!(e.msg, "option \"queue\" must be a string, got a number");
        let e = Sample::parse(Some(r#"{"priority": 1.5}"#)).unwrap_err();
        assert_eq!(e.msg, "option \"priority\" must be a whole number, got 1.5");
        let e = Sample::parse(Some(r#"{"retry": 1}"#)).unwrap_err();
        assert_eq!(
            e.msg,
            "option \"retry\" must be true or false, got a number"
        );
        assert!(Sample::parse(Some("[1]")).is_err());
        assert!(Sample::parse(Some("{")).is_err());
    }

    #[test]
    fn whole_reals_are_accepted() {
        let o = Sample::parse(Some(r#"{"priority": 2.0}"#)).unwrap();
        assert_eq!(o.priority, Some(2));
        let o = Sample::parse(Some(r#"{"priority": 1e3}"#)).unwrap();
        assert_eq!(o.priority, Some(1000));
        let o = Sample::parse(Some(r#"{"priority": -0.0}"#)).unwrap();
        assert_eq!(o.priority, Some(0));
    }

    #[test]
    fn huge_numbers_are_rejected_not_wrapped() {
        for text in [
            r#"{"priority": 1e300}"#,
            r#"{"priority": 18446744073709551616}"#,
            r#"{"priority": -9223372036854775809}"#,
        ] {
            let e = Sample::parse(Some(text)).unwrap_err();
            assert!(e.msg.contains("out of range"), "{text}: {}", e.msg);
        }
        assert!(Sample::parse(Some(r#"{"priority": 18446744073709551615}"#)).is_err());
    }

    #[test]
    fn queues_are_a_name_or_a_list_of_names() {
        let read = |t: &str| QueueNames::read("queue", serde_json::from_str(t).ok());
        assert_eq!(read(r#""a""#).unwrap(), Queues::One("a".into()));
        assert_eq!(
            read(r#"["a","b"]"#).unwrap(),
            Queues::Many(vec!["a".into(), "b".into()])
        );
        assert_eq!(read("null").unwrap(), Queues::All);
        for bad in [r#""""#, "[]", r#"["a",""]"#, r#"["a",1]"#, "3"] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
