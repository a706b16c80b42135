// The npm package (npm/), installed as a user installs it: npm/build.sh puts
// the extension under test into a copy of the package, which is installed
// from its folder and from the tarball `npm pack` makes into fresh projects
// (npm install --offline: the package needs no registry), and each project
// loads it with the drivers: better-sqlite3, sqlite3 (when its native build
// installed), node:sqlite (Node >= 22.5: this node or $TASK_NODE), and runs
// a task's life. The drivers come from this suite's node_modules through
// NODE_PATH, so nothing is downloaded or compiled again.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const EXT = process.env.TASK_EXT || path.join(__dirname, '..', '..', 'dist', 'task0');
const PACKAGE = path.join(__dirname, '..', '..', 'npm');
const MODULES = path.join(__dirname, 'node_modules');
const PLATFORM = `${process.platform}-${process.arch}`;
const SUFFIX = { darwin: 'dylib', win32: 'dll' }[process.platform] || 'so';
const TIMEOUT = 60000; // ms: the most one npm or node process may take

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-task-npm-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(cmd, args, options = {}) {
  const done = spawnSync(cmd, args, { encoding: 'utf8', timeout: TIMEOUT, ...options });
  if (done.error) throw done.error;
  return done;
}

function ok(cmd, args, options) {
  const done = run(cmd, args, options);
  assert.strictEqual(done.status, 0, `${cmd} ${args.join(' ')} exited ${done.status}:\n${done.stdout}\n${done.stderr}`);
  return done;
}

/** A copy of npm/ with its sources only (no prebuilds), as a clean checkout has it. */
function copyPackage(name) {
  const dir = path.join(tmp, name);
  fs.cpSync(PACKAGE, dir, { recursive: true, filter: (src) => !/[/\\](prebuilds|node_modules)$/.test(src) });
  return dir;
}

/** A fresh project with `spec` installed by npm, offline. */
function project(name, spec) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true }));
  ok('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', spec], { cwd: dir });
  return dir;
}

/** `node -e script` (or `--input-type=module` with esm) in `dir`, finding the drivers through NODE_PATH. */
function node(dir, script, { esm = false, bin = process.execPath } = {}) {
  const args = esm ? ['--input-type=module', '-e', script] : ['-e', script];
  return run(bin, args, { cwd: dir, env: { ...process.env, NODE_PATH: MODULES, NODE_NO_WARNINGS: '1' } });
}

function json(done) {
  assert.strictEqual(done.status, 0, done.stderr);
  return JSON.parse(done.stdout);
}

// A task's life through a synchronous driver; `open()` is the driver's connection.
const LIFE = `
  const db = open();
  db.prepare('SELECT task_init()').get();
  const one = (sql, ...a) => Object.values(db.prepare(sql).get(...a))[0];
  const id = one("SELECT task_enqueue('resize', '{\\"path\\":\\"a.png\\"}', '{\\"now\\":1000}')");
  const t = JSON.parse(one("SELECT task_claim('w1', '{\\"now\\":2000}')"));
  const life = [t.id === id, t.attempt,
    one('SELECT task_progress(?, 40, ?)', id, '{"attempt":1,"now":3000}'),
    one('SELECT task_complete(?, \\'{"out":1}\\', \\'{"attempt":1,"now":4000}\\')', id),
    one('SELECT result FROM tasks WHERE id = ?', id),
    one('SELECT task_version()')];`;

const built = copyPackage('built');

test('npm/build.sh puts the extension under prebuilds/<platform>-<arch>', () => {
  const done = ok('bash', [path.join(built, 'build.sh'), `${EXT}.${SUFFIX}`]);
  const file = path.join(built, 'prebuilds', PLATFORM, `task0.${SUFFIX}`);
  assert.strictEqual(done.stdout, `npm/build.sh: ${file}\n`);
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(`${EXT}.${SUFFIX}`)));
  assert.deepStrictEqual(fs.readdirSync(path.join(built, 'prebuilds', PLATFORM)), [`task0.${SUFFIX}`]);

  const missing = run('bash', [path.join(built, 'build.sh'), path.join(tmp, 'nothing.so')]);
  assert.strictEqual(missing.status, 2);
  assert.strictEqual(missing.stderr, `npm/build.sh: ${path.join(tmp, 'nothing.so')} is missing; run make loadable first\n`);
});

