// A node script run as a process, its stdout read line by line: what the
// example tests (watch.test.js, worker_example.test.js) drive and read.
'use strict';
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const readline = require('node:readline');

class LineProcess {
  /** `node script ...args` with `env`; `name` and `deadline` (ms) are for the waits below. */
  constructor(name, script, args, env, deadline) {
    this.name = name;
    this.deadline = deadline;
    this.proc = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.lines = [];
    this.waiting = [];
    this.stderr = '';
    this.ended = null;
    this.proc.stderr.on('data', (d) => (this.stderr += d));
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => this.push(l));
    this.closed = new Promise((resolve) =>
      this.proc.on('close', (code, signal) => {
        this.ended = { code, signal };
        this.push(null);
        resolve(this.ended);
      }),
    );
  }

  push(line) {
    if (line !== null) this.lines.push(line);
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** The next line, within the deadline; `after` says what came before, for a failure's message. */
  async next(after = '') {
    while (!this.lines.length) {
      if (this.ended) assert.fail(`the ${this.name} ended (${JSON.stringify(this.ended)})${after}: ${this.stderr}`);
      const came = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), this.deadline);
        this.waiting.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!came) assert.fail(`no line within ${this.deadline} ms${after}; stderr: ${this.stderr}`);
    }
    return this.lines.shift();
  }
}

module.exports = { LineProcess };
