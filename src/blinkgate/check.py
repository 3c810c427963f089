"""Batch verdicts: run the gate over a recorded video or frame folder as fast as it decodes."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BlinkgateError, SourceError
from .files import one_line
from .gate import Gate
from .parallel import imap_processes
from .sources import FrameSource, is_frame_name, is_live, open_recording_path, recording_name

MIN_TRACK_FRAMES = 3  # shorter tracks are detector noise, not faces worth reporting


@dataclass
class FaceVerdict:
    track: int
    name: str | None
    blinks: int = 0
    live: bool = False
    granted: bool = False
    first_live_s: float | None = None
    eyes_blurred: bool = False  # on most of the track's frames: too blurred for a blink to count
    frames: int = 0
    blurred_frames: int = 0


@dataclass
class Verdict:
    source: str
    frames: int = 0
    live: bool = False
    granted: bool = False
    truncated: bool = False  # frames are missing (the decoder gave up part-way, or skipped a damaged patch)
    faces: list[FaceVerdict] = field(default_factory=list)
    skipped_frames: int = 0  # read past (a damaged patch): the line says so; in --json, "truncated" does

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("skipped_frames")
        for face in out["faces"]:
            face.pop("frames")
            face.pop("blurred_frames")
        return out

    def format(self) -> str:
        verdict = "LIVE" if self.live else "not live"
        # Named faces only: a grant with no name (check_source makes none) crashed the join, and the batch.
        if names := sorted({f.name for f in self.faces if f.granted and f.name is not None}):
            verdict = f"LIVE, granted: {', '.join(names)}"
        blinks = sum(f.blinks for f in self.faces)
        first = min((f.first_live_s for f in self.faces if f.first_live_s is not None), default=None)
        when = f", first live at {first:.2f}s" if first is not None else ""
        # The reason explains a "not live"; next to a LIVE it read as if the grant were in doubt.
        blurred = not self.live and any(f.eyes_blurred for f in self.faces)
        why = "; eyes too blurred to see a blink" if blurred else ""
        if self.skipped_frames:
            were = "was" if self.skipped_frames == 1 else "were"
            why += f"; damaged: {_plural(self.skipped_frames, 'frame')} could not be decoded and {were} skipped"
        elif self.truncated:
            why += "; truncated: the decoder stopped early"
        counts = ", ".join(_plural(n, word) for n, word in ((self.frames, "frame"), (len(self.faces), "face"), (blinks, "blink")))
        # One line per input: a name --null let in with a line break in it is escaped (--json escapes it too).
        return f"{one_line(self.source)}: {verdict} ({counts}{when}{why})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_source(
    gate: Gate, source: FrameSource, name: str | None = None, on_frame: Callable[[], object] | None = None
) -> Verdict:
    """Run ``gate`` over every frame of ``source`` and summarise each face track.

    ``on_frame`` is called once per frame (a progress bar's ``update``)."""
    gate.reset()
    verdict = Verdict(source=name or source.description)
    spells: list[FaceVerdict] = []  # a track's verdict from its first naming, or from an identity change
    faces: dict[int, FaceVerdict] = {}  # the open spell of each track
    for frame, result in gate.run(source):
        verdict.frames += 1
        if on_frame:
            on_frame()
        # A track that shows someone else now (a photo pasted over the face keeps the track) starts
        # over in the gate: grant revoked, blinks reset. Its verdict starts over too, or the new
        # name was reported granted on the old one's blinks.
        for event in result.events:
            if event.kind == "identity_changed":
                faces.pop(event.track_id, None)
        for face in result.faces:
            if (fv := faces.get(face.track_id)) is None:
                fv = faces[face.track_id] = FaceVerdict(face.track_id, face.name)
                spells.append(fv)
            fv.frames += 1
            fv.name, fv.blinks = face.name, max(fv.blinks, face.blinks)
            if face.live and not fv.live:
                fv.live, fv.first_live_s = True, round(frame.timestamp_ms / 1000.0, 3)
            fv.granted = fv.granted or (face.granted and face.name is not None)  # a grant is someone's
            fv.blurred_frames += face.eyes_blurred
    for fv in spells:
        fv.eyes_blurred = 2 * fv.blurred_frames > fv.frames
    verdict.faces = [f for f in spells if f.frames >= MIN_TRACK_FRAMES or f.live]
    verdict.truncated = source.truncated  # a script reading --json must not take a cut upload's "not live" at face value
    verdict.skipped_frames = source.skipped_frames
    verdict.live = any(f.live for f in verdict.faces)
    verdict.granted = any(f.granted for f in verdict.faces)
    return verdict


def open_recording(spec: str, fps: float) -> FrameSource:
    """A video file or frame folder to check. SourceError if it is unusable, or if it is a camera
    or a stream: those never end. A recording named like a camera index (``1001``, a case
    number) is still a recording."""
    try:
        if is_live(spec) and not Path(recording_name(spec)).exists():
            raise SourceError(f"{spec} is a camera or a stream: check takes recordings (watch it with `blinkgate run`)")
        return open_recording_path(spec, fps=fps)
    except OSError as err:  # a folder that cannot be listed, a name too long: this input's error, not the batch's
        raise SourceError(f"cannot read {spec}: {err.strerror or err}") from None


def read_input_list(data: bytes, null: bool = False) -> list[str]:
    """The inputs listed in ``data`` (``check --files-from``): one a line, or separated by NUL
    bytes (``null``, as ``find -print0`` writes), the one separator a path cannot contain.

    Blank entries are skipped: a list's last line ends with a newline. A line may end with
    "\r\n" (a list written on Windows): otherwise every name kept its "\r" and was "not found".
    A "\r" elsewhere, or in a NUL-separated list, is part of the name. Names are decoded as the
    command line decodes them, so one that is not UTF-8 reaches its own error line."""
    parts = data.split(b"\0") if null else data.replace(b"\r\n", b"\n").split(b"\n")
    return [os.fsdecode(part) for part in parts if part.strip()]


def input_stamp(spec: str) -> list[int] | None:
    """What tells a later ``--skip-done`` that input ``spec`` is the one checked: the inode, size,
    modification and change times (ns) of its file, or frame folder; None if there is none to
    read. An upload still being written when it was checked, or uploaded again under its name,
    differs: also one copied in with its old time kept (``rsync -a`` renames a new file into
    place, and no one but the kernel sets the change time). A frame folder's stamp also has
    its frames' count, total size and latest modification and change times."""
    path = os.path.expanduser(recording_name(spec))  # the file open_recording opens
    try:
        info = os.stat(path)
        stamp = [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        if stat.S_ISDIR(info.st_mode):
            stamp += _frames_stamp(path)
    except (OSError, ValueError):  # missing, or a name no file can have
        return None
    return stamp


def _frames_stamp(folder: str) -> list[int]:
    """A frame written over in place leaves its folder's times as they were: the frames' own
    stats tell (one stat a frame: nothing beside decoding it)."""
    count = size = mtime = ctime = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_frame_name(entry.name):
                info = entry.stat()  # through a link, as the frame is read
                count, size = count + 1, size + info.st_size
                mtime, ctime = max(mtime, info.st_mtime_ns), max(ctime, info.st_ctime_ns)
    return [count, size, mtime, ctime]


@dataclass
class DoneSources:
    """The inputs an earlier ``check --json`` run judged (``--skip-done``): those whose last line
    is a verdict, each with the ``input_stamp`` it had then (None: not recorded)."""

    sources: dict[str, list[int] | None] = field(default_factory=dict)
    bad_lines: int = 0  # lines that are not such a line: one cut short by a full disk or a crash
    ends_cut: bool = False  # the last line has no newline: output appended now would join it


def read_done(path: str | Path) -> DoneSources:
    """The sources whose last line in ``path`` is a verdict; none if it does not exist yet (a cron
    job's first run). BlinkgateError if it cannot be read.

    An error line does not make its input done: the error may have passed (a read error, an NFS
    hiccup), and skipped, the input would never be checked again while the resumed run exited 0.
    The last line counts, as ``>>`` appends the newest: a verdict after an error is done."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return DoneSources()
    except OSError as err:
        raise BlinkgateError(f"--skip-done {path}: cannot read it ({err.strerror or err})") from None
    done = DoneSources(ends_cut=bool(data) and not data.endswith(b"\n"))
    for line in data.splitlines():
        try:
            entry = json.loads(line) if line.strip() else {}
            source = entry.get("source")
        except (ValueError, AttributeError):  # not JSON, or JSON but not an object
            source = None
        if isinstance(source, str) and "error" not in entry:
            done.sources[source] = entry.get("stamp")
        elif isinstance(source, str):
            done.sources.pop(source, None)  # an error since the verdict: the input as it is now failed
        elif line.strip():
            done.bad_lines += 1
    return done


def is_done(spec: str, done: DoneSources, stamp: list[int] | None) -> bool:
    """True if ``done`` has a line for ``spec`` as it is now (``stamp``, its ``input_stamp``)."""
    return stamp is not None and done.sources.get(spec, None) == stamp


# Worker state for check_in_parallel: each process builds its own Gate once.
_WORKER: dict = {}


class _Collect(logging.Handler):
    """Keeps a worker's log lines, for the main process to print above its progress bar."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _worker_init(make_gate: Callable[[], Gate], fps: float, log_level: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # the processes are the parallelism
    if log_level > logging.DEBUG:  # as in the main process: OpenCV's own log only with -v
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    collect = _Collect()
    root = logging.getLogger()
    root.setLevel(log_level)
    root.handlers[:] = [collect]
    _WORKER.update(gate=make_gate(), fps=fps, log=collect)


def _worker_check(spec: str) -> tuple[str, Verdict | None, str | None, list[str]]:
    lines = _WORKER["log"].lines
    lines.clear()
    try:
        with open_recording(spec, _WORKER["fps"]) as source:
            return spec, check_source(_WORKER["gate"], source, name=str(spec)), None, list(lines)
    except SourceError as err:
        return spec, None, str(err), list(lines)


def check_in_parallel(specs: Sequence[str], make_gate: Callable[[], Gate], fps: float, jobs: int,
                      log_level: int = logging.WARNING) -> Iterator[tuple[str, Verdict | None, str | None, list[str]]]:
    """(spec, verdict, None, log) or (spec, None, error, log) for each input, in input order, from
    ``jobs`` processes; ``log`` is what the worker logged meanwhile. An input whose worker dies
    (a crash in a decoder, killed for memory) is an error, and the batch goes on. ``make_gate``
    must pickle (a module-level function or a partial of one)."""
    yield from imap_processes(_worker_check, specs, jobs, _worker_init, (make_gate, fps, log_level),
                              on_crash=lambda spec, why: (spec, None, f"cannot check {spec}: {why}", []))
