"""Door mode: how often a replayed live clip, a video crafted for the door, and a person who
follows the prompt pass one challenge with the default policy. Prints the tables in docs/door.md.

    .venv/bin/python scripts/door_challenge_study.py [--seeds 200] [--gate] [--crafted]

Replays use the hand labels of ../shared/data/blink-videos (and, with --gate, the Gate's own
eye states and blink events over each clip: about 25 s of video processing). --crafted
searches videos edited for the door that start playing as the face appears (about 3 min).
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
    aligned_pass_rate,
    crafted_trace,
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
    ap.add_argument("--crafted", action="store_true", help="search crafted videos aligned with the face's appearance")
    ap.add_argument("--videos", nargs="+", metavar="VIDEO",
                    help="only this: loop each video's Gate timeline against --seeds challenges, one and two rounds")
    args = ap.parse_args()
    if args.videos:
        return replay_videos(args.videos, range(args.seeds))
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
    why, waits = Counter(), []
    for seed in range(2000):
        d = run_attempt(_Person(Responder(), random.Random(f"person-{seed}"), 60_000.0), DoorOptions(), seed, 20.0)
        if d.decision != "granted":
            why[d.detail.get("why")] += 1
        else:
            waits.append(d.time_ms / 1000.0)
    print("  default failures by cause (2000 seeds):", dict(why))
    waits.sort()
    print(f"  recognition to grant, passed attempts: median {waits[len(waits) // 2]:.2f} s, "
          f"90th percentile {waits[int(len(waits) * 0.9)]:.2f} s, longest {waits[-1]:.2f} s")
    if args.crafted:
        crafted(DoorOptions())


def replay_videos(paths: list[str], seeds) -> None:
    """Each video's own Gate timeline (eye states, blink events), looped from a random point."""
    from dataclasses import replace

    from blinkgate.gate import Gate
    from blinkgate.sources import open_source

    one = DoorOptions()
    two = replace(one, challenge=replace(one.challenge, rounds=2))
    for path in paths:
        with open_source(path) as source, Gate(None) as gate:
            trace = gate_trace((r for _, r in gate.run(source)), source.fps)
        a, n = replay_pass_rate(trace, seeds, one)
        b, _ = replay_pass_rate(trace, seeds, two)
        print(f"{Path(path).stem}: {len(trace.blinks)} blinks; one round {a}/{n} = {a / n:.1%}, two rounds {b}/{n} = {b / n:.2%}")


def _aligned_rate(trace: Trace, options: DoorOptions, seeds) -> float:
    passes, n = aligned_pass_rate(trace, seeds, options)
    return passes / n


def crafted(options: DoorOptions, coarse: int = 200, fine: int = 3000) -> None:
    """The best of a family of crafted videos: one blink at b, bursts of n blinks s apart from
    b, shut eyes until c followed by one blink, and one blink every T s from b. A coarse pass
    over 200 seeds each, then the 6 best again over 3000 other seeds."""
    c = options.challenge
    top = (c.delay_max_ms + c.max_reaction_ms) / 1000.0 + 0.3
    starts = [round(0.3 + 0.1 * i, 2) for i in range(int((top - 0.3) / 0.1) + 1)]
    family = [(f"one blink at {b} s", crafted_trace([b])) for b in starts]
    family += [(f"{n} blinks {sp} s apart from {b} s", crafted_trace([b + j * sp for j in range(n)]))
               for n in (2, 3, 4) for sp in (0.5, 0.7, 0.9, 1.0) for b in starts[::2]]
    family += [(f"eyes shut to {cl} s, one blink at {cl + x:.1f} s", crafted_trace([cl + x], [(0.0, cl)]))
               for cl in (2.0, 3.0, 4.0) for x in (1.2, 1.5, 1.8, 2.1, 2.5)]
    # One blink every T s: each blink that the prompt's range can precede is another chance.
    family += [(f"one blink every {t} s from {b} s", crafted_trace([b + j * t for j in range(int((15.5 - b) / t) + 1)]))
               for t in (4.5, 4.9, 5.0, 5.2, 5.5, 6.0) for b in starts[::3]]
    scored = sorted(((_aligned_rate(t, options, range(coarse)), name, t) for name, t in family), key=lambda x: -x[0])
    best = sorted(((_aligned_rate(t, options, range(10_000, 10_000 + fine)), name) for _, name, t in scored[:6]), reverse=True)
    print(f"\nCrafted videos that start as the face appears ({len(family)} searched; best, {fine} seeds each):")
    for p, name in best:
        print(f"  {name:<40} {p:.1%}")


if __name__ == "__main__":
    main()
