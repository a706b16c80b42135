// examples/node/watch.js (examples/README.md), run as a process as a user
// runs it, on a WAL file that this test changes through better-sqlite3; the
// checks of tests/python/test_watch_examples.py, with the same expected lines.
//
// The watcher waits with an hour's --timeout-ms, so a line that comes within
// DEADLINE came from a wake. What it prints is compared with task_events
// itself; "nothing more" is proven by a later event that must be the next
// line, never by a pause. Over IDLE ms an idle watcher must use under CPU_MS
// of CPU and wake at most WAKES times, every thread counted (from /proc):
// task_wait's own look once a second makes 2 wakes, a 100 ms poll 20. The
// example finds better-sqlite3 through NODE_PATH (this suite's node_modules).
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Database = require('better-sqlite3');
const { LineProcess } = require('./lines');

const EXT = process.env.TASK_EXT || path.join(__dirname, '..', '..', 'dist', 'task0');
const WATCH = path.join(__dirname, '..', '..', 'examples', 'node', 'watch.js');
const ENV = { ...process.env, TASK_EXT: EXT, TZ: 'UTC', NODE_PATH: path.join(__dirname, 'node_modules') };
const HOUR_MS = '3600000';
const DEADLINE = 10000; // ms: the most a line may take to come
const IDLE = 2000; // ms: the window of the idle measurements
const CPU_MS = 20; // the CPU an idle watcher may use in it (measured: 0)
const WAKES = 10; // the times it may wake in it (measured: 2)
const ID1 = '0193a000-0000-7000-8000-000000000001';
const ID2 = '0193a000-0000-7000-8000-000000000002';

/** A fresh WAL file with the storage created, and a connection to it. */
function fresh() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-task-watch-'));
  const file = path.join(dir, 'task.db');
  const db = open(file);
  return { dir, file, db };
}

function open(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.loadExtension(EXT);
  db.prepare('SELECT task_init()').get();
  return db;
}

const one = (db, sql, ...args) => db.prepare(sql).pluck().get(...args);
const enqueue = (db, type = 'job', options = {}) => one(db, 'SELECT task_enqueue(?, NULL, ?)', type, JSON.stringify(options));
const claim = (db, worker = 'w1', options = {}) => JSON.parse(one(db, 'SELECT task_claim(?, ?)', worker, JSON.stringify(options)));
const events = (db, where = '1', ...args) =>
  db.prepare(`SELECT seq, task_id, queue, type, kind, status, at, attempt, worker, error, progress
                FROM task_events WHERE ${where} ORDER BY seq`).all(...args);
const story = (printed, id) => printed.filter((e) => e.task_id === id).map((e) => [e.kind, e.status]);

/** node watch.js FILE ARGS as a process; its stdout read line by line. */
class Watcher extends LineProcess {
  constructor(file, ...args) {
    super('watcher', WATCH, [file, ...args], ENV, DEADLINE);
  }

  /** The next n lines, each within DEADLINE. */
  async take(n) {
    const got = [];
    while (got.length < n) got.push(await this.next(` after ${JSON.stringify(got)}`));
    return got;
  }

  async events(n) {
    return (await this.take(n)).map((l) => JSON.parse(l));
  }

