"""Markdown report with plots for ``blinkgate eval --report DIR`` (needs matplotlib: the [report] extra).

Writes ``report.md``, ``results.json`` (summary and per-input outcomes), ``time_to_accept.png``
(share of bona fide inputs accepted against time, per group) and
``timelines_<group>_<attack|bona_fide>.png`` (per input: eye state, P(open) of both eyes, blinks
and the moment of acceptance).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from . import __version__
from .errors import BlinkgateError
from .evaluate import Outcome, _fmt_rate, _fmt_s, group_rate, partial_note
from .files import write_atomic

STATE_COLOURS = {"open": "#c8ecc8", "closed": "#f6c0c0", "unknown": "#e4e4e4", "none": "#ffffff"}
MAX_TIMELINES = 10  # rows per figure; attacks show accepted inputs first


def machine_info() -> dict:
    """Where and when a number was measured: CPU, cores, load, OS, Python, versions, commit."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        load = None
    commit = None
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():  # a source checkout; around an installed copy, a repo is not ours
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=5).stdout.strip() or None
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            if commit and dirty:
                commit += "+uncommitted"
        except (OSError, subprocess.SubprocessError):
            pass
    import cv2

    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1_5_15": load,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "blinkgate": __version__,
        "commit": commit,
    }


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "inputs"


