"""Speed: blinkgate against the seed article's pipeline, on the same clips, in the same run.

    .venv/bin/python benchmarks/speed.py --report out/bench        # ../shared/data beside the checkout

Everything runs on ONE core (the process is pinned with sched_setaffinity and every library
is held to one thread), in this order per clip: decode only (the ceiling), blinkgate end to
end (decode included), then the article's pipeline end to end (decode included; Haar faces,
a dlib face encoding of every face on every frame, Haar eyes, one Keras ``predict`` per eye
crop with the article's own weights from ../shared/seed). Both pipelines know the same
enrolled people (10 LFW identities, 2 photos each), so recognition runs in both.

Clips: the five labelled blink videos at their own sizes, plus two 640×480 clips made for the
run in a temporary folder (never in the repo): ``nuaa-live-640x480`` (the 600 NUAA live frames,
native 640×480 webcam frames, 20 sequences one after the other) and ``blink-detector-640x480``
(blink-detector.mp4 cropped to 4:3 around the face and resized). Scaling clips put 1, 2, 4 or 8
real LFW faces into 640×480 frames that move a little.

Reported: fps of both pipelines and their ratio, decode-only fps, blinkgate's time per frame
in each stage (decode, face detection, tracking, recognition, eyes without the CNN, CNN, blink
logic), fps against the number of faces, and peak resident memory of each pipeline (each
measured in a fresh process). The machine's load average is recorded with every run: the
ratio measured in the same run is the number to trust on a busy machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/torch load their thread pools
os.environ.setdefault("KERAS_BACKEND", "torch")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SEED = REPO.parent / "shared" / "seed"
GATE_STAGES = ["decode", "detect", "track", "recognise", "eyes", "cnn", "blink"]
ARTICLE_STAGES = ["decode", "resize", "detect", "encode", "eyes", "cnn", "blink"]
ENROLLED = ["Hugh_Grant", "Halle_Berry", "Jackie_Chan", "Hans_Blix", "Gray_Davis", "Jeb_Bush", "Hu_Jintao",
            "Howard_Dean", "Andre_Agassi", "Ann_Veneman"]


def one_core(cpu: int) -> None:
    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError) as err:  # pragma: no cover - not Linux
        print(f"warning: cannot pin to CPU {cpu}: {err}", file=sys.stderr)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- clips --------------------------------------------------------------------------------------------


def write_clip(path: Path, frames, fps: float) -> Path:
    writer = None
    for frame in frames:
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    writer.release()
    return path


def nuaa_live_clip(out: Path) -> Path:
    root = DATA / "photo-attack" / "nuaa"
    seqs: dict[str, list[tuple[int, str]]] = {}
    with (root / "index.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["class"] == "live":
                seqs.setdefault(f"{row['subject']}_{row['glasses_pos_session']}", []).append((int(row["picNo"]), row["path"]))
    frames = (cv2.imread(str(root / p)) for k in sorted(seqs) for _, p in sorted(seqs[k]))
    return write_clip(out / "nuaa-live-640x480.mp4", frames, 20.0)


def blink_detector_640(out: Path) -> Path:
    cap = cv2.VideoCapture(str(DATA / "blink-videos" / "blink-detector.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

    def frames():
        while True:
            ok, f = cap.read()
            if not ok:
                return
            h, w = f.shape[:2]  # portrait 480x854: a 4:3 band around the face
            ch = w * 3 // 4
            y0 = int(h * 0.2)
            yield cv2.resize(f[y0:y0 + ch], (640, 480), interpolation=cv2.INTER_LINEAR)

    return write_clip(out / "blink-detector-640x480.mp4", frames(), fps)


def faces_clip(out: Path, n: int, frames: int = 100, fps: float = 20.0) -> Path:
    """``n`` real LFW faces (150 px crops) in a 640x480 frame, each moving a little."""
    people = sorted(p for p in (DATA / "faces" / "lfw65").iterdir() if p.is_dir())[10:10 + n]
    tiles = []
    for person in people:
        img = cv2.imread(str(sorted(person.glob("*.jpg"))[0]))
        tiles.append(img[45:195, 45:195])  # LFW crops are centred on the face
    cols = 1 if n == 1 else 2 if n in (2, 4) else 4
    rows = (n + cols - 1) // cols
    cw, ch = 640 // cols, 480 // rows
    rng = np.random.default_rng(n)
    phase = rng.uniform(0, 2 * np.pi, (n, 2))

    def gen():
        for i in range(frames):
            canvas = np.full((480, 640, 3), 190, np.uint8)
            for k, tile in enumerate(tiles):
                r, c = divmod(k, cols)
                dx = int(round(4 * np.sin(0.2 * i + phase[k, 0])))
                dy = int(round(4 * np.sin(0.15 * i + phase[k, 1])))
                x0 = c * cw + (cw - 150) // 2 + dx
                y0 = r * ch + (ch - 150) // 2 + dy
                canvas[y0:y0 + 150, x0:x0 + 150] = tile
            yield canvas

    return write_clip(out / f"faces-{n}.mp4", gen(), fps)


# -- pipelines ----------------------------------------------------------------------------------------


def enrolled(encoder):
    encodings, names = [], []
    for person in ENROLLED:
        for photo in sorted((DATA / "faces" / "lfw65" / person).glob("*.jpg"))[:2]:
            img = cv2.imread(str(photo))
            boxes = encoder.detect(img)
            if boxes:
                encodings.append(encoder.encode(img, boxes[0]))
                names.append(person)
    return encodings, names


class TimedClassifier:
    """Wraps the gate's eye CNN to time it apart from the rest of the eye stage (``cnn``)."""

    def __init__(self, inner, gate):
        self.inner, self.gate = inner, gate

    def predict(self, crops):
        t = time.perf_counter()
        out = self.inner.predict(crops)
        self.gate.timer.add("cnn", t)
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def make_gate(encoder, known):
    from blinkgate.gate import Gate, StageTimer
    from blinkgate.recognize import Recognizer

    gate = Gate(recognizer=Recognizer(*known), encoder=encoder)
    gate.eyes.classifier = TimedClassifier(gate.eyes.classifier, gate)
    gate.timer = StageTimer()
    return gate


