// The sqlite-task package: where the compiled extension of this platform is
// (getLoadablePath), loading it into a connection of any of the three Node
// drivers (load), and the worker loop (runWorker and Fail, in worker.js).
//
// The extension ships inside the package, one folder per platform:
// prebuilds/<process.platform>-<process.arch>/task0.<so|dylib|dll>, put
// there by build.sh. sqlite-vec publishes one npm package per platform
// instead, as optional dependencies of the main one; a folder per platform
// installs from a checkout or a tarball with no registry at all, which is
// how this package is built and tested today.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { runWorker, Fail } = require('./worker.js');

const PREBUILDS = path.join(__dirname, 'prebuilds');

function suffix(platform) {
  if (platform === 'darwin') return 'dylib';
  if (platform === 'win32') return 'dll';
  return 'so';
}

/** The full path of the extension built for this platform; throws if the package has none. */
function getLoadablePath() {
  const { platform, arch } = process;
  const file = path.join(PREBUILDS, `${platform}-${arch}`, `task0.${suffix(platform)}`);
  if (fs.existsSync(file)) return file;
  let packaged = [];
  try {
    packaged = fs.readdirSync(PREBUILDS).sort();
  } catch {
    // no prebuilds folder at all: the package was never built
  }
  throw new Error(
    `sqlite-task: no build of the extension for this platform (process.platform ${platform}, process.arch ${arch}): ` +
      `${file} does not exist; this package has ${packaged.length ? packaged.join(', ') : 'none'}. ` +
      'Build it from a checkout (make loadable, then bash npm/build.sh) or load a build of your own with db.loadExtension(path).',
  );
}

/**
 * Loads the extension into `db`: a better-sqlite3 Database, a node:sqlite
 * DatabaseSync opened with { allowExtension: true }, or a sqlite3 Database.
 * Synchronous for the first two; for sqlite3, returns a Promise that
 * settles when the extension is loaded.
 */
function load(db) {
  if (db === null || typeof db !== 'object' || typeof db.loadExtension !== 'function') {
    throw new TypeError(
      `sqlite-task: load(db) needs a better-sqlite3 Database, a node:sqlite DatabaseSync or a sqlite3 Database, got ${describe(db)}`,
    );
  }
  const file = getLoadablePath();
  if (typeof db.parallelize === 'function') {
    // sqlite3 (the one driver with parallelize): asynchronous, reports
    // through its callback.
    return new Promise((resolve, reject) => db.loadExtension(file, (err) => (err ? reject(err) : resolve())));
  }
  try {
    db.loadExtension(file);
  } catch (e) {
    if (typeof db.enableLoadExtension === 'function' && e.code === 'ERR_INVALID_STATE') {
      // node:sqlite refuses unless the connection was opened to allow it.
      throw new Error(
        `sqlite-task: this node:sqlite DatabaseSync cannot load extensions; open it with new DatabaseSync(file, { allowExtension: true }) (${e.message})`,
        { cause: e },
      );
    }
    throw e;
  }
  return undefined;
}

function describe(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return value.constructor ? `a ${value.constructor.name} with no loadExtension method` : 'an object with no loadExtension method';
}

module.exports = { getLoadablePath, load, runWorker, Fail };