  /** User + system CPU ms, and context switches of every thread, so far. */
  usage() {
    const fields = fs.readFileSync(`/proc/${this.proc.pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
    const cpu = ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
    let wakes = 0;
    for (const t of fs.readdirSync(`/proc/${this.proc.pid}/task`)) {
      for (const m of fs.readFileSync(`/proc/${this.proc.pid}/task/${t}/status`, 'utf8').matchAll(/ctxt_switches:\s+(\d+)/g)) {
        wakes += Number(m[1]);
      }
    }
    return { cpu, wakes };
  }

  async stop() {
    if (!this.ended) this.proc.kill('SIGKILL');
    await this.closed;
  }
}

/** Runs body(file, db, watch) on a fresh file; stops the watchers it started. */
async function withWatchers(body) {
  const { dir, file, db } = fresh();
  const started = [];
  try {
    await body(file, db, (...args) => started[started.push(new Watcher(file, ...args)) - 1]);
  } finally {
    for (const w of started) await w.stop();
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('each change is printed as it is committed', () =>
  withWatchers(async (file, db, watch) => {
    const w = watch('--json', '--timeout-ms', HOUR_MS);
    const printed = [];
    const a = one(db, "SELECT task_enqueue('resize', '{\"path\":\"a.png\"}')");
    printed.push(...(await w.events(1)));
    const b = enqueue(db, 'email', { max_attempts: 1 });
    printed.push(...(await w.events(1)));
    assert.strictEqual(claim(db, 'w1').id, a);
    printed.push(...(await w.events(1)));
    assert.strictEqual(one(db, 'SELECT task_progress(?, 40)', a), 'running');
    printed.push(...(await w.events(1)));
    assert.strictEqual(one(db, "SELECT task_complete(?, '{}')", a), 'completed');
    printed.push(...(await w.events(1)));
    assert.strictEqual(claim(db, 'w2').id, b);
    printed.push(...(await w.events(1)));
    assert.strictEqual(one(db, "SELECT task_fail(?, 'boom')", b), 'failed');
    printed.push(...(await w.events(1)));

    assert.deepStrictEqual(printed, events(db));
    const seqs = printed.map((e) => e.seq);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `${seqs}`);
    assert.deepStrictEqual(story(printed, a), [['enqueued', 'queued'], ['claimed', 'running'], ['progress', 'running'], ['completed', 'completed']]);
    assert.deepStrictEqual(story(printed, b), [['enqueued', 'queued'], ['claimed', 'running'], ['failed', 'failed']]);
    const progress = printed.find((e) => e.kind === 'progress');
    assert.deepStrictEqual([progress.progress, progress.worker, progress.attempt], [40, 'w1', 1]);
    const failed = printed.find((e) => e.kind === 'failed');
    assert.deepStrictEqual([failed.error, failed.worker], ['boom', 'w2']);
  }));

test('--after prints only the later events', () =>
  withWatchers(async (file, db, watch) => {
    enqueue(db, 'job', { id: ID1 });
    enqueue(db, 'job', { id: ID2 });
    claim(db);
    const mid = events(db)[1].seq;
    const w = watch('--json', '--after', String(mid), '--timeout-ms', HOUR_MS);
    const printed = await w.events(1);
    assert.deepStrictEqual(printed.map((e) => [e.task_id, e.kind]), [[ID1, 'claimed']]);
    const later = enqueue(db);
    printed.push(...(await w.events(1)));
    assert.strictEqual(printed[1].task_id, later);
    assert.deepStrictEqual(printed, events(db, 'seq > ?', mid));
  }));

test('--queue prints only that queue\'s events', () =>
  withWatchers(async (file, db, watch) => {
    const w = watch('--json', '--queue', 'images', '--timeout-ms', HOUR_MS);
    const other = enqueue(db, 'report');
    const image = enqueue(db, 'resize', { queue: 'images' });
    const printed = await w.events(1);
    claim(db, 'w1', { queue: 'default' });
    one(db, "SELECT task_complete(?, '{}')", other);
    one(db, 'SELECT task_cancel(?)', image);
    printed.push(...(await w.events(1)));
    assert.deepStrictEqual(story(printed, image), [['enqueued', 'queued'], ['cancelled', 'cancelled']]);
    assert.deepStrictEqual(printed, events(db, "queue = 'images'"));
  }));

for (const [name, args] of [['every queue', []], ['one queue', ['--queue', 'images']]]) {
  test(`an idle watcher sleeps past the events it does not show (${name})`, () =>
    withWatchers(async (file, db, watch) => {
      // The newest events are of another queue, and of a task deleted since,
      // which task_events no longer shows: a cursor left behind them would
      // make task_wait return at once, again and again.
      const image = enqueue(db, 'resize', { queue: 'images' });
      enqueue(db, 'report');
      const gone = enqueue(db, 'report');
      one(db, 'SELECT task_cancel(?)', gone);
      db.prepare('DELETE FROM tasks WHERE id = ?').run(gone);
      const w = watch('--json', ...args);
      const printed = await w.events(args.length ? 1 : 2);
      assert.strictEqual(printed[0].task_id, image);
      const before = w.usage();
      await new Promise((resolve) => setTimeout(resolve, IDLE));
      const after = w.usage();
      const [cpu, wakes] = [after.cpu - before.cpu, after.wakes - before.wakes];
      assert.strictEqual(w.ended, null, w.stderr);
      assert.ok(cpu < CPU_MS && wakes <= WAKES, `${cpu} ms of CPU and ${wakes} wakes in ${IDLE} ms idle`);
      // And it still wakes for the next event.
      const later = enqueue(db, 'resize', { queue: 'images' });
      assert.strictEqual((await w.events(1))[0].task_id, later);
    }));
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`${sig} ends it at once in its wait`, () =>
    withWatchers(async (file, db, watch) => {
      enqueue(db);
      const w = watch('--json', '--timeout-ms', HOUR_MS);
      await w.take(1);
      const started = Date.now();
      w.proc.kill(sig);
      const ended = await Promise.race([w.closed, new Promise((resolve) => setTimeout(resolve, DEADLINE, 'still running'))]);
      // Ended by the signal (Node's default action: exit status 128 + its number), as `tail -f` is.
      assert.deepStrictEqual(ended, { code: null, signal: sig });
      assert.ok(Date.now() - started < 2000);
      assert.strictEqual(w.stderr, '');
    }));
}

// The same lines are expected of examples/python/watch.py (tests/python/test_watch_examples.py).
const LINES = [
  `seq=1 00:00:01.000 enqueued  default/resize ${ID1} status=queued attempt=0`,
  `seq=2 00:00:02.000 claimed   default/resize ${ID1} status=running attempt=1 worker=w1`,
  `seq=3 00:00:02.500 progress  default/resize ${ID1} status=running attempt=1 worker=w1 progress=40.5`,
  `seq=4 00:00:03.000 failed    default/resize ${ID1} status=queued attempt=1 worker=w1 error="disk \\"full\\" é"`,
];

test('the line printed without --json', () =>
  withWatchers(async (file, db, watch) => {
    enqueue(db, 'resize', { id: ID1, now: 1000 });
    claim(db, 'w1', { now: 2000 });
    one(db, 'SELECT task_progress(?, 40.5, ?)', ID1, '{"now":2500}');
    one(db, 'SELECT task_fail(?, ?, ?)', ID1, 'disk "full" é', '{"now":3000}');
    const w = watch(); // TZ=UTC
    assert.deepStrictEqual(await w.take(4), LINES);
  }));

test('an event committed between the read and the wait is not missed', () => {
  // watch() itself, in a process of its own: onEvent runs between the read
  // and task_wait, so an event committed from onEvent is one that a wait for
  // the next commit (task_wait without after_seq) would sleep through.
  const { dir, file, db } = fresh();
  const script = `
    const { open, watch } = require(process.argv[1]);
    const db = open(process.argv[2]);
    const other = open(process.argv[2]);
    const first = db.prepare("SELECT task_enqueue('job')").pluck().get();
    const seen = [];
    let marker, committed;
    try {
      watch(db, { timeoutMs: 20000 }, (e) => {
        seen.push(e.task_id);
        if (e.task_id === first) {
          marker = other.prepare("SELECT task_enqueue('job')").pluck().get();
          committed = Date.now();
        } else if (e.task_id === marker) {
          throw 'stop';
        }
      });
    } catch (e) {
      if (e !== 'stop') throw e;
    }
    console.log(JSON.stringify({ ms: Date.now() - committed, seen: seen.length, first, marker }));`;
  try {
    const done = spawnSync(process.execPath, ['-e', script, WATCH, file], { env: ENV, encoding: 'utf8', timeout: 4 * DEADLINE });
    assert.strictEqual(done.status, 0, done.stderr);
    const got = JSON.parse(done.stdout);
    assert.strictEqual(got.seen, 2);
    assert.ok(got.ms < DEADLINE / 2, `waited ${got.ms} ms: for the timeout`);
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments end it with a message', () => {
  const { dir, file, db } = fresh();
  try {
    const run = (...args) => spawnSync(process.execPath, [WATCH, ...args], { env: ENV, encoding: 'utf8', timeout: DEADLINE });
    const cases = [
      [[file, '--timeout-ms=-1'], 1, 'watch.js: task_wait: timeout_ms must be between 0 and 3600000, got -1\n'],
      [[file, '--after', 'x'], 2, 'usage: node watch.js DB'],
      [[file, '--bogus'], 2, "Unknown option '--bogus'"],
      [[], 2, 'usage: node watch.js DB'],
      [[path.join(dir, 'no', 'such.db')], 1, 'watch.js: Cannot open database because the directory does not exist\n'],
    ];
    for (const [args, status, message] of cases) {
      const done = run(...args);
      assert.strictEqual(done.status, status, `${args}: ${done.stderr}`);
      assert.ok(done.stderr.includes(message), `${args}: ${done.stderr}`);
      assert.strictEqual(done.stdout, '');
    }
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