def make_article(encoder, known):
    import torch

    from blinkgate.article import ArticlePipeline, load_article_model

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or work already started
        pass
    model = load_article_model(SEED / "model.json", SEED / "model.h5")
    return ArticlePipeline(model, *known, encoder=encoder)


def decode_only(clip: Path, max_frames: int | None) -> dict:
    from blinkgate.sources import VideoFileSource

    n, t, c = 0, time.perf_counter(), time.process_time()
    with VideoFileSource(clip) as src:
        for _ in src:
            n += 1
            if max_frames and n >= max_frames:
                break
    return _rates(n, time.perf_counter() - t, time.process_time() - c)


def _rates(n: int, wall: float, cpu: float) -> dict:
    """fps by CPU time (what one core needs: robust on a busy machine) and by wall clock."""
    return {"frames": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "fps": n / cpu, "fps_wall": n / wall}


def _stages(timer, keys: list[str], n: int, wall: float, cpu: float) -> dict:
    """Per-stage ms per frame, in CPU time: each stage's wall time scaled by cpu / wall."""
    k = cpu / wall if wall else 1.0
    ms = {key: timer.total_ms.get(key, 0.0) * k / n for key in keys}
    ms["other"] = max(0.0, cpu * 1000 / n - sum(ms.values()))
    return ms


def run_gate(gate, clip: Path, max_frames: int | None) -> dict:
    from blinkgate.gate import StageTimer
    from blinkgate.sources import VideoFileSource

    gate.reset()
    gate.timer = StageTimer()
    n, faces, t, c = 0, 0, time.perf_counter(), time.process_time()
    with VideoFileSource(clip) as src:
        for _, result in gate.run(src):
            n += 1
            faces += len(result.faces)
            if max_frames and n >= max_frames:
                break
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    gate.timer.total_ms["eyes"] -= gate.timer.total_ms.get("cnn", 0.0)  # landmarks, crops, fusion without the CNN
    return {**_rates(n, wall, cpu), "faces_per_frame": faces / n, "ms_per_frame": _stages(gate.timer, GATE_STAGES, n, wall, cpu)}


