"""Door mode: how often a replayed live clip, and a person who follows the prompt, pass one
challenge with the default policy. Prints the tables in docs/door.md.

    .venv/bin/python scripts/door_challenge_study.py [--seeds 200] [--gate]

Replays use the hand labels of ../shared/data/blink-videos (and, with --gate, the Gate's own
eye states and blink events over each clip: about 25 s of video processing).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

import cv2

from blinkgate.door import ChallengePolicy, DoorOptions, replay_pass_probability, worst_case_replay_probability
from blinkgate.doorsim import (
    Responder,
    Trace,
    _Person,
    gate_trace,
    label_trace,
    replay_pass_rate,
    responsive_pass_rate,
    run_attempt,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "blink-videos"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--gate", action="store_true", help="also replay the Gate's own timeline of each clip")
    args = ap.parse_args()
    policy = ChallengePolicy()
    seeds = range(args.seeds)

    print("Poisson replay, P(pass one challenge):")
    for rate in (5, 10, 15, 17, 20, 25, 30, 45):
        print(f"  {rate:>3}/min  {replay_pass_probability(policy, rate):.4f}")
    worst, at = worst_case_replay_probability(policy)
    print(f"  worst {worst:.4f} at {at:g}/min")

    # The closed form against the state machine, for a long synthetic Poisson video.
    rng, blinks, t = random.Random(7), [], 0.0
    while t < 3_600_000 - 1000:
        t += rng.expovariate(20 / 60_000)
        if not blinks or t > blinks[-1][1] + 150:
            blinks.append((t, t + 150))
    trace = Trace(20.0, 72_000, tuple(blinks))
    p, n = replay_pass_rate(trace, range(max(args.seeds, 2000)))
    print(f"  simulated Poisson at {trace.blinks_per_min:.1f}/min: {p}/{n} = {p / n:.4f} "
          f"(formula {replay_pass_probability(policy, trace.blinks_per_min):.4f})")

    print(f"\nReplayed clips, {args.seeds} seeds each (passes / attempts):")
    for clip in sorted(DATA.glob("*.mp4")):
        cap = cv2.VideoCapture(str(clip))
        fps, frames = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        lt = label_trace(DATA / "labels" / f"{clip.stem}.csv", fps, frames)
        p, n = replay_pass_rate(lt, seeds)
        line = f"  {clip.stem:<18} labels {lt.blinks_per_min:5.1f} blinks/min  {p:>3}/{n} = {p / n:.1%}"
        if args.gate:
            from blinkgate.gate import Gate
            from blinkgate.sources import open_source

            with open_source(str(clip)) as source, Gate(None) as gate:
                gt = gate_trace((r for _, r in gate.run(source)), fps)
            p, n = replay_pass_rate(gt, seeds)
            line += f"   gate {gt.blinks_per_min:5.1f}/min  {p:>3}/{n} = {p / n:.1%}"
        print(line)

    print(f"\nResponsive person ({args.seeds} seeds, and 2000):")
    for label, r in [
        ("default (miss 1%, extra 1%)", Responder()),
        ("miss 2%, extra 2%", Responder(miss=0.02, extra=0.02)),
        ("slow: median 700 ms, sd 0.35", Responder(reaction_median_ms=700, reaction_sigma=0.35)),
        ("perfect eyes (miss 0, extra 0)", Responder(miss=0.0, extra=0.0)),
    ]:
        a, n = responsive_pass_rate(seeds, responder=r)
        b, m = responsive_pass_rate(range(2000), responder=r)
        print(f"  {label:<32} {a}/{n} = {a / n:.1%}   {b}/{m} = {b / m:.1%}")
    why = Counter()
    for seed in range(2000):
        d = run_attempt(_Person(Responder(), random.Random(f"person-{seed}"), 60_000.0), DoorOptions(), seed, 20.0)
        if d.decision != "granted":
            why[d.detail.get("why")] += 1
    print("  default failures by cause (2000 seeds):", dict(why))


if __name__ == "__main__":
    main()
