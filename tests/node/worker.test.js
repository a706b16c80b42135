// runWorker (npm/worker.js) on better-sqlite3: what it writes for each way a
// handler ends, handlers by type and Fail, the reports it passes the attempt
// with, fencing, the handler's transaction, the idle wait, and each way to
// stop it (the first signal finishes the task, a second gives it back). The clock is supplied ({"now": ms} through
// the `now` option) wherever a lease or a backoff is looked at; the tests
// wait for events, never for a time, and a deadline only turns a hang into
// a failure.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const Database = require('better-sqlite3');
const { runWorker, Fail } = require('sqlite-task');

const EXT = process.env.TASK_EXT || path.join(__dirname, '..', '..', 'dist', 'task0');
const DEADLINE = 10000; // ms: the most a test waits for an event
const ID = '0193a000-0000-7000-8000-000000000001';

const dirs = [];
test.after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A fresh WAL file with the storage created, and a way to open more connections to it. */
function fresh() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-task-worker-'));
  dirs.push(dir);
  const file = path.join(dir, 'q.db');
  const open = () => {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.loadExtension(EXT);
    db.prepare('SELECT task_busy_timeout(5000)').get();
    return db;
  };
  const db = open();
  db.prepare('SELECT task_init()').get();
  return { file, db, open };
}

const one = (db, sql, ...args) => db.prepare(sql).pluck().get(...args);
const enqueue = (db, type, details = null, options = {}) =>
  one(db, 'SELECT task_enqueue(?, ?, ?)', type, details === null ? null : JSON.stringify(details), JSON.stringify(options));
const row = (db, id) =>
  db.prepare('SELECT status, attempts, progress, result, error, worker, lease_until, run_at FROM tasks WHERE id = ?').get(id);
// The options every run shares: no signal handlers, a named worker.
const base = { worker: 'w1', signals: [] };