def plotting():
    """matplotlib.pyplot on the file-only Agg backend; a BlinkgateError naming the extra without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise BlinkgateError(f"--report needs matplotlib: from the blinkgate checkout, pip install '.[report]' ({err})") from err
    return plt


def plot_time_to_accept(outcomes: list[Outcome], limit_s: float, path: Path) -> None:
    """Share of bona fide inputs accepted by time t, one step curve per group."""
    plt = plotting()
    bona = [o for o in outcomes if not o.attack and not o.error]
    fig, ax = plt.subplots(figsize=(7, 4))
    for group in sorted({o.group for o in bona}):
        rows = [o for o in bona if o.group == group]
        times = sorted(o.accept_s for o in rows if o.accepted and o.accept_s <= limit_s)
        xs, ys = [0.0], [0.0]
        for i, t in enumerate(times, start=1):
            xs += [t, t]
            ys += [ys[-1], i / len(rows)]
        xs.append(limit_s)
        ys.append(ys[-1])
        tag = "" if all(o.expect_blink for o in rows) else " (told not to blink)"
        ax.plot(xs, ys, drawstyle="default", lw=2, label=f"{group}{tag} (n={len(rows)})")
        ax.plot(times, [i / len(rows) for i in range(1, len(times) + 1)], "o", color=ax.lines[-1].get_color(), ms=4)
    ax.axvline(limit_s, color="k", ls="--", lw=1, label=f"time limit {limit_s:g} s")
    ax.set_xlim(0, limit_s * 1.05)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("seconds from the first frame")
    ax.set_ylabel("share of bona fide inputs accepted")
    ax.set_title("Time to accept (bona fide)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spans(t: list[float], states: list[str]):
    """Consecutive runs of one state as (start, end, state)."""
    if not t:
        return
    start = 0
    for i in range(1, len(t) + 1):
        if i == len(t) or states[i] != states[start]:
            end = t[i] if i < len(t) else t[-1] + (t[-1] - t[-2] if len(t) > 1 else 0.05)
            yield t[start], end, states[start]
            start = i


def plot_timelines(outcomes: list[Outcome], limit_s: float, path: Path, title: str) -> None:
    """One row per input: eye state as background, P(open) per eye, blinks, acceptance."""
    plt = plotting()
    n = len(outcomes)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.25 * n + 0.8), squeeze=False)
    for ax, o in zip(axes[:, 0], outcomes):
        tl = o.timeline or {}
        t = tl.get("t", [])
        for a, b, state in _spans(t, tl.get("state", [])):
            ax.axvspan(a, b, color=STATE_COLOURS.get(state, "#ffffff"), lw=0)
        for key, colour in (("p_right", "#1f77b4"), ("p_left", "#ff7f0e")):
            ys = [float("nan") if v is None else v for v in tl.get(key, [])]
            ax.plot(t, ys, lw=1, color=colour)
        for ti, b in zip(t, tl.get("blinks", [])):
            if b:
                ax.axvline(ti, color="#6a3d9a", lw=1.5, ls=":")
        if o.accepted:
            ax.axvline(o.accept_s, color="green" if not o.attack else "red", lw=2.5)
        if not o.attack:
            ax.axvline(limit_s, color="k", ls="--", lw=0.8)
        verdict = f"accepted at {o.accept_s:.2f} s" if o.accepted else "not accepted"
        ax.set_title(f"{o.id} [{o.label}] — {verdict}, {o.blinks} blinks", fontsize=8, loc="left")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlim(0, max(t[-1] if t else 1.0, 0.1))
        ax.tick_params(labelsize=7)
        ax.set_yticks([0, 0.5, 1])
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(f"{title}\nbackground: eye state (green open, red closed, grey unknown, white no face); "
                 "lines: P(open) right/left eye; dotted: blink; solid: accepted", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pick(rows: list[Outcome]) -> list[Outcome]:
    """Accepted inputs first (the ones worth looking at), then the first others, up to MAX_TIMELINES."""
    hit = [o for o in rows if o.accepted]
    rest = [o for o in rows if not o.accepted]
    return (hit + rest)[:MAX_TIMELINES] if rows and rows[0].attack else rows[: max(MAX_TIMELINES, 25)]


def _table_md(summary: dict, mode: str) -> list[str]:
    s = summary[mode]
    out = []
    for title, table in (("Real attacks", s["real_attacks"]), ("Simulated attacks (simulations, not real attacks)", s["simulated_attacks"])):
        if not table:
            continue
        out += [f"**{title}**", "", "| attack type | n | accepted | APCER | frames with a face | main face read closed |",
                "|---|---:|---:|---:|---:|---:|"]
        for label, row in table.items():
            out.append(f"| {label} | {row['n']} | {row['accepted']} | {_fmt_rate(row['apcer'])} | "
                       f"{_fmt_rate(row['face_frames'])} | {_fmt_rate(row['closed_frames'])} |")
        out.append("")
    out += ["**Bona fide**", "", "| group | n | accepted ≤ limit | BPCER | time to accept, median | 90th pct |",
            "|---|---:|---:|---:|---:|---:|"]
    for g, row in s["bona_fide_groups"].items():
        rate, apart = group_rate(row, mode)
        out.append(f"| {g}{f' ({apart})' if apart else ''} | {row['n']} | {row['accepted']} | {rate} | "
                   f"{_fmt_s(row['time_median_s'])} | {_fmt_s(row['time_p90_s'])} |")
    b = s["bona_fide"]
    out.append(f"| **all expected to blink** | {b['n']} | {b['accepted']} | **{_fmt_rate(b['bpcer'])}** | "
               f"{_fmt_s(b['time_median_s'])} | {_fmt_s(b['time_p90_s'])} |")
    out.append("")
    if s["acer_real"] is not None:
        out.append(f"ACER, real attacks: **{_fmt_rate(s['acer_real'])}**  ")
    if s["acer_simulated"] is not None:
        out.append(f"ACER, simulated attacks: **{_fmt_rate(s['acer_simulated'])}**  ")
    for title, table in (("real", s["real_attacks"]), ("simulated", s["simulated_attacks"])):
        for label, row in table.items():
            if row["accepted_ids"]:
                out.append(f"Accepted {title} `{label}` inputs: " + ", ".join(f"`{i}`" for i in row["accepted_ids"]) + "  ")
    if b["rejected_ids"]:
        out.append("Bona fide inputs not accepted in time: " + ", ".join(f"`{i}`" for i in b["rejected_ids"]) + "  ")
    out.append("")
    return out


REPORT_FILES = ("report.md", "results.json", "time_to_accept.png")  # besides one timelines_*.png a group


def check_report_folder(outdir: str | Path) -> None:
    """Refuse, before the evaluation, a --report folder with a folder where a report file goes:
    write_report can only say so after it."""
    for name in REPORT_FILES:
        if (Path(outdir) / name).is_dir():
            raise BlinkgateError(f"--report {outdir}: its {name} goes in {Path(outdir) / name}, a folder")


def write_report(outdir: str | Path, summary: dict, outcomes: list[Outcome], pipeline: str = "blinkgate",
                 command: str | None = None) -> Path:
    """Write report.md, results.json and the plots into ``outdir``; returns the report path. A
    file that cannot be written (a folder in its place, a full disk) is a BlinkgateError naming
    it: it was a traceback, after the whole evaluation."""
    try:
        return _write_report(Path(outdir), summary, outcomes, pipeline, command)
    except OSError as err:
        where = err.filename2 or err.filename or outdir  # a rename's target, not its hidden temporary file
        raise BlinkgateError(f"--report {outdir}: cannot write {where}: {err.strerror or err}") from None


def _write_report(outdir: Path, summary: dict, outcomes: list[Outcome], pipeline: str, command: str | None) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    report = outdir / "report.md"
    # Written last, report.md says the report is whole: an earlier run's, left beside this run's
    # results.json by an error or Ctrl-C while plotting, read as this run's.
    report.unlink(missing_ok=True)
    for old in outdir.glob("timelines_*.png"):  # an earlier run's groups: not this run's, though beside it
        old.unlink()
    machine = machine_info()
    command = command or " ".join(["blinkgate", *sys.argv[1:]])
    limit = summary["time_limit_s"]
    write_atomic(outdir / "results.json", json.dumps(
        {"pipeline": pipeline, "command": command, "machine": machine, "summary": summary,
         "outcomes": [o.to_json() for o in outcomes]}, indent=1).encode())
    plot_time_to_accept(outcomes, limit, outdir / "time_to_accept.png")
    figures = []
    groups = sorted({(o.group, o.attack) for o in outcomes if not o.error}, key=lambda g: (g[1], g[0]))
    for group, attack in groups:
        rows = _pick([o for o in outcomes if o.group == group and o.attack == attack and not o.error])
        name = f"timelines_{_safe(group or 'inputs')}_{'attack' if attack else 'bona_fide'}.png"
        plot_timelines(rows, limit, outdir / name, f"{group or 'inputs'} — {'attacks' if attack else 'bona fide'}")
        figures.append((group, attack, name, len(rows)))

    note = partial_note(summary)
    title = f"Liveness evaluation: {pipeline}" + (f" — PARTIAL ({summary['inputs']} of {summary['inputs_total']} inputs)" if note else "")
    md = [f"# {title}", ""] + ([f"**{note}.**", ""] if note else []) + [
          f"Command: `{command}`  ",
          f"Machine: {machine['cpu']}, {machine['cores']} cores, load {machine['load_avg_1_5_15']}, {machine['os']}, "
          f"Python {machine['python']}, OpenCV {machine['opencv']}, blinkgate {machine['blinkgate']} ({machine['commit']})  ",
          f"Date: {machine['date']}", "",
          "Rules: an input is *accepted* when any face in it is judged live (it blinked); a live unknown face "
          "counts as an accepted attack. APCER counts acceptance at any time in an attack input; BPCER counts "
          f"bona fide inputs not accepted within {limit:g} s of their first frame. ACER = (highest APCER over "
          "attack types + BPCER) / 2. Simulated attacks are synthetic (`blinkgate simulate-attack`) and are "
          "reported apart from real ones.", ""]
    for mode in ("accepted", "granted"):
        if mode in summary:
            heading = "Accepted (any face live)" if mode == "accepted" else "Granted (named person live)"
            md += [f"## {heading}{' — PARTIAL' if note else ''}", ""]
            md += _table_md(summary, mode)
    md += ["## Time to accept", "", "![time to accept](time_to_accept.png)", "", "## Timelines", ""]
    for group, attack, name, n in figures:
        md += [f"### {group or 'inputs'} — {'attacks' if attack else 'bona fide'} ({n} shown)", "", f"![{name}]({name})", ""]
    if summary["errors"]:
        md += ["## Errors", ""] + [f"- `{i}`: {e}" for i, e in summary["errors"].items()] + [""]
    # backslashreplace: a path in the command line that is not UTF-8 (a Latin-1 manifest name)
    # failed to encode, a traceback after the whole evaluation.
    write_atomic(report, "\n".join(md).encode("utf-8", "backslashreplace"))
    return report
