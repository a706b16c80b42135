// The extension loaded into better-sqlite3: the verbs, their errors and
// codes, and a connection that used everything closing cleanly.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Database = require('better-sqlite3');

const EXT = process.env.TASK_EXT || path.join(__dirname, '..', '..', 'dist', 'task0');

function open(file = ':memory:') {
  const db = new Database(file);
  db.loadExtension(EXT);
  db.prepare('SELECT task_init()').get();
  return db;
}

const one = (db, sql, ...args) => db.prepare(sql).pluck().get(...args);

test('a task goes from enqueue to completed', () => {
  const db = open();
  const id = one(db, "SELECT task_enqueue('resize', ?, ?)", '{"path":"a.png"}', '{"now":1000}');
  const t = JSON.parse(one(db, "SELECT task_claim('w1', '{\"now\":2000,\"lease\":10000}')"));
  assert.strictEqual(t.id, id);
  assert.deepStrictEqual(t.details, { path: 'a.png' });
  assert.strictEqual(t.attempt, 1);
  assert.strictEqual(t.lease_until, 12000);
  assert.strictEqual(one(db, 'SELECT task_progress(?, 40, ?)', id, JSON.stringify({ attempt: 1, now: 3000 })), 'running');
  assert.strictEqual(one(db, 'SELECT progress FROM tasks WHERE id = ?', id), 40);
  assert.strictEqual(one(db, "SELECT task_complete(?, '{\"out\":1}', '{\"attempt\":1}')", id), 'completed');
  assert.deepStrictEqual(db.prepare('SELECT status, result FROM tasks').get(), { status: 'completed', result: '{"out":1}' });
  db.close();
});

test('errors name the function and change nothing', () => {
  const db = open();
  const id = one(db, "SELECT task_enqueue('t')");
  const before = JSON.stringify(db.prepare('SELECT * FROM task_store').all());
  const cases = [
    ["SELECT task_enqueue('')", 'task_enqueue: type must not be empty'],
    ["SELECT task_enqueue('t', '{')", 'task_enqueue: details is not valid JSON'],
    ["SELECT task_enqueue('t', NULL, '{\"prority\":1}')", 'task_enqueue: unknown option "prority"'],
    [`SELECT task_complete('${id}')`, `task_complete: task ${id} is queued, not running`],
    [`SELECT task_progress('${id}', 101)`, 'task_progress: progress must be between 0 and 100, got 101'],
    ["SELECT task_cancel('nope')", "task_cancel: id must be a UUID, got 'nope'"],
  ];
  for (const [sql, want] of cases) {
    assert.throws(() => db.prepare(sql).get(), (e) => e.message.startsWith(want) && e.code === 'SQLITE_ERROR', sql);
  }
  assert.strictEqual(JSON.stringify(db.prepare('SELECT * FROM task_store').all()), before);
  db.close();
});

test('NaN, Infinity and BigInt arguments are handled', () => {
  const db = open();
  const id = one(db, "SELECT task_enqueue('t', NULL, '{\"now\":0}')");
  one(db, "SELECT task_claim('w', '{\"now\":0}')");
  assert.throws(() => one(db, 'SELECT task_progress(?, ?)', id, NaN), /progress must be a number between 0 and 100, got NULL/);
  assert.throws(() => one(db, 'SELECT task_progress(?, ?)', id, Infinity), /progress must be between 0 and 100, got inf/);
  assert.strictEqual(one(db, 'SELECT task_progress(?, ?)', id, 7n), 'running');
  db.close();
});

test('SQLITE_BUSY keeps its code through a function', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-task-node-'));
  try {
    const file = path.join(dir, 'q.db');
    const holder = open(file);
    holder.pragma('journal_mode = WAL');
    const other = new Database(file, { timeout: 0 });
    other.loadExtension(EXT);
    one(other, "SELECT task_enqueue('t')");
    holder.prepare('BEGIN IMMEDIATE').run();
    assert.throws(() => one(other, "SELECT task_claim('w')"), (e) => e.code === 'SQLITE_BUSY');
    holder.prepare('COMMIT').run();
    assert.ok(one(other, "SELECT task_claim('w')"));
    holder.close();
    other.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a connection that used every verb closes cleanly, many times over', () => {
  const cycle = () => {
    const db = open();
    db.exec(`
      SELECT task_enqueue('a', '{"n":1}', '{"id":"00000000-0000-7000-8000-000000000001","now":0}');
      SELECT task_enqueue('b', NULL, '{"now":0}');
      SELECT task_claim('w', '{"now":0}');
      SELECT task_progress('00000000-0000-7000-8000-000000000001', 50, '{"writeback":1000}');
      SELECT task_heartbeat('00000000-0000-7000-8000-000000000001');
      SELECT task_complete_next('00000000-0000-7000-8000-000000000001', '{}', 'w', '{"now":1}');
      SELECT task_fail(id, 'e', '{"retry":false}') FROM tasks WHERE status = 'running';
      SELECT task_retry(id) FROM tasks WHERE status = 'failed';
      SELECT task_cancel(id) FROM tasks WHERE status = 'queued';
      SELECT task_check(), count(*) FROM tasks;
      INSERT INTO tasks(type) VALUES ('c');
      DELETE FROM tasks WHERE status = 'cancelled';
    `);
    db.close();
    assert.strictEqual(db.open, false);
  };
  for (let i = 0; i < 50; i++) cycle();
  const start = process.memoryUsage().rss;
  for (let i = 0; i < 300; i++) cycle();
  const grew = process.memoryUsage().rss - start;
  console.log(`RSS grew ${(grew / 1024).toFixed(0)} KiB over 300 open/use/close cycles`);
  assert.ok(grew < 16 * 1024 * 1024, `memory grew by ${grew} bytes`);
});
