// examples/node/worker.js and enqueue.js (examples/README.md), run as
// processes as a user runs them, on a WAL file this test reads through
// better-sqlite3: a live queue fed by enqueue.js while the worker runs, and
// the signals, SIGTERM mid-task included (its task given back, never lost
// and never left running). The examples find better-sqlite3 and sqlite-task
// (a link to npm/) through NODE_PATH, this suite's node_modules, and load
// $TASK_EXT. A line that should come is waited for within DEADLINE; the
// tests never wait for a time.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const Database = require('better-sqlite3');
const { LineProcess } = require('./lines');

const EXT = process.env.TASK_EXT || path.join(__dirname, '..', '..', 'dist', 'task0');
const EXAMPLES = path.join(__dirname, '..', '..', 'examples', 'node');
const ENV = { ...process.env, TASK_EXT: EXT, NODE_PATH: path.join(__dirname, 'node_modules') };
const DEADLINE = 10000; // ms: the most a line or an exit may take to come

const dirs = [];
test.after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function fresh() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-task-worker-example-'));
  dirs.push(dir);
  const file = path.join(dir, 'q.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.loadExtension(EXT);
  db.prepare('SELECT task_init()').get();
  return { dir, file, db };
}

/** node enqueue.js ARGS; its stdout's line, the id. */
function enqueue(...args) {
  const done = spawnSync(process.execPath, [path.join(EXAMPLES, 'enqueue.js'), ...args], { env: ENV, encoding: 'utf8', timeout: DEADLINE });
  assert.strictEqual(done.status, 0, `enqueue.js ${args.join(' ')}: ${done.stderr}`);
  assert.match(done.stdout, /^[0-9a-f-]{36}\n$/);
  return done.stdout.trim();
}

/** node worker.js ARGS as a process; its stdout read line by line. */
class Process extends LineProcess {
  constructor(...args) {
    super('worker', path.join(EXAMPLES, 'worker.js'), args, ENV, DEADLINE);
  }

  /** The exit, within DEADLINE. */
  async exit() {
    let timer;
    const late = new Promise((resolve) => (timer = setTimeout(resolve, DEADLINE, 'still running')));
    const ended = await Promise.race([this.closed, late]);
    clearTimeout(timer);
    if (ended === 'still running') this.proc.kill('SIGKILL');
    return ended;
  }
}