/** Resolves when check() is true, polling every 5 ms; fails after DEADLINE. */
async function until(check, what) {
  const end = Date.now() + DEADLINE;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('a result completes the task, an error fails it with its message', async () => {
  const { db } = fresh();
  const ok = enqueue(db, 'ok', { n: 2 }, { now: 1000 });
  const boom = enqueue(db, 'boom', null, { now: 1001, max_attempts: 2 });
  const text = enqueue(db, 'text', null, { now: 1002, max_attempts: 1 });
  const bigint = enqueue(db, 'bigint', null, { now: 1003, max_attempts: 1 });
  const nothing = enqueue(db, 'nothing', null, { now: 1004 });
  const outcomes = [];
  const stats = await runWorker(
    db,
    async (task) => {
      if (task.type === 'ok') return { doubled: task.details.n * 2 };
      if (task.type === 'boom') throw new Error(`disk "full" on attempt ${task.attempt}`);
      if (task.type === 'text') throw 'plain text'; // eslint-disable-line no-throw-literal
      if (task.type === 'bigint') return { n: 1n };
      return undefined;
    },
    { ...base, wait: 0, untilIdle: true, now: () => 5000, onFinish: (task, outcome) => outcomes.push([task.type, outcome]) },
  );
  assert.deepStrictEqual(outcomes, [
    ['ok', { status: 'completed', result: { doubled: 4 } }],
    ['boom', { status: 'queued', error: 'disk "full" on attempt 1' }],
    ['text', { status: 'failed', error: 'plain text' }],
    ['bigint', { status: 'failed', error: 'the result is not JSON: Do not know how to serialize a BigInt' }],
    ['nothing', { status: 'completed', result: null }],
  ]);
  assert.deepStrictEqual(stats, { claimed: 5, completed: 2, waiting: 0, queued: 1, failed: 2, cancelled: 0, lost: 0 });
  assert.deepStrictEqual(row(db, ok), { status: 'completed', attempts: 1, progress: 100, result: '{"doubled":4}', error: null, worker: 'w1', lease_until: null, run_at: 1000 });
  // Retried after the backoff (1 s × [0.5, 1] from the supplied clock), then failed for good.
  const retried = row(db, boom);
  assert.deepStrictEqual([retried.status, retried.error], ['queued', 'disk "full" on attempt 1']);
  assert.ok(retried.run_at >= 5500 && retried.run_at <= 6000, `run_at ${retried.run_at}`);
  assert.deepStrictEqual(row(db, text).error, 'plain text');
  assert.deepStrictEqual(row(db, bigint).status, 'failed');
  assert.deepStrictEqual(row(db, nothing).result, null);
  const again = await runWorker(db, async (task) => {
    throw new Error(`still full on attempt ${task.attempt}`);
  }, { ...base, wait: 0, untilIdle: true, now: () => 7000 });
  assert.deepStrictEqual([again.claimed, again.failed], [1, 1]);
  assert.deepStrictEqual([row(db, boom).status, row(db, boom).error, row(db, boom).attempts], ['failed', 'still full on attempt 2', 2]);
  db.close();
});

test('handlers by task type; Fail chooses the retry; maxTasks', async () => {
  const { db } = fresh();
  const a = enqueue(db, 'a', null, { now: 1000 });
  const never = enqueue(db, 'b', null, { now: 1001 });
  const later = enqueue(db, 'c', null, { now: 1002 });
  const unknown = enqueue(db, 'paint', null, { now: 1003 });
  const left = enqueue(db, 'a', null, { now: 1004 });
  const stats = await runWorker(
    db,
    {
      a: async (task) => task.type,
      b: async () => {
        throw new Fail('no such account', { retry: false });
      },
      c: async () => {
        throw new Fail('rate limited', { delay: 60000 });
      },
    },
    { ...base, wait: 0, maxTasks: 4, now: () => 5000 },
  );
  assert.deepStrictEqual(stats, { claimed: 4, completed: 1, waiting: 0, queued: 1, failed: 2, cancelled: 0, lost: 0 });
  assert.strictEqual(row(db, a).result, '"a"');
  assert.deepStrictEqual([row(db, never).status, row(db, never).error, row(db, never).attempts], ['failed', 'no such account', 1]);
  assert.deepStrictEqual([row(db, later).status, row(db, later).error, row(db, later).run_at], ['queued', 'rate limited', 65000]);
  assert.deepStrictEqual([row(db, unknown).status, row(db, unknown).error], ['failed', 'worker w1 has no function for task type "paint" (it runs "a", "b", "c")']);
  assert.strictEqual(row(db, left).status, 'queued');
  db.close();
});

test("the handler's open transaction commits with the completion, and rolls back otherwise", async () => {
  const { db, open } = fresh();
  db.exec('CREATE TABLE sent (task TEXT)');
  const other = open();
  const ok = enqueue(db, 'ok', null, { now: 1000 });
  const boom = enqueue(db, 'boom', null, { now: 1000, max_attempts: 1 });
  const lost = enqueue(db, 'lost', null, { now: 1000 });
  let now = 1000;
  const stats = await runWorker(
    db,
    async (task) => {
      db.exec('BEGIN IMMEDIATE');
      db.prepare('INSERT INTO sent VALUES (?)').run(task.type);
      await new Promise((resolve) => setImmediate(resolve));
      if (task.type === 'boom') throw new Error('after the insert');
      if (task.type === 'lost') {
        // Its lease runs out and another worker takes it (an autocommit
        // claim on another connection, after this one rolled back).
        db.exec('ROLLBACK');
        now += 400000;
        one(other, 'SELECT task_claim(?, ?)', 'w2', JSON.stringify({ now }));
        db.exec('BEGIN IMMEDIATE');
        db.prepare('INSERT INTO sent VALUES (?)').run('lost again');
      }
      return task.type;
    },
    { ...base, wait: 0, untilIdle: true, heartbeat: 0, now: () => now },
  );
  assert.deepStrictEqual([stats.completed, stats.failed, stats.lost], [1, 1, 1]);
  assert.strictEqual(db.inTransaction, false);
  assert.deepStrictEqual(db.prepare('SELECT task FROM sent').pluck().all(), ['ok']);
  assert.deepStrictEqual([row(db, ok).status, row(db, boom).status, row(db, lost).worker], ['completed', 'failed', 'w2']);
  other.close();
  db.close();
});

test('progress and heartbeat pass the attempt and the clock; the lease is renewed', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'job', null, { id: ID, now: 1000 });
  let now = 1000;
  const seen = [];
  await runWorker(
    db,
    async (task, ctx) => {
      seen.push([ctx.worker, ctx.attempt, row(db, id).lease_until]);
      now = 2000;
      seen.push([ctx.progress(40), row(db, id).progress, row(db, id).lease_until]);
      now = 4000; // past a quarter of the lease: renewed to now + lease
      seen.push([ctx.heartbeat(), row(db, id).progress, row(db, id).lease_until]);
      now = 4500;
      seen.push([ctx.progress(60.5, { lease: 20000 }), row(db, id).progress, row(db, id).lease_until]);
      assert.throws(() => ctx.progress(140), /^SqliteError: task_progress: progress must be between 0 and 100, got 140$/);
      assert.strictEqual(ctx.signal.aborted, false); // a bad report is not a lost task
      return 'done';
    },
    { ...base, wait: 0, untilIdle: true, lease: 10000, heartbeat: 0, now: () => now },
  );
  assert.deepStrictEqual(seen, [
    ['w1', 1, 11000],
    ['running', 40, 11000],
    ['running', 40, 14000],
    ['running', 60.5, 24500],
  ]);
  const events = db.prepare("SELECT kind, at, attempt, worker FROM task_events WHERE task_id = ? AND kind = 'progress'").all(id);
  assert.deepStrictEqual(events.map((e) => [e.at, e.attempt, e.worker]), [[2000, 1, 'w1'], [4500, 1, 'w1']]);
  db.close();
});