test('installed from its folder, it loads into better-sqlite3', () => {
  const dir = project('from-folder', built);
  const got = json(
    node(dir, `
      const Database = require('better-sqlite3');
      const sqliteTask = require('sqlite-task');
      const open = () => { const db = new Database(':memory:'); sqliteTask.load(db); return db; };
      ${LIFE}
      // better-sqlite3 hands the path to sqlite3_load_extension, which also
      // tries it with the platform's suffix added: both forms load.
      const bare = new Database(':memory:');
      bare.loadExtension(sqliteTask.getLoadablePath().replace(/\\.[a-z]+$/, ''));
      console.log(JSON.stringify({ path: sqliteTask.getLoadablePath(), life,
        bare: bare.prepare('SELECT task_version()').pluck().get() }));`),
  );
  assert.strictEqual(fs.realpathSync(got.path), fs.realpathSync(path.join(built, 'prebuilds', PLATFORM, `task0.${SUFFIX}`)));
  const version = `v${require(path.join(PACKAGE, 'package.json')).version}`;
  assert.deepStrictEqual(got.life, [true, 1, 'running', 'completed', '{"out":1}', version]);
  assert.strictEqual(got.bare, version);
});

let tarball;
test('npm pack makes a tarball of the sources and this platform\'s extension', () => {
  const done = ok('npm', ['pack', '--silent', '--pack-destination', tmp, built], { cwd: tmp });
  tarball = path.join(tmp, done.stdout.trim());
  const files = ok('tar', ['tzf', tarball]).stdout.split('\n').filter(Boolean).sort();
  assert.deepStrictEqual(files, [
    'package/README.md',
    'package/index.d.ts',
    'package/index.js',
    'package/package.json',
    `package/prebuilds/${PLATFORM}/task0.${SUFFIX}`,
    'package/worker.js',
  ]);
});

test('installed from the tarball, it loads into better-sqlite3, from require and import', () => {
  assert.ok(tarball, 'the npm pack test made no tarball');
  const dir = project('from-tarball', tarball);
  const installed = path.join(dir, 'node_modules', 'sqlite-task');
  assert.ok(!fs.lstatSync(installed).isSymbolicLink());
  const got = json(
    node(dir, `
      const Database = require('better-sqlite3');
      const { load, getLoadablePath } = require('sqlite-task');
      const open = () => { const db = new Database(':memory:'); load(db); return db; };
      ${LIFE}
      console.log(JSON.stringify({ path: getLoadablePath(), life }));`),
  );
  assert.strictEqual(got.path, path.join(fs.realpathSync(installed), 'prebuilds', PLATFORM, `task0.${SUFFIX}`));
  assert.deepStrictEqual(got.life.slice(0, 5), [true, 1, 'running', 'completed', '{"out":1}']);

  const esm = json(
    node(dir, `
      import { createRequire } from 'node:module';
      import { load, runWorker } from 'sqlite-task';
      import sqliteTask from 'sqlite-task';
      const Database = createRequire(import.meta.url)('better-sqlite3');
      const db = new Database(':memory:');
      load(db);
      db.prepare('SELECT task_init()').get();
      db.prepare("SELECT task_enqueue('echo', '[1, 2]')").get();
      const stats = await runWorker(db, async (task) => task.details, { untilIdle: true, wait: 0, signals: [] });
      console.log(JSON.stringify({ stats, result: db.prepare('SELECT result FROM tasks').pluck().get(),
        same: sqliteTask.load === load }));`, { esm: true }),
  );
  assert.deepStrictEqual([esm.stats.completed, esm.result, esm.same], [1, '[1,2]', true]);
});

let sqlite3Missing = false;
try {
  require.resolve('sqlite3');
} catch {
  sqlite3Missing = 'sqlite3 is not in tests/node/node_modules: its install (a native build with node-gyp, since its prebuilt binaries come from GitHub) failed; see `npm install` in tests/node';
}

