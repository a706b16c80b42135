"""Queue settings held by several OS processes on one WAL file: a
concurrency limit is never exceeded, and a pause set by one process stops
claims in the others at once (docs/reference/queues.md).

As in test_workflow_processes.py, each process is this file run as a script
with its own apsw connection, released together by a barrier, and every
claim, completion, pause and resume is logged in a table of the same
database inside the transaction that makes it (BEGIN IMMEDIATE; the verb;
INSERT INTO log; COMMIT): the log's rowid order is the commit order, which
the checks replay. A monitor process also samples the running count from
its own connection. No check depends on timing.
"""

import json
import sys
import time

from conftest import one, rows
from test_workflow_processes import immediate, main, run_together, setup_db

LOG_SCHEMA = """CREATE TABLE log (
  seq INTEGER PRIMARY KEY,      -- commit order
  kind TEXT NOT NULL,           -- claim | complete | pause | resume
  task TEXT,
  worker TEXT NOT NULL
)"""


def log(db, kind, task, worker):
    db.execute("INSERT INTO log(kind, task, worker) VALUES (?, ?, ?)", (kind, task, worker))


def limited_worker(db, name, mode):
    """Claims from 'lim' (single claims, batches of 3, or task_complete_next)
    and completes after a short pause, until the queue is drained."""
    claim_opts = json.dumps({"queue": "lim"})
    done = 0

    def claim():
        if mode == "batch":
            got = json.loads(one(db, "SELECT task_claim_batch(?, 3, ?)", name, claim_opts))
        else:
            text = one(db, "SELECT task_claim(?, ?)", name, claim_opts)
            got = [json.loads(text)] if text else []
        for t in got:
            log(db, "claim", t["id"], name)
        return got

    def complete(t):
        nonlocal done
        if mode == "next":
            text = one(db, "SELECT task_complete_next(?, NULL, ?, ?)", t["id"], name, claim_opts)
            log(db, "complete", t["id"], name)
            done += 1
            if text:
                nxt = json.loads(text)
                log(db, "claim", nxt["id"], name)
                return [nxt]
            return []
        assert one(db, "SELECT task_complete(?)", t["id"]) == "completed"
        log(db, "complete", t["id"], name)
        done += 1
        return []

    held = []
    while True:
        if not held:
            held = immediate(db, claim)
        if not held:
            left = one(db, "SELECT count(*) FROM task_store WHERE queue = 'lim' AND status <> 'completed'")
            if not left:
                break
            time.sleep(0.0005)
            continue
        time.sleep(0.0005)  # the work
        t = held.pop(0)
        held.extend(immediate(db, lambda: complete(t)))
    return {"completed": done}


def monitor(db, name, queue, limit):
    """Samples the queue's running count until it is drained."""
    limit = int(limit)
    most = samples = 0
    while True:
        running, left = rows(
            db,
            "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status <> 'completed')"
            " FROM task_store WHERE queue = ?", queue)[0]
        most = max(most, running)
        samples += 1
        if not left:
            return {"most": most, "samples": samples, "limit": limit}


def paused_worker(db, name):
    """Claims from 'p' and completes, until the controller says stop."""
    claims = 0

    def claim():
        text = one(db, "SELECT task_claim(?, '{\"queue\": \"p\"}')", name)
        if text:
            t = json.loads(text)
            log(db, "claim", t["id"], name)
            return t
        return None

    while not one(db, "SELECT count(*) FROM log WHERE kind = 'stop'"):
        t = immediate(db, claim)
        if t:
            claims += 1
            immediate(db, lambda: (one(db, "SELECT task_complete(?)", t["id"]), log(db, "complete", t["id"], name)))
        else:
            time.sleep(0.0005)
    return {"claims": claims}


def controller(db, name):
    """Lets the workers claim some tasks, pauses 'p', waits while they keep
    trying, resumes, pauses again, then stops them."""
    def set_paused(paused):
        immediate(db, lambda: (one(db, "SELECT task_queue('p', json_object('paused', json(?)))",
                                   "true" if paused else "false"),
                               log(db, "pause" if paused else "resume", None, name)))

    def claims():
        return one(db, "SELECT count(*) FROM log WHERE kind = 'claim'")

    while claims() < 30:
        time.sleep(0.001)
    set_paused(True)
    time.sleep(0.3)
    set_paused(False)
    start = claims()
    while claims() < start + 30:
        time.sleep(0.001)
    set_paused(True)
    time.sleep(0.2)
    immediate(db, lambda: log(db, "stop", None, name))
    return {}


def test_a_concurrency_limit_of_2_never_has_3_running_across_processes(tmp_path):
    path = tmp_path / "limit.db"
    db = setup_db(path, LOG_SCHEMA)
    one(db, "SELECT task_queue('lim', '{\"concurrency\": 2}')")
    with db:
        for _ in range(300):
            one(db, "SELECT task_enqueue('job', NULL, '{\"queue\": \"lim\"}')")
    specs = [("limited", "w1", "single"), ("limited", "w2", "single"), ("limited", "w3", "batch"),
             ("limited", "w4", "next"), ("monitor", "m", "lim", "2")]
    res = run_together(path, specs, script=__file__)
    # Replayed in commit order, the running count never passes the limit.
    running, most = set(), 0
    for kind, task in rows(db, "SELECT kind, task FROM log WHERE kind IN ('claim', 'complete') ORDER BY seq"):
        if kind == "claim":
            assert task not in running, f"{task} claimed twice"
            running.add(task)
        else:
            running.discard(task)
        most = max(most, len(running))
    assert most == 2, f"at most {most} running by the workers' log"
    assert res["m"]["most"] <= 2, res["m"]
    assert sum(r.get("completed", 0) for r in res.values()) == 300
    assert one(db, "SELECT count(*) FROM tasks WHERE queue = 'lim' AND status = 'completed'") == 300
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