test('heartbeats renew the lease while the handler runs', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'job', null, { now: 1000 });
  let now = 1000;
  await runWorker(
    db,
    async () => {
      assert.strictEqual(row(db, id).lease_until, 11000);
      now = 6000;
      await until(() => row(db, id).lease_until === 16000, 'a heartbeat to renew the lease');
    },
    { ...base, wait: 0, untilIdle: true, lease: 10000, heartbeat: 1, now: () => now },
  );
  assert.strictEqual(row(db, id).status, 'completed');
  db.close();
});

test('a worker whose lease expired and whose task was claimed again is fenced off', async () => {
  const { db, open } = fresh();
  const other = open();
  const reported = enqueue(db, 'reports', null, { now: 1000 });
  const silent = enqueue(db, 'silent', null, { now: 1000 });
  let now = 1000;
  const outcomes = [];
  const stats = await runWorker(
    db,
    async (task, ctx) => {
      // The lease runs out; another worker's claim takes the task as attempt 2.
      now += 20000;
      const taken = JSON.parse(one(other, 'SELECT task_claim(?, ?)', 'w2', JSON.stringify({ now, queue: 'default' })));
      assert.deepStrictEqual([taken.id, taken.attempt], [task.id, 2]);
      if (task.type === 'reports') {
        assert.throws(() => ctx.progress(50), { message: new RegExp(`^task_progress: attempt 1 of task ${task.id} is stale`) });
        assert.strictEqual(ctx.signal.aborted, true);
        assert.match(ctx.signal.reason.message, new RegExp(`^sqlite-task: task ${task.id} is no longer held by this worker: task_progress: attempt 1`));
      }
      return { from: 'w1' };
    },
    { ...base, wait: 0, untilIdle: true, lease: 10000, heartbeat: 0, now: () => now, onFinish: (task, o) => outcomes.push([task.type, o.status, o.error]) },
  );
  assert.deepStrictEqual(stats.lost, 2);
  assert.strictEqual(outcomes[0][1], 'lost');
  assert.match(outcomes[0][2], /^task_progress: attempt 1 of task .* is stale/);
  assert.deepStrictEqual(outcomes[1].slice(0, 2), ['silent', 'lost']);
  assert.match(outcomes[1][2], /^task_complete: attempt 1 of task .* is stale/);
  // Both still belong to w2's attempt, untouched by w1.
  for (const id of [reported, silent]) {
    const r = row(db, id);
    assert.deepStrictEqual([r.status, r.attempts, r.worker, r.progress, r.result], ['running', 2, 'w2', 0, null]);
  }
  other.close();
  db.close();
});

test('a task cancelled while it runs aborts ctx.signal and is left cancelled', async () => {
  const { db, open } = fresh();
  const other = open();
  const noticed = enqueue(db, 'noticed');
  const unnoticed = enqueue(db, 'unnoticed');
  const outcomes = [];
  const stats = await runWorker(
    db,
    async (task, ctx) => {
      one(other, 'SELECT task_cancel(?)', task.id);
      if (task.type === 'noticed') {
        assert.strictEqual(ctx.progress(10), 'cancelled');
        assert.strictEqual(ctx.signal.aborted, true);
        assert.strictEqual(ctx.signal.reason.message, `sqlite-task: task ${task.id} was cancelled`);
      }
      return 'ignored';
    },
    { ...base, wait: 0, untilIdle: true, onFinish: (task, o) => outcomes.push([task.type, o.status]) },
  );
  assert.deepStrictEqual(outcomes, [['noticed', 'cancelled'], ['unnoticed', 'cancelled']]);
  assert.strictEqual(stats.cancelled, 2);
  for (const id of [noticed, unnoticed]) assert.deepStrictEqual([row(db, id).status, row(db, id).result], ['cancelled', null]);
  other.close();
  db.close();
});

