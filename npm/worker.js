// runWorker: the worker loop over the SQL functions, for synchronous drivers
// (better-sqlite3, node:sqlite); the Node twin of python/sqlite_task/worker.py.
// The SQL stays the interface; this is the loop every worker writes, written
// once: claim, hand the task to an async function, renew the lease while it
// runs, complete with its result or fail with its error, and stop without
// leaving the task running.
//
// Why the claim waits in short steps: both drivers are synchronous, so a
// long-poll claim (task_claim's {"wait": ms}) blocks the thread that calls
// it, timers and AbortSignals included (a process signal ends the wait at
// once: the claim returns NULL and the handler runs on the event loop). The
// loop therefore claims with a wait of at most `wait` ms (1 s by default)
// and yields to the event loop between claims: an idle worker costs one
// cheap read a second, and an abort of options.signal is seen within `wait`
// ms. An application whose main thread must stay
// responsive runs the loop in a worker_thread or a utility process.
//
// Stopping, as the Python worker does: the first SIGINT or SIGTERM (or an
// abort of options.signal) stops the loop after the task in hand, which runs
// to its end and is completed or failed as usual (ctx.stopping tells the
// handler, which may end early). Finishing comes first because most tasks are
// short and supervisors allow a grace period (systemd 90 s, Kubernetes 30 s).
// A second signal while a task runs aborts ctx.signal, and if the handler
// then gives up (rejects), the task is given back: task_fail with
// {"delay": 0} queues it again at once for another worker. There is no verb
// that returns a running task without spending its attempt, so on its last
// attempt a task given back fails. A further signal takes the signal's
// default action; the task then comes back when its lease expires.
//
// Transactions: a handler may write on the worker's connection inside a
// transaction of its own (BEGIN IMMEDIATE). What it leaves open commits with
// the completion, and is rolled back when the task fails, is given back or
// turns out to be lost: the task's effects and its completion are one
// transaction.
'use strict';
const os = require('node:os');
const { isMainThread } = require('node:worker_threads');

const DEFAULT_LEASE = 300000; // task_claim's default lease, ms
const DEFAULT_WAIT = 1000;
const DEFAULT_IDLE = 1000;
const FIRST_IDLE = 10; // the first sleep after an empty claim with wait: 0, ms

/**
 * Throw it in a handler to fail the task with exactly this message:
 * `retry: false` fails it for good whatever attempts remain, `delay` retries
 * it after that many ms instead of the backoff.
 */
class Fail extends Error {
  constructor(message, { retry = true, delay } = {}) {
    super(message);
    this.name = 'Fail';
    this.retry = retry;
    this.delay = delay;
  }
}

/**
 * Claims tasks for `options.worker` and runs `handler(task, ctx)` (or the
 * handler of `handler[task.type]`) on each, one at a time, until stopped.
 * Resolves with the counts of what became of the tasks it claimed.
 */
async function runWorker(db, handler, options = {}) {
  if (typeof handler !== 'function' && (handler === null || typeof handler !== 'object')) {
    throw new TypeError(
      `sqlite-task: runWorker(db, handler, options): handler must be a function or an object of functions by task type, got ${handler === null ? 'null' : typeof handler}`,
    );
  }
  const opts = readOptions(options);
  const sql = statements(db);
  const stats = { claimed: 0, completed: 0, waiting: 0, queued: 0, failed: 0, cancelled: 0, lost: 0 };

  const state = { stop: null, giveBack: null }; // why the loop stops; the signal that asked to give the task back
  let current = null; // the AbortController of the task in hand
  let wakeIdle = null;
  const stop = (reason) => {
    if (state.stop !== null) return;
    state.stop = reason;
    if (wakeIdle) wakeIdle();
  };

  const onAbort = () => stop('aborted');
  if (opts.signal) {
    if (opts.signal.aborted) stop('aborted');
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  const listeners = opts.signals.map((name) => {
    const listener = () => {
      if (state.stop === null) return stop(name);
      if (current && state.giveBack === null) {
        state.giveBack = name;
        return current.abort(new Error(`sqlite-task: worker ${opts.worker} was asked by ${name} to give its task back`));
      }
      // Asked again: take the signal's default action. A task in hand comes
      // back when its lease expires.
      removeListeners();
      process.kill(process.pid, name);
    };
    process.on(name, listener);
    return [name, listener];
  });
  const removeListeners = () => {
    for (const [name, listener] of listeners.splice(0)) process.removeListener(name, listener);
  };

  try {
    let idle = 0; // the next sleep after an empty claim, when claims do not wait
    while (state.stop === null && (opts.maxTasks === undefined || stats.claimed < opts.maxTasks)) {
      const text = sql.claim(opts.worker, claimOptions(opts));
      if (text === null) {
        if (opts.untilIdle) break;
        if (opts.wait > 0) {
          await yieldToEventLoop();
        } else {
          idle = Math.min(opts.idle, idle === 0 ? FIRST_IDLE : idle * 2);
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, idle);
            wakeIdle = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wakeIdle = null;
        }
        continue;
      }
      idle = 0;
      const task = JSON.parse(text);
      stats.claimed += 1;
      current = new AbortController();
      let outcome;
      try {
        outcome = await runTask(sql, opts, task, handlerFor(handler, opts, task), current, state);
      } finally {
        current = null;
        state.giveBack = null;
      }
      stats[outcome.status] += 1;
      if (opts.onFinish) opts.onFinish(task, outcome);
      // Let a signal or an abort that came during the task be seen before
      // the next claim waits.
      await yieldToEventLoop();
    }
  } finally {
    removeListeners();
    if (opts.signal) opts.signal.removeEventListener('abort', onAbort);
  }
  return stats;
}