test('it works through a live queue fed by enqueue.js, then stops on SIGTERM', async () => {
  const { dir, file, db } = fresh();
  const data = path.join(dir, 'data.bin');
  fs.writeFileSync(data, crypto.randomBytes(3 * 1024 * 1024));
  const w = new Process(file, '--worker', 'ex1');
  try {
    assert.strictEqual(await w.next(), `worker ex1 waiting for tasks in ${file}`);
    const echo = enqueue(file, 'echo', '{"a":[1,"é"]}');
    assert.strictEqual(await w.next(), `started   default/echo ${echo} attempt=1`);
    assert.strictEqual(await w.next(), `completed default/echo ${echo} attempt=1 result={"a":[1,"é"]}`);

    const hash = enqueue(file, 'hash', JSON.stringify({ path: data }), '--queue', 'files');
    const missing = enqueue(file, 'hash', JSON.stringify({ path: path.join(dir, 'gone.bin') }), '--max-attempts', '1');
    const unknown = enqueue(file, 'paint', '{}', '--max-attempts', '1', '--priority=-1');
    const lines = [];
    for (let i = 0; i < 5; i++) lines.push(await w.next());
    const sha256 = crypto.createHash('sha256').update(fs.readFileSync(data)).digest('hex');
    assert.deepStrictEqual(lines, [
      `started   files/hash ${hash} attempt=1`,
      `completed files/hash ${hash} attempt=1 result={"sha256":"${sha256}","bytes":${3 * 1024 * 1024}}`,
      `started   default/hash ${missing} attempt=1`,
      `failed    default/hash ${missing} attempt=1 error="ENOENT: no such file or directory, stat '${path.join(dir, 'gone.bin')}'"`,
      `failed    default/paint ${unknown} attempt=1 error="worker ex1 has no function for task type \\"paint\\" (it runs \\"echo\\", \\"hash\\", \\"sleep\\")"`,
    ]);
    // What it printed is what the queue holds; the hash reported its progress.
    const rows = db.prepare('SELECT id, status, result, error, worker FROM tasks ORDER BY rowid').all();
    assert.deepStrictEqual(rows.map((r) => [r.id, r.status, r.worker]), [
      [echo, 'completed', 'ex1'],
      [hash, 'completed', 'ex1'],
      [missing, 'failed', 'ex1'],
      [unknown, 'failed', 'ex1'],
    ]);
    assert.strictEqual(JSON.parse(rows[1].result).sha256, sha256);
    const progress = db.prepare("SELECT progress FROM task_events WHERE task_id = ? AND kind = 'progress' ORDER BY seq").pluck().all(hash);
    assert.ok(progress.length >= 5 && progress.every((p, i) => i === 0 || p > progress[i - 1]), `${progress}`);

    w.proc.kill('SIGTERM');
    assert.strictEqual(await w.next(), 'worker ex1 stopping (SIGTERM): a task in hand runs to its end; a second signal gives it back');
    assert.strictEqual(await w.next(), 'worker ex1 stopped (SIGTERM) after 4 tasks: 2 completed, 2 failed');
    assert.deepStrictEqual(await w.exit(), { code: 0, signal: null });
    assert.strictEqual(w.stderr, '');
  } finally {
    w.proc.kill('SIGKILL');
    db.close();
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`${sig} mid-task: the task runs to its end, then the worker exits`, async () => {
    const { file, db } = fresh();
    const id = enqueue(file, 'sleep', '{"ms":300}');
    const other = enqueue(file, 'echo', '{}', '--priority=-1');
    const w = new Process(file, '--worker', 'ex2');
    try {
      await w.next();
      assert.strictEqual(await w.next(), `started   default/sleep ${id} attempt=1`);
      w.proc.kill(sig);
      assert.strictEqual(await w.next(), `worker ex2 stopping (${sig}): a task in hand runs to its end; a second signal gives it back`);
      assert.strictEqual(await w.next(), `completed default/sleep ${id} attempt=1 result={"slept":300}`);
      assert.strictEqual(await w.next(), `worker ex2 stopped (${sig}) after 1 tasks: 1 completed`);
      assert.deepStrictEqual(await w.exit(), { code: 0, signal: null });
      assert.strictEqual(w.stderr, '');
      assert.deepStrictEqual(db.prepare('SELECT status FROM tasks ORDER BY rowid').pluck().all(), ['completed', 'queued']);
      assert.strictEqual(db.prepare('SELECT attempts FROM tasks WHERE id = ?').pluck().get(other), 0);
    } finally {
      w.proc.kill('SIGKILL');
      db.close();
    }
  });

  test(`a second ${sig} mid-task gives the task back: queued again, on its next attempt`, async () => {
    const { file, db } = fresh();
    const id = enqueue(file, 'sleep', '{"ms":3600000}');
    const w = new Process(file, '--worker', 'ex3', '--lease', '60000');
    try {
      await w.next();
      assert.strictEqual(await w.next(), `started   default/sleep ${id} attempt=1`);
      assert.deepStrictEqual(db.prepare('SELECT status, worker FROM tasks WHERE id = ?').get(id), { status: 'running', worker: 'ex3' });
      w.proc.kill(sig);
      // The first is seen before the second is sent: two signals sent at
      // once may arrive as one.
      await w.next();
      w.proc.kill(sig);
      const error = `interrupted: worker ex3 stopped by ${sig} during attempt 1`;
      assert.strictEqual(await w.next(), `queued    default/sleep ${id} attempt=1 error=${JSON.stringify(error)}`);
      assert.strictEqual(await w.next(), `worker ex3 stopped (${sig}) after 1 tasks: 1 queued`);
      assert.deepStrictEqual(await w.exit(), { code: 0, signal: null });
      assert.strictEqual(w.stderr, '');
      const row = db.prepare('SELECT status, attempts, error, worker, lease_until FROM tasks WHERE id = ?').get(id);
      assert.deepStrictEqual(row, { status: 'queued', attempts: 1, error, worker: null, lease_until: null });
      // Ready at once for the next worker, as attempt 2.
      const next = JSON.parse(db.prepare("SELECT task_claim('next')").pluck().get());
      assert.deepStrictEqual([next.id, next.attempt], [id, 2]);
    } finally {
      w.proc.kill('SIGKILL');
      db.close();
    }
  });
}

test('a third signal ends it at once; the task comes back when its lease expires', async () => {
  const { file, db } = fresh();
  const id = enqueue(file, 'hold', '{}');
  // A handler that ignores ctx.signal: worker.js with one more task type.
  const script = `
    const Database = require('better-sqlite3');
    const { runWorker } = require('sqlite-task');
    const db = new Database(process.argv[1]);
    db.loadExtension(process.env.TASK_EXT);
    runWorker(db, { hold: (task, ctx) => { console.log('started'); let seen = 0; const log = () => { console.log(ctx.stopping, ctx.signal.aborted); if (++seen === 2) process.removeListener('SIGTERM', log); }; process.on('SIGTERM', log); return new Promise(() => {}); } },
              { worker: 'ex4', lease: 60000 });`;
  const p = spawn(process.execPath, ['-e', script, file], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let wake = null;
  readline.createInterface({ input: p.stdout }).on('line', (l) => {
    lines.push(l);
    if (wake) wake();
  });
  const next = async () => {
    while (!lines.length) {
      let timer;
      const came = await new Promise((resolve) => {
        timer = setTimeout(resolve, DEADLINE, false);
        wake = () => resolve(true);
      });
      clearTimeout(timer);
      if (!came) assert.fail(`no line within ${DEADLINE} ms after ${JSON.stringify(lines)}`);
    }
    return lines.shift();
  };
  const closed = new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal })));
  try {
    assert.strictEqual(await next(), 'started');
    p.kill('SIGTERM');
    assert.strictEqual(await next(), 'true false');
    p.kill('SIGTERM');
    assert.strictEqual(await next(), 'true true');
    p.kill('SIGTERM');
    let timer;
    const ended = await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, DEADLINE, 'still running')))]);
    clearTimeout(timer);
    assert.deepStrictEqual(ended, { code: null, signal: 'SIGTERM' });
    const row = db.prepare('SELECT status, attempts, worker, lease_until - started_at AS lease FROM tasks WHERE id = ?').get(id);
    assert.deepStrictEqual(row, { status: 'running', attempts: 1, worker: 'ex4', lease: 60000 });
    // After the lease (a supplied clock past it), the next claim takes it over as attempt 2.
    const after = db.prepare('SELECT lease_until + 1 FROM tasks WHERE id = ?').pluck().get(id);
    const next2 = JSON.parse(db.prepare('SELECT task_claim(?, ?)').pluck().get('next', JSON.stringify({ now: after })));
    assert.deepStrictEqual([next2.id, next2.attempt], [id, 2]);
  } finally {
    p.kill('SIGKILL');
    db.close();
  }
});

