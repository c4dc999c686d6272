"""The benchmark's results three ways: a table on stdout, bench/results.json, a chart PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed

import matplotlib.pyplot as plt
from matplotlib import ticker

ROOT = Path(__file__).resolve().parent.parent
# A full run's figures are the README's; a quick run (CI) or a full run of some figures
# (`--only`) writes beside them, untracked.
RESULTS = {
    "full": ROOT / "bench" / "results.json",
    "quick": ROOT / "bench" / "results-quick.json",
    "partial": ROOT / "bench" / "results-partial.json",
}
CHART = {
    "full": ROOT / "docs" / "bench.png",
    "quick": ROOT / "bench" / "bench-quick.png",
    "partial": ROOT / "bench" / "bench-partial.png",
}

OURS_COLOR = "#4338ca"
SDK_COLOR = "#b45309"
DEFAULT_COLOR = "#9ca3af"
FLOOR_COLOR = "#059669"
# The many-visitors figure's series: wall time, and its ratio to one visitor.
WAVE_COLUMNS = {
    "ours": "the playground (vs one)",
    "floor": "bare Gradio, waits 2 s (vs one)",
    "default": "default concurrency (vs one)",
}


def table(results: dict[str, Any]) -> str:
    """Every figure as plain text, ratios beside what they compare."""
    lines = [f"mode: {results['mode']} · {results['machine']}"]
    noticing = results.get("noticing")
    if noticing:
        lines += [
            "",
            f"1. Noticing a finished task: ours vs the official SDK ({noticing['per_wave']} tasks"
            f" per model per client per wave, {noticing['waves']} waves; seconds late;"
            f' "far": {noticing.get("far_waves", 0)} waves of durations far from the priors)',
            f"   {'model, stage':<22} {'client':<6} {'n':>4} {'p25':>6} {'p50':>6} {'p75':>6} "
            f"{'p95':>6} {'req/task':>9}",
        ]
        for name, row in noticing["rows"].items():
            for who in ("ours", "sdk"):
                s = row[who]
                lines.append(
                    f"   {name:<22} {who:<6} {s['n']:>4} {s['p25']:>6.2f} {s['p50']:>6.2f} "
                    f"{s['p75']:>6.2f} {s['p95']:>6.2f} {s['requests']:>9.2f}"
                )
            ours, sdk = row["ours"], row["sdk"]
            blank = ""
            lines.append(
                f"   {blank:<22} {'ratio':<6} {blank:>4} {blank:>6} "
                f"{ours['p50'] / sdk['p50']:>6.2f} {blank:>6} {ours['p95'] / sdk['p95']:>6.2f} "
                f"{ours['requests'] / sdk['requests']:>9.2f}"
            )
    app = results.get("app")
    if app:
        users = app["users"]
        lines += [
            "",
            f"2. Many visitors at once, one image each, {users['task_seconds']:.0f} s tasks",
        ]
        columns = [name for name in WAVE_COLUMNS if name in users]
        lines.append(
            f"   {'visitors':>8} " + "   ".join(f"{WAVE_COLUMNS[n]:<36}" for n in columns).rstrip()
        )
        for count in sorted({n for name in columns for n in users[name]}, key=int):
            cells = []
            for name in columns:
                walls = users[name].get(count)
                ratio = f"{users[name + '_ratio'][count]:>6.2f}x" if walls else ""
                cells.append(f"{_seconds(walls) if walls else '':<28} {ratio:>7}")
            lines.append(f"   {count:>8} " + "   ".join(cells).rstrip())
        cpu = app.get("server_cpu_ms_per_generation_at_50")
        if cpu:
            lines.append(
                f"   server CPU per generation in the waves of 50: the playground "
                f"{_milliseconds(cpu['ours'])}, the floor {_milliseconds(cpu['floor'])}: "
                f"{cpu['ratio']:.2f}x"
            )
        four = app["four_vs_one"]
        lines += [
            "",
            f"3. 4 images against 1 in one run: p50 {four['four']['p50']:.2f} s vs "
            f"{four['one']['p50']:.2f} s = {four['ratio']:.2f}x (p25-p75 {four['four']['p25']:.2f}-"
            f"{four['four']['p75']:.2f} vs {four['one']['p25']:.2f}-{four['one']['p75']:.2f})",
        ]
        cost, start = app["overhead"], app["start_up"]
        lines += [
            "",
            "4. Overhead, one generation at a time, the simulator answering at once:",
            f"   the app p50 {cost['app']['p50']:.3f} s p95 {cost['app']['p95']:.3f} s; "
            f"bare Gradio echo p50 {cost['echo']['p50']:.3f} s p95 {cost['echo']['p95']:.3f} s;",
            f"   the app adds {cost['added_p50']:.3f} s (p50), {cost['added_p95']:.3f} s (p95)",
            f"   start-up to first page: python app.py {_seconds(start['app'])}, Gradio hello "
            f"world {_seconds(start['hello'])}: {start['ratio']:.2f}x",
        ]
        memory = app["memory"]
        lines += [
            "",
            f"5. Server memory (RSS): idle {memory['idle_mb']:.0f} MB, at 50 visitors "
            f"{memory.get('peak_50_mb', float('nan')):.0f} MB, after they left "
            f"{memory.get('after_mb', float('nan')):.0f} MB; a full garbage collection "
            f"then pauses it {memory.get('full_collection_ms', float('nan')):.0f} ms",
        ]
    page = results.get("page")
    if page:
        cpu, late, loads, search = (
            page["cpu_ms_per_image"],
            page["lateness"],
            page["load_ms"],
            page["search_ms"],
        )
        answer = page["load_answer_bytes"]
        lines += [
            "",
            f"6. The page in Chromium, {page['task_seconds']:.0f} s tasks: a tab with 4 runs of 4 "
            "images against one run of 4",
            f"   the app's CPU per image (with its RunAPI worker): {_milliseconds(cpu['four'])} "
            f"vs {_milliseconds(cpu['one'])}: {cpu['ratio']:.2f}x",
            f"   an image's lateness, its task's finish to its file in the page: p50 "
            f"{late['four']['p50']:.2f} s vs {late['one']['p50']:.2f} s = {late['p50_ratio']:.2f}x,"
            f" p95 {late['four']['p95']:.2f} s vs {late['one']['p95']:.2f} s = "
            f"{late['p95_ratio']:.2f}x ({late['four']['n']} and {late['one']['n']} images shown)",
            f"   page load until usable, {page['history_bytes'] / 1e6:.2f} MB of history stored "
            f"({page['inline_history_bytes'] / 1e6:.2f} MB with previews inline) vs none: "
            f"{_spread(loads['full'], 'ms', 0)} vs {_spread(loads['empty'], 'ms', 0)}: "
            f"{loads['ratio']:.2f}x; the load's answer {answer['full'] / 1e6:.2f} MB vs "
            f"{answer['empty'] / 1e3:.0f} KB",
            f"   a search over that history, typed to the new count shown: p50 {search['p50']:.0f} "
            f"ms, p95 {search['p95']:.0f} ms ({search['n']} searches)",
        ]
    uploads = results.get("uploads")
    if uploads:
        lines += [
            "",
            f"7. A remix of {uploads['sources']} sources of {uploads['source_mb']:.1f} MB through "
            "/remix (checked, cleaned, kept, uploaded)",
            f"   the app's RSS with its RunAPI worker: idle {uploads['idle_rss_mb']:.0f} MB, peak "
            f"{max(uploads['peak_rss_mb']):.0f} MB: +{uploads['peak_over_idle_mb']:.0f} MB "
            "(target within +150 MB)",
            f"   its time: {_spread(uploads['eight_seconds'], 's', 2)} vs a one-source remix "
            f"{_spread(uploads['one_seconds'], 's', 2)}: {uploads['eight_over_one']:.2f}x",
        ]
    soak = results.get("soak")
    if soak:
        lines += ["", *_soak_lines(soak)]
    return "\n".join(lines)


def _soak_lines(soak: dict[str, Any]) -> list[str]:
    """The soak's memory: one app's RSS after each round, and whether it settled."""
    rounds = soak["rss_mb_after_rounds"]
    start, within = soak["steady_from_round"], soak["within"]
    verdict = {
        True: "PASS",
        False: "FAIL",
        None: f"not judged: it takes {start + 1} rounds or more",
    }[soak["steady"]]
    return [
        f"8. The soak, one app over {len(rounds)} round{'s' if len(rounds) != 1 else ''}: its "
        f"RSS (with its RunAPI worker) idle {soak['idle_rss_mb']} MB, after each round "
        f"{', '.join(str(mb) for mb in rounds)} MB",
        f"   from round {start} on, within {within - 1:.0%} of round {start}'s: {verdict}",
    ]


def _seconds(values: list[float]) -> str:
    return _spread(values, "s", 2)


def _milliseconds(values: list[float]) -> str:
    return _spread(values, "ms", 1)


def _spread(values: list[float], unit: str, digits: int) -> str:
    """One measurement as it is; several as their median and range (the machines are noisy)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f} {unit}"
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    low, high = ordered[0], ordered[-1]
    return f"{median:.{digits}f} {unit} ({low:.{digits}f}-{high:.{digits}f}, {len(values)} runs)"