test('installed, it loads into sqlite3 (asynchronous: load returns a promise)', { skip: sqlite3Missing }, () => {
  assert.ok(tarball, 'the npm pack test made no tarball');
  const got = json(
    node(path.join(tmp, 'from-tarball'), `
      const sqlite3 = require('sqlite3');
      const { load } = require('sqlite-task');
      const db = new sqlite3.Database(':memory:');
      const get = (sql, ...a) => new Promise((res, rej) => db.get(sql, a, (e, row) => (e ? rej(e) : res(row && Object.values(row)[0]))));
      (async () => {
        const loaded = load(db);
        const isPromise = loaded instanceof Promise;
        await loaded;
        await get('SELECT task_init()');
        const id = await get("SELECT task_enqueue('resize', NULL, '{\\"now\\":1000}')");
        const t = JSON.parse(await get("SELECT task_claim('w1', '{\\"now\\":2000}')"));
        const life = [t.id === id, await get('SELECT task_progress(?, 40, ?)', id, '{"attempt":1}'),
          await get("SELECT task_complete(?, '{}', '{\\"attempt\\":1}')", id)];
        let error;
        try { await get("SELECT task_enqueue('')"); } catch (e) { error = [e.code, e.message]; }
        console.log(JSON.stringify({ isPromise, life, error, sqlite: await get('SELECT sqlite_version()') }));
      })();`),
  );
  assert.strictEqual(got.isPromise, true);
  assert.deepStrictEqual(got.life, [true, 'running', 'completed']);
  assert.deepStrictEqual(got.error, ['SQLITE_ERROR', 'SQLITE_ERROR: task_enqueue: type must not be empty']);
});

// node:sqlite can load extensions from Node 22.13 and 23.5 (allowExtension).
// This node, or $TASK_NODE (a path to a newer node binary), runs the test.
const nodeSqlite = process.env.TASK_NODE || process.execPath;
const hasNodeSqlite =
  run(nodeSqlite, ['-e', "new (require('node:sqlite').DatabaseSync)(':memory:', { allowExtension: true }).loadExtension"], {
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  }).status === 0;

test(
  'installed, it loads into node:sqlite opened with allowExtension, and only then',
  { skip: !hasNodeSqlite && `node:sqlite with loadExtension needs Node >= 22.13 (this is ${process.version}); set TASK_NODE to a newer node binary to run it` },
  () => {
    assert.ok(tarball, 'the npm pack test made no tarball');
    const got = json(
      node(path.join(tmp, 'from-tarball'), `
        const { DatabaseSync } = require('node:sqlite');
        const { load, runWorker } = require('sqlite-task');
        let refused;
        try { load(new DatabaseSync(':memory:')); } catch (e) { refused = e.message; }
        const open = () => { const db = new DatabaseSync(':memory:', { allowExtension: true }); load(db); return db; };
        ${LIFE}
        one("SELECT task_enqueue('echo', '{\\"n\\":1}')");
        runWorker(db, async (task, ctx) => { ctx.progress(50); return task.details; }, { untilIdle: true, wait: 0, signals: [] })
          .then((stats) => console.log(JSON.stringify({ refused, life, stats,
            result: one("SELECT result FROM tasks WHERE type = 'echo'") })));`, { bin: nodeSqlite }),
    );
    assert.match(got.refused, /^sqlite-task: this node:sqlite DatabaseSync cannot load extensions; open it with new DatabaseSync\(file, \{ allowExtension: true \}\)/);
    assert.deepStrictEqual(got.life.slice(0, 5), [true, 1, 'running', 'completed', '{"out":1}']);
    assert.deepStrictEqual([got.stats.completed, got.result], [1, '{"n":1}']);
  },
);

