// A worker process for a sqlite-task queue: a starting point for your own.
//
//   node examples/node/worker.js DB [--queue Q ...] [--worker NAME] [--lease MS]
//
// It claims the tasks of DB (of the queues named, else of every queue), runs
// the handler for each task's type, completes the task with the handler's
// result or fails it with its error (retried with backoff while attempts
// remain), and prints one line when a task starts and one when it ends.
// runWorker, from the sqlite-task package, is the loop: the claim (a long
// poll, so an idle worker costs one cheap read a second), the lease renewed
// while a handler runs, the attempt passed with every call.
//
// Ctrl-C or SIGTERM stops it: no new task is claimed, and the task in hand
// runs to its end. A second signal asks for the task back: ctx.signal is
// aborted, the handlers here give up on it, and the task is queued again at
// once for another worker (on its next attempt). A third ends the process at
// once; its task then comes back when its lease expires. No task is lost.
//
// In your project: npm install sqlite-task better-sqlite3. In this checkout
// (examples/README.md): bash npm/build.sh, and NODE_PATH=tests/node/node_modules.
// $TASK_EXT (a path without the suffix), when set, is loaded instead of the
// package's build: the tests load the extension they test.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const { setTimeout: sleep } = require('node:timers/promises');
const { parseArgs } = require('node:util');
const Database = require('better-sqlite3');
const { load, runWorker } = require('sqlite-task');

// One handler per task type: (details, ctx, task) => result. Add yours here.
const HANDLERS = {
  // Returns its details: a smoke test of the queue.
  echo: async (details) => details,

  // {"path": "…"} → {"sha256": "…", "bytes": n}, with progress as the file is read.
  hash: async ({ path }, ctx) => {
    const { size } = await fs.promises.stat(path);
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    let reported = 0;
    for await (const chunk of fs.createReadStream(path, { signal: ctx.signal })) {
      hash.update(chunk);
      bytes += chunk.length;
      const percent = Math.floor((bytes * 100) / size);
      // One report per tenth: each written report is a small commit.
      if (percent >= reported + 10) {
        reported = percent;
        if (ctx.progress(percent) === 'cancelled') break;
      }
    }
    return { sha256: hash.digest('hex'), bytes };
  },

  // {"ms": n} → {"slept": n}: waits, reporting progress each tenth of the way.
  sleep: async ({ ms }, ctx) => {
    for (let tenth = 1; tenth <= 10; tenth++) {
      await sleep(ms / 10, undefined, { signal: ctx.signal });
      if (ctx.progress(tenth * 10) === 'cancelled') break;
    }
    return { slept: ms };
  },
};

function open(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  if (process.env.TASK_EXT) db.loadExtension(process.env.TASK_EXT);
  else load(db);
  // The fair wait for the write lock, on every worker connection.
  db.prepare('SELECT task_busy_timeout(30000)').get();
  db.prepare('SELECT task_init()').get();
  return db;
}

function line(kind, task, extra = '') {
  process.stdout.write(`${kind.padEnd(9)} ${task.queue}/${task.type} ${task.id} attempt=${task.attempt}${extra}\n`);
}

async function main() {
  const usage = 'usage: node worker.js DB [--queue Q ...] [--worker NAME] [--lease MS]';
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        queue: { type: 'string', multiple: true },
        worker: { type: 'string' },
        lease: { type: 'string' },
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    process.exit(2);
  }
  const { values, positionals } = args;
  const lease = values.lease === undefined ? undefined : Number(values.lease);
  if (positionals.length !== 1 || (lease !== undefined && !Number.isInteger(lease))) {
    console.error(usage);
    process.exit(2);
  }
  const worker = values.worker ?? `worker-${process.pid}`;
  const db = open(positionals[0]);

  process.stdout.write(`worker ${worker} waiting for tasks in ${positionals[0]}\n`);
  let stoppedBy = null;
  for (const name of ['SIGINT', 'SIGTERM']) {
    // once: runWorker's own listeners handle the signals that follow.
    process.once(name, () => {
      if (stoppedBy !== null) return;
      stoppedBy = name;
      process.stdout.write(`worker ${worker} stopping (${name}): a task in hand runs to its end; a second signal gives it back\n`);
    });
  }
  const stats = await runWorker(
    db,
    // One function per task type; a task of another type fails for good.
    Object.fromEntries(
      Object.entries(HANDLERS).map(([type, handler]) => [
        type,
        (task, ctx) => {
          line('started', task);
          return handler(task.details ?? {}, ctx, task);
        },
      ]),
    ),
    {
      worker,
      queue: values.queue,
      lease,
      onFinish: (task, outcome) =>
        line(outcome.status, task, 'error' in outcome ? ` error=${JSON.stringify(outcome.error)}` : ` result=${JSON.stringify(outcome.result)}`),
    },
  );
  db.close();
  const counts = Object.entries(stats).filter(([k, n]) => n > 0 && k !== 'claimed').map(([k, n]) => `${n} ${k}`);
  process.stdout.write(`worker ${worker} stopped (${stoppedBy ?? 'done'}) after ${stats.claimed} tasks${counts.length ? `: ${counts.join(', ')}` : ''}\n`);
}

main().catch((e) => {
  console.error(`worker.js: ${e.message}`);
  process.exit(1);
});