test('bad arguments end them with a message', () => {
  const { dir, file, db } = fresh();
  try {
    const run = (script, ...args) =>
      spawnSync(process.execPath, [path.join(EXAMPLES, script), ...args], { env: ENV, encoding: 'utf8', timeout: DEADLINE });
    const cases = [
      ['worker.js', [], 2, 'usage: node worker.js DB'],
      ['worker.js', [file, '--lease', 'soon'], 2, 'usage: node worker.js DB'],
      ['worker.js', [file, '--bogus'], 2, "Unknown option '--bogus'"],
      ['worker.js', [file, '--lease=-5'], 1, 'worker.js: sqlite-task: runWorker: lease must be a whole number of ms, 0 or more, got -5\n'],
      ['worker.js', [path.join(dir, 'no', 'such.db')], 1, 'worker.js: Cannot open database because the directory does not exist\n'],
      ['enqueue.js', [file], 2, 'usage: node enqueue.js DB TYPE'],
      ['enqueue.js', [file, 'echo', '{'], 1, 'enqueue.js: task_enqueue: details is not valid JSON'],
      ['enqueue.js', [file, 'echo', '--priority', 'high'], 2, '--priority must be a whole number, got high'],
    ];
    for (const [script, args, status, message] of cases) {
      const done = run(script, ...args);
      assert.strictEqual(done.status, status, `${script} ${args}: ${done.stderr}`);
      assert.ok(done.stderr.includes(message), `${script} ${args}: ${done.stderr}`);
    }
    assert.strictEqual(db.prepare('SELECT count(*) FROM tasks').pluck().get(), 0);
  } finally {
    db.close();
  }
});
