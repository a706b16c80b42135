// Prints each change to a sqlite-task queue as it is committed, from a cursor.
//
//   node examples/node/watch.js DB [--after SEQ] [--queue Q] [--timeout-ms MS] [--json]
//
// The loop a UI follows to show the queue live: read the events after the
// cursor, hand each one on, move the cursor, then sleep in task_wait until a
// later event is committed, by any connection or process. Nothing here polls:
// an idle watcher sleeps in the kernel.
//
// better-sqlite3 is synchronous, so task_wait blocks the thread that calls
// it. The loop, watch(), therefore runs in a worker_thread and posts each
// event to the main thread, which prints it. An Electron main process does
// the same and forwards each message to its renderer:
//   new Worker(...).on('message', (event) => win.webContents.send('task-event', event));
// or runs the loop in a utility process. A worker in task_wait cannot be
// stopped: Node's process.exit() waits until the call returns, so in a
// worker keep timeoutMs to a second or two (each return is one cheap read);
// a utility process can simply be killed. watch() is exported for that use.
//
// The extension is loaded from $TASK_EXT (a path without the suffix), else
// from this checkout's dist/task0. better-sqlite3: `npm install better-sqlite3`.
'use strict';
const path = require('node:path');
const { parseArgs } = require('node:util');
const { Worker, parentPort, workerData } = require('node:worker_threads');
const Database = require('better-sqlite3');

const EXT = process.env.TASK_EXT || path.join(__dirname, '..', '..', 'dist', 'task0');

const EVENTS = `
SELECT seq, task_id, queue, type, kind, status, at, attempt, worker, error, progress
  FROM task_events
 WHERE seq > :after AND (:queue IS NULL OR queue = :queue)
 ORDER BY seq`;
// The cursor moves to the log's newest event, shown or not: past the other
// queues' events, and past those of deleted tasks, which task_events leaves
// out but after_seq counts (a cursor behind them would never wait).
const NEWEST = 'SELECT coalesce(max(seq), 0) FROM task_event_store';

/** The database at `file`, in WAL mode, with the extension loaded and the storage created. */
function open(file) {
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.loadExtension(EXT);
  db.prepare('SELECT task_init()').get();
  return db;
}

/**
 * Calls onEvent(event) for each event after `after` (of `queue`, or every
 * queue), in seq order, as they are committed; never returns. Blocks its
 * thread: run it in a worker_thread or a utility process.
 */
function watch(db, { after = 0, queue = null, timeoutMs = 60000 } = {}, onEvent) {
  const events = db.prepare(EVENTS);
  const newest = db.prepare(NEWEST).pluck();
  const wait = db.prepare('SELECT task_wait(?, ?)').pluck();
  // One snapshot, so that the events and the newest seq agree.
  const read = db.transaction((cursor) => [events.all({ after: cursor, queue }), newest.get()]);
  let cursor = after;
  for (;;) {
    const [rows, last] = read(cursor);
    // Outside the snapshot: a slow onEvent keeps no checkpoint waiting.
    for (const event of rows) onEvent(event);
    cursor = Math.max(cursor, last);
    // Returns at once if an event after the cursor was committed since the
    // read above; else sleeps until one is, or until the timeout. A BigInt,
    // since better-sqlite3 binds a number as a REAL, which timeout_ms refuses.
    wait.get(BigInt(timeoutMs), JSON.stringify({ after_seq: cursor }));
  }
}

/** `seq=12 14:03:05.123 claimed   default/resize <id> status=running attempt=1 worker=w1` */
function line(e) {
  const d = new Date(e.at);
  const p = (n, width = 2) => String(n).padStart(width, '0');
  const at = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  const extra = ['attempt', 'worker', 'progress', 'error']
    .filter((k) => e[k] !== null)
    .map((k) => ` ${k}=${k === 'error' ? JSON.stringify(e[k]) : e[k]}`)
    .join('');
  return `seq=${e.seq} ${at} ${e.kind.padEnd(9)} ${e.queue}/${e.type} ${e.task_id} status=${e.status}${extra}`;
}

function main() {
  const usage = 'usage: node watch.js DB [--after SEQ] [--queue Q] [--timeout-ms MS] [--json]';
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        after: { type: 'string', default: '0' },
        queue: { type: 'string' },
        'timeout-ms': { type: 'string', default: '60000' },
        json: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    process.exit(2);
  }
  const { values, positionals } = args;
  const after = Number(values.after);
  const timeoutMs = Number(values['timeout-ms']);
  if (positionals.length !== 1 || !Number.isInteger(after) || !Number.isInteger(timeoutMs)) {
    console.error(usage);
    process.exit(2);
  }
  const options = { after, queue: values.queue ?? null, timeoutMs };
  const worker = new Worker(__filename, { workerData: { watch: { file: positionals[0], options } } });
  worker.on('message', (e) => process.stdout.write(`${values.json ? JSON.stringify(e) : line(e)}\n`));
  worker.on('error', (e) => {
    console.error(`watch.js: ${e.message}`);
    process.exit(1);
  });
  // Ctrl-C and SIGTERM keep their default action, which ends the process at
  // once: process.exit() would first wait for the worker's task_wait to
  // return, up to timeoutMs later. The worker only reads, and each line is
  // written whole (stdout is synchronous for files and pipes).
}

if (workerData && workerData.watch) {
  const { file, options } = workerData.watch;
  try {
    watch(open(file), options, (e) => parentPort.postMessage(e));
  } catch (e) {
    throw new Error(e.message); // a SqliteError reaches the main thread without its message
  }
} else if (require.main === module) {
  main();
}

module.exports = { open, watch, line };