test('an idle worker long-polls: a task committed by another thread wakes its claim', { timeout: 4 * DEADLINE }, async () => {
  const { file, db } = fresh();
  // The producer, in a thread, enqueues once the worker is in its claim's
  // wait (the main thread is blocked there). A wait of an hour: only the
  // commit's wake can end it before the test's timeout.
  const producer = new Worker(
    `const { workerData } = require('node:worker_threads');
     const Database = require(workerData.driver);
     const db = new Database(workerData.file);
     db.loadExtension(workerData.ext);
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
     db.prepare("SELECT task_enqueue('late', '{\\"n\\":7}', '{\\"queue\\":\\"q\\"}')").get();
     db.close();`,
    { eval: true, workerData: { file, ext: EXT, driver: require.resolve('better-sqlite3') } },
  );
  const exited = new Promise((resolve, reject) => producer.on('exit', resolve).on('error', reject));
  const controller = new AbortController();
  const results = [];
  const stats = await runWorker(db, async (task) => task.details.n * 6, {
    ...base,
    queue: 'q',
    wait: 3600000,
    signal: controller.signal,
    onFinish: (task, outcome) => {
      results.push(outcome.result);
      controller.abort();
    },
  });
  await exited;
  assert.deepStrictEqual(results, [42]);
  assert.deepStrictEqual([stats.claimed, stats.completed], [1, 1]);
  db.close();
});

test('with wait 0 an idle worker sleeps without blocking the event loop, then claims', async () => {
  const { db } = fresh();
  const controller = new AbortController();
  let enqueued = null;
  // Runs only while the worker sleeps between empty claims.
  setTimeout(() => (enqueued = enqueue(db, 'later')), 50);
  const stats = await runWorker(db, async (task) => task.id, {
    ...base,
    wait: 0,
    idle: 20,
    signal: controller.signal,
    onFinish: () => controller.abort(),
  });
  assert.strictEqual(stats.completed, 1);
  assert.strictEqual(row(db, enqueued).result, JSON.stringify(enqueued));
  db.close();
});

test('a stop lets the task in hand finish, and claims nothing more', async () => {
  const { db } = fresh();
  const first = enqueue(db, 'job', null, { now: 1000 });
  const second = enqueue(db, 'job', null, { now: 1001 });
  const controller = new AbortController();
  let seen;
  const stats = await runWorker(
    db,
    async (task, ctx) => {
      const before = ctx.stopping;
      controller.abort();
      await new Promise((resolve) => setImmediate(resolve));
      seen = [before, ctx.stopping, ctx.signal.aborted];
      return 'finished anyway';
    },
    { ...base, wait: 0, signal: controller.signal },
  );
  assert.deepStrictEqual(seen, [false, true, false]);
  assert.deepStrictEqual([stats.claimed, stats.completed], [1, 1]);
  assert.deepStrictEqual([row(db, first).status, row(db, first).result], ['completed', '"finished anyway"']);
  assert.strictEqual(row(db, second).status, 'queued');
  db.close();
});

/** Sends `signal` to this process and waits until check() holds. */
async function signal(name, check, what) {
  process.kill(process.pid, name);
  await until(check, what);
}

test('a first signal finishes the task; its listeners are removed afterwards', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'job');
  const other = enqueue(db, 'job');
  const before = process.listenerCount('SIGUSR2');
  let during;
  let aborted;
  const stats = await runWorker(
    db,
    async (task, ctx) => {
      during = process.listenerCount('SIGUSR2');
      await signal('SIGUSR2', () => ctx.stopping, 'the signal to stop the worker');
      aborted = ctx.signal.aborted;
      return 'done';
    },
    { ...base, wait: 0, signals: ['SIGUSR2'] },
  );
  assert.deepStrictEqual([during, process.listenerCount('SIGUSR2')], [before + 1, before]);
  assert.strictEqual(aborted, false);
  assert.deepStrictEqual([stats.claimed, row(db, id).status, row(db, other).status], [1, 'completed', 'queued']);
  db.close();
});

