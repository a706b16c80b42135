/* A minimal SQLite host: the smallest program that loads an extension the
 * way an application embedding SQLite does. tests/hosts/run.sh compiles it
 * against several SQLite amalgamations to check how dist/task0 behaves on
 * hosts below, at and above its documented floor.
 *
 * Usage: host EXTENSION_PATH
 * Prints one "key: value" line per step; the exit status is 0 whenever the
 * program ran to its end (a refused load included), 1 on a failed smoke
 * statement after a successful load, 2 on bad usage. A crash or abort shows
 * as a signal in the caller. */
#include <stdio.h>
#include <string.h>
#include "sqlite3.h"

static int print_row(void *unused, int n, char **values, char **names) {
  (void)unused;
  printf("row:");
  for (int i = 0; i < n; i++) printf(" %s=%s", names[i], values[i] ? values[i] : "NULL");
  printf("\n");
  return 0;
}

/* The one value of a one-row query as text: 0 when it is `want`. */
static int expect(sqlite3 *db, const char *sql, const char *want) {
  sqlite3_stmt *st = NULL;
  int bad = 1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const char *got = (const char *)sqlite3_column_text(st, 0);
    bad = got == NULL || strcmp(got, want) != 0;
    printf("expect: %s -> %s (want %s)\n", sql, got ? got : "NULL", want);
  } else {
    printf("error: %s -> %s\n", sql, sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  return bad;
}

/* Runs one statement (printing its rows); returns 0 on success. */
static int run(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, print_row, NULL, &err);
  if (rc != SQLITE_OK) {
    printf("error: %s -> rc=%d %s\n", sql, rc, err ? err : "(no message)");
    sqlite3_free(err);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s EXTENSION_PATH\n", argv[0]);
    return 2;
  }
  printf("sqlite: %s\n", sqlite3_libversion());
  sqlite3 *db = NULL;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
    printf("open failed: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_enable_load_extension(db, 1);
  char *err = NULL;
  int rc = sqlite3_load_extension(db, argv[1], 0, &err);
  printf("load: rc=%d msg=%s\n", rc, err ? err : "");
  sqlite3_free(err);

  int failed = 0;
  if (rc == SQLITE_OK) {
    /* The queue's basic path, then the tasks table, whose code differs with
     * the host's version (IN handling needs 3.38). */
    const char *smoke[] = {
        "SELECT task_init(), task_enqueue('x'), task_claim('w') IS NOT NULL AS claimed",
        /* No json_extract here: before 3.38 JSON1 is not in a default build,
         * and the extension must not need it either. */
        "SELECT task_enqueue('y', '{\"n\":1}', '{\"id\":\"00000000-0000-7000-8000-000000000001\",\"now\":1}') AS id",
        "SELECT task_claim('w', '{\"now\":2, \"queue\":[\"other\",\"default\"]}') IS NOT NULL AS claimed",
        "SELECT task_progress('00000000-0000-7000-8000-000000000001', 50, '{\"now\":3}') AS progress",
        "SELECT task_complete('00000000-0000-7000-8000-000000000001', '{\"ok\":true}', '{\"now\":4}') AS complete",
    };
    const char *table[] = {
        "INSERT INTO tasks(type, priority) VALUES ('z', 3)",
        "UPDATE tasks SET priority = 4 WHERE type = 'z'",
        "SELECT count(*) AS n FROM tasks WHERE status IN ('queued', 'running')",
        "DELETE FROM tasks WHERE status = 'completed'",
        "SELECT count(*) AS n FROM tasks",
        "SELECT task_check() AS check_result",
    };
    for (size_t i = 0; i < sizeof smoke / sizeof *smoke; i++) failed |= run(db, smoke[i]);
    /* Each claim, progress report and completion wrote its one event: the
     * statements that note and log a row in a subquery evaluate it once on
     * every host. */
    failed |= expect(db,
                     "SELECT group_concat(kind, ' ') FROM (SELECT kind FROM task_events "
                     "WHERE kind IN ('claimed', 'progress', 'completed') ORDER BY seq)",
                     "claimed claimed progress completed");
    /* A claim takes its queue's default lease, read in the same subquery. */
    failed |= run(db, "SELECT task_queue('default', '{\"lease\": 1000}') IS NOT NULL AS set_lease");
    failed |= run(db, "SELECT task_enqueue('l', NULL, '{\"id\":\"00000000-0000-7000-8000-000000000002\",\"now\":10}') AS id");
    failed |= run(db, "SELECT task_claim('w', '{\"now\":11}') IS NOT NULL AS claimed");
    failed |= expect(db, "SELECT lease_until FROM tasks WHERE id = '00000000-0000-7000-8000-000000000002'",
                     "1011");
    /* A retry backs off by its queue's backoff (500 ms, times a jitter in
     * [0.5, 1]), read in the same subquery as the failure's event. */
    failed |= run(db, "SELECT task_queue('default', '{\"backoff\": 500}') IS NOT NULL AS set_backoff");
    failed |= run(db, "SELECT task_fail('00000000-0000-7000-8000-000000000002', 'boom', '{\"now\":12}') AS failed");
    failed |= expect(db,
                     "SELECT status || ' ' || (run_at BETWEEN 262 AND 512) FROM tasks "
                     "WHERE id = '00000000-0000-7000-8000-000000000002'",
                     "queued 1");
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) failed |= run(db, table[i]);
  } else {
    /* A refused load must leave the connection usable and register nothing. */
    failed |= run(db, "SELECT 1 AS alive");
    char *e2 = NULL;
    int r2 = sqlite3_exec(db, "SELECT task_version()", NULL, NULL, &e2);
    printf("after-refusal: rc=%d %s\n", r2, e2 ? e2 : "");
    sqlite3_free(e2);
  }
  int closed = sqlite3_close(db);
  printf("close: rc=%d\n", closed);
  printf("done: %s\n", failed || closed != SQLITE_OK ? "FAILED" : "ok");
  return failed || closed != SQLITE_OK ? 1 : 0;
}
