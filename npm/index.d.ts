// Types of the sqlite-task package (index.js, worker.js); docs/node.md has the guide.

/** A connection that can load an extension: better-sqlite3's Database or node:sqlite's DatabaseSync. */
export interface SyncDatabase {
  loadExtension(file: string, entryPoint?: string): unknown;
  prepare(sql: string): unknown;
}

/** The sqlite3 package's Database, whose loadExtension reports through a callback. */
export interface CallbackDatabase {
  loadExtension(file: string, callback?: (err: Error | null) => void): unknown;
  parallelize(callback?: () => void): unknown;
}

/** The full path of the extension built for this platform (…/prebuilds/linux-x64/task0.so). Throws if the package has none. */
export function getLoadablePath(): string;

/**
 * Loads the extension into `db`. Synchronous for better-sqlite3 and node:sqlite (open a
 * DatabaseSync with `{ allowExtension: true }`); for the sqlite3 package, a Promise that settles
 * when it is loaded.
 */
export function load(db: CallbackDatabase): Promise<void>;
export function load(db: SyncDatabase): void;

/** A claimed task: the JSON object task_claim returns. */
export interface Task {
  id: string;
  type: string;
  queue: string;
  /** The details as enqueued (parsed JSON), or null. */
  details: any;
  /** 1 for the first claim; passed back with every call, for fencing. */
  attempt: number;
  max_attempts: number;
  priority: number;
  parent_id: string | null;
  run_at: number;
  lease_until: number;
  created_at: number;
}

/** Options passed on to task_progress and task_heartbeat (`attempt` and `now` are the worker's). */
export interface ReportOptions {
  /** A new lease length in ms from now. */
  lease?: number;
  /** task_progress only: hold reports in memory and write at most every this many ms. */
  writeback?: number;
}

/** What the handler gets besides its task. */
export interface TaskContext {
  /**
   * Aborted when a second SIGINT or SIGTERM asks for the task back, when a report finds the task
   * cancelled, or when it finds the task no longer held by this worker. Its reason is an Error
   * saying which.
   */
  signal: AbortSignal;
  /** True once the worker was asked to stop: it claims nothing after this task, which may end early. */
  readonly stopping: boolean;
  worker: string;
  attempt: number;
  /** task_progress with this attempt: 'running', or 'cancelled' (stop: ctx.signal is aborted). Throws what task_progress throws. */
  progress(percent: number, options?: ReportOptions): 'running' | 'cancelled';
  /** task_heartbeat with this attempt: renews the lease. Same results as progress. */
  heartbeat(options?: Pick<ReportOptions, 'lease'>): 'running' | 'cancelled';
}

/** What became of a task the worker ran. */
export type Outcome =
  /** Completed with the handler's result ('waiting': a parent whose children have not all finished). */
  | { status: 'completed' | 'waiting'; result: any }
  /** Failed with the handler's error: queued again for a retry (or given back at a second signal), or failed for good. */
  | { status: 'queued' | 'failed'; error: string }
  /** Cancelled while it ran, or no longer this worker's (its lease expired and it was claimed again): nothing written. */
  | { status: 'cancelled' | 'lost'; error: string };

export interface WorkerOptions {
  /** The worker's name (tasks.worker); default `<hostname>-<pid>`. */
  worker?: string;
  /** A queue, or a list of queues; default every queue. */
  queue?: string | string[];
  /** The lease of each claim, ms; default task_claim's (300000). */
  lease?: number;
  /** How long one claim may wait for a task (task_claim's long poll), ms; default 1000. It blocks the thread. 0: no wait, sleep `idle` instead. */
  wait?: number;
  /** With wait 0: after an empty claim, sleep from 10 ms doubling up to this many ms; default 1000. */
  idle?: number;
  /** Renew the lease every this many ms while a handler runs; default a third of the lease; 0: never. */
  heartbeat?: number;
  /** The clock passed to every call as {"now": ms}; default the system's. */
  now?: () => number;
  /** Stops the worker when aborted. */
  signal?: AbortSignal;
  /** Process signals that stop the worker (a second asks for the task back). Default ['SIGINT', 'SIGTERM'] on the main thread, [] in a worker_thread. */
  signals?: string[];
  /** Return as soon as a claim finds no task. */
  untilIdle?: boolean;
  /** Return after this many tasks. */
  maxTasks?: number;
  /** Called after each task with its outcome. */
  onFinish?: (task: Task, outcome: Outcome) => void;
}

/** How many tasks the worker claimed, and what became of them. */
export interface WorkerStats {
  claimed: number;
  completed: number;
  waiting: number;
  queued: number;
  failed: number;
  cancelled: number;
  lost: number;
}

/** Throw it in a handler to fail the task with exactly this message, and choose the retry. */
export class Fail extends Error {
  constructor(message: string, options?: { retry?: boolean; delay?: number });
  /** false: fail for good, whatever attempts remain. */
  retry: boolean;
  /** Retry after this many ms instead of the backoff. */
  delay?: number;
}

export type Handler = (task: Task, ctx: TaskContext) => unknown | Promise<unknown>;

/**
 * Claims tasks and runs `handler` (or `handler[task.type]`: a task of another type fails for
 * good) on each, one at a time: its result (JSON) completes the task, its error fails it with the
 * error's message. The first SIGINT or SIGTERM (or options.signal) stops it after the task in
 * hand; a second aborts ctx.signal, and a handler that then throws gives its task back
 * (task_fail with {"delay": 0}); a third takes the signal's default action. Resolves with the
 * counts once stopped.
 */
export function runWorker(db: SyncDatabase, handler: Handler | Record<string, Handler>, options?: WorkerOptions): Promise<WorkerStats>;
