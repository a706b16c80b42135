//! Hostile input: random sequences of calls, with arguments drawn from good
//! values and hostile ones, run against the extension and against a small
//! model of the queue built from the reference (docs/).
//!
//! After every call: no panic (`internal error in sqlite-task` fails the
//! test); a rejected call names its function and leaves `task_store` and
//! `task_deps` byte for byte as they were; and the `tasks` table matches the
//! model. Where the reference leaves a choice open (which of several expired
//! tasks a claim takes, which exhausted tasks a claim reaps, the retry
//! backoff's random factor) the model checks that the observed outcome is one
//! it allows, then continues from it. Arguments the reference does not settle
//! (JSON nested deeper than serde_json's 128 levels, a JSON `null` option,
//! whole reals in `tasks` columns, a lease of 0, ...) may be accepted or
//! refused; every other one must get the verdict the model gives.
//!
//! Workflows (docs/reference/workflows.md) are modelled from the tasks'
//! links alone, never from the storage's counters: a task's children are the
//! tasks naming it as parent (so `children` and `children_done` are counted,
//! and a parent's `progress` is the rollup of its children's: their mean, a
//! finished child counting as 100, a child with children as its own rollup);
//! a task's dependencies are its `depends_on` ids, and it is `blocked` (from
//! its enqueue or retry) while one of them has not completed. When a task
//! finishes, what follows is worked through one task at a time, as the
//! reference lists it (`Model::settle`): a completion releases the
//! dependents whose last dependency it was and completes a waiting parent
//! whose last child it was; a failure for good or a cancellation cancels the
//! blocked dependents and the unfinished children, and fails the parent (or,
//! `on_child_failure: continue`, counts as its child finished). A task with
//! `wait_for_children` is waiting from the start. Unique keys are held per
//! queue by unfinished tasks (and completed ones with `unique_scope:
//! completed`). `task_tree(root)` is read and compared with the model's tree.
//! An expired task in a workflow on its last attempt is failed (with what
//! follows) by the reads a claim makes first, which a claim may skip for a
//! second after one that found work (docs/ARCHITECTURE.md, the hint).
//!
//! Where the reference leaves a choice open, the model takes the reading
//! said where it is used: a parent's `updated_at` moves when a child is
//! added (not when one finishes, is retried or deleted), a blocked
//! dependent's when one of its dependencies completes; a task cancelled
//! because its dependency ended names that dependency, not the first task of
//! the chain; a retry goes down through the failed and cancelled children
//! only (a completed child's failed children stay, as it stays completed);
//! a task back to waiting whose children have all finished completes at
//! once.
//!
//! Every time-dependent call carries `{"now": ms}`, so nothing depends on the
//! wall clock. Budget: PROPTEST_CASES sequences (default 1000, about five
//! seconds) of up to 40 calls; `make stress-hostile` runs 20000. A failure
//! prints the shrunk sequence; `--nocapture` also prints how often each verb
//! was accepted and refused and which model paths were taken.
//!
//! The bugs this test found are pinned by the regression tests at the end.
//! The model's `KNOWN BUG` paths, switched on by the `KNOWN_BUG_*` constants,
//! tolerate the ones still open (mirroring them, or, where the storage is
//! left in a state the reference has no word for, not checking the rest of
//! the sequence); switched off, the test fails on them. Not reached on
//! purpose: reports whose clock runs back further than 50 ms across
//! processes (a held write-back report cannot see a change made elsewhere;
//! the reference documents the window).

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};
use serde_json::Value as Json;
use sqlite_task_tests::memory_db;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

const T0: i64 = 1_000_000_000;
const MAX_TIME: i64 = 253_402_300_799_999;
const MAX_LEASE: i64 = 366 * 24 * 3_600_000;
const DEFAULT_LEASE: i64 = 300_000;
const MB: usize = 1 << 20;

// ---- SQL values ----------------------------------------------------------

/// A value passed to SQL.
#[derive(Clone, PartialEq)]
enum Arg {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// Text whose bytes are not UTF-8: bound as a blob, CAST to TEXT in SQL.
    BadUtf8(Vec<u8>),
    /// `head`, then `unit` `n` times, then `tail`: big text, short Debug.
    Huge {
        head: &'static str,
        unit: char,
        n: usize,
        tail: &'static str,
    },
}

impl Arg {
    fn text(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }

    fn huge_text(&self) -> Option<String> {
        match self {
            Arg::Text(s) => Some(s.clone()),
            Arg::Huge {
                head,
                unit,
                n,
                tail,
            } => {
                let mut s = String::with_capacity(head.len() + n * unit.len_utf8() + tail.len());
                s.push_str(head);
                s.extend(std::iter::repeat_n(*unit, *n));
                s.push_str(tail);
                Some(s)
            }
            _ => None,
        }
    }

    /// The value SQLite sees: a NaN is bound as NULL.
    fn as_stored(&self) -> Arg {
        match self {
            Arg::Real(r) if r.is_nan() => Arg::Null,
            a => a.clone(),
        }
    }

