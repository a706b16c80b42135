// Enqueues one task into a sqlite-task queue and prints its id.
//
//   node examples/node/enqueue.js DB TYPE [DETAILS_JSON] [--queue Q] [--priority N]
//                                 [--delay MS] [--max-attempts N]
//
// A producer is one SQL call: task_enqueue(type, details, options). In an
// application it runs in the same transaction as the rows the task is about
// (an order and its confirmation email: both or neither), or from a trigger
// (sql/migration_example.sql). Loads the extension as worker.js does.
'use strict';
const { parseArgs } = require('node:util');
const Database = require('better-sqlite3');
const { load } = require('sqlite-task');

const usage = 'usage: node enqueue.js DB TYPE [DETAILS_JSON] [--queue Q] [--priority N] [--delay MS] [--max-attempts N]';
let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      queue: { type: 'string' },
      priority: { type: 'string' },
      delay: { type: 'string' },
      'max-attempts': { type: 'string' },
    },
  });
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
const { values, positionals } = args;
if (positionals.length < 2 || positionals.length > 3) {
  console.error(usage);
  process.exit(2);
}
const [file, type, details = null] = positionals;
const options = {};
if (values.queue !== undefined) options.queue = values.queue;
for (const [flag, key] of [['priority', 'priority'], ['delay', 'delay'], ['max-attempts', 'max_attempts']]) {
  if (values[flag] === undefined) continue;
  const n = Number(values[flag]);
  if (!Number.isInteger(n)) {
    console.error(`--${flag} must be a whole number, got ${values[flag]}\n${usage}`);
    process.exit(2);
  }
  options[key] = n;
}

try {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  if (process.env.TASK_EXT) db.loadExtension(process.env.TASK_EXT);
  else load(db);
  db.prepare('SELECT task_busy_timeout(30000)').get();
  db.prepare('SELECT task_init()').get();
  const id = db.prepare('SELECT task_enqueue(?, ?, ?)').pluck().get(type, details, JSON.stringify(options));
  db.close();
  process.stdout.write(`${id}\n`);
} catch (e) {
  console.error(`enqueue.js: ${e.message}`);
  process.exit(1);
}