def run_article(pipe, clip: Path, max_frames: int | None) -> dict:
    from blinkgate.gate import StageTimer
    from blinkgate.sources import VideoFileSource

    pipe.reset()
    pipe.timer = StageTimer()
    n, faces, crops = 0, 0, 0
    t, c = time.perf_counter(), time.process_time()
    with VideoFileSource(clip) as src:
        for frame in pipe.timer.frames(src):
            found = pipe.process(frame.image, frame.timestamp_ms)
            n += 1
            faces += len(found)
            crops += sum(f.n_eye_crops for f in found)
            if max_frames and n >= max_frames:
                break
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {**_rates(n, wall, cpu), "faces_per_frame": faces / n, "cnn_calls_per_frame": crops / n,
            "ms_per_frame": _stages(pipe.timer, ARTICLE_STAGES, n, wall, cpu)}


def warm_up(gate, article, clip: Path) -> None:
    """Load every model and run a few frames so that no first-call cost lands in a measurement."""
    run_gate(gate, clip, 15)
    if article is not None:
        run_article(article, clip, 3)


# -- memory probe (a fresh process per pipeline) ----------------------------------------------------------


def memory_probe(kind: str, clip: Path, cpu: int) -> None:
    one_core(cpu)
    from blinkgate.recognize import FaceEncoder

    base = peak_rss_mb()
    encoder = FaceEncoder()
    known = enrolled(encoder)
    if kind == "blinkgate":
        run_gate(make_gate(encoder, known), clip, None)
    else:
        run_article(make_article(encoder, known), clip, 120)
    print(json.dumps({"pipeline": kind, "peak_rss_mb": round(peak_rss_mb(), 1), "python_baseline_mb": round(base, 1)}))


def measure_memory(clip: Path, cpu: int) -> dict:
    out = {}
    for kind in ("blinkgate", "article"):
        proc = subprocess.run([sys.executable, __file__, "--memory-probe", kind, "--clip", str(clip), "--cpu", str(cpu)],
                              capture_output=True, text=True, check=False)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        out[kind] = json.loads(line[-1]) if line else {"error": proc.stderr.strip().splitlines()[-1:] or "failed"}
    return out


# -- report ---------------------------------------------------------------------------------------------


