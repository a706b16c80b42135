//! The same queue work done three ways on one rusqlite connection: through sqlite-task, as the plain
//! SQL a user would write on a `jobs` table (raw), and through the honker extension.
//!
//! Every statement goes through `prepare_cached`, so no system pays for parsing SQL in the loop;
//! raw is then the floor an extension pays on top of. Claims read the returned task the way an
//! application would: sqlite-task and honker hand back JSON text that is parsed; raw returns columns.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sys {
    Ext,
    Raw,
    Honker,
}

impl Sys {
    pub fn name(self) -> &'static str {
        match self {
            Sys::Ext => "sqlite-task",
            Sys::Raw => "raw",
            Sys::Honker => "honker",
        }
    }
    pub fn parse(s: &str) -> Option<Sys> {
        [Sys::Ext, Sys::Raw, Sys::Honker]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sync {
    Normal,
    Full,
}

impl Sync {
    pub fn name(self) -> &'static str {
        match self {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        }
    }
}

/// Where the two extensions live (paths without the `.so`, as loaders take them).
#[derive(Clone, Debug)]
pub struct Libs {
    pub task: String,
    pub honker: String,
}

pub const QUEUE: &str = "default";
pub const TYPE: &str = "bench";
pub const WORKER: &str = "w1";
pub const RESULT: &str = r#"{"ok":true}"#;
const LEASE_MS: i64 = 300_000;
const HONKER_LEASE_S: i64 = 300;

/// The table a user would write for the same task model (the issue's definition, verbatim).
const RAW_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, queue TEXT NOT NULL, type TEXT NOT NULL,
  status TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, details TEXT, result TEXT, error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 3, worker TEXT,
  lease_until INTEGER, run_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs(queue, status, priority DESC, run_at);";

const RAW_ENQUEUE: &str =
    "INSERT INTO jobs(id, queue, type, status, details, run_at, created_at, updated_at)
  VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, ?5)";
const RAW_CLAIM: &str = "UPDATE jobs SET status='running', worker=?1, attempts=attempts+1,
  lease_until=?2, started_at=?3, updated_at=?3
  WHERE id = (SELECT id FROM jobs WHERE queue=?4 AND status='queued' AND run_at<=?3
              ORDER BY priority DESC, run_at LIMIT 1)
  RETURNING id, type, details, attempts";
const RAW_CLAIM_BATCH: &str = "UPDATE jobs SET status='running', worker=?1, attempts=attempts+1,
  lease_until=?2, started_at=?3, updated_at=?3
  WHERE id IN (SELECT id FROM jobs WHERE queue=?4 AND status='queued' AND run_at<=?3
               ORDER BY priority DESC, run_at LIMIT ?5)
  RETURNING id, type, details, attempts";
const RAW_COMPLETE: &str =
    "UPDATE jobs SET status='completed', result=?1, completed_at=?2, updated_at=?2
  WHERE id=?3 AND status='running'";
/// The progress case adds `progress REAL NOT NULL DEFAULT 0` to `jobs` (the issue's table has no
/// progress column); a report also renews the lease, as `task_progress` does.
const RAW_PROGRESS: &str = "UPDATE jobs SET progress=?1, lease_until=?2, updated_at=?3
  WHERE id=?4 AND status='running'";

const TASK_COLUMNS: &str = "id, queue, type, status, priority, progress, details, result, error,
  attempts, max_attempts, parent_id, worker, lease_until, run_at, created_at, updated_at,
  started_at, completed_at";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn json_err(what: &str, text: &str) -> Box<dyn std::error::Error> {
    format!("unexpected {what}: {text}").into()
}

/// What a worker reads of a claimed task, from sqlite-task's or honker's JSON: the same four
/// fields raw's claim returns (id, type, details, attempts), into owned values as raw's are.
/// Other keys are skipped. (honker names them id, payload and attempts.)
#[derive(serde::Deserialize)]
struct Claim {
    id: Id,
    #[serde(rename = "type")]
    _kind: Option<String>,
    #[serde(alias = "payload")]
    _details: Option<Box<serde_json::value::RawValue>>,
    #[serde(alias = "attempts")]
    _attempt: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Id {
    Int(i64),
    Text(String),
}

impl Claim {
    fn id(self) -> Value {
        match self.id {
            Id::Int(i) => Value::Integer(i),
            Id::Text(s) => Value::Text(s),
        }
    }
}

fn ids_of(text: &str) -> Res<Vec<Value>> {
    let list: Vec<Claim> = serde_json::from_str(text).map_err(|_| json_err("batch", text))?;
    Ok(list.into_iter().map(Claim::id).collect())
}

fn id_of(text: &str) -> Res<Value> {
    let claim: Claim = serde_json::from_str(text).map_err(|_| json_err("claim", text))?;
    Ok(claim.id())
}

/// One item of `task_complete_batch`.
#[derive(serde::Serialize)]
struct Done<'a> {
    id: &'a str,
    result: &'a serde_json::value::RawValue,
}

