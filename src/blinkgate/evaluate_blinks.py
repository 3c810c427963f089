"""Blink detection measured against hand labels (``labels/<clip>.csv`` beside each clip).

Label rows: ``start_frame,end_frame,peak_frame,kind,confidence,note`` (0-based, inclusive).
``blink`` rows are positives; ``long_closure`` and ``downgaze`` are don't-care; ``half_closure``
and ``wink`` are negatives (a detection there is a false positive). With ``sure_only``, blinks
marked ``likely`` become don't-care too. A detection matches a blink when their frame intervals
overlap, allowing ``slack`` frames of labelling uncertainty. Any other kind or confidence,
frames out of order, overlapping or past the clip's end are an error, not scored.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BlinkgateError
from .files import reading_text
from .gate import Gate
from .sources import VideoFileSource
from .types import EyeState

DONT_CARE = {"long_closure", "downgaze"}
KINDS = ("blink", "half_closure", "wink", *sorted(DONT_CARE))
CONFIDENCES = ("sure", "likely")
_COLUMNS = "expected columns start_frame, end_frame, kind, confidence with whole frame numbers"


@dataclass(frozen=True)
class Label:
    start: int
    end: int
    kind: str
    sure: bool


@dataclass
class ClipScore:
    clip: str
    labelled: int = 0
    detected: int = 0
    true_pos: int = 0
    false_pos: int = 0
    missed: list[int] = field(default_factory=list)  # start frames of labelled blinks not found
    false_at: list[int] = field(default_factory=list)  # start frames of detections matching no blink
    closed_frames: int = 0  # frames inside labelled blinks
    closed_read: int = 0  # of those, read CLOSED by the eye stage
    open_frames: int = 0  # frames outside every label
    open_read: int = 0  # of those, read OPEN


def read_labels(path: Path) -> list[Label]:
    if not path.is_file():
        raise BlinkgateError(f"no labels for this clip: {path}")
    labels = []
    with reading_text(path, BlinkgateError), path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        for r in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in r.items()}
            if any(row.values()):
                labels.append(_label(row, f"{path}:{reader.line_num}"))
    ordered = sorted(labels, key=lambda lb: (lb.start, lb.end))
    for a, b in zip(ordered, ordered[1:]):  # a row given twice: one blink found, its copy "missed"
        if b.start <= a.end:
            raise BlinkgateError(f"{path}: the labels at frames {a.start}-{a.end} and {b.start}-{b.end} overlap "
                                 "(a row given twice?)")
    return labels


def _label(row: dict[str, str], where: str) -> Label:
    """One label row, checked: a kind or confidence with a typo ("blnk", "sur") was scored as a
    negative or as unsure, and reversed frames as a blink no detection could match."""
    try:  # "blink " or "Sure" from a hand-edited sheet read as another kind or as unsure
        start, end = int(row["start_frame"]), int(row["end_frame"])
        peak = int(row["peak_frame"]) if row.get("peak_frame") else None
        kind, confidence = row["kind"].lower(), row["confidence"].lower()
    except (KeyError, ValueError) as err:
        raise BlinkgateError(f"{where}: {_COLUMNS} ({type(err).__name__}: {err})") from None
    if not 0 <= start <= end:
        raise BlinkgateError(f"{where}: start_frame {start} and end_frame {end}: need 0 <= start <= end")
    if peak is not None and not start <= peak <= end:
        raise BlinkgateError(f"{where}: peak_frame {peak} is outside its label's frames {start}-{end}")
    if kind not in KINDS:
        raise BlinkgateError(f"{where}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if confidence not in CONFIDENCES:
        raise BlinkgateError(f"{where}: unknown confidence {confidence!r} (one of {', '.join(CONFIDENCES)})")
    return Label(start, end, kind, confidence == "sure")


def _overlaps(a: tuple[int, int], b: tuple[int, int], slack: int) -> bool:
    return a[0] <= b[1] + slack and b[0] <= a[1] + slack


def detect_blinks(gate: Gate, clip: Path) -> tuple[list[tuple[int, int]], dict[int, EyeState], float, int]:
    """Run the gate over a clip: blink intervals in frames, eye state per frame, fps and frames read."""
    gate.reset()
    with VideoFileSource(clip) as source:
        fps = source.fps
        blinks, states, index_at = [], {}, {}
        frames = 0
        for frame, result in gate.run(source):
            frames = frame.index + 1
            index_at[frame.timestamp_ms] = frame.index  # the file's clock may be variable-rate
            if result.faces:  # the biggest face is the clip's subject
                face = max(result.faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                states[frame.index] = face.eyes.state
            for ev in result.events:
                if ev.kind == "blink":
                    # The closure lies strictly between the last open and the first reopened frame.
                    blinks.append((index_at[ev.detail["start_ms"]] + 1, index_at[ev.detail["end_ms"]] - 1))
        if source.skipped_frames:  # the frames after them are numbered that many too low: blinks scored as false
            raise BlinkgateError(f"{clip}: {source.skipped_frames} frames could not be decoded (a damaged file?), "
                                 "so the frame numbers after them no longer match its labels")
    return blinks, states, fps, frames


def score_clip(clip: Path, labels: list[Label], blinks: list[tuple[int, int]], states: dict[int, EyeState],
               sure_only: bool = False, slack: int = 2) -> ClipScore:
    positives = [lb for lb in labels if lb.kind == "blink" and (lb.sure or not sure_only)]
    ignore = [lb for lb in labels if lb.kind in DONT_CARE or (lb.kind == "blink" and sure_only and not lb.sure)]
    score = ClipScore(clip.name, labelled=len(positives))
    matched: set[int] = set()
    for det in sorted(blinks):
        # One to one: a detection spanning two blinks finds one of them, and a second detection
        # of a blink already found is a false one (the detector counted a blink twice).
        hit = next((i for i, lb in enumerate(positives)
                    if i not in matched and _overlaps(det, (lb.start, lb.end), slack)), None)
        if hit is not None:
            matched.add(hit)
            score.detected += 1
            score.true_pos += 1
        elif not any(_overlaps(det, (lb.start, lb.end), slack) for lb in ignore):
            score.detected += 1
            score.false_pos += 1
            score.false_at.append(det[0])
    score.missed = [lb.start for i, lb in enumerate(positives) if i not in matched]
    for lb in positives:
        for i in range(lb.start, lb.end + 1):
            score.closed_frames += 1
            score.closed_read += states.get(i) is EyeState.CLOSED
    labelled = {i for lb in labels for i in range(lb.start - slack, lb.end + slack + 1)}
    for i, state in states.items():
        if i not in labelled:
            score.open_frames += 1
            score.open_read += state is EyeState.OPEN
    return score


def summarise(scores: list[ClipScore]) -> dict:
    tp = sum(s.true_pos for s in scores)
    det = sum(s.detected for s in scores)
    lab = sum(s.labelled for s in scores)
    # None where there is nothing to count (no detections, no labelled blinks): not a 0% score.
    precision = tp / det if det else None
    recall = tp / lab if lab else None
    p, r = precision or 0.0, recall or 0.0
    f1 = None if precision is None and recall is None else (2 * p * r / (p + r) if p + r else 0.0)
    closed = sum(s.closed_frames for s in scores)
    opened = sum(s.open_frames for s in scores)
    return {
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "f1": None if f1 is None else round(f1, 4),
        "labelled": lab,
        "detected": det,
        "closed_frame_accuracy": round(sum(s.closed_read for s in scores) / closed, 4) if closed else None,
        "open_frame_accuracy": round(sum(s.open_read for s in scores) / opened, 4) if opened else None,
        "clips": [asdict(s) for s in scores],
    }


def evaluate_blinks(gate: Gate, clips: list[Path], labels_dir: Path | None = None, slack: int = 2) -> dict:
    """Score every clip, sure-only and sure+likely. Labels default to ``<clip dir>/labels``."""
    runs = []
    for clip in clips:
        sheet = (labels_dir or clip.parent / "labels") / f"{clip.stem}.csv"
        labels = read_labels(sheet)
        blinks, states, _, frames = detect_blinks(gate, clip)
        # Such a label was scored as a blink missed (labels of another clip, or of a longer cut).
        if past := [lb for lb in labels if lb.end >= frames]:
            raise BlinkgateError(f"{sheet}: the label at frames {past[0].start}-{past[0].end} is past the end of "
                                 f"{clip.name}, which has {frames} frames: are they this clip's labels?")
        runs.append((clip, labels, blinks, states))
    return {
        name: summarise([score_clip(c, lb, b, s, sure_only=sure, slack=slack) for c, lb, b, s in runs])
        for name, sure in (("sure", True), ("sure+likely", False))
    }