def table(results: dict) -> list[str]:
    lines = ["| clip | size | frames | decode only fps | blinkgate fps | article fps | blinkgate / article | "
             "blinkgate / decode | wall-clock fps, blinkgate / article |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results["clips"].items():
        g, d, a = r["blinkgate"], r["decode"], r.get("article")
        ratio = f"{g['fps'] / a['fps']:.1f}×" if a else "—"
        afps = f"{a['fps']:.2f}" if a else "—"
        wall = f"{g['fps_wall']:.1f} / {a['fps_wall']:.2f}" if a else f"{g['fps_wall']:.1f} / —"
        lines.append(f"| {name} | {r['size']} | {g['frames']} | {d['fps']:.0f} | {g['fps']:.1f} | {afps} | {ratio} | "
                     f"{g['fps'] / d['fps']:.2f} | {wall} |")
    return lines


def stage_table(results: dict, key: str, stages: list[str]) -> list[str]:
    cols = stages + ["other"]
    lines = ["| clip | " + " | ".join(cols) + " | total ms/frame |", "|---|" + "---:|" * (len(cols) + 1)]
    for name, r in results["clips"].items():
        if key not in r:
            continue
        ms = r[key]["ms_per_frame"]
        total = sum(ms.values())
        lines.append(f"| {name} | " + " | ".join(f"{ms[c]:.2f}" for c in cols) + f" | {total:.2f} |")
    return lines


def plot(results: dict, outdir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["clips"])
    cols = GATE_STAGES + ["other"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = np.zeros(len(names))
    for stage in cols:
        vals = np.array([results["clips"][n]["blinkgate"]["ms_per_frame"][stage] for n in names])
        ax.bar(names, vals, bottom=bottom, label=stage)
        bottom += vals
    ax.set_ylabel("ms per frame (one core)")
    ax.set_title("blinkgate: time per frame by stage")
    ax.legend(fontsize=8, ncol=4)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    fig.savefig(outdir / "stages.png", dpi=110)
    plt.close(fig)
    files = ["stages.png"]
    if results.get("scaling"):
        sc = results["scaling"]
        ns = sorted(int(k) for k in sc)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ns, [sc[str(n)]["blinkgate"]["fps"] for n in ns], "o-", label="blinkgate")
        if all("article" in sc[str(n)] for n in ns):
            ax.plot(ns, [sc[str(n)]["article"]["fps"] for n in ns], "s-", label="article")
        ax.plot(ns, [sc[str(n)]["decode"]["fps"] for n in ns], ":", color="grey", label="decode only")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("faces in the 640×480 frame")
        ax.set_ylabel("frames per second (one core)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / "scaling.png", dpi=110)
        plt.close(fig)
        files.append("scaling.png")
    return files


def write_report(results: dict, outdir: Path) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "results.json").write_text(json.dumps(results, indent=1))
    files = plot(results, outdir)
    m = results["machine"]
    md = ["# Speed: blinkgate against the article's pipeline", "",
          f"Command: `{results['command']}`  ",
          f"Machine: {m['cpu']}, {m['cores']} cores, pinned to CPU {results['cpu']} (one core, one thread); "
          f"load average before {m['load_avg_1_5_15']}, after {results['load_after']}; {m['os']}, Python {m['python']}, "
          f"OpenCV {m['opencv']}, blinkgate {m['blinkgate']} ({m['commit']})  ",
          f"Date: {m['date']}", "",
          "fps = frames per CPU-second of the one pinned core (process time), which stays meaningful when other jobs "
          "share the machine; wall-clock fps is shown too. Stage times are wall-clock stage timers scaled to CPU time.", "",
          "## Frames per second, end to end (decode included)", ""]
    md += table(results)
    md += ["", "## blinkgate, ms per frame by stage", "", *stage_table(results, "blinkgate", GATE_STAGES), "",
           f"![stages]({files[0]})", "", "## Article pipeline, ms per frame by stage", "",
           *stage_table(results, "article", ARTICLE_STAGES), ""]
    if results.get("scaling"):
        md += ["## Scaling with the number of faces (640×480)", "",
               "| faces | decode only fps | blinkgate fps | article fps | blinkgate / article |", "|---:|---:|---:|---:|---:|"]
        for n, r in sorted(results["scaling"].items(), key=lambda kv: int(kv[0])):
            a = r.get("article")
            md.append(f"| {n} | {r['decode']['fps']:.0f} | {r['blinkgate']['fps']:.1f} | {a['fps']:.2f} | "
                      f"{r['blinkgate']['fps'] / a['fps']:.1f}× |" if a else
                      f"| {n} | {r['decode']['fps']:.0f} | {r['blinkgate']['fps']:.1f} | — | — |")
        md += ["", "![scaling](scaling.png)", "", "blinkgate ms per frame by stage against the number of faces:", "",
               "| faces | faces found per frame | " + " | ".join(GATE_STAGES + ["other"]) + " | total |",
               "|---:|---:|" + "---:|" * (len(GATE_STAGES) + 2)]
        for n, r in sorted(results["scaling"].items(), key=lambda kv: int(kv[0])):
            ms = r["blinkgate"]["ms_per_frame"]
            md.append(f"| {n} | {r['blinkgate']['faces_per_frame']:.1f} | " + " | ".join(f"{ms[c]:.2f}" for c in GATE_STAGES + ["other"])
                      + f" | {sum(ms.values()):.2f} |")
        md.append("")
    if results.get("memory"):
        md += ["## Peak resident memory (fresh process each)", "", "| pipeline | peak RSS |", "|---|---:|"]
        for k, v in results["memory"].items():
            md.append(f"| {k} | {v.get('peak_rss_mb', '—')} MB |")
        md.append("")
    path = outdir / "benchmarks.md"
    path.write_text("\n".join(md))
    return path


# -- main -----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", help="video files (default: the blink videos and two 640x480 clips)")
    parser.add_argument("--max-frames", type=int, default=None, help="frames per clip for both pipelines (default all)")
    parser.add_argument("--scaling-frames", type=int, default=100, help="frames per scaling clip (default 100)")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-article", action="store_true", help="skip the article's pipeline")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last one)")
    parser.add_argument("--report", metavar="DIR", help="write benchmarks.md, results.json and the charts here")
    parser.add_argument("--from-json", metavar="RESULTS", help="only rewrite the report from a results.json of an earlier run")
    parser.add_argument("--memory-probe", choices=("blinkgate", "article"), help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    if args.memory_probe:
        memory_probe(args.memory_probe, Path(args.clip), cpu)
        return 0
    if args.from_json:
        print("report:", write_report(json.loads(Path(args.from_json).read_text()), Path(args.report or ".")))
        return 0
    if not DATA.is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    one_core(cpu)
    from blinkgate.evaluate_report import machine_info
    from blinkgate.recognize import FaceEncoder

    machine = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="blinkgate-bench-"))
    clips = [Path(c) for c in args.clips] if args.clips else [
        nuaa_live_clip(tmp), blink_detector_640(tmp), *sorted((DATA / "blink-videos").glob("*.mp4"))]
    encoder = FaceEncoder()
    known = enrolled(encoder)
    gate = make_gate(encoder, known)
    article = None if args.no_article else make_article(encoder, known)
    warm_up(gate, article, clips[0])
    results: dict = {"command": " ".join([".venv/bin/python", "benchmarks/speed.py", *sys.argv[1:]]), "cpu": cpu,
                     "machine": machine, "clips": {}, "enrolled_people": len(set(known[1]))}
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}×{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
        cap.release()
        r = {"size": size, "decode": decode_only(clip, args.max_frames), "blinkgate": run_gate(gate, clip, args.max_frames)}
        if article is not None:
            r["article"] = run_article(article, clip, args.max_frames)
        results["clips"][clip.stem] = r
        a = r.get("article")
        print(f"{clip.stem:<24} {size:>9}  decode {r['decode']['fps']:7.1f} fps  blinkgate {r['blinkgate']['fps']:7.1f} fps"
              + (f"  article {a['fps']:6.2f} fps  ratio {r['blinkgate']['fps'] / a['fps']:6.1f}x" if a else ""), flush=True)
    if not args.no_scaling:
        results["scaling"] = {}
        for n in (1, 2, 4, 8):
            clip = faces_clip(tmp, n, args.scaling_frames)
            r = {"decode": decode_only(clip, None), "blinkgate": run_gate(gate, clip, None)}
            if article is not None:
                r["article"] = run_article(article, clip, min(args.scaling_frames, 60))
            results["scaling"][str(n)] = r
            print(f"{n} faces: blinkgate {r['blinkgate']['fps']:.1f} fps ({r['blinkgate']['faces_per_frame']:.1f} faces/frame)"
                  + (f", article {r['article']['fps']:.2f} fps ({r['article']['faces_per_frame']:.1f} faces/frame)" if "article" in r else ""),
                  flush=True)
    if not args.no_memory:
        results["memory"] = measure_memory(clips[0], cpu)
        print("peak RSS:", {k: v.get("peak_rss_mb") for k, v in results["memory"].items()})
    results["load_after"] = tuple(round(x, 2) for x in os.getloadavg())
    if args.report:
        print("report:", write_report(results, Path(args.report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