/// One connection to one benchmark database, set up for one system.
pub struct Q {
    pub sys: Sys,
    pub c: Connection,
    /// sqlite-task only: claim with `{"queue": "default"}` instead of the default (every queue).
    pub queue_filter: bool,
    /// Run each claim and completion inside `BEGIN IMMEDIATE … COMMIT`. Needed by honker with
    /// several processes: its functions are called from a SELECT and write inside it, so without
    /// it they fail at once with "database is locked" (SQLITE_BUSY_SNAPSHOT) whenever another
    /// process wrote since the SELECT's read began; no busy timeout helps.
    pub immediate: bool,
}

impl Q {
    pub fn open(libs: &Libs, sys: Sys, path: &Path, sync: Sync) -> Res<Q> {
        let c = Connection::open(path)?;
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(format!("journal_mode is {mode}, not wal").into());
        }
        c.execute_batch(&format!(
            "PRAGMA synchronous={}; PRAGMA busy_timeout=5000;",
            sync.name()
        ))?;
        c.set_prepared_statement_cache_capacity(64);
        match sys {
            Sys::Ext => {
                load(&c, &libs.task)?;
                c.query_row("SELECT task_init()", [], |_| Ok(()))?;
            }
            Sys::Honker => {
                load(&c, &libs.honker)?;
                c.query_row("SELECT honker_bootstrap()", [], |_| Ok(()))?;
            }
            Sys::Raw => c.execute_batch(RAW_SCHEMA)?,
        }
        Ok(Q {
            sys,
            c,
            queue_filter: false,
            immediate: false,
        })
    }

    /// Raw only: the column the progress case needs.
    pub fn add_raw_progress_column(&self) -> Res<()> {
        self.c
            .execute_batch("ALTER TABLE jobs ADD COLUMN progress REAL NOT NULL DEFAULT 0")?;
        Ok(())
    }

    pub fn checkpoint(&self) -> Res<()> {
        self.c
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn enqueue(&self, n: u64) -> Res<Value> {
        let details = format!(r#"{{"n":{n}}}"#);
        Ok(match self.sys {
            Sys::Ext => {
                let mut st = self.c.prepare_cached("SELECT task_enqueue(?1, ?2)")?;
                Value::Text(st.query_row(params![TYPE, details], |r| r.get(0))?)
            }
            Sys::Raw => {
                let id = uuid::Uuid::now_v7().to_string();
                let mut st = self.c.prepare_cached(RAW_ENQUEUE)?;
                st.execute(params![id, QUEUE, TYPE, details, now_ms()])?;
                Value::Text(id)
            }
            Sys::Honker => {
                let mut st = self
                    .c
                    .prepare_cached("SELECT honker_enqueue(?1, ?2, NULL, NULL, 0, 3, NULL)")?;
                Value::Integer(st.query_row(params![QUEUE, details], |r| r.get(0))?)
            }
        })
    }

    /// `n` tasks in one transaction; their ids.
    pub fn enqueue_bulk(&self, n: u64) -> Res<Vec<Value>> {
        self.c.execute_batch("BEGIN IMMEDIATE")?;
        let mut ids = Vec::with_capacity(n as usize);
        for i in 0..n {
            ids.push(self.enqueue(i)?);
        }
        self.c.execute_batch("COMMIT")?;
        Ok(ids)
    }

    pub fn claim(&self) -> Res<Option<Value>> {
        if self.immediate {
            return self.in_immediate(|q| q.claim_now());
        }
        self.claim_now()
    }

    fn in_immediate<T>(&self, f: impl FnOnce(&Q) -> Res<T>) -> Res<T> {
        self.c.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(v) => {
                self.c.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.c.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn claim_now(&self) -> Res<Option<Value>> {
        match self.sys {
            Sys::Ext => {
                let text: Option<String> = if self.queue_filter {
                    let mut st = self
                        .c
                        .prepare_cached(r#"SELECT task_claim(?1, '{"queue": "default"}')"#)?;
                    st.query_row([WORKER], |r| r.get(0))?
                } else {
                    let mut st = self.c.prepare_cached("SELECT task_claim(?1)")?;
                    st.query_row([WORKER], |r| r.get(0))?
                };
                match text {
                    None => Ok(None),
                    Some(t) => Ok(Some(id_of(&t)?)),
                }
            }
            Sys::Raw => {
                let now = now_ms();
                let mut st = self.c.prepare_cached(RAW_CLAIM)?;
                let row = st
                    .query_row(params![WORKER, now + LEASE_MS, now, QUEUE], |r| {
                        let id: String = r.get(0)?;
                        let _type: String = r.get(1)?;
                        let _details: Option<String> = r.get(2)?;
                        let _attempts: i64 = r.get(3)?;
                        Ok(id)
                    })
                    .optional()?;
                Ok(row.map(Value::Text))
            }
            Sys::Honker => Ok(self.claim_batch(1)?.pop()),
        }
    }

    pub fn complete(&self, id: &Value) -> Res<()> {
        if self.immediate {
            return self.in_immediate(|q| q.complete_now(id));
        }
        self.complete_now(id)
    }

    fn complete_now(&self, id: &Value) -> Res<()> {
        match self.sys {
            Sys::Ext => {
                let mut st = self.c.prepare_cached("SELECT task_complete(?1, ?2)")?;
                let s: String = st.query_row(params![id, RESULT], |r| r.get(0))?;
                if s != "completed" {
                    return Err(json_err("complete", &s));
                }
            }
            Sys::Raw => {
                let mut st = self.c.prepare_cached(RAW_COMPLETE)?;
                if st.execute(params![RESULT, now_ms(), id])? != 1 {
                    return Err("raw complete changed no row".into());
                }
            }
            Sys::Honker => {
                let mut st = self.c.prepare_cached("SELECT honker_ack(?1, ?2)")?;
                let n: i64 = st.query_row(params![id, WORKER], |r| r.get(0))?;
                if n != 1 {
                    return Err("honker_ack acknowledged nothing".into());
                }
            }
        }
        Ok(())
    }

    pub fn claim_batch(&self, n: i64) -> Res<Vec<Value>> {
        match self.sys {
            Sys::Ext => {
                let text: String = if self.queue_filter {
                    let mut st = self.c.prepare_cached(
                        r#"SELECT task_claim_batch(?1, ?2, '{"queue": "default"}')"#,
                    )?;
                    st.query_row(params![WORKER, n], |r| r.get(0))?
                } else {
                    let mut st = self.c.prepare_cached("SELECT task_claim_batch(?1, ?2)")?;
                    st.query_row(params![WORKER, n], |r| r.get(0))?
                };
                ids_of(&text)
            }
            Sys::Raw => {
                let now = now_ms();
                let mut st = self.c.prepare_cached(RAW_CLAIM_BATCH)?;
                let rows = st.query_map(params![WORKER, now + LEASE_MS, now, QUEUE, n], |r| {
                    let id: String = r.get(0)?;
                    let _type: String = r.get(1)?;
                    let _details: Option<String> = r.get(2)?;
                    let _attempts: i64 = r.get(3)?;
                    Ok(Value::Text(id))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            }
            Sys::Honker => {
                let mut st = self
                    .c
                    .prepare_cached("SELECT honker_claim_batch(?1, ?2, ?3, ?4)")?;
                let text: String =
                    st.query_row(params![QUEUE, WORKER, n, HONKER_LEASE_S], |r| r.get(0))?;
                ids_of(&text)
            }
        }
    }

    pub fn complete_batch(&self, ids: &[Value]) -> Res<()> {
        match self.sys {
            Sys::Ext => {
                let result: &serde_json::value::RawValue = serde_json::from_str(RESULT)?;
                let items = ids
                    .iter()
                    .map(|id| match id {
                        Value::Text(id) => Ok(Done { id, result }),
                        _ => Err(json_err("id", "not text")),
                    })
                    .collect::<Res<Vec<Done>>>()?;
                let items = serde_json::to_string(&items)?;
                let mut st = self.c.prepare_cached("SELECT task_complete_batch(?1)")?;
                let n: i64 = st.query_row([items], |r| r.get(0))?;
                if n as usize != ids.len() {
                    return Err("task_complete_batch completed fewer tasks".into());
                }
            }
            Sys::Raw => {
                self.in_immediate(|q| {
                    for id in ids {
                        q.complete_now(id)?;
                    }
                    Ok(())
                })?;
            }
            Sys::Honker => {
                let list: Vec<i64> = ids
                    .iter()
                    .map(|id| match id {
                        Value::Integer(i) => *i,
                        _ => -1,
                    })
                    .collect();
                let list = serde_json::to_string(&list)?;
                let mut st = self.c.prepare_cached("SELECT honker_ack_batch(?1, ?2)")?;
                let n: i64 = st.query_row(params![list, WORKER], |r| r.get(0))?;
                if n as usize != ids.len() {
                    return Err("honker_ack_batch acknowledged fewer jobs".into());
                }
            }
        }
        Ok(())
    }

    /// sqlite-task only: complete `id` and claim the next task in one call.
    pub fn complete_next(&self, id: &Value) -> Res<Option<Value>> {
        let mut st = self
            .c
            .prepare_cached("SELECT task_complete_next(?1, ?2, ?3)")?;
        let text: Option<String> = st.query_row(params![id, RESULT, WORKER], |r| r.get(0))?;
        match text {
            None => Ok(None),
            Some(t) => Ok(Some(id_of(&t)?)),
        }
    }

    /// sqlite-task only: `task_enqueue` with options (a parent, dependencies, a unique key), the
    /// same details as `enqueue`. Returns the id (for a unique key already held, the holder's).
    pub fn enqueue_with(&self, n: u64, options: &str) -> Res<Value> {
        let details = format!(r#"{{"n":{n}}}"#);
        let mut st = self.c.prepare_cached("SELECT task_enqueue(?1, ?2, ?3)")?;
        Ok(Value::Text(
            st.query_row(params![TYPE, details, options], |r| r.get(0))?,
        ))
    }

    /// sqlite-task only: a task's progress as the `tasks` table shows it (for a parent, the
    /// rollup of its children's).
    pub fn progress_of(&self, id: &Value) -> Res<f64> {
        let mut st = self
            .c
            .prepare_cached("SELECT progress FROM tasks WHERE id = ?1")?;
        Ok(st.query_row([id], |r| r.get(0))?)
    }

    /// A progress report on a running task. honker has no progress; its nearest verb, a heartbeat
    /// that renews the claim, stands in.
    pub fn progress(&self, id: &Value, pct: i64, writeback: bool) -> Res<()> {
        match self.sys {
            Sys::Ext => {
                let sql = if writeback {
                    r#"SELECT task_progress(?1, ?2, '{"writeback": 1000}')"#
                } else {
                    "SELECT task_progress(?1, ?2)"
                };
                let mut st = self.c.prepare_cached(sql)?;
                let s: String = st.query_row(params![id, pct], |r| r.get(0))?;
                if s != "running" {
                    return Err(json_err("progress", &s));
                }
            }
            Sys::Raw => {
                let now = now_ms();
                let mut st = self.c.prepare_cached(RAW_PROGRESS)?;
                if st.execute(params![pct, now + LEASE_MS, now, id])? != 1 {
                    return Err("raw progress changed no row".into());
                }
            }
            Sys::Honker => {
                let mut st = self
                    .c
                    .prepare_cached("SELECT honker_heartbeat(?1, ?2, ?3)")?;
                let n: i64 = st.query_row(params![id, WORKER, HONKER_LEASE_S], |r| r.get(0))?;
                if n != 1 {
                    return Err("honker_heartbeat extended nothing".into());
                }
            }
        }
        Ok(())
    }

    /// Reads one task by id, every column. `storage`: sqlite-task's table instead of `tasks`.
    pub fn lookup(&self, id: &Value, storage: bool) -> Res<usize> {
        let sql = match (self.sys, storage) {
            (Sys::Ext, false) => format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"),
            (Sys::Ext, true) => format!("SELECT {TASK_COLUMNS} FROM task_store WHERE id = ?1"),
            (Sys::Raw, _) => "SELECT * FROM jobs WHERE id = ?1".to_string(),
            (Sys::Honker, _) => "SELECT * FROM _honker_live WHERE id = ?1".to_string(),
        };
        let mut st = self.c.prepare_cached(&sql)?;
        let n = st.column_count();
        let mut rows = st.query([id])?;
        let mut found = 0;
        while let Some(r) = rows.next()? {
            for i in 0..n {
                let _v: Value = r.get(i)?;
            }
            found += 1;
        }
        if found != 1 {
            return Err(format!("lookup found {found} rows").into());
        }
        Ok(found)
    }
}

fn load(c: &Connection, path: &str) -> Res<()> {
    // SAFETY: the libraries are the extensions this harness was pointed at; loading is the
    // documented way to use both.
    unsafe {
        c.load_extension_enable()?;
        let r = c.load_extension(path, None::<&str>);
        c.load_extension_disable()?;
        r?;
    }
    Ok(())
}