test('a second signal aborts ctx.signal: a handler that gives up gives its task back, queued at once', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'long', null, { now: 1000 });
  const outcomes = [];
  let reason;
  const stats = await runWorker(
    db,
    async (task, ctx) => {
      await signal('SIGUSR2', () => ctx.stopping, 'the first signal');
      await signal('SIGUSR2', () => ctx.signal.aborted, 'the second signal');
      reason = ctx.signal.reason.message;
      throw ctx.signal.reason;
    },
    { ...base, wait: 0, now: () => 3000, signals: ['SIGUSR2'], onFinish: (task, o) => outcomes.push(o) },
  );
  assert.strictEqual(reason, 'sqlite-task: worker w1 was asked by SIGUSR2 to give its task back');
  const error = 'interrupted: worker w1 stopped by SIGUSR2 during attempt 1';
  assert.deepStrictEqual(outcomes, [{ status: 'queued', error }]);
  assert.strictEqual(stats.queued, 1);
  assert.deepStrictEqual(row(db, id), { status: 'queued', attempts: 1, progress: 0, result: null, error, worker: null, lease_until: null, run_at: 3000 });
  // Another worker takes it at once, as its next attempt.
  assert.strictEqual(JSON.parse(one(db, "SELECT task_claim('w2', '{\"now\":3000}')")).attempt, 2);
  db.close();
});

test('after a second signal, a handler that finishes anyway completes its task', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'short');
  await runWorker(
    db,
    async (task, ctx) => {
      await signal('SIGUSR2', () => ctx.stopping, 'the first signal');
      await signal('SIGUSR2', () => ctx.signal.aborted, 'the second signal');
      return 'made it';
    },
    { ...base, wait: 0, signals: ['SIGUSR2'] },
  );
  assert.deepStrictEqual([row(db, id).status, row(db, id).result], ['completed', '"made it"']);
  db.close();
});

test('an AbortSignal aborted before it starts: nothing is claimed', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'job');
  const stats = await runWorker(db, async () => assert.fail('no task should run'), { ...base, signal: AbortSignal.abort() });
  assert.strictEqual(stats.claimed, 0);
  assert.strictEqual(row(db, id).status, 'queued');
  db.close();
});

test('bad arguments are refused with a message, before anything is claimed', async () => {
  const { db } = fresh();
  const id = enqueue(db, 'job');
  const handler = async () => null;
  const cases = [
    [[db, 'not a function'], TypeError, 'sqlite-task: runWorker(db, handler, options): handler must be a function or an object of functions by task type, got string'],
    [[db, null], TypeError, 'sqlite-task: runWorker(db, handler, options): handler must be a function or an object of functions by task type, got null'],
    [[db, handler, { maxTasks: -1 }], TypeError, 'sqlite-task: runWorker: maxTasks must be a whole number, 0 or more, got -1'],
    [[db, handler, { polling: 1 }], TypeError, /^sqlite-task: runWorker: unknown option "polling" \(known: worker, queue, /],
    [[db, handler, { wait: -1 }], TypeError, 'sqlite-task: runWorker: wait must be a whole number of ms, 0 or more, got -1'],
    [[db, handler, { lease: 1.5 }], TypeError, 'sqlite-task: runWorker: lease must be a whole number of ms, 0 or more, got 1.5'],
    [[db, handler, { worker: '' }], TypeError, 'sqlite-task: runWorker: worker must be a non-empty string, got ""'],
    [[db, handler, { now: 5 }], TypeError, 'sqlite-task: runWorker: now must be a function, got number'],
    [[db, handler, { signal: 'stop' }], TypeError, 'sqlite-task: runWorker: signal must be an AbortSignal'],
    [[db, handler, { signals: 'SIGTERM' }], TypeError, 'sqlite-task: runWorker: signals must be an array of signal names'],
    [[{}, handler], TypeError, 'sqlite-task: runWorker needs a better-sqlite3 Database or a node:sqlite DatabaseSync with the extension loaded'],
    [[{ prepare() {}, parallelize() {} }, handler], TypeError, 'sqlite-task: runWorker needs a synchronous driver (better-sqlite3 or node:sqlite); the sqlite3 package is asynchronous'],
    [[new Database(':memory:'), handler, base], Error, 'sqlite-task: runWorker: the extension is not loaded on this connection (call load(db) first): no such function: task_claim'],
    // The claim's own refusal, from the SQL function.
    [[db, handler, { ...base, queue: '' }], Error, /^task_claim: /],
  ];
  for (const [args, type, message] of cases) {
    await assert.rejects(runWorker(...args), (e) => {
      assert.ok(e instanceof type, `${e}`);
      if (message instanceof RegExp) assert.match(e.message, message);
      else assert.strictEqual(e.message, message);
      return true;
    });
  }
  assert.strictEqual(row(db, id).status, 'queued');
  db.close();
});