function handlerFor(handler, opts, task) {
  if (typeof handler === 'function') return handler;
  const fn = Object.hasOwn(handler, task.type) ? handler[task.type] : undefined;
  if (typeof fn === 'function') return fn;
  const known = Object.keys(handler).filter((k) => typeof handler[k] === 'function');
  return () => {
    throw new Fail(`worker ${opts.worker} has no function for task type ${JSON.stringify(task.type)} (it runs ${known.map((k) => JSON.stringify(k)).join(', ')})`, { retry: false });
  };
}

/** Runs one claimed task to its outcome: { status, result } or { status, error }. */
async function runTask(sql, opts, task, handler, controller, state) {
  const fence = () => (opts.now ? { attempt: task.attempt, now: opts.now() } : { attempt: task.attempt });
  // Set when a report finds the task is no longer ours: 'cancelled' or 'lost'.
  let gone = null;
  const lose = (status, message) => {
    if (gone) return;
    gone = { status, error: message };
    controller.abort(new Error(`sqlite-task: task ${task.id} ${status === 'cancelled' ? 'was cancelled' : `is no longer held by this worker: ${message}`}`));
  };
  // A report's result, or the refusal that tells the task is gone.
  const report = (call, extra) => {
    let status;
    try {
      status = call({ ...extra, ...fence() });
    } catch (e) {
      const refused = refusal(sql, task);
      if (refused) lose(refused, e.message);
      throw e;
    }
    if (status === 'cancelled') lose('cancelled', 'cancelled while running');
    return status;
  };

  const ctx = {
    signal: controller.signal,
    worker: opts.worker,
    attempt: task.attempt,
    get stopping() {
      return state.stop !== null;
    },
    progress: (percent, extra = {}) => report((o) => sql.progress(task.id, percent, o), extra),
    heartbeat: (extra = {}) => report((o) => sql.heartbeat(task.id, o), extra),
  };

  let timer = null;
  if (opts.heartbeat > 0) {
    timer = setInterval(() => {
      try {
        ctx.heartbeat();
      } catch {
        // A refusal has aborted ctx.signal; any other error (a busy lock)
        // is left to the next heartbeat, well within the lease.
      }
    }, opts.heartbeat);
  }

  let result;
  let failure = null;
  try {
    result = await handler(task, ctx);
  } catch (e) {
    failure = e;
  } finally {
    if (timer) clearInterval(timer);
  }
  if (gone) {
    sql.rollback();
    return gone;
  }

  let json;
  if (failure === null) {
    try {
      json = result === undefined ? null : JSON.stringify(result);
    } catch (e) {
      failure = new Error(`the result is not JSON: ${e.message}`);
    }
  }
  try {
    if (failure === null) {
      // Inside the handler's own transaction, if it left one open.
      const status = sql.complete(task.id, json, fence());
      sql.commit();
      return { status, result: result === undefined ? null : JSON.parse(json) };
    }
    sql.rollback();
    const failOptions = fence();
    let error;
    if (state.giveBack !== null) {
      error = `interrupted: worker ${opts.worker} stopped by ${state.giveBack} during attempt ${task.attempt}`;
      failOptions.delay = 0;
    } else if (failure instanceof Fail) {
      error = failure.message;
      if (failure.retry === false) failOptions.retry = false;
      if (failure.delay !== undefined) failOptions.delay = failure.delay;
    } else {
      error = errorText(failure);
    }
    return { status: sql.fail(task.id, error, failOptions), error };
  } catch (e) {
    sql.rollback();
    const refused = refusal(sql, task);
    if (!refused) throw e;
    return { status: refused, error: e.message };
  }
}

/**
 * Whether the task is no longer this attempt's, after a verb on it failed:
 * 'cancelled', 'lost' (its lease expired and another claim took it, or it
 * finished otherwise, or it was deleted), or null (the error was another).
 */
function refusal(sql, task) {
  const row = sql.state(task.id);
  if (row === undefined) return 'lost';
  if (row.status === 'cancelled') return 'cancelled';
  if (row.status !== 'running' || row.attempts !== task.attempt) return 'lost';
  return null;
}

