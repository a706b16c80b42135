# sqlite-task — `make help` lists the targets.

UNAME := $(shell uname -s)
ifeq ($(UNAME),Darwin)
  EXT_SUFFIX := dylib
else
  EXT_SUFFIX := so
endif

LOADABLE := dist/task0.$(EXT_SUFFIX)
SQLITE3  ?= sqlite3
VENV     := .venv
PYTHON   := $(VENV)/bin/python

.PHONY: help loadable python npm test test-scale test-unit test-rust test-sql test-python test-node demo playlist fmt lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

loadable: ## release build of the extension → dist/task0.so
	cargo build --release -p sqlite-task
	@mkdir -p dist
	@# copy then rename: a process that has the old file loaded keeps its mapping
	cp target/release/libsqlite_task.$(EXT_SUFFIX) $(LOADABLE).tmp
	mv -f $(LOADABLE).tmp $(LOADABLE)

python: loadable ## the Python wheel (sqlite-task, carrying dist/task0.so) → dist/wheels/
	python3 python/build_wheel.py $(LOADABLE) dist/wheels

npm: loadable ## the npm package: dist/task0.so into npm/prebuilds/<platform>-<arch>/
	bash npm/build.sh

test: loadable test-unit test-rust test-sql test-python test-node test-hosts test-scale test-stress-quick ## every suite, against one build
	@echo "all suites passed"

test-unit: ## Rust unit tests (no SQLite needed)
	cargo test --release -p sqlite-task --lib

test-rust: loadable ## Rust integration tests: dist/task0 loaded into rusqlite; the queue linked in (feature static)
	TASK_EXT=$(CURDIR)/dist/task0 cargo test --release -p sqlite-task-tests
	cargo test --release -p sqlite-task-static

test-sql: loadable ## SQL scripts run by the real sqlite3 shell, diffed against expected output
	SQLITE3=$(SQLITE3) bash tests/sql/run.sh

$(PYTHON): tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r tests/python/requirements.txt
	@touch $(PYTHON)

test-python: loadable python $(PYTHON) ## pytest suite loading dist/task0 through apsw; the wheel in a fresh venv
	TASK_EXT=$(CURDIR)/dist/task0 $(PYTHON) -m pytest -q tests/python

tests/node/node_modules: tests/node/package.json
	cd tests/node && npm install --no-audit --no-fund --loglevel=error
	@touch tests/node/node_modules

test-node: loadable tests/node/node_modules ## node:test suite loading dist/task0 through better-sqlite3
	cd tests/node && TASK_EXT=$(CURDIR)/dist/task0 node --test

test-scale: loadable $(PYTHON) ## libSQL server: a primary and a read replica, 4 worker processes through the replica (~30 s)
	TASK_EXT=$(CURDIR)/dist/task0 PYTHON=$(PYTHON) bash tests/scale/run.sh

demo: loadable ## the queue at work, in the sqlite3 shell
	@rm -f /tmp/sqlite-task-demo.db /tmp/sqlite-task-demo.db-wal /tmp/sqlite-task-demo.db-shm
	$(SQLITE3) /tmp/sqlite-task-demo.db < sql/demo.sql

playlist: loadable ## a workflow in the sqlite3 shell: a parent, 12 downloads and a zip that depends on them
	@rm -f /tmp/sqlite-task-playlist.db /tmp/sqlite-task-playlist.db-wal /tmp/sqlite-task-playlist.db-shm
	$(SQLITE3) /tmp/sqlite-task-playlist.db < sql/playlist.sql

fmt: ## format the Rust code
	cargo fmt --all

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --release -p sqlite-task --all-targets -- -D warnings
	cargo clippy --release -p sqlite-task-tests --all-targets -- -D warnings
	cargo clippy --release -p sqlite-task-static --all-targets -- -D warnings

clean: ## remove build output
	cargo clean
	rm -rf dist $(VENV)

.PHONY: bench bench-quick bench-postgres

bench: loadable ## benchmarks against raw SQLite, honker, effectum, then Postgres (~30 min) → bench/results.json, bench/chart.png, bench/postgres-vs-sqlite.txt
	bash bench/run.sh
	bash bench/postgres.sh

bench-quick: loadable ## a one-run smoke test of the benchmarks (~3 min after the builds) → bench/target/quick/
	BENCH_QUICK=1 bash bench/run.sh
	BENCH_QUICK=1 bash bench/postgres.sh

bench-postgres: ## the same work on PostgreSQL: a throwaway cluster, pgbench, graphile-worker (~4.5 min) → bench/postgres.json, bench/postgres-vs-sqlite.txt
	bash bench/postgres.sh

.PHONY: stress test-stress-quick

stress: loadable $(PYTHON) ## reliability harness: N=2,4,8 worker processes, 50k tasks, NORMAL/FULL, SIGKILL rounds (~10-15 min)
	TASK_EXT=$(CURDIR)/dist/task0 $(PYTHON) tests/stress/run.py --full

test-stress-quick: loadable $(PYTHON) ## reliability harness, short: N=2 and 4, 3000 tasks, one SIGKILL round (< 1 min)
	TASK_EXT=$(CURDIR)/dist/task0 $(PYTHON) tests/stress/run.py --quick

.PHONY: stress-hostile test-hosts

HOSTILE_CASES ?= 20000

stress-hostile: loadable ## random hostile call sequences against the model, at length (HOSTILE_CASES=20000, ~3 min)
	TASK_EXT=$(CURDIR)/dist/task0 PROPTEST_CASES=$(HOSTILE_CASES) cargo test --release -p sqlite-task-tests --test hostile random_call_sequences -- --nocapture

test-hosts: loadable ## load dist/task0 into C hosts on SQLite 3.33 … 3.53: refused below the floor, working above (first run builds, ~2 min)
	bash tests/hosts/run.sh