    /// The placeholder for parameter `i` and the value bound to it.
    fn bind(&self, i: usize) -> (String, Value) {
        match self {
            Arg::Null => (format!("?{i}"), Value::Null),
            Arg::Int(v) => (format!("?{i}"), Value::Integer(*v)),
            // NaN binds as NULL, which is what SQLite makes of it.
            Arg::Real(v) => (format!("?{i}"), Value::Real(*v)),
            Arg::Blob(b) => (format!("?{i}"), Value::Blob(b.clone())),
            Arg::BadUtf8(b) => (format!("CAST(?{i} AS TEXT)"), Value::Blob(b.clone())),
            t => (
                format!("?{i}"),
                Value::Text(t.huge_text().unwrap_or_default()),
            ),
        }
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Null => write!(f, "NULL"),
            Arg::Int(v) => write!(f, "{v}"),
            Arg::Real(v) => write!(f, "{v:?}"),
            Arg::Text(s) => write!(f, "{}", short(s)),
            Arg::Blob(b) => write!(f, "x'{}'", hex(b)),
            Arg::BadUtf8(b) => write!(f, "CAST(x'{}' AS TEXT)", hex(b)),
            Arg::Huge {
                head,
                unit,
                n,
                tail,
            } => write!(f, "{head:?} + {unit:?} x {n} + {tail:?}"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn short(s: &str) -> String {
    if s.len() <= 120 {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(60).collect();
        format!("{cut:?}… ({} bytes)", s.len())
    }
}

/// A value read back from SQL. Reals compare by bits: "byte for byte".
#[derive(Clone)]
enum SqlV {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl PartialEq for SqlV {
    fn eq(&self, o: &SqlV) -> bool {
        match (self, o) {
            (SqlV::Null, SqlV::Null) => true,
            (SqlV::Int(a), SqlV::Int(b)) => a == b,
            (SqlV::Real(a), SqlV::Real(b)) => a.to_bits() == b.to_bits(),
            (SqlV::Text(a), SqlV::Text(b)) => a == b,
            (SqlV::Blob(a), SqlV::Blob(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for SqlV {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlV::Null => write!(f, "NULL"),
            SqlV::Int(v) => write!(f, "{v}"),
            SqlV::Real(v) => write!(f, "{v:?}"),
            SqlV::Text(s) => write!(f, "{}", short(s)),
            SqlV::Blob(b) => write!(f, "x'{}'", hex(b)),
        }
    }
}

impl SqlV {
    fn from_ref(v: ValueRef<'_>) -> SqlV {
        match v {
            ValueRef::Null => SqlV::Null,
            ValueRef::Integer(i) => SqlV::Int(i),
            ValueRef::Real(r) => SqlV::Real(r),
            ValueRef::Text(t) => SqlV::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlV::Blob(b.to_vec()),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            SqlV::Text(s) => Some(s),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            SqlV::Int(i) => Some(*i as f64),
            SqlV::Real(r) => Some(*r),
            _ => None,
        }
    }
}

fn rows(db: &Connection, sql: &str) -> Vec<Vec<SqlV>> {
    let mut st = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = st.column_count();
    let mut out = Vec::new();
    let mut rs = st.query([]).unwrap();
    while let Some(r) = rs.next().unwrap() {
        out.push(
            (0..n)
                .map(|i| SqlV::from_ref(r.get_ref(i).unwrap()))
                .collect(),
        );
    }
    out
}

/// Everything the extension stores.
fn snapshot(db: &Connection) -> Vec<Vec<SqlV>> {
    let mut all = rows(db, "SELECT * FROM task_store ORDER BY seq");
    all.extend(rows(db, "SELECT * FROM task_deps ORDER BY dep, task"));
    all.extend(rows(db, "SELECT * FROM task_parent_store ORDER BY seq"));
    all.extend(rows(db, "SELECT * FROM task_meta ORDER BY key"));
    all
}

const VIEW_SQL: &str = "SELECT rowid, id, queue, type, status, priority, progress, details, \
     result, error, attempts, max_attempts, parent_id, worker, lease_until, run_at, created_at, \
     updated_at, started_at, completed_at, unique_key, depends_on, children, children_done \
     FROM tasks ORDER BY rowid";
const VIEW_COLS: [&str; 24] = [
    "rowid",
    "id",
    "queue",
    "type",
    "status",
    "priority",
    "progress",
    "details",
    "result",
    "error",
    "attempts",
    "max_attempts",
    "parent_id",
    "worker",
    "lease_until",
    "run_at",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "unique_key",
    "depends_on",
    "children",
    "children_done",
];

/// What a call returned: its value, or its error message.
type Outcome = Result<SqlV, String>;

fn run_sql(db: &Connection, sql: &str, params: Vec<Value>, select: bool) -> Outcome {
    let r = if select {
        db.query_row(sql, rusqlite::params_from_iter(params), |r| {
            Ok(SqlV::from_ref(r.get_ref(0)?))
        })
    } else {
        db.execute(sql, rusqlite::params_from_iter(params))
            .map(|n| SqlV::Int(n as i64))
    };
    r.map_err(|e| match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m,
        e => e.to_string(),
    })
}

// ---- JSON pieces -----------------------------------------------------------

/// A JSON value written into options or batch items, kept as the literal
/// text so that hostile forms (`1e308`, `2.0`, `-0.0`) survive as written.
#[derive(Clone)]
enum J {
    Int(i64),
    /// A number literal and its value as a whole i64, if it is one.
    Num(String, Option<i64>),
    Str(String),
    Bool(bool),
    Null,
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl fmt::Debug for J {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", short_json(&self.render()))
    }
}

fn short_json(s: &str) -> String {
    if s.len() <= 120 {
        s.to_string()
    } else {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(60)], s.len())
    }
}

/// A number literal, with its value when it is a whole i64.
fn num(text: &str, whole: Option<i64>) -> J {
    J::Num(text.to_string(), whole)
}

impl J {
    fn render(&self) -> String {
        match self {
            J::Int(i) => i.to_string(),
            J::Num(t, _) => t.to_string(),
            J::Str(s) => serde_json::to_string(s).unwrap(),
            J::Bool(b) => b.to_string(),
            J::Null => "null".into(),
            J::Arr(v) => format!(
                "[{}]",
                v.iter().map(J::render).collect::<Vec<_>>().join(",")
            ),
            J::Obj(v) => format!(
                "{{{}}}",
                v.iter()
                    .map(|(k, x)| format!("{}:{}", serde_json::to_string(k).unwrap(), x.render()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// How sure the model is that an argument is acceptable.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Q {
    Good,
    /// The reference does not settle it: accepted or refused are both fine.
    Unsure,
    Bad,
}

/// The worst of the qualities seen so far.
#[derive(Default)]
struct Verdict(Option<Q>);

impl Verdict {
    fn note(&mut self, q: Q) {
        if self.0.is_none_or(|w| q > w) {
            self.0 = Some(q);
        }
    }
    fn bad(&mut self) {
        self.note(Q::Bad);
    }
    fn q(&self) -> Q {
        self.0.unwrap_or(Q::Good)
    }
}

/// A JSON document argument (details, result) with the model's verdict.
#[derive(Clone)]
struct JsonArg {
    arg: Arg,
    q: Q,
}

impl fmt::Debug for JsonArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}", self.arg, self.q)
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// JSON text strategies: valid documents, invalid ones, and ones whose fate
/// the reference does not settle (nesting deeper than the parser's limit,
/// lone surrogates, a byte-order mark).
fn json_doc() -> BoxedStrategy<JsonArg> {
    let good = |s: &str| JsonArg {
        arg: Arg::text(s),
        q: Q::Good,
    };
    let bad = |s: &str| JsonArg {
        arg: Arg::text(s),
        q: Q::Bad,
    };
    let unsure = |s: String| JsonArg {
        arg: Arg::Text(s),
        q: Q::Unsure,
    };
    let fixed = vec![
        JsonArg {
            arg: Arg::Null,
            q: Q::Good,
        },
        good(r#"{"a":1}"#),
        good("[1,2,3]"),
        good(r#""str""#),
        good("0"),
        good("-0.0"),
        good("1e308"),
        good("true"),
        good("null"),
        good("{}"),
        good("{\"e\":\"🦀 \u{202e}rtl\u{202c} שלום\"}"),
        good(r#"{"nul":"a\u0000b"}"#),
        good(" \n{\"ws\": [1, 2]}\t "),
        good(r#"{"sql":"'); DROP TABLE task_store; --"}"#),
        good(&nested(100)),
    ];
    let broken = vec![
        bad(r#"{"a":"#),
        bad(r#"{"a":1} trailing"#),
        bad(r#"{"a":1}}"#),
        bad("NaN"),
        bad("Infinity"),
        bad("'single'"),
        bad("{a:1}"),
        bad(""),
        bad("   "),
        bad("[1,]"),
        bad(r#"{"a":1,}"#),
        bad(r#""unterminated"#),
        bad("{\"a\":1}\0"),
        bad("\"raw\0nul\""),
        bad("01"),
        bad("1."),
        bad(r#""\x""#),
        bad(&"[".repeat(100_000)),
    ];
    let odd = vec![
        unsure(nested(129)),
        unsure(nested(5_000)),
        unsure(nested(100_000)),
        unsure(r#""\ud800""#.into()),
        unsure("\u{feff}{}".into()),
        // Wrong SQL types.
        JsonArg {
            arg: Arg::Int(5),
            q: Q::Bad,
        },
        JsonArg {
            arg: Arg::Real(1.5),
            q: Q::Bad,
        },
        JsonArg {
            arg: Arg::Real(f64::NAN),
            q: Q::Good,
        }, // binds as NULL
        JsonArg {
            arg: Arg::Blob(b"{}".to_vec()),
            q: Q::Bad,
        },
        JsonArg {
            arg: Arg::BadUtf8(vec![b'"', 0xff, b'"']),
            q: Q::Bad,
        },
    ];
    let huge = JsonArg {
        arg: Arg::Huge {
            head: r#"{"big":""#,
            unit: 'x',
            n: MB,
            tail: r#""}"#,
        },
        q: Q::Good,
    };
    let huge_bad = JsonArg {
        arg: Arg::Huge {
            head: r#"{"big":""#,
            unit: 'é',
            n: MB / 2,
            tail: r#"" garbage"#,
        },
        q: Q::Bad,
    };
    prop_oneof![
        20 => select(fixed),
        4 => select(broken),
        2 => select(odd),
        10 => any_json().prop_map(|v| JsonArg { arg: Arg::Text(v.to_string()), q: Q::Good }),
        1 => Just(huge),
        1 => Just(huge_bad),
    ]
    .boxed()
}

/// Random valid JSON values, a few levels deep.
fn any_json() -> BoxedStrategy<Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        (-1e300f64..1e300).prop_map(Json::from),
        select(vec![
            "",
            "x",
            "🦀",
            "\u{202e}",
            "a\0b",
            "\"quoted\"",
            "\\",
            "\u{ffff}"
        ])
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::vec((select(vec!["a", "b", "🦀", ""]), inner), 0..4).prop_map(
                |kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
    .boxed()
}

// ---- references resolved against the model when a call runs -------------

/// A task id argument.
#[derive(Clone, Debug)]
enum IdRef {
    /// The id of the model's task number `n` (modulo the count); upper case
    /// if `upper`. With no task, a fresh id.
    Known(usize, bool),
    /// The id of the model's `n`-th task in this state, most recently
    /// changed first (modulo the count); with none, as `Known`.
    InState(St, usize),
    /// A valid UUID from a small pool (it may or may not exist yet).
    Fresh(u8, bool),
    /// A known task's id in another UUID spelling (braces, no hyphens, urn).
    Form(usize, u8),
    /// The id of the model's `n`-th task that has children, most recently
    /// changed first (modulo the count); with none, as `Known`.
    Parent(usize),
    /// As `InState`, among the tasks that have a parent.
    Child(St, usize),
    /// Anything else: not a UUID, or not text.
    Lit(Arg),
}

fn fresh_id(n: u8) -> String {
    format!("00000000-0000-7000-8000-0000000000{n:02x}")
}

/// One entry of a `depends_on` list.
#[derive(Clone, Debug)]
enum DepRef {
    Id(IdRef),
    /// The id the call gives the new task (its `id` option or column): the
    /// task itself.
    Own,
    /// Not a task id at all.
    Raw(J),
}

/// An option value; `Clock`, `Attempt`, `Id`, `Deps` and `Wb` are filled in
/// when the call runs.
#[derive(Clone, Debug)]
enum V {
    J(J),
    /// The model's clock plus this offset.
    Clock(i64),
    /// The model's clock written as a real (`1000000000.0`).
    ClockReal,
    /// The target task's current attempt plus this delta.
    Attempt(i64),
    Id(IdRef),
    /// A JSON array of dependency ids.
    Deps(Vec<DepRef>),
    /// The sequence's write-back interval.
    Wb,
}

/// The options argument.
#[derive(Clone, Debug)]
enum Opts {
    Obj(Vec<(String, V)>),
    /// Not an options object at all.
    Raw(Arg),
}

/// A parameter of a `tasks` write.
#[derive(Clone, Debug)]
enum P {
    Lit(Arg),
    /// A JSON document with its verdict.
    Doc(JsonArg),
    Clock(i64),
    Id(IdRef),
    /// A `depends_on` column: the JSON text of an array of ids.
    Deps(Vec<DepRef>),
}

#[derive(Clone, Debug)]
enum Target {
    Id(IdRef),
    Status(&'static str),
    Rowid(usize),
    All,
}

/// One item of `task_complete_batch`.
#[derive(Clone, Debug)]
struct Item {
    id: Option<V>,
    attempt: Option<V>,
    /// Raw JSON text and its verdict.
    result: Option<(String, Q)>,
    extra: bool,
}

#[derive(Clone, Debug)]
enum Items {
    List(Vec<Item>),
    Raw(Arg),
}

#[derive(Clone, Debug)]
enum Call {
    Tick(i64),
    Enqueue {
        ty: Arg,
        details: JsonArg,
        opts: Opts,
    },
    Claim {
        worker: Arg,
        opts: Opts,
    },
    ClaimBatch {
        worker: Arg,
        limit: Arg,
        opts: Opts,
    },
    Progress {
        id: IdRef,
        pct: Arg,
        opts: Opts,
    },
    Heartbeat {
        id: IdRef,
        opts: Opts,
    },
    Complete {
        id: IdRef,
        result: JsonArg,
        opts: Opts,
    },
    Fail {
        id: IdRef,
        error: Arg,
        opts: Opts,
    },
    Cancel {
        id: IdRef,
        opts: Opts,
    },
    Retry {
        id: IdRef,
        opts: Opts,
    },
    CompleteNext {
        id: IdRef,
        result: JsonArg,
        worker: Arg,
        opts: Opts,
    },
    CompleteBatch {
        items: Items,
        opts: Opts,
    },
    Insert {
        rows: Vec<Vec<(&'static str, P)>>,
    },
    Update {
        set: Vec<(&'static str, P)>,
        target: Target,
    },
    Delete {
        target: Target,
    },
    /// `SELECT … FROM task_tree(root)`.
    Tree {
        root: IdRef,
    },
}

#[derive(Clone, Debug)]
struct Case {
    /// Run the whole sequence inside one BEGIN ... COMMIT.
    txn: bool,
    /// The write-back interval this sequence's progress reports ask for.
    wb_ms: i64,
    calls: Vec<Call>,
}

// ---- strategies ------------------------------------------------------------

fn hostile_text() -> BoxedStrategy<Arg> {
    prop_oneof![
        10 => select(vec![
            "",
            " ",
            "🦀",
            "\u{202e}evil\u{202c}",
            "a\0b",
            "\0",
            "'); DROP TABLE task_store; --",
            "\" OR 1=1 --",
            "\u{feff}",
            "NULL",
        ])
        .prop_map(Arg::text),
        1 => Just(Arg::Huge {
            head: "",
            unit: 'x',
            n: MB,
            tail: ""
        }),
    ]
    .boxed()
}

fn wrong_type() -> BoxedStrategy<Arg> {
    select(vec![
        Arg::Null,
        Arg::Int(0),
        Arg::Int(i64::MIN),
        Arg::Int(i64::MAX),
        Arg::Real(f64::NAN),
        Arg::Real(f64::INFINITY),
        Arg::Real(f64::NEG_INFINITY),
        Arg::Real(-0.0),
        Arg::Real(1e308),
        Arg::Blob(vec![]),
        Arg::Blob(b"w1".to_vec()),
        Arg::BadUtf8(vec![0xff, 0xfe, b'a']),
        Arg::BadUtf8(vec![b'w', 0xc3]),
    ])
    .boxed()
}

/// A text argument: mostly one of `good`, sometimes hostile.
fn name_arg(good: &[&'static str]) -> BoxedStrategy<Arg> {
    prop_oneof![
        20 => select(good.to_vec()).prop_map(Arg::text),
        2 => hostile_text(),
        1 => wrong_type(),
    ]
    .boxed()
}

/// Ids, mostly of tasks in one of the `likely` states (the ones the verb
/// accepts), so that the accepting paths are reached often.
fn id_ref(likely: &'static [St]) -> BoxedStrategy<IdRef> {
    prop_oneof![
        12 => (select(likely.to_vec()), prop_oneof![3 => Just(0usize), 1 => 0usize..4])
            .prop_map(|(st, n)| IdRef::InState(st, n)),
        3 => (select(likely.to_vec()), 0usize..2).prop_map(|(st, n)| IdRef::Child(st, n)),
        6 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(n, u)| IdRef::Known(n, u)),
        2 => (0u8..8, any::<bool>()).prop_map(|(n, u)| IdRef::Fresh(n, u)),
        1 => (any::<usize>(), 0u8..3).prop_map(|(n, f)| IdRef::Form(n, f)),
        1 => any::<usize>().prop_map(IdRef::Parent),
        2 => prop_oneof![
            select(vec![
                "not-a-uuid",
                "00000000-0000-7000-8000-00000000000g",
                "00000000-0000-7000-8000-000000000001 ",
                "00000000-0000-7000-8000-000000000001\0",
                "0193a000-0000-7000-8000-00000000000",
            ])
            .prop_map(Arg::text),
            hostile_text(),
            wrong_type(),
        ]
        .prop_map(IdRef::Lit),
    ]
    .boxed()
}

const RUNNING: &[St] = &[St::Running];
const FINISHED: &[St] = &[St::Completed, St::Failed, St::Cancelled];
const OPEN: &[St] = &[St::Queued, St::Running, St::Blocked, St::Waiting];
const ANY: &[St] = &[
    St::Queued,
    St::Running,
    St::Completed,
    St::Failed,
    St::Cancelled,
    St::Blocked,
    St::Waiting,
];
/// Parents: mostly tasks that may take a child (a running one most, as a
/// worker adds children to the task it holds), sometimes finished ones.
const PARENTS: &[St] = &[
    St::Running,
    St::Running,
    St::Queued,
    St::Waiting,
    St::Blocked,
    St::Completed,
    St::Cancelled,
];

/// A `depends_on` entry: mostly a task in a state a dependency may be in,
/// sometimes a failed or cancelled one, an unknown id (`id_ref`'s fresh and
/// malformed ones), the task itself, or no id at all.
fn dep_ref() -> BoxedStrategy<DepRef> {
    prop_oneof![
        10 => id_ref(&[St::Queued, St::Running, St::Completed, St::Blocked, St::Waiting])
            .prop_map(DepRef::Id),
        2 => id_ref(&[St::Failed, St::Cancelled]).prop_map(DepRef::Id),
        1 => Just(DepRef::Own),
        1 => select(vec![J::Int(1), J::Null, J::Arr(vec![]), J::Str(String::new())])
            .prop_map(DepRef::Raw),
    ]
    .boxed()
}

/// A `depends_on` list of up to three entries, now and then one twice.
fn deps_list() -> BoxedStrategy<Vec<DepRef>> {
    (
        proptest::collection::vec(dep_ref(), 0..4),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(mut v, twice)| {
            if let Some(d) = v.first().cloned().filter(|_| twice) {
                v.push(d);
            }
            v
        })
        .boxed()
}

/// The `depends_on` option: a list, or (rarely) something that is not one.
fn deps_v() -> BoxedStrategy<V> {
    prop_oneof![
        10 => deps_list().prop_map(V::Deps),
        1 => select(vec![
            J::Str(fresh_id(1)),
            J::Int(1),
            J::Obj(vec![]),
            J::Null,
            J::Bool(true),
        ])
        .prop_map(V::J),
    ]
    .boxed()
}

/// An id for a new task: mostly fresh, sometimes taken or malformed.
fn new_id_ref() -> BoxedStrategy<IdRef> {
    prop_oneof![
        10 => (0u8..16, prop::bool::weighted(0.2)).prop_map(|(n, u)| IdRef::Fresh(n, u)),
        1 => id_ref(ANY),
    ]
    .boxed()
}

fn now_v() -> BoxedStrategy<V> {
    prop_oneof![
        40 => Just(V::Clock(0)),
        2 => (1i64..50).prop_map(|d| V::Clock(-d)),
        1 => Just(V::ClockReal),
        1 => select(vec![
            J::Int(-1),
            J::Int(MAX_TIME + 1),
            J::Int(i64::MIN),
            num("1e308", None),
            num("2.5", None),
            J::Str("0".into()),
            J::Bool(true),
            J::Arr(vec![]),
        ])
        .prop_map(V::J),
    ]
    .boxed()
}

fn int_v(good: Vec<i64>, bad: Vec<i64>) -> BoxedStrategy<V> {
    prop_oneof![
        24 => select(good).prop_map(|i| V::J(J::Int(i))),
        2 => select(bad).prop_map(|i| V::J(J::Int(i))),
        2 => select(vec![
            num("2.0", Some(2)),
            num("1e3", Some(1000)),
            num("-0.0", Some(0)),
            num("2.5", None),
            num("1e308", None),
            num("18446744073709551616", None),
            J::Str("5".into()),
            J::Null,
            J::Obj(vec![]),
        ])
        .prop_map(V::J),
    ]
    .boxed()
}

fn str_v(good: Vec<&'static str>) -> BoxedStrategy<V> {
    prop_oneof![
        20 => select(good).prop_map(|s| V::J(J::Str(s.into()))),
        2 => select(vec![
            J::Str("".into()),
            J::Str("🦀".into()),
            J::Str("'); DROP TABLE task_store; --".into()),
            J::Int(1),
            J::Null,
            J::Bool(false),
        ])
        .prop_map(V::J),
    ]
    .boxed()
}

fn queue_claim_v() -> BoxedStrategy<V> {
    let s = |x: &str| J::Str(x.into());
    let good = select(vec![
        s("default"),
        s("q1"),
        s("q2"),
        s("🦀"),
        J::Arr(vec![s("q1"), s("q2")]),
        J::Arr(vec![s("default"), s("q1")]),
        J::Arr(vec![s("nowhere")]),
    ]);
    let bad = select(vec![
        J::Arr(vec![]),
        J::Arr(vec![J::Int(1)]),
        J::Arr(vec![s("")]),
        s(""),
        J::Int(3),
        J::Obj(vec![]),
    ]);
    prop_oneof![10 => good, 1 => bad].prop_map(V::J).boxed()
}

fn lease_v() -> BoxedStrategy<V> {
    int_v(
        vec![1, 1_000, 100_000, 300_000, 400_000, MAX_LEASE],
        vec![0, -1, MAX_LEASE + 1, i64::MAX],
    )
}

fn attempt_v() -> BoxedStrategy<V> {
    prop_oneof![
        8 => Just(V::Attempt(0)),
        2 => select(vec![-1i64, 1]).prop_map(V::Attempt),
        1 => select(vec![J::Int(0), J::Int(-1), J::Int(i64::MAX), J::Int(1001), num("1.0", Some(1))])
            .prop_map(V::J),
    ]
    .boxed()
}

fn entry(key: &'static str, p: f64, v: BoxedStrategy<V>) -> BoxedStrategy<Option<(String, V)>> {
    let kv = v.prop_map(move |v| Some((key.to_string(), v)));
    if p >= 1.0 {
        kv.boxed()
    } else {
        proptest::option::weighted(p, kv.prop_map(Option::unwrap)).boxed()
    }
}

/// An options object with `now` and some of `entries`, now and then an
/// unknown key, or (rarely) something that is not an options object.
fn opts(entries: Vec<BoxedStrategy<Option<(String, V)>>>) -> BoxedStrategy<Opts> {
    let mut all = vec![entry("now", 1.0, now_v())];
    all.extend(entries);
    all.push(entry(
        "x",
        0.04,
        select(vec!["prority", "NOW", "now ", "🦀", "no\0w", ""])
            .prop_map(|k| V::J(J::Str(k.into())))
            .boxed(),
    ));
    let obj = all.prop_map(|es| {
        Opts::Obj(
            es.into_iter()
                .flatten()
                .map(|(k, v)| match (k.as_str(), v) {
                    // the unknown key's name travels as its value
                    ("x", V::J(J::Str(name))) => (name, V::J(J::Int(1))),
                    (_, v) => (k, v),
                })
                .collect(),
        )
    });
    let raw = select(vec![
        Arg::Int(1),
        Arg::Real(2.5),
        Arg::Blob(b"{}".to_vec()),
        Arg::BadUtf8(vec![b'{', 0xff, b'}']),
        Arg::text("[]"),
        Arg::text("null"),
        Arg::text("{"),
        Arg::text(r#"{"now":1} x"#),
        Arg::text(""),
        Arg::text(r#"{"now":1,"now2":"#),
        Arg::text(&format!(r#"{{"a":{}}}"#, nested(100))),
        Arg::Huge {
            head: r#"{"now":1,"x":""#,
            unit: 'x',
            n: MB,
            tail: r#""}"#,
        },
    ]);
    prop_oneof![60 => obj, 1 => raw.prop_map(Opts::Raw)].boxed()
}

fn percent() -> BoxedStrategy<Arg> {
    prop_oneof![
        6 => select(vec![0i64, 1, 50, 99, 100]).prop_map(Arg::Int),
        3 => select(vec![0.5, 33.3, 99.99, -0.0, 100.0]).prop_map(Arg::Real),
        2 => select(vec![
            Arg::Int(-1),
            Arg::Int(101),
            Arg::Int(i64::MIN),
            Arg::Int(i64::MAX),
            Arg::Real(100.000_001),
            Arg::Real(-0.001),
            Arg::Real(1e308),
            Arg::Real(f64::INFINITY),
            Arg::Real(f64::NEG_INFINITY),
            Arg::Real(f64::NAN),
            Arg::text("50"),
            Arg::Null,
            Arg::Blob(vec![50]),
        ]),
    ]
    .boxed()
}

fn item() -> BoxedStrategy<Item> {
    let id = prop_oneof![
        10 => id_ref(RUNNING).prop_map(V::Id),
        1 => select(vec![J::Int(1), J::Null, J::Arr(vec![])]).prop_map(V::J),
    ];
    let result = json_doc().prop_filter_map("text JSON", |d| match d.arg {
        Arg::Text(t) if t.len() < 10_000 => Some((t, d.q)),
        _ => None,
    });
    (
        proptest::option::weighted(0.95, id),
        proptest::option::weighted(0.5, attempt_v()),
        proptest::option::weighted(0.5, result),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(id, attempt, result, extra)| Item {
            id,
            attempt,
            result,
            extra,
        })
        .boxed()
}

fn items() -> BoxedStrategy<Items> {
    prop_oneof![
        10 => proptest::collection::vec(item(), 0..4).prop_map(Items::List),
        1 => select(vec![
            Arg::text("{}"),
            Arg::text("[1]"),
            Arg::text("["),
            Arg::text("[{}]"),
            Arg::Int(1),
            Arg::Null,
            Arg::Blob(b"[]".to_vec()),
            Arg::text(&format!("[{}]", vec!["{}"; 10_001].join(","))),
        ])
        .prop_map(Items::Raw),
    ]
    .boxed()
}

fn col_p(col: &'static str) -> BoxedStrategy<(&'static str, P)> {
    let lit = |v: Vec<Arg>| select(v).prop_map(P::Lit).boxed();
    let s = match col {
        "type" => name_arg(&["t", "email", "resize"]).prop_map(P::Lit).boxed(),
        "details" => json_doc().prop_map(P::Doc).boxed(),
        "queue" => lit(vec![
            Arg::text("default"),
            Arg::text("q1"),
            Arg::text("q2"),
            Arg::text(""),
            Arg::Int(1),
            Arg::Null,
        ]),
        "priority" => lit(vec![
            Arg::Int(0),
            Arg::Int(7),
            Arg::Int(-2),
            Arg::Int(i64::from(i32::MAX)),
            Arg::Int(i64::from(i32::MAX) + 1),
            Arg::Real(2.0),
            Arg::Real(2.5),
            Arg::text("5"),
            Arg::text("high"),
            Arg::Null,
        ]),
        "max_attempts" => lit(vec![
            Arg::Int(1),
            Arg::Int(2),
            Arg::Int(5),
            Arg::Int(0),
            Arg::Int(1001),
            Arg::Null,
        ]),
        "run_at" => prop_oneof![
            4 => select(vec![0i64, 1, 5_000, 400_000]).prop_map(P::Clock),
            1 => lit(vec![Arg::Int(-1), Arg::Int(MAX_TIME + 1), Arg::Real(1.0), Arg::Null]),
        ]
        .boxed(),
        "delay" => lit(vec![
            Arg::Int(0),
            Arg::Int(1_000),
            Arg::Int(-1),
            Arg::Int(i64::MAX),
        ]),
        "id" => new_id_ref().prop_map(P::Id).boxed(),
        "parent_id" => id_ref(PARENTS).prop_map(P::Id).boxed(),
        "status" => lit(vec![
            Arg::text("queued"),
            Arg::text("cancelled"),
            Arg::text("running"),
            Arg::text("completed"),
            Arg::text("failed"),
            Arg::text("blocked"),
            Arg::text("waiting"),
            Arg::text("bogus"),
            Arg::Int(1),
            Arg::Null,
        ]),
        "unique_key" => lit(vec![
            Arg::text("k1"),
            Arg::text("k2"),
            Arg::text(""),
            Arg::Int(1),
            Arg::Null,
        ]),
        "on_conflict" => lit(vec![
            Arg::text("keep"),
            Arg::text("replace"),
            Arg::text("error"),
            Arg::text("merge"),
            Arg::Int(0),
        ]),
        "unique_scope" => lit(vec![
            Arg::text("active"),
            Arg::text("completed"),
            Arg::text(""),
        ]),
        "on_child_failure" => lit(vec![
            Arg::text("fail"),
            Arg::text("continue"),
            Arg::text("ignore"),
        ]),
        "wait_for_children" => lit(vec![
            Arg::Int(1),
            Arg::Int(0),
            Arg::Int(2),
            Arg::text("true"),
            Arg::Real(1.0),
        ]),
        "depends_on" => prop_oneof![
            6 => deps_list().prop_map(P::Deps),
            1 => lit(vec![
                Arg::text("[1]"),
                Arg::text("{}"),
                Arg::text("not json"),
                Arg::Text(format!("\"{}\"", fresh_id(1))),
                Arg::Int(1),
                Arg::Blob(b"[]".to_vec()),
            ]),
        ]
        .boxed(),
        // the columns the queue manages
        _ => lit(vec![
            Arg::Null,
            Arg::Int(0),
            Arg::Int(1),
            Arg::text("w1"),
            Arg::Real(50.0),
        ]),
    };
    s.prop_map(move |p| (col, p)).boxed()
}

fn insert_row() -> BoxedStrategy<Vec<(&'static str, P)>> {
    let optional = [
        "details",
        "queue",
        "priority",
        "max_attempts",
        "run_at",
        "delay",
        "id",
        "parent_id",
        "status",
        "unique_key",
        "depends_on",
        "on_conflict",
        "unique_scope",
        "on_child_failure",
        "wait_for_children",
        "worker",
        "attempts",
        "progress",
        "children",
    ];
    let mut parts: Vec<BoxedStrategy<Option<(&'static str, P)>>> =
        vec![proptest::option::weighted(0.97, col_p("type")).boxed()];
    for c in optional {
        let p = match c {
            "details" | "queue" | "priority" | "id" => 0.4,
            "parent_id" | "unique_key" | "depends_on" => 0.2,
            "on_conflict" | "unique_scope" | "on_child_failure" | "wait_for_children" => 0.1,
            "worker" | "attempts" | "progress" | "children" => 0.03,
            _ => 0.15,
        };
        parts.push(proptest::option::weighted(p, col_p(c)).boxed());
    }
    parts
        .prop_map(|cs| {
            let mut row: Vec<_> = cs.into_iter().flatten().collect();
            row.push(("now", P::Clock(0)));
            row
        })
        .boxed()
}

fn target() -> BoxedStrategy<Target> {
    prop_oneof![
        8 => id_ref(FINISHED).prop_map(Target::Id),
        3 => id_ref(OPEN).prop_map(Target::Id),
        2 => select(vec![
            "queued",
            "running",
            "completed",
            "failed",
            "cancelled",
            "blocked",
            "waiting",
        ])
        .prop_map(Target::Status),
        1 => any::<usize>().prop_map(Target::Rowid),
        1 => Just(Target::All),
    ]
    .boxed()
}

fn call() -> BoxedStrategy<Call> {
    let workers = &["w1", "w2", "w3"];
    let enqueue = (
        name_arg(&["t", "email", "resize"]),
        json_doc(),
        opts(vec![
            entry("queue", 0.4, str_v(vec!["default", "q1", "q2"])),
            entry(
                "priority",
                0.4,
                int_v(
                    vec![0, 1, 5, -3, i64::from(i32::MAX), i64::from(i32::MIN)],
                    vec![i64::from(i32::MAX) + 1, i64::from(i32::MIN) - 1, i64::MAX],
                ),
            ),
            entry(
                "run_at",
                0.15,
                prop_oneof![
                    3 => select(vec![0i64, 1, 2_000, 400_000]).prop_map(V::Clock),
                    1 => select(vec![J::Int(-1), J::Int(MAX_TIME), J::Int(MAX_TIME + 1)]).prop_map(V::J),
                ]
                .boxed(),
            ),
            entry(
                "delay",
                0.15,
                int_v(vec![0, 1, 1_000, 400_000], vec![-1, MAX_TIME, i64::MAX]),
            ),
            entry(
                "max_attempts",
                0.3,
                int_v(vec![1, 2, 3, 1_000], vec![0, -1, 1_001, i64::MAX]),
            ),
            entry("parent_id", 0.3, id_ref(PARENTS).prop_map(V::Id).boxed()),
            entry("id", 0.4, new_id_ref().prop_map(V::Id).boxed()),
            entry("depends_on", 0.2, deps_v()),
            entry("unique_key", 0.2, str_v(vec!["k1", "k2"])),
            entry(
                "on_conflict",
                0.12,
                str_v(vec!["keep", "replace", "error", "merge"]),
            ),
            entry(
                "unique_scope",
                0.1,
                str_v(vec!["active", "completed", "forever"]),
            ),
            entry(
                "on_child_failure",
                0.12,
                str_v(vec!["fail", "continue", "ignore"]),
            ),
            entry(
                "wait_for_children",
                0.08,
                select(vec![
                    J::Bool(true),
                    J::Bool(true),
                    J::Bool(false),
                    J::Null,
                    J::Int(1),
                    J::Str("true".into()),
                ])
                .prop_map(V::J)
                .boxed(),
            ),
        ]),
    )
        .prop_map(|(ty, details, opts)| Call::Enqueue { ty, details, opts });
    let claim_opts = || {
        opts(vec![
            entry("queue", 0.4, queue_claim_v()),
            entry("lease", 0.5, lease_v()),
        ])
    };
    let claim =
        (name_arg(workers), claim_opts()).prop_map(|(worker, opts)| Call::Claim { worker, opts });
    let limit = prop_oneof![
        6 => select(vec![1i64, 2, 3, 5, 10_000]).prop_map(Arg::Int),
        1 => select(vec![
            Arg::Int(0),
            Arg::Int(-1),
            Arg::Int(10_001),
            Arg::Int(i64::MIN),
            Arg::Int(i64::MAX),
            Arg::Real(2.0),
            Arg::Real(2.5),
            Arg::text("2"),
            Arg::Null,
        ]),
    ];
    let claim_batch = (name_arg(workers), limit, claim_opts()).prop_map(|(worker, limit, opts)| {
        Call::ClaimBatch {
            worker,
            limit,
            opts,
        }
    });
    let progress = (
        id_ref(RUNNING),
        percent(),
        opts(vec![
            entry("attempt", 0.5, attempt_v()),
            entry("lease", 0.15, lease_v()),
            entry(
                "writeback",
                0.6,
                prop_oneof![
                    6 => Just(V::Wb),
                    1 => select(vec![J::Int(0), J::Int(-1), J::Int(MAX_LEASE + 1), J::Str("x".into())])
                        .prop_map(V::J),
                ]
                .boxed(),
            ),
        ]),
    )
        .prop_map(|(id, pct, opts)| Call::Progress { id, pct, opts });
    let heartbeat = (
        id_ref(RUNNING),
        opts(vec![
            entry("attempt", 0.5, attempt_v()),
            entry("lease", 0.3, lease_v()),
        ]),
    )
        .prop_map(|(id, opts)| Call::Heartbeat { id, opts });
    let complete = (
        id_ref(RUNNING),
        json_doc(),
        opts(vec![entry("attempt", 0.5, attempt_v())]),
    )
        .prop_map(|(id, result, opts)| Call::Complete { id, result, opts });
    let fail = (
        id_ref(RUNNING),
        prop_oneof![
            6 => select(vec!["timeout", "", "boom 🦀"]).prop_map(Arg::text),
            1 => hostile_text(),
            1 => wrong_type(),
        ],
        opts(vec![
            entry("attempt", 0.5, attempt_v()),
            entry(
                "retry",
                0.3,
                prop_oneof![
                    8 => select(vec![J::Bool(true), J::Bool(false)]),
                    1 => select(vec![J::Null, J::Str("false".into()), J::Int(0)]),
                ]
                .prop_map(V::J)
                .boxed(),
            ),
            entry(
                "delay",
                0.3,
                int_v(vec![0, 10, 1_000, 400_000], vec![-1, i64::MAX]),
            ),
        ]),
    )
        .prop_map(|(id, error, opts)| Call::Fail { id, error, opts });
    let cancel = (id_ref(OPEN), opts(vec![])).prop_map(|(id, opts)| Call::Cancel { id, opts });
    let retry = (id_ref(&[St::Failed, St::Cancelled]), opts(vec![]))
        .prop_map(|(id, opts)| Call::Retry { id, opts });
    let complete_next = (
        id_ref(RUNNING),
        json_doc(),
        name_arg(workers),
        opts(vec![
            entry("attempt", 0.5, attempt_v()),
            entry("queue", 0.3, queue_claim_v()),
            entry("lease", 0.3, lease_v()),
        ]),
    )
        .prop_map(|(id, result, worker, opts)| Call::CompleteNext {
            id,
            result,
            worker,
            opts,
        });
    let complete_batch =
        (items(), opts(vec![])).prop_map(|(items, opts)| Call::CompleteBatch { items, opts });
    let insert =
        proptest::collection::vec(insert_row(), 1..4).prop_map(|rows| Call::Insert { rows });
    let update_cols = prop_oneof![
        6 => select(vec!["priority", "run_at", "queue", "max_attempts"]),
        4 => Just("status"),
        1 => select(vec![
            "worker",
            "attempts",
            "progress",
            "details",
            "type",
            "id",
            "error",
            "lease_until",
            "unique_key",
            "depends_on",
            "children",
            "children_done",
        ]),
    ];
    let update = (
        proptest::collection::vec(update_cols.prop_flat_map(col_p), 1..3),
        target(),
    )
        .prop_map(|(mut set, target)| {
            set.dedup_by_key(|(c, _)| *c);
            let mut seen = BTreeSet::new();
            set.retain(|(c, _)| seen.insert(*c));
            set.push(("now", P::Clock(0)));
            Call::Update { set, target }
        });
    let delete = target().prop_map(|target| Call::Delete { target });
    let tree = prop_oneof![
        3 => any::<usize>().prop_map(IdRef::Parent),
        2 => id_ref(ANY),
    ]
    .prop_map(|root| Call::Tree { root });
    let tick = select(vec![
        1i64, 10, 50, 999, 1_000, 2_000, 150_000, 299_999, 300_000, 400_000, 3_600_000,
    ])
    .prop_map(Call::Tick);
    prop_oneof![
        10 => enqueue,
        6 => claim,
        5 => claim_batch,
        8 => progress,
        3 => heartbeat,
        5 => complete,
        4 => fail,
        3 => cancel,
        3 => retry,
        3 => complete_next,
        2 => complete_batch,
        3 => insert,
        3 => update,
        2 => delete,
        3 => tree,
        8 => workflow_call(),
        2 => unique_call(),
        6 => tick,
    ]
    .boxed()
}

/// A well-formed enqueue of a task with no work of its own
/// (`wait_for_children`), now and then a child itself, tolerant of failed
/// children, or with a unique key.
fn group_call() -> BoxedStrategy<Call> {
    (
        proptest::option::weighted(0.3, select(vec![St::Running, St::Waiting])),
        prop::bool::weighted(0.4),
        proptest::option::weighted(0.2, select(vec!["k1", "k2"])),
    )
        .prop_map(|(parent, tolerant, key)| {
            let s = |x: &str| V::J(J::Str(x.into()));
            let mut o = vec![
                ("now".to_string(), V::Clock(0)),
                ("wait_for_children".to_string(), V::J(J::Bool(true))),
            ];
            if let Some(p) = parent {
                o.push(("parent_id".to_string(), V::Id(IdRef::InState(p, 0))));
            }
            if tolerant {
                o.push(("on_child_failure".to_string(), s("continue")));
            }
            if let Some(k) = key {
                o.push(("unique_key".to_string(), s(k)));
            }
            Call::Enqueue {
                ty: Arg::text("batch"),
                details: JsonArg {
                    arg: Arg::Null,
                    q: Q::Good,
                },
                opts: Opts::Obj(o),
            }
        })
        .boxed()
}

/// A well-formed enqueue with a unique key, in each mode and scope.
fn unique_call() -> BoxedStrategy<Call> {
    (
        select(vec!["k1", "k2"]),
        select(vec!["default", "q1"]),
        select(vec!["keep", "replace", "replace", "error"]),
        select(vec!["active", "completed"]),
        select(vec![r#"{"v":1}"#, r#"{"v":2}"#]),
        select(vec![0i64, 1_000]),
    )
        .prop_map(|(key, queue, conflict, scope, details, delay)| {
            let s = |x: &str| V::J(J::Str(x.into()));
            Call::Enqueue {
                ty: Arg::text("sync"),
                details: JsonArg {
                    arg: Arg::text(details),
                    q: Q::Good,
                },
                opts: Opts::Obj(vec![
                    ("now".to_string(), V::Clock(0)),
                    ("queue".to_string(), s(queue)),
                    ("unique_key".to_string(), s(key)),
                    ("on_conflict".to_string(), s(conflict)),
                    ("unique_scope".to_string(), s(scope)),
                    ("delay".to_string(), V::J(J::Int(delay))),
                ]),
            }
        })
        .boxed()
}

/// Well-formed workflow steps, so that trees and chains grow and are
/// worked through often enough: a child enqueued, a claim, the completion
/// of a running child or of a running parent.
fn workflow_call() -> BoxedStrategy<Call> {
    let now = || Opts::Obj(vec![("now".into(), V::Clock(0))]);
    let null = || JsonArg {
        arg: Arg::Null,
        q: Q::Good,
    };
    prop_oneof![
        4 => child_call(),
        2 => select(vec!["w1", "w2"]).prop_map(move |w| Call::Claim { worker: Arg::text(w), opts: now() }),
        3 => (0usize..2).prop_map(move |n| Call::Complete {
            id: IdRef::Child(St::Running, n),
            result: null(),
            opts: now(),
        }),
        1 => Just(Call::Complete { id: IdRef::Parent(0), result: null(), opts: now() }),
        1 => group_call(),
    ]
    .boxed()
}

/// A well-formed enqueue of a child (of a running, queued or waiting
/// task), now and then with a dependency, a tolerant parent policy or a
/// unique key.
fn child_call() -> BoxedStrategy<Call> {
    (
        select(vec![St::Running, St::Running, St::Queued, St::Waiting]),
        0usize..2,
        proptest::option::weighted(
            0.3,
            select(vec![St::Queued, St::Running, St::Completed, St::Blocked]),
        ),
        prop::bool::weighted(0.3),
        proptest::option::weighted(0.25, select(vec!["k1", "k2"])),
        select(vec!["default", "q1", "q2"]),
        // Mostly ahead of the other tasks, so that children get claimed.
        select(vec![0i64, 10, 10]),
    )
        .prop_map(|(parent, n, dep, tolerant, key, queue, priority)| {
            let s = |x: &str| V::J(J::Str(x.into()));
            let mut o = vec![
                ("now".to_string(), V::Clock(0)),
                ("queue".to_string(), s(queue)),
                ("priority".to_string(), V::J(J::Int(priority))),
                ("parent_id".to_string(), V::Id(IdRef::InState(parent, n))),
            ];
            if let Some(d) = dep {
                let d = DepRef::Id(IdRef::InState(d, 0));
                o.push(("depends_on".to_string(), V::Deps(vec![d])));
            }
            if tolerant {
                o.push(("on_child_failure".to_string(), s("continue")));
            }
            if let Some(k) = key {
                o.push(("unique_key".to_string(), s(k)));
            }
            Call::Enqueue {
                ty: Arg::text("child"),
                details: JsonArg {
                    arg: Arg::Null,
                    q: Q::Good,
                },
                opts: Opts::Obj(o),
            }
        })
        .boxed()
}

/// A plain enqueue or claim, to give the hostile calls a queue to work on.
fn good_call() -> BoxedStrategy<Call> {
    let now = || Opts::Obj(vec![("now".into(), V::Clock(0))]);
    prop_oneof![
        3 => (
            select(vec!["t", "email"]),
            select(vec!["default", "q1", "q2"]),
            select(vec![0i64, 1, 5]),
            select(vec![1i64, 2, 3]),
        )
            .prop_map(move |(ty, q, p, m)| Call::Enqueue {
                ty: Arg::text(ty),
                details: JsonArg { arg: Arg::text(r#"{"n":1}"#), q: Q::Good },
                opts: Opts::Obj(vec![
                    ("now".into(), V::Clock(0)),
                    ("queue".into(), V::J(J::Str(q.into()))),
                    ("priority".into(), V::J(J::Int(p))),
                    ("max_attempts".into(), V::J(J::Int(m))),
                ]),
            }),
        2 => select(vec!["w1", "w2"]).prop_map(move |w| Call::Claim { worker: Arg::text(w), opts: now() }),
        1 => child_call(),
        1 => unique_call(),
        1 => group_call(),
    ]
    .boxed()
}

fn case() -> BoxedStrategy<Case> {
    (
        prop::bool::weighted(0.25),
        select(vec![100i64, 1_000, 100_000]),
        proptest::collection::vec(good_call(), 0..6),
        proptest::collection::vec(call(), 1..=34),
    )
        .prop_map(|(txn, wb_ms, mut calls, more)| {
            calls.extend(more);
            Case { txn, wb_ms, calls }
        })
        .boxed()
}

// ---- the model -----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Waiting for its dependencies (workflows.md, dependencies).
    Blocked,
    /// Its own work done (or none), waiting for its children (workflows.md,
    /// parents).
    Waiting,
}

impl St {
    fn name(self) -> &'static str {
        match self {
            St::Queued => "queued",
            St::Running => "running",
            St::Completed => "completed",
            St::Failed => "failed",
            St::Cancelled => "cancelled",
            St::Blocked => "blocked",
            St::Waiting => "waiting",
        }
    }
    fn finished(self) -> bool {
        matches!(self, St::Completed | St::Failed | St::Cancelled)
    }
    /// Failed or cancelled: what `task_retry` takes.
    fn ended_badly(self) -> bool {
        matches!(self, St::Failed | St::Cancelled)
    }
    /// How a finished task is named in the errors of the tasks it takes
    /// along (`child task … failed`, `parent task … was cancelled`).
    fn ended(self) -> &'static str {
        match self {
            St::Completed => "completed",
            St::Cancelled => "was cancelled",
            _ => "failed",
        }
    }
}

/// A progress value held in memory by write-back (docs/reference/workers.md, task_progress).
#[derive(Clone, Copy, Debug)]
struct Held {
    attempt: i64,
    percent: f64,
    written_at: i64,
    interval: i64,
}

#[derive(Clone, Debug)]
struct Task {
    seq: i64,
    id: String,
    queue: String,
    ty: String,
    status: St,
    priority: i64,
    /// The stored progress; `tasks` shows `held` instead while running, and
    /// the rollup of the children's for a task with children.
    progress: f64,
    held: Option<Held>,
    details: Option<String>,
    result: Option<String>,
    error: Option<String>,
    attempts: i64,
    max_attempts: i64,
    parent: Option<String>,
    worker: Option<String>,
    lease_until: Option<i64>,
    lease_ms: i64,
    run_at: i64,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    unique_key: Option<String>,
    /// `unique_scope: 'completed'`: the key stays held once completed.
    key_when_completed: bool,
    /// `on_child_failure: 'continue'`.
    tolerant: bool,
    /// Its own work is done: it completed, or went on to wait for its
    /// children, or it has none (`wait_for_children`). A retry puts it back
    /// to waiting, not queued.
    own_done: bool,
    /// The ids it depends on, in their enqueue order; None: enqueued
    /// without dependencies.
    deps: Option<Vec<String>>,
}

impl Task {
    /// Its own progress as shown (a held value while running).
    fn own_progress(&self) -> f64 {
        match self.held {
            Some(h) if self.status == St::Running && h.attempt == self.attempts => h.percent,
            _ => self.progress,
        }
    }
    fn expired(&self, now: i64) -> bool {
        self.status == St::Running && self.lease_until.is_some_and(|l| l <= now)
    }
    fn exhausted(&self) -> bool {
        self.attempts >= self.max_attempts
    }
    /// Claim order of a ready task: priority, then run_at, then enqueue.
    fn order(&self) -> (std::cmp::Reverse<i64>, i64, i64) {
        (std::cmp::Reverse(self.priority), self.run_at, self.seq)
    }
    /// Whether it holds its unique key: while unfinished, and once
    /// completed with `unique_scope: 'completed'`; never failed or cancelled.
    fn holds_key(&self) -> bool {
        self.unique_key.is_some()
            && (!self.status.finished()
                || (self.status == St::Completed && self.key_when_completed))
    }
    /// Ends it as a consequence of another task (or of its lease): the
    /// status, the error naming why, and no lease or held value any more.
    fn end(&mut self, status: St, error: String, now: i64) {
        self.status = status;
        self.error = Some(error);
        self.completed_at = Some(now);
        self.lease_until = None;
        self.held = None;
        self.updated_at = now;
    }
    /// The `depends_on` column: a JSON array of ids, or NULL.
    fn deps_json(&self) -> Option<String> {
        let ids: Vec<String> = self
            .deps
            .as_ref()?
            .iter()
            .map(|d| format!("{d:?}"))
            .collect();
        Some(format!("[{}]", ids.join(",")))
    }
}

#[derive(Clone, Debug, Default)]
struct Model {
    clock: i64,
    wb_ms: i64,
    tasks: Vec<Task>,
    /// The clocks of the claims that found work. For a second after one, a
    /// claim on the connection may skip the reads that fail expired tasks
    /// in workflows (its hint; docs/ARCHITECTURE.md, how a claim picks its
    /// statement).
    found_work: Vec<i64>,
    /// Set when a KNOWN BUG left the storage where the model cannot follow
    /// it: the rest of the sequence is not checked.
    lost: Option<&'static str>,
}

// ---- workflows: the model's rules (docs/reference/workflows.md) ------------

impl Model {
    /// The children of task `id`, in enqueue order.
    fn children(&self, id: &str) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&c| self.tasks[c].parent.as_deref() == Some(id))
            .collect()
    }

    /// The tasks that depend on task `id`, in enqueue order.
    fn dependents(&self, id: &str) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&d| {
                self.tasks[d]
                    .deps
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|x| x == id))
            })
            .collect()
    }

    /// Whether task `i` has a parent, children or dependents.
    fn in_workflow(&self, i: usize) -> bool {
        let id = &self.tasks[i].id;
        self.tasks[i].parent.is_some()
            || !self.children(id).is_empty()
            || !self.dependents(id).is_empty()
    }

    fn children_done(&self, id: &str) -> usize {
        self.children(id)
            .into_iter()
            .filter(|&c| self.tasks[c].status.finished())
            .count()
    }

    /// Whether every dependency of task `i` has completed.
    fn deps_done(&self, i: usize) -> bool {
        self.tasks[i].deps.iter().flatten().all(|d| {
            self.idx(d)
                .is_none_or(|j| self.tasks[j].status == St::Completed)
        })
    }

    /// The task that holds `key` in `queue`.
    fn holder(&self, queue: &str, key: &str) -> Option<usize> {
        (0..self.tasks.len()).find(|&i| {
            let t = &self.tasks[i];
            t.queue == queue && t.unique_key.as_deref() == Some(key) && t.holds_key()
        })
    }

    /// `progress` as `tasks` and `task_tree` show it: for a task with
    /// children the rollup of theirs (100 once it has completed).
    fn shown_progress(&self, i: usize) -> f64 {
        let t = &self.tasks[i];
        let kids = self.children(&t.id);
        if kids.is_empty() {
            t.own_progress()
        } else if t.status == St::Completed {
            100.0
        } else {
            self.rollup(&kids)
        }
    }

    /// The mean of the children's progress: a finished child counts 100,
    /// one with children of its own its rollup.
    fn rollup(&self, kids: &[usize]) -> f64 {
        let sum: f64 = kids
            .iter()
            .map(|&c| {
                let t = &self.tasks[c];
                let grandkids = self.children(&t.id);
                if t.status.finished() {
                    100.0
                } else if grandkids.is_empty() {
                    t.own_progress()
                } else {
                    self.rollup(&grandkids)
                }
            })
            .sum();
        (sum / kids.len() as f64).clamp(0.0, 100.0)
    }

    /// Whether task `from` waits, through unfinished dependencies and
    /// unfinished children, for the task `target` (a new child of `target`
    /// cannot depend on it: no cycle can be built).
    fn waits_for(&self, from: usize, target: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            let t = &self.tasks[i];
            if t.id == target {
                return true;
            }
            let open = |j: &usize| !self.tasks[*j].status.finished();
            stack.extend(
                t.deps
                    .iter()
                    .flatten()
                    .filter_map(|d| self.idx(d))
                    .filter(open),
            );
            stack.extend(self.children(&t.id).into_iter().filter(|c| open(c)));
        }
        false
    }

    /// Works through what follows from task `first` having just finished,
    /// one task at a time (breadth first, as the consequences are found):
    ///
    /// | finished | blocked dependents | unfinished children | open parent |
    /// |---|---|---|---|
    /// | completed | released if it was their last dependency | (none) | completed if waiting and it was the last child |
    /// | failed, cancelled | cancelled | cancelled | failed, unless `continue` (then as completed) |
    ///
    /// A parent's `updated_at` does not move when a child finishes (its
    /// count of unfinished children is not on its row), a blocked
    /// dependent's does whenever a dependency completes (as the
    /// implementation does it; the reference does not say). A task reached
    /// twice in one cascade (a child of a failed parent that also depends on
    /// a failed task) keeps the error of the first way; the order is the
    /// implementation's, the reference gives none.
    fn settle(&mut self, first: usize, now: i64) {
        let mut work = VecDeque::from([self.tasks[first].id.clone()]);
        while let Some(id) = work.pop_front() {
            let Some(i) = self.idx(&id) else { continue };
            self.tasks[i].held = None;
            let status = self.tasks[i].status;
            let done = status == St::Completed;
            let how = status.ended();
            for d in self.dependents(&id) {
                if self.tasks[d].status != St::Blocked {
                    continue;
                }
                if done {
                    self.tasks[d].updated_at = now;
                    if self.deps_done(d) {
                        self.tasks[d].status = St::Queued;
                        event("workflow: a dependent released");
                    }
                } else {
                    let why = format!("dependency task {id} {how}");
                    self.tasks[d].end(St::Cancelled, why, now);
                    event("workflow: a dependent cancelled");
                    work.push_back(self.tasks[d].id.clone());
                }
            }
            if !done {
                for c in self.children(&id) {
                    if !self.tasks[c].status.finished() {
                        let why = format!("parent task {id} {how}");
                        self.tasks[c].end(St::Cancelled, why, now);
                        event("workflow: a child cancelled with its parent");
                        work.push_back(self.tasks[c].id.clone());
                    }
                }
            }
            let Some(p) = self.tasks[i].parent.clone().and_then(|p| self.idx(&p)) else {
                continue;
            };
            if self.tasks[p].status.finished() {
                continue;
            }
            let pid = self.tasks[p].id.clone();
            if !done && !self.tasks[p].tolerant {
                let why = format!("child task {id} {how}");
                self.tasks[p].end(St::Failed, why, now);
                event("workflow: a parent failed by its child");
                work.push_back(pid);
            } else if self.tasks[p].status == St::Waiting
                && self.children_done(&pid) == self.children(&pid).len()
            {
                self.complete_waiting(p, now);
                work.push_back(pid);
            }
        }
    }

    /// A waiting task whose last child finished completes (`settle` follows).
    fn complete_waiting(&mut self, i: usize, now: i64) {
        let t = &mut self.tasks[i];
        t.status = St::Completed;
        t.completed_at = Some(now);
        t.progress = 100.0;
        t.updated_at = now;
        event("workflow: a waiting parent completed with its last child");
    }

    /// `task_retry` (and `UPDATE tasks SET status = 'queued'`) of task `i`:
    /// it, and through it each failed or cancelled descendant, back to
    /// waiting (its own work was done), blocked (a dependency not
    /// completed) or queued. A task back to waiting whose children have all
    /// finished (none left unfinished: its failure came from elsewhere, or
    /// its failed children were deleted) completes at once: "a parent
    /// completes when its own work is done and every child finished".
    /// Notes a refusal in `v`.
    fn retry(&mut self, i: usize, now: i64, v: &mut Verdict) {
        let parent_ended = self.tasks[i]
            .parent
            .as_deref()
            .and_then(|p| self.idx(p))
            .is_some_and(|p| self.tasks[p].status.finished());
        if parent_ended || !self.tasks[i].status.ended_badly() || !self.retry_one(i, now) {
            v.bad();
            return;
        }
        // Depth first, as the implementation goes: the order decides
        // nothing the reference promises (every retried task gets `now`).
        // Only failed and cancelled children are gone down into: "its
        // failed and cancelled descendants" read literally would reopen the
        // failed child of a completed child, under a parent that stays
        // completed ("its completed children stay completed").
        let mut stack = vec![i];
        while let Some(t) = stack.pop() {
            let id = self.tasks[t].id.clone();
            for c in self.children(&id) {
                if self.tasks[c].status.ended_badly() {
                    if !self.retry_one(c, now) {
                        v.bad();
                        return;
                    }
                    event("retry: a descendant retried with its parent");
                    stack.push(c);
                }
            }
            if self.tasks[t].status == St::Waiting
                && self.children_done(&id) == self.children(&id).len()
            {
                self.complete_waiting(t, now);
                self.settle(t, now);
            }
        }
    }

    /// One task back to its queue; false if its unique key is held by
    /// another task (the retry is refused: admin.md).
    fn retry_one(&mut self, i: usize, now: i64) -> bool {
        let t = &self.tasks[i];
        if let Some(k) = &t.unique_key
            && self.holder(&t.queue, k).is_some_and(|h| h != i)
        {
            return false;
        }
        let status = if t.own_done {
            St::Waiting
        } else if !self.deps_done(i) {
            St::Blocked
        } else {
            St::Queued
        };
        let t = &mut self.tasks[i];
        if status != St::Queued {
            event(&format!("retry: back to {}", status.name()));
        }
        t.status = status;
        t.attempts = 0;
        t.progress = 0.0;
        t.run_at = now;
        t.worker = None;
        t.lease_until = None;
        t.started_at = None;
        t.completed_at = None;
        t.held = None;
        t.updated_at = now;
        true
    }
}

/// Which queues a claim takes from.
#[derive(Clone, Debug)]
enum Scope {
    All,
    Some(Vec<String>),
}

impl Scope {
    fn covers(&self, q: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Some(v) => v.iter().any(|x| x == q),
        }
    }
}

/// What the model expects of a call before seeing its outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Accept,
    Reject,
    Either,
}

fn expect_from(q: Q) -> Expect {
    match q {
        Q::Good => Expect::Accept,
        Q::Unsure => Expect::Either,
        Q::Bad => Expect::Reject,
    }
}

type R<T> = Result<T, String>;

/// Settles acceptance: Ok(true) when the call was accepted (and allowed to
/// be), Ok(false) when it was refused (and allowed to be).
fn settle(e: Expect, out: &Outcome) -> R<bool> {
    match (e, out) {
        (Expect::Reject, Ok(v)) => Err(format!("accepted ({v:?}) but the model refuses it")),
        (Expect::Accept, Err(m)) => Err(format!("refused ({m}) but the model accepts it")),
        (_, Ok(_)) => Ok(true),
        (_, Err(_)) => Ok(false),
    }
}

/// A canonical UUID (lower-case, hyphenated) and whether the spelling is
/// one the reference promises to accept ("UUID text in any case").
fn uuid_of(arg: &Arg) -> (Option<String>, Q) {
    let Arg::Text(s) = arg else {
        return (None, Q::Bad);
    };
    let hexes = |t: &str| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit());
    let hyphenated = |t: &str| {
        t.len() == 36
            && t.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    let canon = |t: &str| {
        let h: String = t
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    };
    if hyphenated(s) {
        return (Some(canon(s)), Q::Good);
    }
    let inner = s
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .or_else(|| s.strip_prefix("urn:uuid:"))
        .unwrap_or(s);
    if hexes(inner) || hyphenated(inner) {
        return (Some(canon(inner)), Q::Unsure);
    }
    (None, Q::Bad)
}

/// The options of one call, resolved, with the model's verdict so far.
struct Options {
    map: Vec<(String, J)>,
    v: Verdict,
}

impl Options {
    fn get(&self, key: &str) -> Option<&J> {
        self.map.iter().find(|(k, _)| k == key).map(|(_, j)| j)
    }

    /// An integer option in lo..=hi. JSON null counts as absent (Unsure).
    fn int(&mut self, key: &str, lo: i64, hi: i64) -> Option<i64> {
        let v = match self.get(key)? {
            J::Int(i) => Some(*i),
            J::Num(_, whole) => *whole,
            J::Null => {
                self.v.note(Q::Unsure);
                return None;
            }
            _ => None,
        };
        match v {
            Some(i) if (lo..=hi).contains(&i) => Some(i),
            _ => {
                self.v.bad();
                None
            }
        }
    }

    /// A non-empty string option.
    fn str(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            J::Str(s) if !s.is_empty() => Some(s.clone()),
            J::Null => {
                self.v.note(Q::Unsure);
                None
            }
            _ => {
                self.v.bad();
                None
            }
        }
    }

    /// An id option, as the argument it would be: null counts as absent.
    fn id_opt(&mut self, key: &str) -> Option<Arg> {
        match self.get(key)? {
            J::Null => {
                self.v.note(Q::Unsure);
                None
            }
            J::Str(s) => Some(Arg::Text(s.clone())),
            _ => {
                self.v.bad();
                None
            }
        }
    }

    /// One of `allowed` (its index); absent or null: None.
    fn choice(&mut self, key: &str, allowed: &[&str]) -> Option<usize> {
        match self.get(key)? {
            J::Str(s) if allowed.contains(&s.as_str()) => allowed.iter().position(|a| a == s),
            J::Null => {
                self.v.note(Q::Unsure);
                None
            }
            _ => {
                self.v.bad();
                None
            }
        }
    }

    /// A `true` or `false` option; absent or null: false.
    fn flag(&mut self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(J::Bool(b)) => *b,
            Some(J::Null) => {
                self.v.note(Q::Unsure);
                false
            }
            Some(_) => {
                self.v.bad();
                false
            }
        }
    }

    /// The `depends_on` option: an array of strings, each to be read as a
    /// task id.
    fn deps(&mut self, key: &str) -> Vec<Arg> {
        match self.get(key).cloned() {
            None => vec![],
            Some(J::Null) => {
                self.v.note(Q::Unsure);
                vec![]
            }
            Some(J::Arr(items)) => items
                .into_iter()
                .filter_map(|j| match j {
                    J::Str(s) => Some(Arg::Text(s)),
                    _ => {
                        self.v.bad();
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.v.bad();
                vec![]
            }
        }
    }

    fn present(&self, key: &str) -> bool {
        !matches!(self.get(key), None | Some(J::Null))
    }

    /// The clock: `now` is always given; out of range is refused.
    fn now(&mut self) -> i64 {
        self.int("now", 0, MAX_TIME).unwrap_or(0)
    }

    /// A claim's queues option.
    fn scope(&mut self) -> Scope {
        match self.get("queue").cloned() {
            None => Scope::All,
            Some(J::Null) => {
                self.v.note(Q::Unsure);
                Scope::All
            }
            Some(J::Str(s)) if !s.is_empty() => Scope::Some(vec![s]),
            Some(J::Arr(items)) if !items.is_empty() => {
                let names: Vec<String> = items
                    .iter()
                    .filter_map(|j| match j {
                        J::Str(s) if !s.is_empty() => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if names.len() != items.len() {
                    self.v.bad();
                }
                Scope::Some(names)
            }
            Some(_) => {
                self.v.bad();
                Scope::All
            }
        }
    }

    fn lease(&mut self, default: Option<i64>) -> Option<i64> {
        if let Some(J::Int(0) | J::Num(_, Some(0))) = self.get("lease") {
            self.v.note(Q::Unsure); // a zero-length lease: not documented either way
            return Some(0);
        }
        self.int("lease", 1, MAX_LEASE).or(default)
    }
}

/// Fencing: the `attempt` option against the task's current attempt.
/// None: the call acts on the current attempt; Some(false): stale.
fn fence(o: &mut Options, current: i64) -> Option<bool> {
    let a = match o.get("attempt")? {
        J::Int(i) => Some(*i),
        J::Num(_, w) => *w,
        J::Null => {
            o.v.note(Q::Unsure);
            return None;
        }
        _ => None,
    };
    match a {
        Some(a) if a == current && (1..=1000).contains(&a) => Some(true),
        Some(a) if a == current => {
            o.v.note(Q::Unsure);
            Some(true)
        }
        Some(_) => Some(false),
        None => {
            o.v.bad();
            Some(false)
        }
    }
}

impl Model {
    fn idx(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    fn resolve_id(&self, r: &IdRef) -> Arg {
        let n = self.tasks.len();
        match r {
            IdRef::Known(i, upper) if n > 0 => {
                let id = &self.tasks[i % n].id;
                Arg::Text(if *upper {
                    id.to_uppercase()
                } else {
                    id.clone()
                })
            }
            IdRef::Known(i, upper) => self.resolve_id(&IdRef::Fresh(*i as u8 % 8, *upper)),
            IdRef::InState(st, i) | IdRef::Child(st, i) => {
                let child = matches!(r, IdRef::Child(..));
                let mut of: Vec<&Task> = self
                    .tasks
                    .iter()
                    .filter(|t| t.status == *st && (!child || t.parent.is_some()))
                    .collect();
                of.sort_by_key(|t| std::cmp::Reverse((t.updated_at, t.seq)));
                match of.len() {
                    0 => self.resolve_id(&IdRef::Known(*i, false)),
                    n => Arg::Text(of[i % n].id.clone()),
                }
            }
            IdRef::Fresh(k, upper) => {
                let id = fresh_id(*k);
                Arg::Text(if *upper { id.to_uppercase() } else { id })
            }
            IdRef::Form(i, f) if n > 0 => {
                let id = &self.tasks[i % n].id;
                let plain = id.replace('-', "");
                Arg::Text(match f {
                    0 => format!("{{{id}}}"),
                    1 => plain.to_uppercase(),
                    _ => format!("urn:uuid:{id}"),
                })
            }
            IdRef::Form(..) => Arg::text("{}"),
            IdRef::Parent(i) => {
                let mut of: Vec<&Task> = self
                    .tasks
                    .iter()
                    .filter(|t| self.tasks.iter().any(|c| c.parent.as_ref() == Some(&t.id)))
                    .collect();
                of.sort_by_key(|t| std::cmp::Reverse((t.updated_at, t.seq)));
                match of.len() {
                    0 => self.resolve_id(&IdRef::Known(*i, false)),
                    n => Arg::Text(of[i % n].id.clone()),
                }
            }
            IdRef::Lit(a) => a.clone(),
        }
    }

    /// A `depends_on` list as JSON; `own` is the id the call gives the new
    /// task.
    fn resolve_deps(&self, list: &[DepRef], own: &J) -> J {
        J::Arr(
            list.iter()
                .map(|d| match d {
                    DepRef::Id(r) => self.resolve(&V::Id(r.clone()), 0),
                    DepRef::Own => own.clone(),
                    DepRef::Raw(j) => j.clone(),
                })
                .collect(),
        )
    }

    fn resolve(&self, v: &V, attempts: i64) -> J {
        match v {
            V::Deps(list) => self.resolve_deps(list, &J::Str(fresh_id(0))),
            V::J(j) => j.clone(),
            V::Clock(d) => J::Int((self.clock + d).max(0)),
            V::ClockReal => J::Num(format!("{}.0", self.clock), Some(self.clock)),
            V::Attempt(d) => J::Int(attempts + d),
            V::Id(r) => match self.resolve_id(r) {
                Arg::Text(s) => J::Str(s),
                Arg::Int(i) => J::Int(i),
                _ => J::Null,
            },
            V::Wb => J::Int(self.wb_ms),
        }
    }

    /// Resolves the options for a call on the task whose attempt count is
    /// `attempts`, checking the keys against `allowed`.
    fn options(&self, o: &Opts, allowed: &[&str], attempts: i64) -> (Arg, Options) {
        let mut v = Verdict::default();
        match o {
            Opts::Raw(a) => {
                v.bad();
                (a.clone(), Options { map: vec![], v })
            }
            Opts::Obj(entries) => {
                let mut map: Vec<(String, J)> = entries
                    .iter()
                    .map(|(k, x)| (k.clone(), self.resolve(x, attempts)))
                    .collect();
                // A dependency on "itself" names the id given in `id`.
                if let Some(own) = map.iter().find(|(k, _)| k == "id").map(|(_, j)| j.clone()) {
                    for ((_, j), (_, x)) in map.iter_mut().zip(entries) {
                        if let V::Deps(list) = x {
                            *j = self.resolve_deps(list, &own);
                        }
                    }
                }
                if map.iter().any(|(k, _)| !allowed.contains(&k.as_str())) {
                    v.bad();
                }
                let text = J::Obj(map.clone()).render();
                (Arg::Text(text), Options { map, v })
            }
        }
    }

    fn task_of(&self, id: &Arg) -> (Option<String>, Option<usize>, Q) {
        let (canon, q) = uuid_of(id);
        let i = canon.as_deref().and_then(|c| self.idx(c));
        (canon, i, q)
    }

    fn attempts_of(&self, id: &Arg) -> i64 {
        self.task_of(id).1.map_or(0, |i| self.tasks[i].attempts)
    }
}

/// A JSON document argument's verdict: NULL, or text that is JSON.
fn json_q(d: &JsonArg) -> Q {
    match d.arg {
        Arg::Null | Arg::Real(_) if d.q == Q::Good => Q::Good,
        _ => d.q,
    }
}

fn doc_text(d: &JsonArg) -> Option<String> {
    d.arg.huge_text()
}

/// A non-empty text argument (type, worker).
fn name_q(a: &Arg) -> Q {
    match a.huge_text() {
        Some(s) if !s.is_empty() => Q::Good,
        _ => Q::Bad,
    }
}

/// Progress values equal but for the rounding of a mean: a rollup sums
/// its children in an order the reference does not fix.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

fn json_eq(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (serde_json::from_str::<Json>(a), serde_json::from_str::<Json>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

// ---- one step ------------------------------------------------------------

/// A call turned into SQL, with what it needs for checking.
struct Sql {
    /// The function's name, or `tasks` for table writes: the error prefix.
    name: &'static str,
    text: String,
    params: Vec<Value>,
    select: bool,
}

fn function_sql(name: &'static str, args: &[Arg]) -> Sql {
    let mut ph = Vec::new();
    let mut params = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let (p, v) = a.bind(i + 1);
        ph.push(p);
        params.push(v);
    }
    Sql {
        name,
        text: format!("SELECT {name}({})", ph.join(", ")),
        params,
        select: true,
    }
}

struct Runner<'a> {
    db: &'a Connection,
    m: Model,
}

impl Runner<'_> {
    fn run(&self, sql: &Sql) -> Outcome {
        run_sql(self.db, &sql.text, sql.params.clone(), sql.select)
    }

    /// Runs one call and checks it against the model.
    fn step(&mut self, call: &Call) -> R<()> {
        if let Call::Tick(ms) = call {
            self.m.clock += ms;
            return Ok(());
        }
        let before = snapshot(self.db);
        let (sql, out) = self.dispatch(call)?;
        let verb = if sql.name == "tasks" {
            sql.text.split(' ').next().unwrap_or("?")
        } else {
            sql.name
        };
        STATS.with(|s| {
            let mut s = s.borrow_mut();
            let e = s.entry(verb.to_string()).or_default();
            if out.is_ok() { e.0 += 1 } else { e.1 += 1 }
        });
        if let Err(msg) = &out {
            if msg.contains("internal error in sqlite-task") {
                return Err(format!("panic inside the extension: {msg}"));
            }
            let prefix = format!("{}: ", sql.name);
            if !msg.starts_with(&prefix) {
                return Err(format!("error does not start with {prefix:?}: {msg}"));
            }
            let after = snapshot(self.db);
            if after != before {
                return Err(format!(
                    "a refused call ({msg}) changed the storage:\n{}",
                    diff(&before, &after)
                ));
            }
        }
        if let Some(why) = self.m.lost {
            event(why);
            return Ok(());
        }
        self.compare()
    }

    /// The `tasks` table against the model.
    fn compare(&self) -> R<()> {
        let view = rows(self.db, VIEW_SQL);
        if view.len() != self.m.tasks.len() {
            return Err(format!(
                "tasks has {} rows, the model {}: ids {:?} vs {:?}",
                view.len(),
                self.m.tasks.len(),
                view.iter().map(|r| r[1].clone()).collect::<Vec<_>>(),
                self.m.tasks.iter().map(|t| &t.id).collect::<Vec<_>>()
            ));
        }
        for (i, (row, t)) in view.iter().zip(&self.m.tasks).enumerate() {
            let int = |v: i64| SqlV::Int(v);
            let opt_int = |v: Option<i64>| v.map_or(SqlV::Null, SqlV::Int);
            let opt_text = |v: &Option<String>| v.clone().map_or(SqlV::Null, SqlV::Text);
            let want = [
                int(t.seq),
                SqlV::Text(t.id.clone()),
                SqlV::Text(t.queue.clone()),
                SqlV::Text(t.ty.clone()),
                SqlV::Text(t.status.name().into()),
                int(t.priority),
                SqlV::Real(self.m.shown_progress(i)),
                opt_text(&t.details),
                opt_text(&t.result),
                opt_text(&t.error),
                int(t.attempts),
                int(t.max_attempts),
                opt_text(&t.parent),
                opt_text(&t.worker),
                opt_int(t.lease_until),
                int(t.run_at),
                int(t.created_at),
                int(t.updated_at),
                opt_int(t.started_at),
                opt_int(t.completed_at),
                opt_text(&t.unique_key),
                opt_text(&t.deps_json()),
                int(self.m.children(&t.id).len() as i64),
                int(self.m.children_done(&t.id) as i64),
            ];
            for (c, (got, want)) in row.iter().zip(want.iter()).enumerate() {
                let same = match (VIEW_COLS[c], got, want) {
                    ("progress", g, SqlV::Real(w)) => g.num().is_some_and(|g| close(g, *w)),
                    ("result", SqlV::Text(g), SqlV::Text(w)) => json_eq(g, w),
                    _ => got == want,
                };
                if !same {
                    return Err(format!(
                        "task {} column {}: tasks shows {got:?}, the model {want:?}\n  \
                         tasks row: {row:?}\n  model: {t:?}",
                        t.id, VIEW_COLS[c]
                    ));
                }
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, call: &Call) -> R<(Sql, Outcome)> {
        match call {
            Call::Tick(_) => unreachable!(),
            Call::Enqueue { ty, details, opts } => self.enqueue(ty, details, opts),
            Call::Claim { worker, opts } => self.claim(worker, None, opts),
            Call::ClaimBatch {
                worker,
                limit,
                opts,
            } => self.claim(worker, Some(limit), opts),
            Call::Progress { id, pct, opts } => self.progress(id, Some(pct), opts),
            Call::Heartbeat { id, opts } => self.progress(id, None, opts),
            Call::Complete { id, result, opts } => self.complete(id, result, opts),
            Call::Fail { id, error, opts } => self.fail(id, error, opts),
            Call::Cancel { id, opts } => self.cancel_or_retry(id, opts, true),
            Call::Retry { id, opts } => self.cancel_or_retry(id, opts, false),
            Call::CompleteNext {
                id,
                result,
                worker,
                opts,
            } => self.complete_next(id, result, worker, opts),
            Call::CompleteBatch { items, opts } => self.complete_batch(items, opts),
            Call::Insert { rows } => self.insert(rows),
            Call::Update { set, target } => self.update(set, target),
            Call::Delete { target } => self.delete(target),
            Call::Tree { root } => self.tree(root),
        }
    }

    // ---- verbs ----

    fn enqueue(&mut self, ty: &Arg, details: &JsonArg, opts: &Opts) -> R<(Sql, Outcome)> {
        let (oarg, mut o) = self.m.options(
            opts,
            &[
                "queue",
                "priority",
                "run_at",
                "delay",
                "max_attempts",
                "parent_id",
                "id",
                "now",
                "depends_on",
                "unique_key",
                "on_conflict",
                "unique_scope",
                "on_child_failure",
                "wait_for_children",
            ],
            0,
        );
        let sql = function_sql("task_enqueue", &[ty.clone(), details.arg.clone(), oarg]);
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        v.note(name_q(ty));
        v.note(json_q(details));
        let new = NewTask {
            ty: ty.huge_text().unwrap_or_default(),
            details: doc_text(details),
            queue: o.str("queue"),
            priority: o.int("priority", i64::from(i32::MIN), i64::from(i32::MAX)),
            max_attempts: o.int("max_attempts", 1, 1000),
            run_at: None,
            delay: None,
            id: o.id_opt("id"),
            parent: o.id_opt("parent_id"),
            now: o.now(),
            deps: o.deps("depends_on"),
            key: o.str("unique_key"),
            conflict: o.choice("on_conflict", &["keep", "replace", "error"]),
            key_when_completed: o.choice("unique_scope", &["active", "completed"]) == Some(1),
            tolerant: o.choice("on_child_failure", &["fail", "continue"]) == Some(1),
            group: o.flag("wait_for_children"),
        };
        let new = NewTask {
            run_at: o.int("run_at", 0, MAX_TIME),
            delay: o.int("delay", 0, MAX_TIME - new.now.min(MAX_TIME)),
            ..new
        };
        if o.present("run_at") && o.present("delay") {
            v.bad();
        }
        if new.key.is_none() && (o.present("on_conflict") || o.present("unique_scope")) {
            // Options of a unique key without one: not documented either way.
            v.note(Q::Unsure);
        }
        v.note(o.v.q());
        let mut next = self.m.clone();
        let added = next.add(&new, &mut v);
        let accepted = settle(expect_from(v.q()), &out)?;
        if accepted {
            let id = match &out {
                Ok(SqlV::Text(id)) => id.clone(),
                other => return Err(format!("task_enqueue returned {other:?}")),
            };
            next.adopt_new_id(added, &id)?;
            self.m = next;
        }
        Ok((sql, out))
    }

    fn claim(&mut self, worker: &Arg, limit: Option<&Arg>, opts: &Opts) -> R<(Sql, Outcome)> {
        let (oarg, mut o) = self.m.options(opts, &["queue", "lease", "now"], 0);
        let sql = match limit {
            None => function_sql("task_claim", &[worker.clone(), oarg]),
            Some(l) => function_sql("task_claim_batch", &[worker.clone(), l.clone(), oarg]),
        };
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        v.note(name_q(worker));
        let n = match limit {
            None => 1,
            Some(Arg::Int(n)) if (1..=10_000).contains(n) => *n,
            Some(Arg::Real(r)) if *r == 2.0 => {
                v.note(Q::Unsure);
                2
            }
            Some(_) => {
                v.bad();
                1
            }
        };
        let scope = o.scope();
        let lease = o.lease(Some(DEFAULT_LEASE)).unwrap_or(DEFAULT_LEASE);
        let now = o.now();
        v.note(o.v.q());
        if settle(expect_from(v.q()), &out)? {
            let got = out.as_ref().unwrap();
            let claimed = parse_claims(got, limit.is_some(), &self.m)?;
            let w = worker.huge_text().unwrap_or_default();
            if v.q() == Q::Unsure {
                event("claim: accepted an unsure argument");
            }
            self.m
                .check_claim(self.db, &w, &scope, lease, now, n, limit.is_some(), claimed)?;
        }
        Ok((sql, out))
    }

    fn progress(&mut self, id: &IdRef, pct: Option<&Arg>, opts: &Opts) -> R<(Sql, Outcome)> {
        let id_arg = self.m.resolve_id(id);
        let attempts = self.m.attempts_of(&id_arg);
        let allowed: &[&str] = if pct.is_some() {
            &["attempt", "lease", "now", "writeback"]
        } else {
            &["attempt", "lease", "now"]
        };
        let (oarg, mut o) = self.m.options(opts, allowed, attempts);
        let sql = match pct {
            Some(p) => function_sql("task_progress", &[id_arg.clone(), p.clone(), oarg]),
            None => function_sql("task_heartbeat", &[id_arg.clone(), oarg]),
        };
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        let (_, idx, q) = self.m.task_of(&id_arg);
        v.note(q);
        let percent = match pct {
            None => None,
            Some(Arg::Int(i)) if (0..=100).contains(i) => Some(*i as f64),
            Some(Arg::Real(r)) if (0.0..=100.0).contains(r) => Some(*r),
            Some(_) => {
                v.bad();
                None
            }
        };
        let lease = o.lease(None);
        let writeback = if pct.is_some() {
            o.int("writeback", 0, MAX_LEASE)
        } else {
            None
        };
        let now = o.now();
        let fenced = fence(&mut o, attempts);
        v.note(o.v.q());
        let t = idx.map(|i| self.m.tasks[i].clone());
        // Running: the report is taken; cancelled: the worker is told.
        let state = match &t {
            Some(t) if fenced != Some(false) && matches!(t.status, St::Running | St::Cancelled) => {
                Q::Good
            }
            _ => Q::Bad,
        };
        v.note(state);
        let accepted = settle(expect_from(v.q()), &out)?;
        let Some(i) = idx else {
            return Ok((sql, out));
        };
        if !accepted {
            if refused_after_drop(&out) && self.m.tasks[i].held.take().is_some() {
                event("KNOWN BUG: refused call dropped a held value");
            }
            return Ok((sql, out));
        }
        let t = &mut self.m.tasks[i];
        let want = if t.status == St::Cancelled {
            "cancelled"
        } else {
            "running"
        };
        if out != Ok(SqlV::Text(want.into())) {
            return Err(format!("expected {want:?}, got {out:?}"));
        }
        if t.status == St::Cancelled {
            return Ok((sql, out));
        }
        // Write-back: hold the report when the last write-through made with
        // write-back is recent enough (same attempt, within its interval).
        if let (Some(p), Some(_), None) = (percent, writeback, lease)
            && let Some(h) = t.held.as_mut()
            && h.attempt == t.attempts
            && now >= h.written_at
            && now - h.written_at < h.interval
        {
            h.percent = p;
            event("write-back: held");
            return Ok((sql, out));
        }
        let written = match (percent, t.held) {
            (Some(p), _) => p,
            (None, Some(h)) if h.attempt == t.attempts => h.percent,
            (None, _) => t.progress,
        };
        t.progress = written;
        // The lease is renewed when a new length is given or once a quarter
        // of it has passed since it was last renewed.
        let fresh = t
            .lease_until
            .is_some_and(|until| until > now + t.lease_ms - t.lease_ms / 4);
        if let Some(l) = lease {
            t.lease_ms = l;
        }
        if lease.is_some() || !fresh {
            t.lease_until = Some(now + t.lease_ms);
            event("lease: renewed");
        } else {
            event("lease: kept");
        }
        t.updated_at = now;
        t.held = match (percent, writeback) {
            (Some(p), Some(ms)) => Some(Held {
                attempt: t.attempts,
                percent: p,
                written_at: now,
                interval: ms.min(t.lease_ms / 2),
            }),
            _ => None,
        };
        Ok((sql, out))
    }

    fn complete(&mut self, id: &IdRef, result: &JsonArg, opts: &Opts) -> R<(Sql, Outcome)> {
        let id_arg = self.m.resolve_id(id);
        let attempts = self.m.attempts_of(&id_arg);
        let (oarg, mut o) = self.m.options(opts, &["attempt", "now"], attempts);
        let sql = function_sql("task_complete", &[id_arg.clone(), result.arg.clone(), oarg]);
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        v.note(json_q(result));
        let now = o.now();
        let fenced = fence(&mut o, attempts);
        v.note(o.v.q());
        let mut next = self.m.clone();
        let done = next.complete(&id_arg, doc_text(result), fenced, now, &mut v);
        if settle(expect_from(v.q()), &out)? {
            let want = done.map_or("?", |(_, s)| s.name());
            if out != Ok(SqlV::Text(want.into())) {
                return Err(format!("expected {want:?}, got {out:?}"));
            }
            self.m = next;
        }
        Ok((sql, out))
    }

    fn fail(&mut self, id: &IdRef, error: &Arg, opts: &Opts) -> R<(Sql, Outcome)> {
        let id_arg = self.m.resolve_id(id);
        let attempts = self.m.attempts_of(&id_arg);
        let (oarg, mut o) = self
            .m
            .options(opts, &["attempt", "now", "retry", "delay"], attempts);
        let sql = function_sql("task_fail", &[id_arg.clone(), error.clone(), oarg]);
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        let err_text = error.huge_text();
        if err_text.is_none() {
            v.bad();
        }
        let now = o.now();
        let fenced = fence(&mut o, attempts);
        let retry = match o.get("retry") {
            None => true,
            Some(J::Bool(b)) => *b,
            Some(J::Null) => {
                o.v.note(Q::Unsure);
                true
            }
            Some(_) => {
                o.v.bad();
                true
            }
        };
        let delay = o.int("delay", 0, MAX_TIME - now.min(MAX_TIME));
        v.note(o.v.q());
        let (_, idx, q) = self.m.task_of(&id_arg);
        v.note(q);
        match idx.map(|i| &self.m.tasks[i]) {
            Some(t) if t.status == St::Running && fenced != Some(false) => {}
            _ => v.bad(),
        }
        if !settle(expect_from(v.q()), &out)? {
            return Ok((sql, out));
        }
        let i = idx.unwrap();
        let t = &mut self.m.tasks[i];
        let final_ = !retry || t.exhausted();
        let want = if final_ { "failed" } else { "queued" };
        if out != Ok(SqlV::Text(want.into())) {
            return Err(format!("expected {want:?}, got {out:?}"));
        }
        if let Some(h) = t.held.take()
            && h.attempt == t.attempts
        {
            t.progress = h.percent;
        }
        t.error = err_text;
        t.lease_until = None;
        t.updated_at = now;
        if final_ {
            t.status = St::Failed;
            t.completed_at = Some(now);
            self.m.settle(i, now);
        } else {
            t.status = St::Queued;
            t.completed_at = None;
            t.worker = None;
            t.run_at = match delay {
                Some(d) => now + d,
                None => {
                    // 1 s · 2^(attempt-1), capped at 1 h, times [0.5, 1]
                    let b = (1_000i64 << (t.attempts - 1).clamp(0, 40)).min(3_600_000);
                    let got = rows(
                        self.db,
                        &format!("SELECT run_at FROM task_store WHERE id = '{}'", t.id),
                    );
                    let run_at = match got.first().and_then(|r| r.first()) {
                        Some(SqlV::Int(r)) => *r,
                        other => return Err(format!("run_at after task_fail: {other:?}")),
                    };
                    if !(now + b / 2 - 1..=now + b).contains(&run_at) {
                        return Err(format!(
                            "retry at {run_at}: outside the backoff window {}..={} (attempt {})",
                            now + b / 2,
                            now + b,
                            t.attempts
                        ));
                    }
                    run_at
                }
            };
        }
        Ok((sql, out))
    }

    fn cancel_or_retry(&mut self, id: &IdRef, opts: &Opts, cancel: bool) -> R<(Sql, Outcome)> {
        let id_arg = self.m.resolve_id(id);
        let (oarg, mut o) = self.m.options(opts, &["now"], 0);
        let name = if cancel { "task_cancel" } else { "task_retry" };
        let sql = function_sql(name, &[id_arg.clone(), oarg]);
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        let now = o.now();
        v.note(o.v.q());
        let mut next = self.m.clone();
        next.cancel_or_retry(&id_arg, now, cancel, &mut v);
        if settle(expect_from(v.q()), &out)? {
            // A retry returns the status the task is back in.
            let want = if cancel {
                "cancelled"
            } else {
                next.task_of(&id_arg)
                    .1
                    .map_or("queued", |i| next.tasks[i].status.name())
            };
            if out != Ok(SqlV::Text(want.into())) {
                return Err(format!("expected {want:?}, got {out:?}"));
            }
            self.m = next;
        }
        Ok((sql, out))
    }

    fn complete_next(
        &mut self,
        id: &IdRef,
        result: &JsonArg,
        worker: &Arg,
        opts: &Opts,
    ) -> R<(Sql, Outcome)> {
        let id_arg = self.m.resolve_id(id);
        let attempts = self.m.attempts_of(&id_arg);
        let (oarg, mut o) = self
            .m
            .options(opts, &["attempt", "now", "queue", "lease"], attempts);
        let sql = function_sql(
            "task_complete_next",
            &[id_arg.clone(), result.arg.clone(), worker.clone(), oarg],
        );
        let out = self.run(&sql);
        let mut v = std::mem::take(&mut o.v);
        v.note(json_q(result));
        v.note(name_q(worker));
        let now = o.now();
        let fenced = fence(&mut o, attempts);
        let scope = o.scope();
        let lease = o.lease(Some(DEFAULT_LEASE)).unwrap_or(DEFAULT_LEASE);
        v.note(o.v.q());
        let mut next = self.m.clone();
        let done = next.complete(&id_arg, doc_text(result), fenced, now, &mut v);
        if !settle(expect_from(v.q()), &out)? {
            // KNOWN BUG: a claim refused after the completion (its lease
            // is checked late) leaves the completion's drop of the held value.
            if let (Err(m), Some((i, _))) = (&out, done)
                && m.contains(": lease must be")
                && KNOWN_BUG_REFUSED_REPORT_DROPS_HELD
                && self.m.tasks[i].held.take().is_some()
            {
                event("KNOWN BUG: refused call dropped a held value");
            }
            return Ok((sql, out));
        }
        self.m = next;
        let claimed = parse_claims(out.as_ref().unwrap(), false, &self.m)?;
        let w = worker.huge_text().unwrap_or_default();
        self.m
            .check_claim(self.db, &w, &scope, lease, now, 1, false, claimed)?;
        Ok((sql, out))
    }

    fn complete_batch(&mut self, items: &Items, opts: &Opts) -> R<(Sql, Outcome)> {
        let (oarg, mut o) = self.m.options(opts, &["now"], 0);
        let mut v = std::mem::take(&mut o.v);
        let now = o.now();
        v.note(o.v.q());
        // The items are read whole first (shape, keys, JSON), then completed
        // one by one; the first refusal undoes the ones before it.
        let mut parsed: Vec<(Arg, Option<bool>, Option<String>)> = Vec::new();
        let text = match items {
            Items::Raw(a) => {
                match a {
                    Arg::Text(t) if t == "[]" => v.note(Q::Unsure),
                    _ => v.bad(),
                }
                a.clone()
            }
            Items::List(list) => {
                if list.is_empty() {
                    v.note(Q::Unsure); // an empty batch: not documented
                    if KNOWN_BUG_EMPTY_BATCH_SKIPS_OPTIONS && v.q() == Q::Bad {
                        // KNOWN BUG: `now` is only checked per item.
                        v = Verdict(Some(Q::Unsure));
                    }
                }
                let mut parts = Vec::new();
                for it in list {
                    let id = it.id.as_ref().map(|x| self.m.resolve(x, 0));
                    let attempts = match &id {
                        Some(J::Str(s)) => self.m.attempts_of(&Arg::Text(s.clone())),
                        _ => 0,
                    };
                    let attempt = it.attempt.as_ref().map(|x| self.m.resolve(x, attempts));
                    let mut kv: Vec<(String, J)> = Vec::new();
                    if let Some(j) = &id {
                        kv.push(("id".into(), j.clone()));
                    }
                    if let Some(j) = &attempt {
                        kv.push(("attempt".into(), j.clone()));
                    }
                    if it.extra {
                        kv.push(("results".into(), J::Null));
                        v.bad();
                    }
                    let mut rendered = J::Obj(kv).render();
                    let result = match &it.result {
                        Some((raw, q)) => {
                            v.note(*q);
                            rendered.pop();
                            if rendered.len() > 1 {
                                rendered.push(',');
                            }
                            rendered.push_str(&format!("\"result\":{raw}}}"));
                            // Stored as written, as task_complete stores it
                            // (not re-serialized, any depth it accepts); JSON
                            // null is no result. Text that is not JSON makes
                            // the call fail, so what it would store is moot.
                            Some(raw.trim_matches([' ', '\t', '\n', '\r']))
                                .filter(|r| *r != "null")
                                .map(str::to_string)
                        }
                        None => None,
                    };
                    parts.push(rendered);
                    let id_arg = match id {
                        Some(J::Str(s)) => Arg::Text(s),
                        _ => {
                            v.bad();
                            Arg::Null
                        }
                    };
                    let fenced = match attempt {
                        None | Some(J::Null) => None,
                        Some(J::Int(a)) => Some(a == attempts),
                        Some(J::Num(..)) => {
                            v.note(Q::Unsure); // whole reals in items: not documented
                            Some(true)
                        }
                        Some(_) => {
                            v.bad();
                            None
                        }
                    };
                    parsed.push((id_arg, fenced, result));
                }
                Arg::Text(format!("[{}]", parts.join(",")))
            }
        };
        let sql = function_sql("task_complete_batch", &[text, oarg]);
        let out = self.run(&sql);
        let order: Vec<Option<usize>> =
            parsed.iter().map(|(id, ..)| self.m.task_of(id).1).collect();
        let mut next = self.m.clone();
        let mut done = Vec::new();
        for (id, fenced, result) in parsed {
            match next.complete(&id, result, fenced, now, &mut v) {
                Some((i, _)) if v.q() != Q::Bad => done.push(i),
                _ => break,
            }
        }
        if settle(expect_from(v.q()), &out)? {
            let n = done.len() as i64;
            if out != Ok(SqlV::Int(n)) {
                return Err(format!("expected {n}, got {out:?}"));
            }
            self.m = next;
        } else if let Err(m) = &out {
            // KNOWN BUG: the items completed before the one refused by its
            // task's state dropped their held values; the savepoint undid
            // the rest. (Items are all read before any is completed.)
            let failed_item = m
                .strip_prefix("task_complete_batch: item ")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse::<usize>().ok());
            let read = [
                "must be an object",
                "unknown key",
                "task id string",
                "whole number",
            ];
            if let Some(n) = failed_item
                && KNOWN_BUG_REFUSED_REPORT_DROPS_HELD
                && !read.iter().any(|r| m.contains(r))
            {
                for i in order.iter().take(n).flatten() {
                    if self.m.tasks[*i].held.take().is_some() {
                        event("KNOWN BUG: refused call dropped a held value");
                    }
                }
            }
        }
        Ok((sql, out))
    }

    fn insert(&mut self, rows_: &[Vec<(&'static str, P)>]) -> R<(Sql, Outcome)> {
        // All rows of one INSERT name the same columns: the first row's.
        let cols: Vec<&'static str> = rows_[0].iter().map(|(c, _)| *c).collect();
        let mut params = Vec::new();
        let mut tuples = Vec::new();
        let mut values: Vec<Vec<Arg>> = Vec::new();
        for r in rows_ {
            let mut ph = Vec::new();
            let mut vals = Vec::new();
            // A dependency on "itself" names the row's id.
            let own = match r.iter().find(|(k, _)| *k == "id") {
                Some((_, p)) => match self.param(p, &J::Null) {
                    Arg::Text(s) => J::Str(s),
                    _ => J::Null,
                },
                None => J::Str(fresh_id(0)),
            };
            for c in &cols {
                let a = match r.iter().find(|(k, _)| k == c) {
                    Some((_, p)) => self.param(p, &own),
                    None => Arg::Null,
                };
                let (p, val) = a.bind(params.len() + 1);
                ph.push(p);
                params.push(val);
                vals.push(a.as_stored());
            }
            tuples.push(format!("({})", ph.join(", ")));
            values.push(vals);
        }
        let sql = Sql {
            name: "tasks",
            text: format!(
                "INSERT INTO tasks({}) VALUES {}",
                cols.join(", "),
                tuples.join(", ")
            ),
            params,
            select: false,
        };
        let out = self.run(&sql);
        let mut v = Verdict::default();
        let mut next = self.m.clone();
        let mut added = 0;
        for (row_no, vals) in values.iter().enumerate() {
            let get = |c: &str| {
                cols.iter()
                    .position(|k| *k == c)
                    .map_or(Arg::Null, |i| vals[i].clone())
            };
            for c in &cols {
                let managed = !matches!(
                    *c,
                    "id" | "queue"
                        | "type"
                        | "status"
                        | "priority"
                        | "details"
                        | "max_attempts"
                        | "parent_id"
                        | "run_at"
                        | "delay"
                        | "now"
                        | "unique_key"
                        | "depends_on"
                        | "on_conflict"
                        | "unique_scope"
                        | "on_child_failure"
                        | "wait_for_children"
                );
                if managed {
                    v.note(if get(c) == Arg::Null {
                        Q::Unsure
                    } else {
                        Q::Bad
                    });
                }
            }
            match get("status") {
                Arg::Null => {}
                Arg::Text(s) if s == "queued" => {}
                _ => v.bad(),
            }
            let ty = get("type");
            v.note(name_q(&ty));
            let details = match cols.iter().position(|c| *c == "details") {
                Some(_) => match r_doc(&rows_[row_no]) {
                    Some(d) => {
                        v.note(json_q(&d));
                        doc_text(&d)
                    }
                    None => None,
                },
                None => None,
            };
            let queue = match get("queue") {
                Arg::Null => None,
                Arg::Text(s) if !s.is_empty() => Some(s),
                _ => {
                    v.bad();
                    None
                }
            };
            // A text column: one of `allowed` if given (its index).
            let mut choice = |c: &str, allowed: &[&str]| match get(c) {
                Arg::Null => None,
                Arg::Text(s) if allowed.contains(&s.as_str()) => {
                    allowed.iter().position(|a| *a == s)
                }
                _ => {
                    v.bad();
                    None
                }
            };
            let conflict = choice("on_conflict", &["keep", "replace", "error"]);
            let key_when_completed = choice("unique_scope", &["active", "completed"]) == Some(1);
            let tolerant = choice("on_child_failure", &["fail", "continue"]) == Some(1);
            let key = match get("unique_key") {
                Arg::Null => None,
                Arg::Text(s) => Some(s),
                _ => {
                    v.bad();
                    None
                }
            };
            if key.is_none()
                && (get("on_conflict") != Arg::Null || get("unique_scope") != Arg::Null)
            {
                v.note(Q::Unsure); // as for task_enqueue's options
            }
            // `depends_on` as written: a JSON array of id strings.
            let deps = match get("depends_on") {
                Arg::Null => vec![],
                Arg::Text(s) => match serde_json::from_str::<Vec<String>>(&s) {
                    Ok(ids) => ids.into_iter().map(Arg::Text).collect(),
                    Err(_) => {
                        v.bad();
                        vec![]
                    }
                },
                _ => {
                    v.bad();
                    vec![]
                }
            };
            let mut int = |c: &str, lo: i64, hi: i64| match get(c) {
                Arg::Null => None,
                a => column_int(&a, lo, hi, &mut v),
            };
            // The option as an integer column: 1 or 0 (another whole
            // number: not documented).
            let group = int("wait_for_children", i64::MIN, i64::MAX);
            let odd_group = group.is_some_and(|g| g != 0 && g != 1);
            let now = int("now", 0, MAX_TIME).unwrap_or(self.m.clock);
            let new = NewTask {
                ty: ty.huge_text().unwrap_or_default(),
                details,
                queue,
                priority: int("priority", i64::from(i32::MIN), i64::from(i32::MAX)),
                max_attempts: int("max_attempts", 1, 1000),
                run_at: int("run_at", 0, MAX_TIME),
                delay: int("delay", 0, MAX_TIME - now),
                id: match get("id") {
                    Arg::Null => None,
                    a => Some(a),
                },
                parent: match get("parent_id") {
                    Arg::Null => None,
                    a => Some(a),
                },
                now,
                deps,
                key,
                conflict,
                key_when_completed,
                tolerant,
                group: group.is_some_and(|g| g != 0),
            };
            if new.run_at.is_some() && new.delay.is_some() {
                v.bad();
            }
            if odd_group {
                v.note(Q::Unsure);
            }
            // A row whose key is held adds nothing but counts as inserted.
            next.add(&new, &mut v);
            added += 1;
        }
        if settle(expect_from(v.q()), &out)? {
            if out != Ok(SqlV::Int(added)) {
                return Err(format!("INSERT reported {out:?}, expected {added} rows"));
            }
            // Generated ids are read back from the table.
            let view = rows(self.db, VIEW_SQL);
            for t in next.tasks.iter_mut().filter(|t| t.id.is_empty()) {
                let row = view
                    .iter()
                    .find(|r| r[0] == SqlV::Int(t.seq))
                    .ok_or(format!("inserted row {} is missing", t.seq))?;
                let id = row[1].text().unwrap_or_default().to_string();
                if uuid_of(&Arg::Text(id.clone())).1 != Q::Good || self.m.idx(&id).is_some() {
                    return Err(format!("generated id {id:?} is not a new UUID"));
                }
                t.id = id;
            }
            self.m = next;
        }
        Ok((sql, out))
    }

    /// A parameter's value; `own` is the id a dependency on itself names.
    fn param(&self, p: &P, own: &J) -> Arg {
        match p {
            P::Lit(a) => a.clone(),
            P::Doc(d) => d.arg.clone(),
            P::Clock(d) => Arg::Int(self.m.clock + d),
            P::Id(r) => self.m.resolve_id(r),
            P::Deps(list) => Arg::Text(self.m.resolve_deps(list, own).render()),
        }
    }

    /// The rows a WHERE clause matches, in rowid order, and its SQL.
    fn target(&self, t: &Target, params: &mut Vec<Value>) -> (String, Vec<usize>) {
        let all: Vec<usize> = (0..self.m.tasks.len()).collect();
        match t {
            Target::All => (String::new(), all),
            Target::Status(s) => (
                format!(" WHERE status = '{s}'"),
                all.into_iter()
                    .filter(|&i| self.m.tasks[i].status.name() == *s)
                    .collect(),
            ),
            Target::Rowid(n) => {
                let seq = if self.m.tasks.is_empty() {
                    1
                } else {
                    self.m.tasks[n % self.m.tasks.len()].seq
                };
                (
                    format!(" WHERE rowid = {seq}"),
                    all.into_iter()
                        .filter(|&i| self.m.tasks[i].seq == seq)
                        .collect(),
                )
            }
            Target::Id(r) => {
                let a = self.m.resolve_id(r);
                let (ph, val) = a.bind(params.len() + 1);
                params.push(val);
                let hit: Vec<usize> = match a.huge_text() {
                    Some(s) if !matches!(a, Arg::BadUtf8(_)) => all
                        .into_iter()
                        .filter(|&i| self.m.tasks[i].id == s)
                        .collect(),
                    _ => vec![],
                };
                (format!(" WHERE id = {ph}"), hit)
            }
        }
    }

    fn update(&mut self, set: &[(&'static str, P)], target: &Target) -> R<(Sql, Outcome)> {
        let mut params = Vec::new();
        let mut assigns = Vec::new();
        let mut vals = Vec::new();
        for (c, p) in set {
            let a = self.param(p, &J::Null);
            let (ph, val) = a.bind(params.len() + 1);
            params.push(val);
            assigns.push(format!("{c} = {ph}"));
            vals.push((*c, a.as_stored()));
        }
        let (where_, hit) = self.target(target, &mut params);
        let sql = Sql {
            name: "tasks",
            text: format!("UPDATE tasks SET {}{where_}", assigns.join(", ")),
            params,
            select: false,
        };
        let out = self.run(&sql);
        let mut v = Verdict::default();
        let mut next = self.m.clone();
        let now = vals
            .iter()
            .find(|(c, _)| *c == "now")
            .and_then(|(_, a)| match a {
                Arg::Int(i) => Some(*i),
                _ => None,
            })
            .unwrap_or(self.m.clock);
        for &i in &hit {
            next.update_row(i, &vals, now, &mut v);
        }
        if settle(expect_from(v.q()), &out)? {
            if out != Ok(SqlV::Int(hit.len() as i64)) {
                return Err(format!("UPDATE reported {out:?}, matched {}", hit.len()));
            }
            self.m = next;
        }
        Ok((sql, out))
    }

    fn delete(&mut self, target: &Target) -> R<(Sql, Outcome)> {
        let mut params = Vec::new();
        let (where_, hit) = self.target(target, &mut params);
        let sql = Sql {
            name: "tasks",
            text: format!("DELETE FROM tasks{where_}"),
            params,
            select: false,
        };
        let out = self.run(&sql);
        // A task goes with its descendants, and only if none of them (nor
        // itself) is unfinished.
        let mut gone = BTreeSet::new();
        let mut blocked = false;
        for &i in &hit {
            let mut stack = vec![self.m.tasks[i].id.clone()];
            while let Some(id) = stack.pop() {
                if !gone.insert(id.clone()) {
                    continue;
                }
                let t = &self.m.tasks[self.m.idx(&id).unwrap()];
                blocked |= !t.status.finished();
                stack.extend(
                    self.m
                        .tasks
                        .iter()
                        .filter(|c| c.parent.as_deref() == Some(&id))
                        .map(|c| c.id.clone()),
                );
            }
        }
        let e = if blocked {
            Expect::Reject
        } else {
            Expect::Accept
        };
        if settle(e, &out)? {
            self.m.delete(&gone);
        }
        Ok((sql, out))
    }

    /// `task_tree(root)`: the root and its descendants in tree order (each
    /// task before its children, children in enqueue order), read as one
    /// JSON array so that the call has one value like the others.
    fn tree(&mut self, root: &IdRef) -> R<(Sql, Outcome)> {
        let arg = self.m.resolve_id(root);
        let (ph, val) = arg.bind(1);
        let sql = Sql {
            name: "task_tree",
            text: format!(
                "SELECT json_group_array(json_array(id, parent_id, depth, queue, type, status, \
                 progress, children, children_done, worker, error)) FROM task_tree({ph})"
            ),
            params: vec![val],
            select: true,
        };
        let out = self.run(&sql);
        let (canon, q) = uuid_of(&arg);
        if !settle(expect_from(q), &out)? {
            return Ok((sql, out));
        }
        let got: Json = match &out {
            Ok(SqlV::Text(t)) => serde_json::from_str(t).map_err(|e| format!("task_tree: {e}"))?,
            other => return Err(format!("task_tree gave {other:?}")),
        };
        let m = &self.m;
        let mut want = Vec::new();
        let mut stack: Vec<(usize, i64)> = canon
            .and_then(|c| m.idx(&c))
            .map(|i| (i, 0))
            .into_iter()
            .collect();
        while let Some((i, depth)) = stack.pop() {
            let t = &m.tasks[i];
            want.push((
                serde_json::json!([
                    t.id,
                    t.parent,
                    depth,
                    t.queue,
                    t.ty,
                    t.status.name(),
                    null,
                    m.children(&t.id).len(),
                    m.children_done(&t.id),
                    t.worker,
                    t.error
                ]),
                m.shown_progress(i),
            ));
            stack.extend(m.children(&t.id).into_iter().rev().map(|c| (c, depth + 1)));
        }
        if want.len() > 1 {
            event("task_tree: a tree");
        }
        let rows = got.as_array().cloned().unwrap_or_default();
        if rows.len() != want.len() {
            return Err(format!(
                "task_tree gave {} rows, the model {}: {}",
                rows.len(),
                want.len(),
                short_json(&got.to_string())
            ));
        }
        for (row, (w, progress)) in rows.iter().zip(&want) {
            let mut row = row.clone();
            let p = row[6].as_f64();
            row[6] = Json::Null;
            if row != *w || !p.is_some_and(|p| close(p, *progress)) {
                return Err(format!(
                    "task_tree row {row} (progress {p:?}), the model {w} (progress {progress})"
                ));
            }
        }
        Ok((sql, out))
    }
}

/// KNOWN BUG (`bug_refused_report_drops_the_held_progress`): whether a
/// refusal came after the extension dropped the task's held value: a
/// refusal for the task's state does, one for an argument does not.
fn refused_after_drop(out: &Outcome) -> bool {
    let Err(m) = out else { return false };
    let after = ["not found", "not running", "is stale"];
    KNOWN_BUG_REFUSED_REPORT_DROPS_HELD && after.iter().any(|a| m.contains(a))
}

/// `true`: the random test tolerates the bug pinned by
/// `bug_refused_report_drops_the_held_progress` (a refused call discards the
/// progress value held by write-back), mirroring it in the model.
const KNOWN_BUG_REFUSED_REPORT_DROPS_HELD: bool = false;
/// Tolerates `bug_empty_batch_skips_option_checks`.
const KNOWN_BUG_EMPTY_BATCH_SKIPS_OPTIONS: bool = false;
/// Tolerates `a_holder_enqueued_again_as_a_child_is_not_counted` (the rest of
/// such a sequence is not checked).
const KNOWN_BUG_HOLDER_ENQUEUED_AGAIN_IS_LINKED: bool = false;
/// Tolerates `a_deleted_dependency_no_longer_blocks` (the rest of such a
/// sequence is not checked).
const KNOWN_BUG_DELETED_DEPENDENCY_STILL_BLOCKS: bool = false;
/// Tolerates `a_group_without_children_can_be_cancelled`, mirroring it.
const KNOWN_BUG_CHILDLESS_GROUP_CANNOT_BE_CANCELLED: bool = false;
/// Tolerates `task_check_accepts_a_group_without_children`.
const KNOWN_BUG_CHECK_REPORTS_A_CHILDLESS_GROUP: bool = false;

/// An integer written to a `tasks` column. SQLite applies no affinity to a
/// virtual table's writes; whole reals and numeric text may or may not be
/// taken (the reference does not say).
fn column_int(a: &Arg, lo: i64, hi: i64, v: &mut Verdict) -> Option<i64> {
    match a {
        Arg::Int(i) if (lo..=hi).contains(i) => Some(*i),
        Arg::Real(r) if r.fract() == 0.0 && (lo as f64..=hi as f64).contains(r) => {
            v.note(Q::Unsure);
            Some(*r as i64)
        }
        Arg::Text(s) if s.parse::<i64>().is_ok_and(|i| (lo..=hi).contains(&i)) => {
            v.note(Q::Unsure);
            s.parse().ok()
        }
        _ => {
            v.bad();
            None
        }
    }
}

/// The details document of an INSERT row, if it names one.
fn r_doc(row: &[(&'static str, P)]) -> Option<JsonArg> {
    row.iter().find_map(|(c, p)| match (c, p) {
        (&"details", P::Doc(d)) => Some(d.clone()),
        _ => None,
    })
}

/// What an enqueue or an INSERT asks for, before defaults.
struct NewTask {
    ty: String,
    details: Option<String>,
    queue: Option<String>,
    priority: Option<i64>,
    max_attempts: Option<i64>,
    run_at: Option<i64>,
    delay: Option<i64>,
    id: Option<Arg>,
    parent: Option<Arg>,
    now: i64,
    /// The `depends_on` ids as given.
    deps: Vec<Arg>,
    key: Option<String>,
    /// `on_conflict`: keep (None, 0), replace (1) or error (2).
    conflict: Option<usize>,
    key_when_completed: bool,
    tolerant: bool,
    /// `wait_for_children`: no work of its own.
    group: bool,
}

/// What an accepted enqueue (or INSERT row) did.
#[derive(Clone, Copy, Debug)]
enum Added {
    /// A new task, the model's last.
    New,
    /// Nothing: the task holding the unique key (its index) is returned.
    Holder(usize),
}

/// One task in a claim's result.
#[derive(Debug)]
struct ClaimedJson {
    id: String,
    json: Json,
}

/// Whether stored details are JSON that serde_json's default parser
/// refuses (nesting beyond 128 levels, a lone surrogate escape): claim
/// results embedding them are compared with the details cut out.
fn unparsable(details: &str) -> bool {
    serde_json::from_str::<Json>(details).is_err()
}

fn cut_marker(details: &str) -> Json {
    Json::String(format!("<unparsable details, {} bytes>", details.len()))
}

fn parse_claims(v: &SqlV, batch: bool, m: &Model) -> R<Vec<ClaimedJson>> {
    let one = |j: Json| -> R<ClaimedJson> {
        let id = j["id"].as_str().ok_or(format!("claim without id: {j}"))?;
        Ok(ClaimedJson {
            id: id.to_string(),
            json: j,
        })
    };
    match (v, batch) {
        (SqlV::Null, false) => Ok(vec![]),
        (SqlV::Text(t), _) => {
            let mut t = t.clone();
            for task in &m.tasks {
                if let Some(d) = task.details.as_deref().filter(|d| unparsable(d)) {
                    let marked = format!("\"details\":{},\"attempt\"", cut_marker(d));
                    t = t.replace(&format!("\"details\":{d},\"attempt\""), &marked);
                }
            }
            let j: Json =
                serde_json::from_str(&t).map_err(|e| format!("claim result is not JSON: {e}"))?;
            match (j, batch) {
                (Json::Array(items), true) => items.into_iter().map(one).collect(),
                (j @ Json::Object(_), false) => Ok(vec![one(j)?]),
                (j, _) => Err(format!("unexpected claim result {j}")),
            }
        }
        _ => Err(format!("unexpected claim result {v:?}")),
    }
}

impl Model {
    /// Adds a task as task_enqueue / INSERT would; notes refusals in `v`.
    /// The id stays empty when generated (read back by the caller).
    fn add(&mut self, n: &NewTask, v: &mut Verdict) -> Added {
        if n.ty.is_empty() || n.queue.as_deref() == Some("") || n.key.as_deref() == Some("") {
            v.bad();
        }
        let (id, id_taken) = match &n.id {
            None => (String::new(), false),
            Some(a) => {
                let (c, q) = uuid_of(a);
                v.note(q);
                let c = c.unwrap_or_default();
                let taken = self.idx(&c).is_some();
                (c, taken)
            }
        };
        // The parent must exist and not have finished.
        let parent = match &n.parent {
            None => None,
            Some(a) => {
                let (c, q) = uuid_of(a);
                v.note(q);
                match c.as_deref().and_then(|c| self.idx(c)) {
                    Some(p) if !self.tasks[p].status.finished() => {}
                    Some(_) => {
                        event("enqueue refused: the parent has finished");
                        v.bad();
                    }
                    None => v.bad(),
                }
                c
            }
        };
        // Each dependency must exist, not have failed or been cancelled,
        // not be the task itself, nor wait for its parent; repeats count once.
        let mut deps: Vec<usize> = Vec::new();
        for a in &n.deps {
            let (c, q) = uuid_of(a);
            v.note(q);
            let Some(c) = c else { continue };
            if !id.is_empty() && c == id {
                event("enqueue refused: a dependency on itself");
                v.bad();
                continue;
            }
            let Some(d) = self.idx(&c) else {
                event("enqueue refused: an unknown dependency");
                v.bad();
                continue;
            };
            let t = &self.tasks[d];
            if t.status.ended_badly() {
                event("enqueue refused: a failed or cancelled dependency");
                v.bad();
            } else if !t.status.finished()
                && parent.as_deref().is_some_and(|p| self.waits_for(d, p))
            {
                event("enqueue refused: a dependency waits for the parent");
                v.bad();
            }
            if !deps.contains(&d) {
                deps.push(d);
            }
        }
        if n.group && !deps.is_empty() {
            // Dependencies of a task with no work of its own: the reference
            // does not say.
            v.note(Q::Unsure);
        }
        if v.q() == Q::Bad {
            return Added::New;
        }
        let queue = n.queue.clone().unwrap_or_else(|| "default".into());
        let run_at = n.run_at.or(n.delay.map(|d| n.now + d)).unwrap_or(n.now);
        if let Some(h) = n.key.as_deref().and_then(|k| self.holder(&queue, k)) {
            if n.conflict == Some(2) {
                event("enqueue refused: the unique key is taken");
                v.bad();
                return Added::New;
            }
            if id_taken && self.tasks[h].id != id {
                // Both the id and the key are taken: which one the call
                // answers to, the reference does not say.
                v.note(Q::Unsure);
            }
            if self.tasks[h].id == id && (parent.is_some() || !deps.is_empty()) {
                // KNOWN BUG: the holder, enqueued again under its own id
                // with a parent or dependencies, is counted as a new child
                // of that parent and as a new dependent of those tasks.
                if KNOWN_BUG_HOLDER_ENQUEUED_AGAIN_IS_LINKED {
                    self.lost = Some("KNOWN BUG: the unique key's holder linked as new");
                }
            }
            let t = &mut self.tasks[h];
            if n.conflict == Some(1) && t.status == St::Queued {
                t.details = n.details.clone();
                t.run_at = run_at;
                t.updated_at = n.now;
                event("enqueue: a queued holder replaced");
            } else {
                event("enqueue: the unique key's holder kept");
            }
            return Added::Holder(h);
        }
        if id_taken {
            v.bad();
            return Added::New;
        }
        if let Some(p) = parent.as_deref().and_then(|p| self.idx(p)) {
            // A parent's updated_at moves when a child is added (as the
            // implementation does it; the reference does not say).
            self.tasks[p].updated_at = n.now;
            event("enqueue: a child");
        }
        deps.sort_by_key(|&d| self.tasks[d].seq);
        let blocked = deps.iter().any(|&d| self.tasks[d].status != St::Completed);
        let status = if n.group {
            // No work of its own: waiting for its children from the start.
            event("enqueue: a group waiting for its children");
            St::Waiting
        } else if blocked {
            event("enqueue: blocked by its dependencies");
            St::Blocked
        } else {
            St::Queued
        };
        let seq = self.tasks.iter().map(|t| t.seq).max().unwrap_or(0) + 1;
        let deps =
            (!deps.is_empty()).then(|| deps.iter().map(|&d| self.tasks[d].id.clone()).collect());
        self.tasks.push(Task {
            seq,
            id,
            queue,
            ty: n.ty.clone(),
            status,
            priority: n.priority.unwrap_or(0),
            progress: 0.0,
            held: None,
            details: n.details.clone(),
            result: None,
            error: None,
            attempts: 0,
            max_attempts: n.max_attempts.unwrap_or(3),
            parent,
            worker: None,
            lease_until: None,
            lease_ms: 0,
            run_at,
            created_at: n.now,
            updated_at: n.now,
            started_at: None,
            completed_at: None,
            unique_key: n.key.clone(),
            key_when_completed: n.key_when_completed,
            tolerant: n.tolerant,
            own_done: n.group,
            deps,
        });
        Added::New
    }

    /// After an accepted enqueue: the returned id is the supplied one (in
    /// canonical form) or a new UUID, or the unique key holder's.
    fn adopt_new_id(&mut self, added: Added, id: &str) -> R<()> {
        if let Added::Holder(h) = added {
            if self.tasks[h].id != id {
                return Err(format!(
                    "returned id {id}, expected the holder {}",
                    self.tasks[h].id
                ));
            }
            return Ok(());
        }
        let t = self.tasks.last_mut().unwrap();
        if t.id.is_empty() {
            if uuid_of(&Arg::text(id)).1 != Q::Good {
                return Err(format!("generated id {id:?} is not a UUID"));
            }
            t.id = id.to_string();
            let n = self.tasks.iter().filter(|t| t.id == id).count();
            if n != 1 {
                return Err(format!("generated id {id} is not new"));
            }
        } else if t.id != id {
            return Err(format!("returned id {id}, expected {}", t.id));
        }
        Ok(())
    }

    /// Completes a task as task_complete would; notes refusals in `v`.
    /// Returns the task's index and the status it is left in (waiting for
    /// a task whose children have not all finished) when the completion
    /// itself is allowed.
    fn complete(
        &mut self,
        id: &Arg,
        result: Option<String>,
        fenced: Option<bool>,
        now: i64,
        v: &mut Verdict,
    ) -> Option<(usize, St)> {
        let (_, idx, q) = self.task_of(id);
        v.note(q);
        let Some(i) = idx else {
            v.bad();
            return None;
        };
        if self.tasks[i].status != St::Running || fenced == Some(false) {
            v.bad();
            return None;
        }
        let kids = self.children(&self.tasks[i].id).len();
        let waits = self.children_done(&self.tasks[i].id) < kids;
        if kids > 0 && !waits {
            event("complete: a parent whose children had finished");
        }
        let t = &mut self.tasks[i];
        t.result = result;
        t.progress = 100.0;
        t.held = None;
        t.lease_until = None;
        t.updated_at = now;
        t.own_done = true;
        if waits {
            t.status = St::Waiting;
            t.completed_at = None;
            event("complete: waiting for its children");
            return Some((i, St::Waiting));
        }
        if t.parent.is_some() {
            event("complete: a child");
        }
        t.status = St::Completed;
        t.completed_at = Some(now);
        self.settle(i, now);
        Some((i, St::Completed))
    }

    fn cancel_or_retry(&mut self, id: &Arg, now: i64, cancel: bool, v: &mut Verdict) {
        let (_, idx, q) = self.task_of(id);
        v.note(q);
        let Some(i) = idx else {
            v.bad();
            return;
        };
        if !cancel {
            return self.retry(i, now, v);
        }
        if KNOWN_BUG_CHILDLESS_GROUP_CANNOT_BE_CANCELLED
            && self.tasks[i].status == St::Waiting
            && !self.in_workflow(i)
        {
            // KNOWN BUG: refused as if it had finished ("is already waiting").
            event("KNOWN BUG: a waiting task without children cannot be cancelled");
            v.bad();
            return;
        }
        let t = &mut self.tasks[i];
        if t.status.finished() {
            v.bad();
            return;
        }
        t.status = St::Cancelled;
        t.lease_until = None;
        t.completed_at = Some(now);
        t.held = None;
        t.updated_at = now;
        self.settle(i, now);
    }

    /// DELETE of the tasks in `gone` (finished, with their descendants):
    /// they leave the trees and the dependency lists they were in.
    fn delete(&mut self, gone: &BTreeSet<String>) {
        // A blocked task whose dependency goes unfinished (failed or
        // cancelled: it was retried while that one had not been) no longer
        // waits for it: blocked means waiting for a dependency to complete.
        let stuck: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| t.status == St::Blocked && !gone.contains(&t.id))
            .filter(|t| {
                t.deps.iter().flatten().any(|d| {
                    gone.contains(d)
                        && self
                            .idx(d)
                            .is_some_and(|j| self.tasks[j].status.ended_badly())
                })
            })
            .map(|t| t.id.clone())
            .collect();
        self.tasks.retain(|t| !gone.contains(&t.id));
        for t in &mut self.tasks {
            if let Some(d) = &mut t.deps {
                d.retain(|x| !gone.contains(x));
            }
        }
        if stuck.is_empty() {
            return;
        }
        if KNOWN_BUG_DELETED_DEPENDENCY_STILL_BLOCKS {
            // KNOWN BUG: the storage still counts it (task_check says so).
            self.lost = Some("KNOWN BUG: a deleted dependency still blocks");
            return;
        }
        // Released as by a completion (DELETE has no clock: `updated_at` is
        // left as it is; the reference does not say).
        for id in stuck {
            let i = self.idx(&id).unwrap();
            if self.deps_done(i) {
                self.tasks[i].status = St::Queued;
                event("delete: a dependent released");
            }
        }
    }

    /// One row of `UPDATE tasks SET ...` (docs/reference/tasks-table.md).
    fn update_row(&mut self, i: usize, vals: &[(&str, Arg)], now: i64, v: &mut Verdict) {
        let t = self.tasks[i].clone();
        let shown = self.shown_progress(i);
        let (kids, kids_done) = (self.children(&t.id).len(), self.children_done(&t.id));
        let current = |c: &str| -> Vec<Arg> {
            let opt_t = |s: &Option<String>| s.clone().map_or(Arg::Null, Arg::Text);
            let opt_i = |s: Option<i64>| s.map_or(Arg::Null, Arg::Int);
            match c {
                "priority" => vec![Arg::Int(t.priority)],
                "run_at" => vec![Arg::Int(t.run_at)],
                "queue" => vec![Arg::Text(t.queue.clone())],
                "max_attempts" => vec![Arg::Int(t.max_attempts)],
                "status" => vec![Arg::text(t.status.name())],
                "worker" => vec![opt_t(&t.worker)],
                "attempts" => vec![Arg::Int(t.attempts)],
                // SQLite passes what it read, which may be the shown value
                // (a held one, a rollup).
                "progress" => vec![
                    Arg::Real(t.progress),
                    Arg::Real(t.own_progress()),
                    Arg::Real(shown),
                ],
                "details" => vec![opt_t(&t.details)],
                "type" => vec![Arg::Text(t.ty.clone())],
                "id" => vec![Arg::Text(t.id.clone())],
                "error" => vec![opt_t(&t.error)],
                "lease_until" => vec![opt_i(t.lease_until)],
                "unique_key" => vec![opt_t(&t.unique_key)],
                "depends_on" => vec![opt_t(&t.deps_json())],
                "children" => vec![Arg::Int(kids as i64)],
                "children_done" => vec![Arg::Int(kids_done as i64)],
                _ => vec![],
            }
        };
        let same = |a: &Arg, b: &Arg| match (a, b) {
            (Arg::Int(x), Arg::Real(y)) | (Arg::Real(y), Arg::Int(x)) => *x as f64 == *y,
            (Arg::Real(x), Arg::Real(y)) => x == y,
            (Arg::Huge { .. }, _) | (_, Arg::Huge { .. }) => a.huge_text() == b.huge_text(),
            _ => a == b,
        };
        let changed: Vec<(&str, &Arg)> = vals
            .iter()
            .filter(|(c, _)| *c != "now")
            .filter(|(c, a)| !current(c).iter().any(|x| same(x, a)))
            .map(|(c, a)| (*c, a))
            .collect();
        if changed.is_empty() {
            // "A column the UPDATE sets to the value it has is no change",
            // a column the queue manages included.
            return;
        }
        if let Some((_, s)) = changed.iter().find(|(c, _)| *c == "status") {
            if changed.len() > 1 {
                v.bad();
                return;
            }
            match s {
                Arg::Text(s) if s == "cancelled" => {
                    let id = Arg::Text(t.id.clone());
                    self.cancel_or_retry(&id, now, true, v)
                }
                Arg::Text(s) if s == "queued" => {
                    let id = Arg::Text(t.id.clone());
                    self.cancel_or_retry(&id, now, false, v)
                }
                _ => v.bad(),
            }
            return;
        }
        if changed
            .iter()
            .any(|(c, _)| !matches!(*c, "priority" | "run_at" | "queue" | "max_attempts"))
            || !matches!(t.status, St::Queued | St::Blocked)
        {
            v.bad();
            return;
        }
        let int = |a: &Arg, lo: i64, hi: i64, v: &mut Verdict| column_int(a, lo, hi, v);
        let mut u = self.tasks[i].clone();
        for (c, a) in &changed {
            match *c {
                "priority" => {
                    u.priority = int(a, i64::from(i32::MIN), i64::from(i32::MAX), v).unwrap_or(0)
                }
                "run_at" => u.run_at = int(a, 0, MAX_TIME, v).unwrap_or(0),
                "max_attempts" => {
                    u.max_attempts = int(a, 1, 1000, v).unwrap_or(1);
                }
                _ => match a {
                    Arg::Text(s) if !s.is_empty() => u.queue = s.clone(),
                    _ => v.bad(),
                },
            }
        }
        if u.max_attempts <= u.attempts && changed.iter().any(|(c, _)| *c == "max_attempts") {
            // fewer attempts than already made: the reference does not say
            v.note(Q::Unsure);
        }
        if let Some(k) = &u.unique_key
            && u.queue != t.queue
            && self.holder(&u.queue, k).is_some()
        {
            // A move into a queue where another task holds its key.
            v.bad();
        }
        u.updated_at = now;
        self.tasks[i] = u;
    }

    /// Checks a claim's result against the reference's rules and applies it.
    #[allow(clippy::too_many_arguments)]
    fn check_claim(
        &mut self,
        db: &Connection,
        worker: &str,
        scope: &Scope,
        lease: i64,
        now: i64,
        limit: i64,
        batch: bool,
        claimed: Vec<ClaimedJson>,
    ) -> R<()> {
        // Exhausted expired tasks (any queue). A plain one is failed by
        // the claim's UPDATE: any claim may do it, one that finds nothing
        // must. One in a workflow is failed, with what follows from it, by
        // the reads a claim makes before it writes, all of them oldest lease
        // first; a claim skips those reads for a second (of its clock) after
        // a claim on the connection found work (its hint), so only a claim
        // that finds nothing outside that second must have done it.
        let status_now: Vec<(String, SqlV)> = rows(db, "SELECT id, status FROM task_store")
            .into_iter()
            .map(|r| (r[0].text().unwrap_or_default().to_string(), r[1].clone()))
            .collect();
        let status_of = |id: &str| {
            status_now
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.clone())
        };
        let running = |id: &str| status_of(id) == Some(SqlV::Text("running".into()));
        let dead = |t: &Task| t.expired(now) && t.exhausted();
        let (mut linked, plain): (Vec<usize>, Vec<usize>) = (0..self.tasks.len())
            .filter(|&i| dead(&self.tasks[i]))
            .partition(|&i| self.in_workflow(i));
        linked.sort_by_key(|&i| (self.tasks[i].lease_until, self.tasks[i].seq));
        let left = linked
            .iter()
            .filter(|&&i| running(&self.tasks[i].id))
            .count();
        let hinted = self
            .found_work
            .iter()
            .any(|t| (0..1_000).contains(&(now - t)));
        if left == linked.len() {
            if let Some(&i) = linked.first() {
                if claimed.is_empty() && !hinted {
                    return Err(format!(
                        "an empty claim left exhausted expired task {} (in a workflow) running",
                        self.tasks[i].id
                    ));
                }
                event("claim: left an exhausted task in a workflow (hint)");
            }
        } else if left > 0 {
            return Err(format!(
                "the claim failed some exhausted expired tasks in workflows, but left {left} of \
                 {} running",
                linked.len()
            ));
        } else {
            for i in linked {
                // One may have been cancelled by the failure of another.
                if dead(&self.tasks[i]) {
                    let t = &mut self.tasks[i];
                    let why = format!(
                        "lease expired on attempt {} (worker {})",
                        t.attempts,
                        t.worker.as_deref().unwrap_or("?")
                    );
                    t.end(St::Failed, why, now);
                    event("claim: reaped an exhausted task in a workflow");
                    self.settle(i, now);
                }
            }
        }
        let mut reaped = 0;
        for i in plain {
            let t = &mut self.tasks[i];
            match status_of(&t.id) {
                Some(SqlV::Text(s)) if s == "failed" => {
                    reaped += 1;
                    event("claim: reaped an exhausted task");
                    t.error = Some(format!(
                        "lease expired on attempt {} (worker {})",
                        t.attempts,
                        t.worker.as_deref().unwrap_or("?")
                    ));
                    t.status = St::Failed;
                    t.completed_at = Some(now);
                    t.lease_until = None;
                    t.updated_at = now;
                }
                Some(SqlV::Text(s)) if s == "running" => {
                    if claimed.is_empty() {
                        return Err(format!(
                            "an empty claim left exhausted expired task {} running",
                            t.id
                        ));
                    }
                }
                s => return Err(format!("exhausted task {} is now {s:?}", t.id)),
            }
        }
        let expired: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| {
                let t = &self.tasks[i];
                t.expired(now) && !t.exhausted() && scope.covers(&t.queue)
            })
            .collect();
        let mut ready: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| {
                let t = &self.tasks[i];
                t.status == St::Queued && t.run_at <= now && scope.covers(&t.queue)
            })
            .collect();
        ready.sort_by_key(|&i| self.tasks[i].order());
        let pos = |id: &str| self.tasks.iter().position(|t| t.id == id);
        let mut picked = Vec::new();
        for c in &claimed {
            let i = pos(&c.id).ok_or(format!("claimed unknown task {}", c.id))?;
            if picked.contains(&i) {
                return Err(format!("task {} claimed twice in one call", c.id));
            }
            picked.push(i);
        }
        if picked.is_empty() {
            if let Some(&i) = expired.first().or(ready.first()) {
                return Err(format!(
                    "claimed nothing, but task {} is claimable",
                    self.tasks[i].id
                ));
            }
            return Ok(());
        }
        if picked.len() as i64 > limit {
            return Err(format!("claimed {} tasks, limit {limit}", picked.len()));
        }
        let (exp, rdy): (Vec<usize>, Vec<usize>) = picked.iter().partition(|i| expired.contains(i));
        if let Some(&i) = rdy.iter().find(|i| !ready.contains(i)) {
            return Err(format!(
                "claimed task {}, which is not ready",
                self.tasks[i].id
            ));
        }
        if !batch {
            // Abandoned work first, then claim order.
            if !expired.is_empty() && exp.is_empty() {
                return Err(format!(
                    "claimed {} while expired task {} was waiting",
                    self.tasks[picked[0]].id, self.tasks[expired[0]].id
                ));
            }
            if exp.is_empty() && rdy[0] != ready[0] {
                return Err(format!(
                    "claimed {}, but {} comes first in claim order",
                    self.tasks[rdy[0]].id, self.tasks[ready[0]].id
                ));
            }
        } else {
            // One queue's head, in claim order, after the expired tasks.
            let queues: BTreeSet<&str> = picked.iter().map(|&i| &*self.tasks[i].queue).collect();
            if !exp.is_empty() && !rdy.is_empty() {
                event("claim: batch of expired and ready tasks");
            }
            if queues.len() > 1 {
                return Err(format!("one batch took tasks from queues {queues:?}"));
            }
            if let Some(&first) = rdy.first() {
                let q = self.tasks[first].queue.clone();
                let of_q: Vec<usize> = ready
                    .iter()
                    .copied()
                    .filter(|&i| self.tasks[i].queue == q)
                    .collect();
                if rdy.len() > of_q.len() || rdy[..] != of_q[..rdy.len()] {
                    return Err(format!(
                        "the batch's ready tasks are not the head of queue {q:?} in claim order"
                    ));
                }
                let has_expired = exp.iter().any(|&i| self.tasks[i].queue == q);
                if !has_expired && self.tasks[ready[0]].queue != q {
                    return Err(format!(
                        "batch from queue {q:?}, but {} in {:?} comes first",
                        self.tasks[ready[0]].id, self.tasks[ready[0]].queue
                    ));
                }
                if (picked.len() as i64) + reaped < limit && rdy.len() < of_q.len() {
                    return Err(format!(
                        "batch of {} under the limit {limit} left ready task {} of its queue",
                        picked.len(),
                        self.tasks[of_q[rdy.len()]].id
                    ));
                }
            }
            let in_order = picked
                .iter()
                .position(|i| rdy.contains(i))
                .is_none_or(|k| picked[k..].iter().all(|i| rdy.contains(i)));
            if !in_order {
                return Err("the batch lists ready tasks before expired ones".into());
            }
        }
        self.found_work.push(now);
        for (c, &i) in claimed.iter().zip(&picked) {
            let t = &mut self.tasks[i];
            let details = match &t.details {
                None => Json::Null,
                Some(d) if unparsable(d) => cut_marker(d),
                Some(d) => serde_json::from_str(d).unwrap_or_else(|_| Json::String(d.clone())),
            };
            let want = serde_json::json!({
                "id": t.id, "type": t.ty, "queue": t.queue, "details": details,
                "attempt": t.attempts + 1, "max_attempts": t.max_attempts,
                "priority": t.priority, "parent_id": t.parent, "run_at": t.run_at,
                "lease_until": now + lease, "created_at": t.created_at,
            });
            if c.json != want {
                return Err(format!(
                    "claim returned {}, the model expects {}",
                    short_json(&c.json.to_string()),
                    short_json(&want.to_string())
                ));
            }
            if t.status == St::Running {
                event("claim: took an expired task");
                t.error = Some(format!(
                    "lease expired on attempt {} (worker {})",
                    t.attempts,
                    t.worker.as_deref().unwrap_or("?")
                ));
            }
            t.status = St::Running;
            t.attempts += 1;
            t.worker = Some(worker.to_string());
            t.lease_until = Some(now + lease);
            t.lease_ms = lease;
            t.started_at = Some(now);
            t.completed_at = None;
            t.progress = 0.0;
            t.held = None;
            t.updated_at = now;
        }
        Ok(())
    }
}

fn diff(a: &[Vec<SqlV>], b: &[Vec<SqlV>]) -> String {
    let mut out = format!("{} rows before, {} after\n", a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            out.push_str(&format!("  before {x:?}\n  after  {y:?}\n"));
        }
    }
    out
}

thread_local! {
    static STATS: RefCell<BTreeMap<String, (u64, u64)>> = RefCell::default();
}

/// Counts a path of the model taken (listed with the verbs' counts).
fn event(name: &str) {
    STATS.with(|s| s.borrow_mut().entry(format!("  {name}")).or_default().0 += 1);
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let db = memory_db();
    if case.txn {
        db.execute_batch("BEGIN").unwrap();
    }
    let mut r = Runner {
        db: &db,
        m: Model {
            clock: T0,
            wb_ms: case.wb_ms,
            ..Model::default()
        },
    };
    for (n, call) in case.calls.iter().enumerate() {
        r.step(call)
            .map_err(|e| TestCaseError::fail(format!("call {n} {call:?}: {e}")))?;
        if r.m.lost.is_some() {
            return Ok(());
        }
    }
    let check: String = db
        .query_row("SELECT task_check()", [], |x| x.get(0))
        .unwrap();
    // KNOWN BUG: a task waiting for children it does not have yet (enqueued
    // with wait_for_children) is reported as a broken counter.
    let childless_group = |line: &str| {
        KNOWN_BUG_CHECK_REPORTS_A_CHILDLESS_GROUP
            && r.m.tasks.iter().any(|t| {
                t.status == St::Waiting
                    && r.m.children(&t.id).is_empty()
                    && line == format!("task {}: waiting, but no child of it is unfinished", t.id)
            })
    };
    let problems: Vec<&str> = check
        .lines()
        .filter(|l| *l != "ok" && !childless_group(l))
        .collect();
    prop_assert!(problems.is_empty(), "task_check: {}", check);
    if case.txn {
        db.execute_batch("COMMIT").unwrap();
    }
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn random_call_sequences_match_the_model() {
    let mut runner = TestRunner::new(config());
    let result = runner.run(&case(), |c| run_case(&c));
    // How often each verb was accepted and refused (shown with --nocapture):
    // a generator that stops reaching the accepting paths shows up here.
    let stats = STATS.with(|s| s.borrow().clone());
    for (verb, (ok, refused)) in &stats {
        println!("{verb:<22} accepted {ok:>6}  refused {refused:>6}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- known bugs, each with the smallest input that shows it --------------

const A: &str = "00000000-0000-7000-8000-0000000000a1";
const B: &str = "00000000-0000-7000-8000-0000000000b2";

fn progress_of(db: &Connection, id: &str) -> f64 {
    db.query_row("SELECT progress FROM tasks WHERE id = ?1", [id], |r| {
        r.get::<_, f64>(0)
    })
    .unwrap()
}

/// A running task `A` (attempt 1, lease 300 s, claimed at 1000) with
/// progress 20 held by write-back over a stored 10.
fn held_20_over_10() -> Connection {
    let db = memory_db();
    db.execute_batch(&format!(
        r#"SELECT task_enqueue('t', NULL, '{{"id":"{A}","now":1000}}');
           SELECT task_claim('w1', '{{"now":1000}}');
           SELECT task_progress('{A}', 10, '{{"now":1000,"writeback":100000}}');
           SELECT task_progress('{A}', 20, '{{"now":1001,"writeback":100000}}');"#
    ))
    .unwrap();
    assert_eq!(progress_of(&db, A), 20.0, "the held value is shown");
    db
}

#[test]
fn a_refused_report_keeps_the_held_progress() {
    let db = held_20_over_10();
    let e = db
        .query_row(
            &format!(r#"SELECT task_heartbeat('{A}', '{{"attempt":2,"now":1002}}')"#),
            [],
            |_| Ok(()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("is stale"), "{e}");
    assert_eq!(
        progress_of(&db, A),
        20.0,
        "a refused call changes nothing, the held value included"
    );
}

#[test]
fn a_refused_batch_keeps_the_held_progress() {
    let db = held_20_over_10();
    let items = format!(r#"[{{"id":"{A}"}},{{"id":"{B}"}}]"#);
    let e = db
        .query_row(
            "SELECT task_complete_batch(?1, '{\"now\":1002}')",
            [&items],
            |_| Ok(()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("item 1"), "{e}");
    assert_eq!(
        progress_of(&db, A),
        20.0,
        "no item is changed, the held value included"
    );
}

#[test]
fn a_held_report_on_a_task_failed_in_this_process_is_refused() {
    let db = memory_db();
    // Worker w1's clock runs behind the claimer's: its report at 1200
    // arrives after w2's claim at 5000 failed the task for lease expiry.
    db.execute_batch(&format!(
        r#"SELECT task_enqueue('t', NULL, '{{"id":"{A}","now":0,"max_attempts":1}}');
           SELECT task_claim('w1', '{{"now":0,"lease":1000}}');
           SELECT task_progress('{A}', 10, '{{"now":100,"writeback":400}}');
           SELECT task_claim('w2', '{{"now":5000}}');"#
    ))
    .unwrap();
    let status: String = db
        .query_row("SELECT status FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "failed");
    let r = db.query_row(
        &format!(r#"SELECT task_progress('{A}', 20, '{{"now":200,"writeback":400}}')"#),
        [],
        |r| r.get::<_, String>(0),
    );
    assert!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("is failed, not running")),
        "progress on a failed task: {r:?}"
    );
    db.execute_batch("DELETE FROM tasks").unwrap();
    let r = db.query_row(
        &format!(r#"SELECT task_progress('{A}', 30, '{{"now":300,"writeback":400}}')"#),
        [],
        |r| r.get::<_, String>(0),
    );
    assert!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("not found")),
        "progress on a deleted task: {r:?}"
    );
}

/// Task `A` (queue q1, priority 0) claimed at 0 with a 10 ms lease, then
/// two ready tasks of priority 5; `queue` is where those two go.
fn expired_and_ready(queue: &str) -> Connection {
    let db = memory_db();
    db.execute_batch(&format!(
        r#"SELECT task_enqueue('a', NULL, '{{"id":"{A}","now":0,"queue":"q1"}}');
           SELECT task_claim('w1', '{{"now":0,"lease":10}}');
           SELECT task_enqueue('b', NULL, '{{"now":0,"queue":"{queue}","priority":5}}');
           SELECT task_enqueue('c', NULL, '{{"now":0,"queue":"{queue}","priority":5}}');"#
    ))
    .unwrap();
    db
}

fn batch_ids(db: &Connection) -> Vec<(String, String)> {
    let out: String = db
        .query_row(
            "SELECT task_claim_batch('w2', 10, '{\"now\":100}')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v: Json = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap().to_string(),
                t["queue"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// Found by the random test and fixed since (62795ad): kept as regressions.

#[test]
fn claim_batch_lists_expired_tasks_first() {
    let db = expired_and_ready("q1");
    let types: Vec<String> = batch_ids(&db).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        ["a", "b", "c"],
        "claim order: the expired task first"
    );
}

#[test]
fn claim_batch_takes_one_queue_even_with_an_expired_task_elsewhere() {
    let db = expired_and_ready("q2");
    let queues: BTreeSet<String> = batch_ids(&db).into_iter().map(|(_, q)| q).collect();
    assert_eq!(queues.len(), 1, "one batch, one queue: {queues:?}");
}

#[test]
fn an_empty_batch_still_checks_its_options() {
    let db = memory_db();
    for sql in [
        r#"SELECT task_complete_batch('[]', '{"now": -1}')"#,
        r#"SELECT task_fail_batch('[]', '{"now": -1}')"#,
        r#"SELECT task_fail_batch('[]', '{"delay": -5, "now": 0}')"#,
    ] {
        let r = db.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0));
        assert!(r.is_err(), "{sql} gave {r:?}, not an error");
    }
}

#[test]
fn details_nested_too_deep_are_refused() {
    let db = memory_db();
    let deep = nested(5_000);
    let enqueued = db.query_row(
        &format!(r#"SELECT task_enqueue('t', ?1, '{{"id":"{A}","now":0}}')"#),
        [&deep],
        |_| Ok(()),
    );
    if enqueued.is_err() {
        return; // refusing such details is a fine fix
    }
    let id = db.query_row(
        "SELECT json_extract(task_claim('w1', '{\"now\":1}'), '$.id')",
        [],
        |r| r.get::<_, String>(0),
    );
    let (status, attempts): (String, i64) = db
        .query_row("SELECT status, attempts FROM tasks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        id.is_ok(),
        "the worker cannot read its claim ({id:?}), yet the task is {status}, attempt {attempts}"
    );
}

// Found by the random test once it modelled workflows, and fixed; their
// KNOWN_BUG_* constants stay, false, to switch the model back if one
// returns.

const P: &str = "00000000-0000-7000-8000-0000000000c3";

fn one_text(db: &Connection, sql: &str) -> String {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn status_of(db: &Connection, id: &str) -> String {
    one_text(db, &format!("SELECT status FROM tasks WHERE id = '{id}'"))
}

/// "While a task of the same queue holds the key, enqueueing it again
/// returns the holder's id and creates nothing" (workflows.md): also when
/// the call names the holder's own id and a parent. The parent was counted a
/// child that does not exist, and never completed.
#[test]
fn a_holder_enqueued_again_as_a_child_is_not_counted() {
    let db = memory_db();
    db.execute_batch(&format!(
        r#"SELECT task_enqueue('p', NULL, '{{"id":"{P}","now":0}}');
           SELECT task_enqueue('h', NULL, '{{"id":"{A}","unique_key":"k","now":0}}');
           SELECT task_claim('w', '{{"now":1}}');"#
    ))
    .unwrap();
    let again = one_text(
        &db,
        &format!(
            r#"SELECT task_enqueue('h', NULL,
                 '{{"id":"{A}","unique_key":"k","parent_id":"{P}","now":2}}')"#
        ),
    );
    assert_eq!(again, A, "the holder is returned");
    let children = one_text(
        &db,
        &format!("SELECT children || '/' || ifnull(parent_id, '-') FROM tasks WHERE id = '{P}'"),
    );
    assert_eq!(children, "0/-", "the parent has no child");
    let done = one_text(
        &db,
        &format!(r#"SELECT task_complete('{P}', NULL, '{{"now":3}}')"#),
    );
    assert_eq!(done, "completed", "with no child, the parent completes");
    assert_eq!(one_text(&db, "SELECT task_check()"), "ok");
}

/// A dependent retried while its dependency is failed is blocked; once
/// that dependency is deleted it waits for nothing ("blocked: waiting for
/// its dependencies", concepts.md), yet it stayed blocked for good, and
/// task_check calls the state broken.
#[test]
fn a_deleted_dependency_no_longer_blocks() {
    let db = memory_db();
    db.execute_batch(&format!(
        r#"SELECT task_enqueue('d', NULL, '{{"id":"{A}","max_attempts":1,"now":0}}');
           SELECT task_enqueue('x', NULL, '{{"id":"{B}","depends_on":["{A}"],"now":0}}');
           SELECT task_fail(json_extract(task_claim('w', '{{"now":1}}'), '$.id'), 'e',
                            '{{"now":2}}');
           SELECT task_retry('{B}', '{{"now":3}}');"#
    ))
    .unwrap();
    assert_eq!(
        status_of(&db, B),
        "blocked",
        "its dependency has not completed"
    );
    db.execute_batch(&format!("DELETE FROM tasks WHERE id = '{A}'"))
        .unwrap();
    assert_eq!(status_of(&db, B), "queued", "it waits for nothing any more");
    assert_eq!(one_text(&db, "SELECT task_check()"), "ok");
}

/// Task `P`, enqueued with wait_for_children, before its children are.
fn group_without_children() -> Connection {
    let db = memory_db();
    db.execute_batch(&format!(
        r#"SELECT task_enqueue('batch', NULL, '{{"id":"{P}","wait_for_children":true,"now":0}}');"#
    ))
    .unwrap();
    db
}

/// "task_cancel: cancels a task that has not finished (queued, running,
/// blocked or waiting)" (admin.md): a task enqueued with wait_for_children
/// that has no child yet was refused, "is already waiting".
#[test]
fn a_group_without_children_can_be_cancelled() {
    let db = group_without_children();
    let r = db.query_row(
        &format!(r#"SELECT task_cancel('{P}', '{{"now":1}}')"#),
        [],
        |r| r.get::<_, String>(0),
    );
    assert_eq!(r.as_deref().ok(), Some("cancelled"), "{r:?}");
}

/// task_check finds no fault in what the functions do: a task enqueued with
/// wait_for_children has no child until the next statement adds one.
#[test]
fn task_check_accepts_a_group_without_children() {
    let db = group_without_children();
    assert_eq!(one_text(&db, "SELECT task_check()"), "ok");
}