def test_a_pause_set_by_one_process_stops_claims_in_the_others_at_once(tmp_path):
    path = tmp_path / "pause.db"
    db = setup_db(path, LOG_SCHEMA)
    with db:
        for _ in range(5000):
            one(db, "SELECT task_enqueue('job', NULL, '{\"queue\": \"p\"}')")
    specs = [("paused", f"w{i}") for i in range(1, 5)] + [("controller", "c")]
    res = run_together(path, specs, script=__file__)
    events = rows(db, "SELECT kind FROM log WHERE kind IN ('claim', 'pause', 'resume') ORDER BY seq")
    paused, during = False, 0
    for (kind,) in events:
        if kind == "pause":
            paused = True
        elif kind == "resume":
            paused = False
        elif paused:
            during += 1
    assert during == 0, f"{during} claims committed after a pause"
    assert [k for (k,) in events if k != "claim"] == ["pause", "resume", "pause"]
    claims = sum(r.get("claims", 0) for r in res.values())
    assert claims == one(db, "SELECT count(*) FROM log WHERE kind = 'claim'") >= 60
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


def drain(db, claim, complete, left_sql, pause):
    """Claims with claim() and completes with complete(t), each in its own
    BEGIN IMMEDIATE, until a claim finds nothing and left_sql counts no
    unfinished task; sleeps `pause` s after a claim that found nothing."""
    done = 0
    while True:
        t = immediate(db, claim)
        if t is None:
            if not one(db, left_sql):
                break
            time.sleep(pause)
            continue
        immediate(db, lambda: complete(t))
        done += 1
    return {"completed": done}


def any_queue_worker(db, name):
    """Claims from every queue and completes, until nothing is left."""
    def claim():
        text = one(db, "SELECT task_claim(?)", name)
        if text:
            t = json.loads(text)
            log(db, "claim", t["id"], name)
            return t
        return None

    def complete(t):
        one(db, "SELECT task_complete(?)", t["id"])
        log(db, "complete", t["id"], name)

    return drain(db, claim, complete,
                 "SELECT count(*) FROM task_store WHERE status <> 'completed'", 0.0005)


def test_four_processes_claiming_from_every_queue_over_1000_queues(tmp_path):
    path = tmp_path / "many.db"
    db = setup_db(path, LOG_SCHEMA)
    with db:
        for i in range(3000):
            one(db, "SELECT task_enqueue('job', NULL, json_object('queue', ?))", f"q{i % 1000:04d}")
    res = run_together(path, [("anyq", f"w{i}") for i in range(1, 5)], script=__file__)
    claims = [t for (t,) in rows(db, "SELECT task FROM log WHERE kind = 'claim'")]
    assert len(claims) == len(set(claims)) == 3000, "a task claimed twice, or one never"
    assert sum(r["completed"] for r in res.values()) == 3000
    assert one(db, "SELECT count(*) FROM task_store WHERE status = 'completed'") == 3000
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


def rate_worker(db, name):
    """Claims from the rate-limited 'api' (lease 60 s, so the claim's own
    clock is lease_until - 60000) and completes, until it is drained."""
    def claim():
        text = one(db, "SELECT task_claim(?, '{\"queue\": \"api\", \"lease\": 60000}')", name)
        if text:
            t = json.loads(text)
            db.execute("INSERT INTO log(kind, task, worker, at) VALUES ('claim', ?, ?, ?)",
                       (t["id"], name, t["lease_until"] - 60_000))
            return t
        return None

    return drain(db, claim, lambda t: one(db, "SELECT task_complete(?)", t["id"]),
                 "SELECT count(*) FROM task_store WHERE queue = 'api' AND status <> 'completed'",
                 0.002)


def test_a_rate_limit_holds_across_four_processes(tmp_path):
    path = tmp_path / "rate.db"
    db = setup_db(path, LOG_SCHEMA.replace("worker TEXT NOT NULL", "worker TEXT NOT NULL, at INTEGER"))
    one(db, "SELECT task_queue('api', '{\"rate\": {\"limit\": 10, \"interval\": 100}}')")
    with db:
        for _ in range(120):
            one(db, "SELECT task_enqueue('call', NULL, '{\"queue\": \"api\"}')")
    res = run_together(path, [("rate", f"w{i}") for i in range(1, 5)], script=__file__)
    assert sum(r["completed"] for r in res.values()) == 120
    times = sorted(at for (at,) in rows(db, "SELECT at FROM log WHERE kind = 'claim'"))
    assert len(times) == 120
    # No window of 100 ms holds more than 10 claims, by the claims' own clock.
    most = max(sum(1 for u in times if t - 100 < u <= t) for t in times)
    assert most <= 10, f"{most} claims within 100 ms"
    assert one(db, "SELECT task_check()") == "ok"
    db.close()


ROLES = {"rate": rate_worker, "limited": limited_worker, "monitor": monitor, "paused": paused_worker,
         "controller": controller, "anyq": any_queue_worker}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], ROLES))
