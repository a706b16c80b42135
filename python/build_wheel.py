#!/usr/bin/env python3
"""Writes the wheel of the Python package `sqlite-task` (import `sqlite_task`)
from python/sqlite_task/ and a compiled extension (dist/task0.so):

    python3 python/build_wheel.py dist/task0.so dist/wheels

Only the standard library: a wheel is a zip file with three small text files
in its .dist-info (METADATA, WHEEL, RECORD: PEP 427 and PEP 491), so writing
one needs no build backend to install, and `make python` works offline. The
version is the crate's (Cargo.toml), so the wheel and `task_version()` agree.

The platform tag is what the compiled file needs, read from it, so that pip
installs the wheel only where it loads: on Linux the newest glibc symbol
version the ELF file asks for, as manylinux_X_Y_<arch> (PEP 600; the
libraries it links must be ones every glibc system has, else the tag falls
back to linux_<arch>, which pip installs only where it was built); on macOS
the building Python's platform (macosx_X_Y_<arch>), not tried here. The tag
says "py3-none": the extension does not link libpython, so any Python 3
loads it. Rebuilding replaces the older wheels in the output directory.
"""

import base64
import hashlib
import io
import re
import struct
import sys
import sysconfig
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGE = HERE / "sqlite_task"
NAME, IMPORT_NAME = "sqlite-task", "sqlite_task"
REQUIRES_PYTHON = ">=3.9"
# A fixed time in every entry: the same inputs make the same wheel.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)

# The libraries a manylinux wheel may link without carrying them (PEP 600
# leaves the list to auditwheel's policy; these are its glibc and GCC ones).
MANYLINUX_LIBS = {"libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
                  "libgcc_s.so.1", "libstdc++.so.6", "libutil.so.1", "libresolv.so.2",
                  "libnsl.so.1"}
ELF_MACHINES = {3: "i686", 40: "armv7l", 62: "x86_64", 183: "aarch64", 21: "ppc64le",
                22: "s390x", 243: "riscv64"}


def version():
    """[package] version of Cargo.toml."""
    text = (REPO / "Cargo.toml").read_text(encoding="utf-8")
    package = re.search(r"^\[package\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    return re.search(r'^version\s*=\s*"([^"]+)"', package, re.M).group(1)


def description():
    text = (REPO / "Cargo.toml").read_text(encoding="utf-8")
    return re.search(r'^description\s*=\s*"([^"]+)"', text, re.M).group(1)


def elf_needs(data):
    """(machine, {library: [version names]}) of an ELF shared object: its
    DT_NEEDED libraries and the symbol versions it needs from each."""
    if data[:4] != b"\x7fELF":
        raise SystemExit("build_wheel.py: the extension is not an ELF file")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack_from(order + "H", data, 18)
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        header, dyn = order + "IIQQQQIIQQ", order + "qQ"
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        header, dyn = order + "IIIIIIIIII", order + "iI"
    # name, type, flags, addr, offset, size, link, info, ...
    sections = [struct.unpack_from(header, data, shoff + i * shentsize) for i in range(shnum)]

    def string(section, at):
        start = sections[section][4] + at
        return data[start:data.index(b"\0", start)].decode()

    needs = {}
    for s in sections:
        if s[1] == 6:  # SHT_DYNAMIC
            for at in range(s[4], s[4] + s[5], struct.calcsize(dyn)):
                tag, value = struct.unpack_from(dyn, data, at)
                if tag == 1:  # DT_NEEDED
                    needs.setdefault(string(s[6], value), [])
    for s in sections:
        if s[1] == 0x6FFFFFFE:  # SHT_GNU_verneed: sh_info entries, names in sh_link
            at = s[4]
            for _ in range(s[7]):
                _, count, file, aux, following = struct.unpack_from(order + "HHIII", data, at)
                names = needs.setdefault(string(s[6], file), [])
                entry = at + aux
                for _ in range(count):
                    _, _, _, name, after = struct.unpack_from(order + "IHHII", data, entry)
                    names.append(string(s[6], name))
                    entry += after
                at += following
    return machine, needs


def linux_tag(path):
    machine, needs = elf_needs(path.read_bytes())
    arch = ELF_MACHINES.get(machine)
    if arch is None:
        raise SystemExit(f"build_wheel.py: {path} is for ELF machine {machine}, which this script "
                         "does not know a wheel tag for")
    glibc = [tuple(int(n) for n in m.groups())
             for names in needs.values() for v in names
             for m in [re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", v)] if m]
    foreign = sorted(lib for lib in needs
                     if lib not in MANYLINUX_LIBS and not lib.startswith("ld-linux"))
    if foreign or not glibc:
        why = f"it links {', '.join(foreign)}" if foreign else "it needs no glibc symbol version"
        print(f"build_wheel.py: {why}: tagging linux_{arch}, which pip installs only on a "
              "machine like this one", file=sys.stderr)
        return f"linux_{arch}"
    major, minor = max(glibc)
    return f"manylinux_{major}_{minor}_{arch}"


def platform_tag(path):
    if sys.platform.startswith("linux"):
        return linux_tag(path)
    return re.sub(r"[-.]", "_", sysconfig.get_platform())


def metadata(ver):
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    return "".join(f"{k}: {v}\n" for k, v in [
        ("Metadata-Version", "2.1"),
        ("Name", NAME),
        ("Version", ver),
        ("Summary", description()),
        ("License", "MIT OR Apache-2.0"),
        ("Keywords", "sqlite,sqlite-extension,task-queue,job-queue,worker"),
        ("Classifier", "License :: OSI Approved :: MIT License"),
        ("Classifier", "License :: OSI Approved :: Apache Software License"),
        ("Classifier", "Programming Language :: Python :: 3"),
        ("Classifier", "Topic :: Database"),
        ("Classifier", "Typing :: Typed"),
        ("Requires-Python", REQUIRES_PYTHON),
        ("Description-Content-Type", "text/markdown"),
    ]) + "\n" + readme


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def build(loadable, out):
    if not loadable.is_file():
        raise SystemExit(f"build_wheel.py: {loadable} does not exist: run `make loadable` first")
    ver, tag = version(), "py3-none-" + platform_tag(loadable)
    dist_info = f"{IMPORT_NAME}-{ver}.dist-info"
    files = [(f"{IMPORT_NAME}/{p.name}", p.read_bytes(), 0o644)
             for p in sorted(PACKAGE.iterdir()) if p.suffix in (".py", ".typed")]
    files.append((f"{IMPORT_NAME}/task0{loadable.suffix}", loadable.read_bytes(), 0o755))
    files.append((f"{dist_info}/METADATA", metadata(ver).encode(), 0o644))
    files.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\n"
        "Generator: sqlite-task python/build_wheel.py\n"
        "Root-Is-Purelib: false\n"
        f"Tag: {tag}\n").encode(), 0o644))
    record = "".join(record_line(name, data) for name, data, _ in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data, mode in files:
            entry = zipfile.ZipInfo(name, ZIP_TIME)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(entry, data)
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{IMPORT_NAME}-{ver}-{tag}.whl"
    for old in out.glob(f"{IMPORT_NAME}-*.whl"):
        if old != wheel:
            old.unlink()
    partial = wheel.with_suffix(".tmp")
    partial.write_bytes(buffer.getvalue())
    partial.replace(wheel)
    return wheel


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: build_wheel.py LOADABLE OUTDIR   (e.g. dist/task0.so dist/wheels)")
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))


if __name__ == "__main__":
    main()
