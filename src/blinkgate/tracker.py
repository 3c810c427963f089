"""A small IoU tracker: gives each face a stable track id while it stays in view.

All per-face state in blinkgate (eye history, blinks, liveness, identity) is keyed by track id,
so a face that leaves and a new one that arrives never share anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Box


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def dedupe(boxes: list[Box]) -> list[Box]:
    """Drop boxes whose centre lies inside a larger kept box: one face, one detection.

    Haar cascades and the per-track searches can report the same face twice at two scales;
    two boxes on one face would give it two tracks and split its eye history.
    """
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if not any(k[0] <= cx <= k[2] and k[1] <= cy <= k[3] for k in kept):
            kept.append(box)
    return kept


@dataclass
class Track:
    id: int
    box: Box
    first_seen_ms: float
    last_seen_ms: float
    hits: int = 1
    seen_now: bool = True  # matched a detection on the latest frame


@dataclass
class TrackUpdate:
    """The outcome of one frame: tracks seen on it, and those created or dropped by it."""

    active: list[Track]
    new: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)


class IoUTracker:
    """Greedy IoU matching of detections to tracks.

    A track survives ``max_gap_ms`` without a detection (Haar misses the odd frame) and is
    dropped after that; its id is never reused.
    """

    def __init__(self, iou_threshold: float = 0.3, max_gap_ms: float = 400.0):
        self.iou_threshold = iou_threshold
        self.max_gap_ms = max_gap_ms
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def reset(self) -> list[Track]:
        """Forget every track (returns them, so callers can report them lost)."""
        lost = list(self.tracks.values())
        self.tracks.clear()
        return lost

    def update(self, boxes: list[Box], timestamp_ms: float) -> TrackUpdate:
        # Expired tracks go before matching: after an outage a face at the old place is a new
        # face, not the old track (whose blink may be half done).
        lost = [t for t in self.tracks.values() if timestamp_ms - t.last_seen_ms > self.max_gap_ms]
        for track in lost:
            del self.tracks[track.id]
        pairs = sorted(
            ((iou(t.box, b), tid, i) for tid, t in self.tracks.items() for i, b in enumerate(boxes)),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for score, tid, i in pairs:
            if score < self.iou_threshold:
                break
            if tid in used_tracks or i in used_boxes:
                continue
            used_tracks.add(tid)
            used_boxes.add(i)
            track = self.tracks[tid]
            track.box, track.last_seen_ms, track.hits = boxes[i], timestamp_ms, track.hits + 1

        for track in self.tracks.values():
            track.seen_now = track.id in used_tracks

        new = []
        for i, box in enumerate(boxes):
            if i not in used_boxes:
                track = Track(self._next_id, box, timestamp_ms, timestamp_ms)
                self._next_id += 1
                self.tracks[track.id] = track
                new.append(track)
        active = [t for t in self.tracks.values() if t.seen_now]
        return TrackUpdate(active=active, new=new, lost=lost)