test('without a build for this platform, getLoadablePath and load say so', () => {
  const bare = copyPackage('unbuilt');
  const got = json(
    node(tmp, `
      const sqliteTask = require(${JSON.stringify(bare)});
      const Database = require('better-sqlite3');
      const errors = [];
      for (const f of [() => sqliteTask.getLoadablePath(), () => sqliteTask.load(new Database(':memory:'))]) {
        try { f(); errors.push(null); } catch (e) { errors.push(e.message); }
      }
      console.log(JSON.stringify(errors));`),
  );
  const file = path.join(bare, 'prebuilds', PLATFORM, `task0.${SUFFIX}`);
  const want =
    `sqlite-task: no build of the extension for this platform (process.platform ${process.platform}, process.arch ${process.arch}): ` +
    `${file} does not exist; this package has none. Build it from a checkout (make loadable, then bash npm/build.sh) or load a build of your own with db.loadExtension(path).`;
  assert.deepStrictEqual(got, [want, want]);

  // Another platform's folder alone is no help, and is named.
  fs.mkdirSync(path.join(bare, 'prebuilds', 'plan9-mips'), { recursive: true });
  const other = node(tmp, `require(${JSON.stringify(bare)}).getLoadablePath()`);
  assert.notStrictEqual(other.status, 0);
  assert.match(other.stderr, /this package has plan9-mips\. Build it/);
});

test('load refuses what is not a connection', () => {
  const { load } = require(built);
  for (const [value, name] of [[null, 'null'], [undefined, 'undefined'], ['db.sqlite', 'string'], [{}, 'a Object with no loadExtension method']]) {
    assert.throws(() => load(value), {
      name: 'TypeError',
      message: `sqlite-task: load(db) needs a better-sqlite3 Database, a node:sqlite DatabaseSync or a sqlite3 Database, got ${name}`,
    });
  }
});

test('the TypeScript types accept the documented uses and refuse wrong ones', () => {
  const dir = path.join(tmp, 'types');
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  fs.symlinkSync(built, path.join(dir, 'node_modules', 'sqlite-task'));
  fs.writeFileSync(
    path.join(dir, 'use.ts'),
    `import { getLoadablePath, load, runWorker, Fail, Task, TaskContext, WorkerStats, Outcome } from 'sqlite-task';
declare const sync: { loadExtension(file: string): void; prepare(sql: string): unknown };
declare const callback: { loadExtension(file: string, cb?: (err: Error | null) => void): void; parallelize(): void };
const file: string = getLoadablePath();
const nothing: void = load(sync);
const later: Promise<void> = load(callback);
async function main(): Promise<number> {
  const controller = new AbortController();
  const stats: WorkerStats = await runWorker(sync, async (task: Task, ctx: TaskContext) => {
    const status: 'running' | 'cancelled' = ctx.progress(50, { writeback: 1000 });
    ctx.heartbeat({ lease: 60000 });
    if (ctx.signal.aborted || status === 'cancelled') throw new Error('stopped');
    return { id: task.id, n: task.attempt };
  }, { worker: 'w1', queue: ['a', 'b'], lease: 30000, wait: 0, idle: 500, heartbeat: 10000, now: () => 1000,
       signal: controller.signal, signals: ['SIGTERM'], untilIdle: true,
       onFinish: (task: Task, outcome: Outcome) => { if (outcome.status === 'failed') console.log(task.id, outcome.error); } });
  await runWorker(sync, { resize: async (task) => task.details, mail: () => { throw new Fail('bounced', { retry: false, delay: 5 }); } }, { maxTasks: 1 });
  const stopping: boolean = (null as unknown as TaskContext).stopping;
  // @ts-expect-error: an unknown option
  await runWorker(sync, async () => null, { polling: 5 });
  // @ts-expect-error: progress needs a number
  await runWorker(sync, async (task, ctx) => ctx.progress('half'));
  return stats.completed + stats.lost;
}
export { file, nothing, later, main };
`,
  );
  const tsc = path.join(MODULES, 'typescript', 'bin', 'tsc');
  const done = run(process.execPath, [tsc, '--noEmit', '--strict', '--lib', 'es2022,dom', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'use.ts'], { cwd: dir });
  assert.strictEqual(done.status, 0, `tsc:\n${done.stdout}${done.stderr}`);
});