def _kind(results: dict[str, Any]) -> str:
    """Which files a run writes: a full run of some figures only is not the README's."""
    return "partial" if results["mode"] == "full" and results.get("only") else results["mode"]


def write_json(results: dict[str, Any]) -> Path:
    path = RESULTS[_kind(results)]
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def chart(results: dict[str, Any]) -> Path:
    """Left: lateness distributions, ours vs the SDK. Right: wall time against visitors."""
    plt.rcParams.update({"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 13})
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 6.6), dpi=110)
    lateness = results.get("noticing", {}).get("lateness", {})
    styles = {
        "ours warm": (OURS_COLOR, "-", "ours, after one wave of learning"),
        "ours cold": (OURS_COLOR, ":", "ours, first wave (nothing learned)"),
        "sdk warm": (SDK_COLOR, "-", "official SDK (polls every 2 s)"),
    }
    for name, (color, style, label) in styles.items():
        values = lateness.get(name) or []
        if values:
            # A cumulative share that starts at 0 at the first value.
            shares = [i / len(values) for i in range(len(values) + 1)]
            left.step(
                [values[0], *values],
                shares,
                where="post",
                color=color,
                linestyle=style,
                lw=2.4,
                label=label,
            )
    left.set(
        title="1. How late a finished task is noticed",
        xlabel="seconds between the finish and the status answer that saw it",
        ylabel="share of tasks noticed by then",
        xlim=(0, 2.2),
        ylim=(0, 1.02),
    )
    left.grid(alpha=0.3)
    if lateness:
        left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, ncol=1)

    users = results.get("app", {}).get("users")
    if users:
        series = [
            (key, color, label, offset)
            for key, color, label, offset in (
                ("ours", OURS_COLOR, "the playground", (8, 6)),
                ("floor", FLOOR_COLOR, "bare Gradio app that waits 2 s: the floor", (8, -18)),
                ("default", DEFAULT_COLOR, "same app, Gradio's default concurrency", (8, 6)),
            )
            if key in users
        ]
        for key, color, label, offset in series:
            counts = [int(n) for n in users[key]]
            walls = [sorted(users[key][n])[len(users[key][n]) // 2] for n in users[key]]
            right.plot(counts, walls, marker="o", ms=8, lw=2.4, color=color, label=label)
            for count, wall in zip(counts, walls, strict=True):
                if key != "ours" and count != max(counts):
                    continue  # near one visitor the lines meet: one label there is enough
                right.annotate(
                    f"{wall:.1f} s",
                    (count, wall),
                    textcoords="offset points",
                    xytext=offset,
                    color=color,
                    fontsize=12,
                )
        right.axhline(users["task_seconds"], color="black", lw=1, ls="--", label="one task alone")
        highest = max(max(v) for key, _, _, _ in series for v in users[key].values())
        right.set_yscale("log", base=2)
        right.set_ylim(users["task_seconds"] * 0.8, highest * 1.6)
        right.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g} s"))
        right.set(
            title=f"2. Wall time of a wave of visitors ({users['task_seconds']:.0f} s tasks)",
            xlabel="visitors generating at the same moment",
            ylabel="until the last one has its image (log scale)",
        )
        right.grid(alpha=0.3, which="both")
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, ncol=1)
    figure.text(
        0.99,
        0.01,
        f"{results['mode']} run · {results['machine']}",
        ha="right",
        fontsize=10,
        color="#6b7280",
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    path = CHART[_kind(results)]
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load {load}"
