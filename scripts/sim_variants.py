"""Simulated attacks and the ones accepted, by presentation variant (docs/evaluation.md, "Where
the misses are").

Counts the sequences of each ``blinkgate simulate-attack`` folder by the variant its
``params.jsonl`` records (``shape.variant``: ``cylinder-v/sine``, ``pleat/pulses``, ...; a flat
print is ``flat``), and the accepted ones among them: those a ``blinkgate eval --json`` output
accepted (``--eval``), and/or ids given with ``--accepted`` (a held-out set's misses as found when
it was first evaluated, before any later rule stopped them).

    .venv/bin/python scripts/sim_variants.py /tmp/sim_s14 /tmp/sim_s15 --eval s14.json s15.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

STILL = ("flat", "static")  # a sheet that does not change shape over the sequence


def variant(params: dict) -> str:
    shape = params.get("shape") or {}
    return shape.get("variant", "flat")


def moves(name: str) -> bool:
    return not name.endswith(STILL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sim_dirs", nargs="+", type=Path, help="simulate-attack output folders")
    ap.add_argument("--eval", nargs="*", default=[], type=Path, help="blinkgate eval --json outputs")
    ap.add_argument("--accepted", nargs="*", default=[], help="ids counted as accepted")
    args = ap.parse_args()

    accepted = set(args.accepted)
    for path in args.eval:
        accepted |= {o["id"] for o in json.loads(path.read_text())["outcomes"] if o.get("accepted")}
    total, hits, seen = Counter(), defaultdict(list), set()
    for folder in args.sim_dirs:
        with open(folder / "params.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                name = f"{row['params']['kind']} {variant(row['params'])}"
                total[name] += 1
                seen.add(row["id"])
                if row["id"] in accepted:
                    hits[name].append(row["id"])
    if accepted - seen:
        raise SystemExit(f"accepted ids not in these folders: {', '.join(sorted(accepted - seen))}")

    print("| presentation | sequences | accepted | ids |\n|---|---:|---:|---|")
    for name in sorted(total):
        print(f"| {name} | {total[name]} | {len(hits[name])} | {', '.join(hits[name])} |")
    for label, keep in (("held still (flat, static)", lambda n: not moves(n)), ("moving", moves)):
        n = sum(v for k, v in total.items() if keep(k))
        k = sum(len(v) for name, v in hits.items() if keep(name))
        print(f"| **{label}** | {n} | {k} ({100 * k / max(1, n):.2f}%) | |")


if __name__ == "__main__":
    main()
