// graphile-worker (the version pinned in package.json) on the Postgres bench's throwaway cluster:
// one measurement per call, driven by bench/postgres.py, which prints {"ops": …, "secs": …}.
//
//   node graphile.js migrate                   installs graphile-worker's schema (untimed)
//   node graphile.js enqueue <n>               addJob, one job per call: one transaction each
//   node graphile.js enqueue-batch <n> <k>     addJobs, k jobs per call: one transaction each
//   node graphile.js drain <n> <concurrency> [<local queue size>]
//                                              n no-op jobs waiting (added untimed), then one
//                                              worker pool runs them until every one succeeded
//   … --cap <secs>                             stop there and rate what was done (default 10)
//
// The drain is timed from the first job's start until the job table is seen empty (polled every
// 2 ms once the last job has succeeded: graphile-worker completes a job after its success event,
// without waiting for it); the pool's own startup is left out. With a local queue size, the pool fetches that many jobs per query and
// batches completions (completeJobBatchDelay 0), graphile-worker's batch mode. Every case
// empties the job table first and checks at the end that each job ran once and none is left.
//
// Connects with PGHOST, PGPORT, PGUSER and PGDATABASE (the Unix socket of the cluster).

"use strict";

const { EventEmitter } = require("events");
const { Pool } = require("pg");
const { Logger, makeWorkerUtils, run, runMigrations } = require("graphile-worker");

const TASK = "noop";

// Errors only: graphile-worker's info lines would otherwise interleave with the bench's output.
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(`graphile-worker: ${message}`);
});

function pool(max) {
  const p = new Pool({ max });
  p.on("error", (e) => console.error(`pg pool: ${e.message}`));
  p.on("connect", (client) => client.on("error", (e) => console.error(`pg: ${e.message}`)));
  return p;
}

async function clear(pg) {
  await pg.query("DELETE FROM graphile_worker._private_jobs");
}

async function remaining(pg) {
  const r = await pg.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs");
  return r.rows[0].n;
}

// What the bench records, with the synchronous_commit the connections really had (PGOPTIONS).
async function report(pg, ops, secs) {
  const r = await pg.query("SHOW synchronous_commit");
  const line = { ops, secs, synchronous_commit: r.rows[0].synchronous_commit };
  process.stdout.write(JSON.stringify(line) + "\n");
}

async function enqueue(n, k, cap) {
  const pg = pool(2);
  const utils = await makeWorkerUtils({ pgPool: pg, logger });
  try {
    await clear(pg);
    const t0 = process.hrtime.bigint();
    const end = t0 + cap;
    let done = 0;
    while (done < n && process.hrtime.bigint() < end) {
      if (k === 1) {
        await utils.addJob(TASK, { n: done });
        done++;
      } else {
        const specs = [];
        for (let j = done; j < Math.min(n, done + k); j++) {
          specs.push({ identifier: TASK, payload: { n: j } });
        }
        await utils.addJobs(specs);
        done += specs.length;
      }
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const left = await remaining(pg);
    if (left !== done) throw new Error(`enqueued ${done} jobs, the table holds ${left}`);
    await report(pg, done, secs);
  } finally {
    await utils.release();
    await pg.end();
  }
}

async function drain(n, concurrency, localQueue, cap) {
  const pg = pool(concurrency + 2);
  const utils = await makeWorkerUtils({ pgPool: pg, logger });
  await clear(pg);
  for (let i = 0; i < n; i += 1000) {
    const specs = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      specs.push({ identifier: TASK, payload: { n: j } });
    }
    await utils.addJobs(specs);
  }
  await utils.release();

  const seen = new Set();
  let doubled = 0;
  let first = null;
  let last = null;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const preset = localQueue
    ? { worker: { localQueue: { size: localQueue }, completeJobBatchDelay: 0 } }
    : undefined;
  // Our own emitter, listened to before the pool starts (its first jobs start at once).
  const events = new EventEmitter();
  events.on("job:start", () => {
    if (first === null) first = process.hrtime.bigint();
  });
  events.on("job:success", ({ job }) => {
    if (seen.has(job.id)) doubled++;
    seen.add(job.id);
    if (seen.size === n) {
      last = process.hrtime.bigint();
      done();
    }
  });
  const runner = await run({
    pgPool: pg,
    logger,
    events,
    concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    preset,
    taskList: { [TASK]: async () => {} },
  });
  // The cap counts from the first job's start; 60 s more for a pool that never starts one.
  const timeout = setTimeout(() => done(), Number(cap / 1_000_000n) + 60_000);
  const capCheck = setInterval(() => {
    if (first !== null && process.hrtime.bigint() - first > cap) done();
  }, 20);
  await finished;
  clearTimeout(timeout);
  clearInterval(capCheck);
  let left = null;
  const ran = seen.size;
  if (last === null && first !== null && ran > 0) {
    // Capped: rated on the jobs that succeeded so far.
    last = process.hrtime.bigint();
    left = n - ran;
  } else if (last !== null) {
    const deadline = last + 10_000_000_000n;
    while ((left = await remaining(pg)) !== 0 && process.hrtime.bigint() < deadline) {
      await new Promise((r) => setTimeout(r, 2));
    }
    last = process.hrtime.bigint();
  }
  await runner.stop();
  try {
    if (last === null) throw new Error(`the worker pool ran ${seen.size} of ${n} jobs`);
    if (doubled) throw new Error(`${doubled} jobs succeeded twice`);
    if (ran === n && left !== 0) {
      throw new Error(`${left} jobs left in the table 10 s after the last success`);
    }
    await report(pg, ran, Number(last - first) / 1e9);
  } finally {
    await pg.end();
  }
}

async function main() {
  const argv = process.argv.slice(2);
  let cap = 10_000_000_000n;
  const at = argv.indexOf("--cap");
  if (at >= 0) {
    cap = BigInt(Math.round(Number(argv[at + 1]) * 1e9));
    argv.splice(at, 2);
  }
  const [cmd, ...args] = argv;
  const num = (i, what) => {
    const v = Number(args[i]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${cmd}: ${what} must be a positive integer`);
    return v;
  };
  switch (cmd) {
    case "migrate": {
      const pg = pool(2);
      await runMigrations({ pgPool: pg, logger });
      await pg.end();
      return;
    }
    case "enqueue":
      return enqueue(num(0, "n"), 1, cap);
    case "enqueue-batch":
      return enqueue(num(0, "n"), num(1, "k"), cap);
    case "drain": {
      const local = args[2] ? num(2, "local queue size") : 0;
      return drain(num(0, "n"), num(1, "concurrency"), local, cap);
    }
    default:
      throw new Error("usage: node graphile.js migrate | enqueue <n> | enqueue-batch <n> <k> | drain <n> <concurrency> [<local queue size>]");
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