/** The prepared statements the loop runs; each returns the function's result. */
function statements(db) {
  if (db === null || typeof db !== 'object' || typeof db.prepare !== 'function') {
    throw new TypeError('sqlite-task: runWorker needs a better-sqlite3 Database or a node:sqlite DatabaseSync with the extension loaded');
  }
  if (typeof db.parallelize === 'function') {
    throw new TypeError('sqlite-task: runWorker needs a synchronous driver (better-sqlite3 or node:sqlite); the sqlite3 package is asynchronous');
  }
  const prepare = (text) => {
    try {
      return db.prepare(text);
    } catch (e) {
      if (/no such function: task_/.test(e.message)) {
        throw new Error(`sqlite-task: runWorker: the extension is not loaded on this connection (call load(db) first): ${e.message}`);
      }
      throw e;
    }
  };
  const value = (stmt) => (...args) => {
    const row = stmt.get(...args);
    return row === undefined ? undefined : row.v;
  };
  const claim = value(prepare('SELECT task_claim(?, ?) AS v'));
  const progress = value(prepare('SELECT task_progress(?, ?, ?) AS v'));
  const heartbeat = value(prepare('SELECT task_heartbeat(?, ?) AS v'));
  const complete = value(prepare('SELECT task_complete(?, ?, ?) AS v'));
  const fail = value(prepare('SELECT task_fail(?, ?, ?) AS v'));
  const state = prepare('SELECT status, attempts FROM tasks WHERE id = ?');
  // better-sqlite3 has inTransaction, node:sqlite isTransaction (Node 22.16).
  const inTransaction = () => Boolean(db.inTransaction ?? db.isTransaction);
  return {
    claim: (worker, o) => claim(worker, JSON.stringify(o)),
    progress: (id, percent, o) => progress(id, percent, JSON.stringify(o)),
    heartbeat: (id, o) => heartbeat(id, JSON.stringify(o)),
    complete: (id, json, o) => complete(id, json, JSON.stringify(o)),
    fail: (id, error, o) => fail(id, error, JSON.stringify(o)),
    state: (id) => {
      const row = state.get(id);
      return row && { status: row.status, attempts: Number(row.attempts) };
    },
    commit: () => inTransaction() && db.exec('COMMIT'),
    rollback: () => inTransaction() && db.exec('ROLLBACK'),
  };
}

function readOptions(options) {
  const known = ['worker', 'queue', 'lease', 'wait', 'idle', 'heartbeat', 'now', 'signal', 'signals', 'untilIdle', 'maxTasks', 'onFinish'];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`sqlite-task: runWorker: unknown option "${key}" (known: ${known.join(', ')})`);
  }
  const whole = (name, value, fallback, unit = ' of ms') => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < 0) {
      throw new TypeError(`sqlite-task: runWorker: ${name} must be a whole number${unit}, 0 or more, got ${value}`);
    }
    return value;
  };
  const fn = (name, value) => {
    if (value !== undefined && typeof value !== 'function') {
      throw new TypeError(`sqlite-task: runWorker: ${name} must be a function, got ${typeof value}`);
    }
    return value;
  };
  const worker = options.worker ?? `${os.hostname()}-${process.pid}`;
  if (typeof worker !== 'string' || worker === '') {
    throw new TypeError(`sqlite-task: runWorker: worker must be a non-empty string, got ${JSON.stringify(worker)}`);
  }
  const lease = whole('lease', options.lease, undefined);
  const signals = options.signals ?? (isMainThread ? ['SIGINT', 'SIGTERM'] : []);
  if (!Array.isArray(signals) || !signals.every((s) => typeof s === 'string')) {
    throw new TypeError('sqlite-task: runWorker: signals must be an array of signal names');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError('sqlite-task: runWorker: signal must be an AbortSignal');
  }
  return {
    worker,
    queue: options.queue,
    lease,
    wait: whole('wait', options.wait, DEFAULT_WAIT),
    idle: whole('idle', options.idle, DEFAULT_IDLE),
    // A heartbeat a third of the lease apart renews it every time (a
    // renewal happens once a quarter of the lease has passed).
    heartbeat: whole('heartbeat', options.heartbeat, Math.floor((lease ?? DEFAULT_LEASE) / 3)),
    now: fn('now', options.now),
    signal: options.signal,
    signals,
    untilIdle: Boolean(options.untilIdle),
    maxTasks: whole('maxTasks', options.maxTasks, undefined, ''),
    onFinish: fn('onFinish', options.onFinish),
  };
}

function claimOptions(opts) {
  const o = {};
  if (opts.queue !== undefined) o.queue = opts.queue;
  if (opts.lease !== undefined) o.lease = opts.lease;
  if (opts.wait > 0) o.wait = opts.wait;
  if (opts.now) o.now = opts.now();
  return o;
}

function errorText(e) {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

const yieldToEventLoop = () => new Promise((resolve) => setImmediate(resolve));

module.exports = { runWorker, Fail };
