"""Draws bench/chart.png from bench/results-detail.json (written by the bench harness).

Left: sqlite-task's rate divided by each other system's, per case (log scale; right of 1 means
sqlite-task is faster). Right: the cycle rate of each system against the number of tasks waiting.

usage: python chart.py results-detail.json chart.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OTHERS = [("raw", "#555555"), ("honker", "#d9822b"), ("effectum", "#3a7dbf")]
SYSTEMS = [("sqlite-task", "#2a9d4b")] + OTHERS


def short(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def main(src, dst):
    with open(src) as f:
        data = json.load(f)
    rows = data["rows"]
    scale_rows = [r for r in rows if r["key"].startswith("scale_")]
    ratio_rows = [r for r in rows if r["ratios"] and not r["key"].startswith("scale_")]

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(15, 0.42 * len(ratio_rows) + 2.5), gridspec_kw={"width_ratios": [3, 2]}
    )

    height = 0.8 / len(OTHERS)
    labels = []
    labelled = set()
    for i, row in enumerate(ratio_rows):
        labels.append(f'{row["title"]} [{row["sync"]}]' if row["sync"] != "NORMAL" else row["title"])
        for j, (other, colour) in enumerate(OTHERS):
            ratio = row["ratios"].get(other)
            if ratio is None:
                continue
            y = i + (j - 1) * height
            label = None if other in labelled else other
            labelled.add(other)
            left.barh(y, ratio, height=height, color=colour, label=label)
            left.text(ratio * 1.04, y, f"{ratio:.2f}", va="center", fontsize=7)
    left.axvline(1.0, color="black", linewidth=0.8)
    left.set_xscale("log")
    left.set_yticks(range(len(ratio_rows)))
    left.set_yticklabels(labels, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("sqlite-task rate ÷ other's rate (log; > 1: sqlite-task faster)")
    left.set_title("sqlite-task against raw SQLite and peers (median)")
    left.legend(loc="lower right", fontsize=8)

    xs = data["scales"]
    for system, colour in SYSTEMS:
        pts = []
        for n, row in zip(xs, scale_rows):
            cell = row["systems"].get(system)
            if cell and cell["median_ops_per_s"]:
                pts.append((n, cell["median_ops_per_s"]))
        if pts:
            right.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colour, label=system)
            for x, y in pts:
                right.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xticks(xs)
    right.set_xticklabels([short(x) for x in xs])
    right.set_xlabel("tasks waiting")
    right.set_ylabel("cycles per second (claim + complete)")
    right.set_title("scale: cycle rate against backlog")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)

    m = data["machine"]
    fig.suptitle(
        f'{m.get("cores")} cores, {m.get("cpu")}, {m.get("date")}; {data["settings"]}',
        fontsize=7,
        y=0.995,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
