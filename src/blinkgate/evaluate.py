"""Presentation-attack evaluation (ISO/IEC 30107-3 style): APCER per attack type, BPCER, ACER.

A *manifest* lists presentations: each is one input (a video, a frame folder, a glob or an
explicit frame list, with its frame rate) labelled ``live`` (bona fide) or with an attack type
(``print``, ``bent-print``, ``folded-print``, ``screen-replay``, ``cutout``, …). The gate runs
over each input from a clean state and the outcome is scored:

* an input is **accepted** when any face in it is judged *live* (it blinked). This is the rule
  when nobody is enrolled, and it is stricter than "granted" for attacks: a live *unknown*
  face counts as an accepted attack;
* when the manifest names the person (``identity``) and a face database is given, the input is
  also scored as **granted** (a face recognised as that person and live);
* **APCER** of an attack type = accepted attack presentations / attack presentations of that
  type, counted over the whole input, however long;
* **BPCER** = bona fide presentations *not* accepted within the time limit (default 10 s from
  the first frame) / bona fide presentations. Inputs marked ``expect_blink = false`` (people
  told not to blink, as in NUAA) are reported on their own and left out of the headline BPCER;
* **ACER** = (highest APCER over the attack types + BPCER) / 2, as in OULU-NPU; computed
  separately for real and for simulated attacks;
* **time to accept** = seconds from the first frame to the first live verdict, over the bona
  fide presentations accepted within the limit (median and 90th percentile).

Manifests are CSV or TOML; relative paths are relative to the manifest file (TOML may set a
``root`` folder, itself relative to the manifest). See :func:`load_manifest`.
"""

from __future__ import annotations

import csv
import glob
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import BatchStopped, BlinkgateError, SourceError
from .files import reading_text
from .sources import IMAGE_SUFFIXES, Frame, FrameSource, natural_key, open_source, read_frame_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

BONA_FIDE = "live"
KNOWN_ATTACKS = ("print", "bent-print", "folded-print", "screen-replay", "cutout", "mask")
DEFAULT_TIME_LIMIT_S = 10.0
_LABEL = re.compile(r"^[a-z][a-z0-9_-]*$")  # a word: "label = 5" is a typo, not an attack type
_FIELDS = ("id", "label", "source", "frames", "frame_numbers", "times_ms", "fps", "identity", "group",
           "simulated", "expect_blink", "note")
_SCALARS = ("id", "label", "source", "fps", "identity", "group", "note")  # text or a number, never true or a table
# Frame i is at i * 1000 / fps ms: above 1000 fps frames are under a millisecond apart, finer than
# the gate's clock of blink durations and beyond any camera here; sources.py takes a header's fps
# of 1000 or more for a broken one too. 1e6 or 1e308 is a typo, and gave every frame time ~0.
MAX_FPS = 1000.0


class ManifestError(BlinkgateError):
    """A manifest is missing, malformed or names inputs that do not exist."""


# -- presentations and manifests -----------------------------------------------------------------


class FrameListSource(FrameSource):
    """An explicit list of image files with their timestamps (ms)."""

    def __init__(self, files: list[Path], times_ms: list[float], description: str = ""):
        if not files:
            raise SourceError(f"no frames listed for {description or 'a frame list'}")
        if len(files) != len(times_ms):
            raise SourceError(f"{description}: {len(files)} frames but {len(times_ms)} timestamps")
        if any(b <= a for a, b in zip(times_ms, times_ms[1:])):
            raise SourceError(f"{description}: frame timestamps must increase")
        self.files, self.times_ms = files, times_ms
        self.description = description or str(files[0].parent)
        self.frame_count = len(files)
        self.fps = None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for file, t in zip(self.files, self.times_ms):
            image = read_frame_file(file)
            if image is None:
                self.skipped_frames += 1
                continue
            yield Frame(image, float(t), index)
            index += 1
        # As a frame folder's: judged without these frames, a verdict must say so (a glob or a
        # list with a corrupt frame was scored as a complete input).
        self.truncated = self.skipped_frames > 0


@dataclass
class Presentation:
    """One manifest entry: an input and what it is."""

    id: str
    label: str  # "live" (bona fide) or an attack type
    source: Path | None = None  # video file or frame folder
    frames: list[Path] | None = None  # explicit frames (from a list or a glob)
    times_ms: list[float] | None = None  # one per frame, when the clock is not index / fps
    fps: float = 20.0
    identity: str | None = None
    group: str = ""
    simulated: bool = False
    expect_blink: bool = True  # False: people told not to blink; reported apart from BPCER
    note: str = ""

    @property
    def attack(self) -> bool:
        return self.label != BONA_FIDE

    def open(self) -> FrameSource:
        if self.frames is not None:
            times = self.times_ms if self.times_ms is not None else [i * 1000.0 / self.fps for i in range(len(self.frames))]
            return FrameListSource(self.frames, times, self.id)
        assert self.source is not None
        return open_source(self.source, fps=self.fps)


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y"):
        return True
    if text in ("", "0", "false", "no", "n"):
        return False
    raise ManifestError(f"{where}: expected true/false, got {value!r:.60}")


def _check_scalars(entry: dict, where: str) -> None:
    """TOML's true, [..] or {..} where text or a number is wanted: str() made ``fps = true`` 1 fps,
    ``group = {a = 1}`` the group "{'a': 1}" and ``source = true`` a file named True."""
    for key in _SCALARS:
        value = entry.get(key)
        if isinstance(value, (bool, list, dict)):
            wanted = "a number" if key == "fps" else "text (in quotes)"
            raise ManifestError(f"{where}: {key!r} must be {wanted}, got {value!r:.60}")


def _finite(value: Any) -> float | None:
    """``value`` as a finite float; None if it is not one (NaN is false in every comparison, so checks pass it)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numbers(values: Any, where: str) -> list[float]:
    """Frame numbers or times as finite floats: NaN passed the increasing check, then stopped the gate."""
    if not isinstance(values, list):  # a string was read digit by digit
        raise ManifestError(f"{where}: 'frame_numbers'/'times_ms' must be a list of numbers, got {values!r}")
    numbers = []
    for value in values:
        number = _finite(value)
        if number is None:
            raise ManifestError(f"{where}: frame numbers/times must be finite numbers, got {value!r}")
        numbers.append(number)
    return numbers


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _presentation(raw: dict, base: Path, defaults: dict, where: str) -> Presentation:
    entry = {**defaults, **{k: v for k, v in raw.items() if v not in (None, "")}}
    unknown = set(entry) - set(_FIELDS)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(_FIELDS)})")
    for key in ("id", "label"):
        if not entry.get(key):
            raise ManifestError(f"{where}: missing {key!r}")
    _check_scalars(entry, where)
    label = str(entry["label"]).strip().lower()
    if not _LABEL.match(label):
        raise ManifestError(f"{where}: bad label {label!r} (use 'live' or an attack type such as {', '.join(KNOWN_ATTACKS)})")
    fps = _finite(entry.get("fps", 20.0))
    if fps is None or not 0 < fps <= MAX_FPS:  # inf passed as positive, then gave every frame the same time
        raise ManifestError(f"{where}: fps must be a finite positive number, at most {MAX_FPS:g}, got {entry.get('fps')!r}")
    p = Presentation(
        id=str(entry["id"]), label=label, fps=fps,
        identity=str(entry["identity"]) if entry.get("identity") else None,
        group=str(entry.get("group", "")), note=str(entry.get("note", "")),
        simulated=_as_bool(entry.get("simulated", False), f"{where}: 'simulated'"),
        expect_blink=_as_bool(entry.get("expect_blink", True), f"{where}: 'expect_blink'"),
    )
    source, frames = entry.get("source"), entry.get("frames")
    if (source is None) == (frames is None):
        raise ManifestError(f"{where}: give exactly one of 'source' (video, folder or glob) and 'frames' (a list)")
    if frames is not None:
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise ManifestError(f"{where}: 'frames' must be a non-empty list of image paths in quotes")
        p.frames = [base / str(f) for f in frames]
    elif _has_glob(str(source)):
        pattern = str(base / str(source))
        found = [Path(f) for f in glob.glob(pattern) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        if not found:
            raise ManifestError(f"{where}: glob {pattern} matches no images")
        p.frames = sorted(found, key=lambda f: natural_key(f.name))
    else:
        p.source = base / str(source)
    numbers, times = entry.get("frame_numbers"), entry.get("times_ms")
    if numbers is not None and times is not None:
        raise ManifestError(f"{where}: give 'frame_numbers' or 'times_ms', not both")
    if numbers is not None or times is not None:
        if p.frames is None:
            raise ManifestError(f"{where}: 'frame_numbers'/'times_ms' need a frame list or glob")
        values = _numbers(numbers if numbers is not None else times, where)
        if len(values) != len(p.frames):
            raise ManifestError(f"{where}: {len(p.frames)} frames but {len(values)} frame numbers/times")
        p.times_ms = [v * 1000.0 / fps for v in values] if numbers is not None else values
        if any(b <= a for a, b in zip(p.times_ms, p.times_ms[1:])):
            raise ManifestError(f"{where}: frame numbers/times must increase")
    return p


def _csv_fields(row: dict, where: str) -> dict[str, str]:
    """A row's named fields, stripped; empty for a blank row. Values past the header come as a
    list under the key None and short rows give None values: neither has .strip()."""
    extra = row.pop(None, [])
    if any(v.strip() for v in extra):  # a column missing from the header would shift silently
        raise ManifestError(f"{where}: more values than the header has columns: {', '.join(extra)}")
    fields = {k.strip(): (v or "").strip() for k, v in row.items() if k}
    return fields if any(fields.values()) else {}


def _load_csv(path: Path, defaults: dict) -> list[Presentation]:
    out = []
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel starts its CSV with a BOM
        reader = csv.DictReader(f)
        for row in reader:
            where = f"{path}:{reader.line_num}"  # the file's line, blank lines counted
            if raw := _csv_fields(row, where):
                out.append(_presentation(raw, path.parent, defaults, where))
    return out


_TOML_SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {  # key: (check, what it must be)
    "root": (lambda v: isinstance(v, str), "a folder path in quotes"),
    "include": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
                'a list of manifest paths, e.g. include = ["more.csv"]'),
    "defaults": (lambda v: isinstance(v, dict), "a table: [defaults]"),
    "input": (lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
              "tables written [[input]] (one per input), not [input]"),
}


def _check_toml_shape(doc: dict, path: Path) -> None:
    """A one-line error for a top-level key of the wrong kind (each gave a traceback)."""
    for key, (ok, expected) in _TOML_SHAPES.items():
        if key in doc and not ok(doc[key]):
            raise ManifestError(f"{path}: {key!r} must be {expected}, got {doc[key]!r:.60}")


def _load_toml(path: Path, seen: set[Path], defaults: dict) -> list[Presentation]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # -sig: Notepad starts with a BOM
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{path}: not valid TOML ({err})") from None
    _check_toml_shape(doc, path)
    base = (path.parent / doc["root"]) if "root" in doc else path.parent
    defaults = {**defaults, **doc.get("defaults", {})}
    out: list[Presentation] = []
    for inc in doc.get("include", []):
        out += _load(path.parent / inc, seen, defaults)
    for i, raw in enumerate(doc.get("input", []), start=1):
        out.append(_presentation(raw, base, defaults, f"{path} input #{i}"))
    return out


def _load(path: Path, seen: set[Path], defaults: dict) -> list[Presentation]:
    path = Path(path)
    if not path.is_file():  # a folder is there, not missing: "not found" sent the user looking for it
        raise ManifestError(f"manifest {path} is a folder: give a CSV or TOML file" if path.is_dir()
                            else f"manifest not found: {path}")
    key = path.resolve()
    if key in seen:
        raise ManifestError(f"manifest {path} includes itself")
    seen = seen | {key}
    if path.suffix.lower() not in (".csv", ".toml"):
        raise ManifestError(f"{path}: a manifest is a .csv or .toml file")
    with reading_text(path, ManifestError, hint=": is it the manifest?"):
        if path.suffix.lower() == ".csv":
            return _load_csv(path, defaults)
        return _load_toml(path, seen, defaults)


def load_manifest(*paths: str | Path, check: bool = True, default_fps: float = 20.0) -> list[Presentation]:
    """Read one or more manifests (CSV or TOML) into presentations, in order.

    CSV columns: ``id,label,source`` and optionally ``fps,identity,group,simulated,
    expect_blink,note``. ``source`` is a video file, a frame folder (natural name order) or a
    glob of frames (natural order), relative to the CSV file.

    TOML: optional ``root`` (a folder relative to the manifest; every input path is relative
    to it), ``include = ["other.toml", "more.csv"]``, ``[defaults]`` (any input field), and
    ``[[input]]`` tables with the CSV fields plus ``frames = [..]`` (an explicit frame list)
    with either ``frame_numbers = [..]`` (timestamps ``n * 1000 / fps``: frames sampled from a
    capture at ``fps``) or ``times_ms = [..]``. Without them, frame *i* is at ``i * 1000 / fps``.

    ``default_fps`` applies to inputs that give none (video files use their own timestamps).
    With ``check``, every input must exist and ids must be unique.
    """
    out: list[Presentation] = []
    for path in paths:
        out += _load(Path(path), set(), {"fps": default_fps})
    other = sorted({p.label for p in out} - {BONA_FIDE, *KNOWN_ATTACKS})
    if other:  # an attack type of its own, or a typo: "genuine" or "lve" counted as attacks, and in APCER
        log.warning("label%s %s: neither %r nor a known attack type (%s), so scored as attack types",
                    "s" if len(other) > 1 else "", ", ".join(map(repr, other)), BONA_FIDE, ", ".join(KNOWN_ATTACKS))
    if check:
        ids: set[str] = set()
        for p in out:
            if p.id in ids:
                raise ManifestError(f"duplicate input id {p.id!r}")
            ids.add(p.id)
            missing = [f for f in (p.frames or [])[:1] + (p.frames or [])[-1:] if not f.is_file()]
            if p.source is not None and not p.source.exists():
                missing.append(p.source)
            if missing:
                raise ManifestError(f"input {p.id!r}: not found: {missing[0]}")
    return out


# -- pipelines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceObs:
    """What a pipeline concluded about one face on one frame (pipeline-neutral)."""

    box: tuple[float, float, float, float]
    name: str | None
    state: str  # open / closed / unknown
    p_open: tuple[float | None, float | None] = (None, None)
    live: bool = False
    granted: bool = False


class Pipeline(Protocol):
    name: str

    def reset(self) -> None: ...

    def process(self, image: np.ndarray, timestamp_ms: float) -> tuple[list[FaceObs], int]:
        """Faces of one frame and the number of blinks completed on it."""
        ...


class GatePipeline:
    """blinkgate's Gate behind the pipeline interface."""

    name = "blinkgate"

    def __init__(self, gate):
        self.gate = gate

    def reset(self) -> None:
        self.gate.reset()

    def process(self, image: np.ndarray, timestamp_ms: float) -> tuple[list[FaceObs], int]:
        result = self.gate.process(image, timestamp_ms)
        faces = [FaceObs(f.box, f.name, f.eyes.state.value, f.eyes.p_open, f.live, f.granted) for f in result.faces]
        return faces, sum(ev.kind == "blink" for ev in result.events)


class ArticleAdapter:
    """The seed article's pipeline (:mod:`blinkgate.article`) behind the same interface."""

    name = "article"

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._live: set[str] = set()

    def reset(self) -> None:
        self.pipeline.reset()
        self._live = set()

    def process(self, image: np.ndarray, timestamp_ms: float) -> tuple[list[FaceObs], int]:
        faces = self.pipeline.process(image, timestamp_ms)
        out, blinks = [], 0
        for f in faces:
            if f.live and f.name not in self._live:  # the article's "blink": its pattern first matches
                self._live.add(f.name)
                blinks += 1
            name = None if f.name == "Unknown" else f.name
            out.append(FaceObs(f.box, name, "open" if f.eye_status == "1" else "closed", (None, None), f.live, f.granted))
        return out, blinks


# -- running -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one presentation went. Times are seconds from the input's first frame."""

    id: str
    label: str
    group: str
    simulated: bool
    expect_blink: bool
    identity: str | None
    frames: int = 0
    duration_s: float = 0.0
    face_frames: int = 0  # frames with at least one face
    open_frames: int = 0  # of those, the main (largest) face read open / closed
    closed_frames: int = 0
    blinks: int = 0
    accepted: bool = False  # some face judged live, at any time
    accept_s: float | None = None
    granted: bool | None = None  # the named identity granted (None: no identity or no database)
    grant_s: float | None = None
    wrong_grant: bool = False  # a face granted as someone other than ``identity``
    error: str | None = None
    timeline: dict | None = None  # per-frame lists for plots: t, faces, state, p_right, p_left, blinks, live, granted

    @property
    def attack(self) -> bool:
        return self.label != BONA_FIDE

    def to_json(self, timeline: bool = False) -> dict:
        out = asdict(self)
        if not timeline:
            out.pop("timeline")
        return out


def _main_face(faces: list[FaceObs]) -> FaceObs | None:
    if not faces:
        return None
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def run_presentation(pipeline: Pipeline, p: Presentation, check_grant: bool = False,
                     on_frame: Callable[[], object] | None = None) -> Outcome:
    """Run ``pipeline`` from a clean state over one presentation's frames."""
    out = Outcome(p.id, p.label, p.group, p.simulated, p.expect_blink, p.identity)
    tl: dict[str, list] = {k: [] for k in ("t", "faces", "state", "p_right", "p_left", "blinks", "live", "granted")}
    pipeline.reset()
    t0 = None
    try:
        with p.open() as source:
            for frame in source:
                faces, blinks = pipeline.process(frame.image, frame.timestamp_ms)
                if on_frame:
                    on_frame()
                t0 = frame.timestamp_ms if t0 is None else t0
                t = (frame.timestamp_ms - t0) / 1000.0
                out.frames += 1
                out.duration_s = t
                out.blinks += blinks
                main = _main_face(faces)
                live = any(f.live for f in faces)
                granted = any(f.granted and f.name == p.identity for f in faces) if p.identity else False
                if main is not None:
                    out.face_frames += 1
                    out.open_frames += main.state == "open"
                    out.closed_frames += main.state == "closed"
                if live and not out.accepted:
                    out.accepted, out.accept_s = True, round(t, 3)
                if check_grant and p.identity:
                    if granted and not out.granted:
                        out.granted, out.grant_s = True, round(t, 3)
                    out.wrong_grant = out.wrong_grant or any(f.granted and f.name != p.identity for f in faces)
                tl["t"].append(round(t, 3))
                tl["faces"].append(len(faces))
                tl["state"].append(main.state if main else "none")
                tl["p_right"].append(None if main is None or main.p_open[0] is None else round(float(main.p_open[0]), 3))
                tl["p_left"].append(None if main is None or main.p_open[1] is None else round(float(main.p_open[1]), 3))
                tl["blinks"].append(blinks)
                tl["live"].append(live)
                tl["granted"].append(granted)
            if source.truncated and not out.accepted:  # frames are missing: "not accepted" is no verdict
                out.error = f"truncated or damaged: judged on the {out.frames} frames that could be read"
    except BlinkgateError as err:
        out.error = str(err)
    if check_grant and p.identity and out.granted is None:
        out.granted = False
    if out.frames == 0 and out.error is None:
        out.error = "no readable frames"
    out.timeline = tl
    return out


# Worker state for --jobs > 1: each process builds its own pipeline once.
_WORKER: dict = {}


def _worker_init(factory: Callable[[], Pipeline], check_grant: bool) -> None:
    import cv2 as _cv2

    _cv2.setNumThreads(1)
    _WORKER["pipeline"], _WORKER["check_grant"] = factory(), check_grant


def _worker_run(p: Presentation) -> Outcome:
    return run_presentation(_WORKER["pipeline"], p, _WORKER["check_grant"])


def _crashed(p: Presentation, why: str) -> Outcome:
    """The outcome of a presentation whose worker process died: an error, like an unreadable file."""
    out = Outcome(p.id, p.label, p.group, p.simulated, p.expect_blink, p.identity)
    out.error = f"cannot evaluate {p.id}: {why}"
    return out


def evaluate(presentations: list[Presentation], factory: Callable[[], Pipeline], check_grant: bool = False,
             jobs: int = 1, progress: bool = False, done: list[Outcome] | None = None) -> list[Outcome]:
    """Run every presentation; ``factory`` builds the pipeline (once per worker process). Each
    outcome is appended to ``done`` (a new list if None) as it comes: a caller whose batch
    stops early (Ctrl-C, workers that keep dying) still has those of the inputs that finished."""
    from tqdm import tqdm

    outcomes = [] if done is None else done
    bar = tqdm(total=len(presentations), unit="input", disable=None if progress else True, file=sys.stderr, leave=False)
    try:
        if jobs <= 1:
            pipeline = factory()
            for p in presentations:
                outcomes.append(run_presentation(pipeline, p, check_grant))
                bar.update()
            return outcomes
        from .parallel import imap_processes

        for o in imap_processes(_worker_run, presentations, jobs, _worker_init, (factory, check_grant),
                                on_crash=_crashed):
            outcomes.append(o)
            bar.update()
        return outcomes
    finally:
        bar.close()


# -- metrics -----------------------------------------------------------------------------------------


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _bona_fide(outcomes: list[Outcome], limit_s: float, use_grant: bool) -> dict:
    n = len(outcomes)

    def ok(o: Outcome) -> float | None:
        if use_grant:
            return o.grant_s if o.granted else None
        return o.accept_s if o.accepted else None

    times = [ok(o) for o in outcomes]
    within = [t for t in times if t is not None and t <= limit_s]
    return {
        "n": n,
        "accepted": len(within),
        "rejected": n - len(within),
        "bpcer": _rate(n - len(within), n),
        "time_median_s": _pct(within, 50),
        "time_p90_s": _pct(within, 90),
        "rejected_ids": [o.id for o, t in zip(outcomes, times) if t is None or t > limit_s],
    }


def _attack_table(outcomes: list[Outcome], use_grant: bool) -> dict:
    table: dict[str, dict] = {}
    for label in sorted({o.label for o in outcomes}):
        rows = [o for o in outcomes if o.label == label]
        hit = [o for o in rows if ((o.granted or o.wrong_grant) if use_grant else o.accepted)]
        table[label] = {"n": len(rows), "accepted": len(hit), "apcer": _rate(len(hit), len(rows)),
                        "accepted_ids": [o.id for o in hit],
                        "face_frames": _rate(sum(o.face_frames for o in rows), sum(o.frames for o in rows)),
                        "closed_frames": _rate(sum(o.closed_frames for o in rows), sum(o.face_frames for o in rows)),
                        "open_frames": _rate(sum(o.open_frames for o in rows), sum(o.face_frames for o in rows))}
    return table


def _acer(attacks: dict, bpcer: float | None) -> float | None:
    rates = [row["apcer"] for row in attacks.values() if row["apcer"] is not None]
    if not rates or bpcer is None:
        return None
    return (max(rates) + bpcer) / 2


def summarise(outcomes: list[Outcome], time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> dict:
    """The APCER/BPCER/ACER tables, for 'accepted' (live) and, where scored, 'granted'."""
    errors = [o for o in outcomes if o.error]
    # An input that errored still counts where its result is known: an attack accepted before the
    # error was accepted, and a bona fide one that errored was not let in. Only an attack that
    # errored unaccepted has no verdict (dropping them all hid an accepted attack from APCER).
    scored = [o for o in outcomes if not o.error or not o.attack or o.accepted]
    bona = [o for o in scored if not o.attack]
    main_bona = [o for o in bona if o.expect_blink]
    real = [o for o in scored if o.attack and not o.simulated]
    sim = [o for o in scored if o.attack and o.simulated]
    summary: dict[str, Any] = {"time_limit_s": time_limit_s, "inputs": len(outcomes), "inputs_total": len(outcomes),
                               "partial": False, "stopped": None, "errors": {o.id: o.error for o in errors}}
    modes = [("accepted", False)]
    if any(o.granted is not None for o in scored):
        modes.append(("granted", True))
    for mode, use_grant in modes:
        graded = (lambda rows: [o for o in rows if o.granted is not None]) if use_grant else (lambda rows: rows)
        bpcer = _bona_fide(graded(main_bona), time_limit_s, use_grant)
        groups = {}
        for g in sorted({o.group for o in bona}):
            rows = graded([o for o in bona if o.group == g])
            if rows:
                groups[g] = {**_bona_fide(rows, time_limit_s, use_grant), "expect_blink": all(o.expect_blink for o in rows)}
        real_t, sim_t = _attack_table(graded(real), use_grant), _attack_table(graded(sim), use_grant)
        summary[mode] = {
            "bona_fide": bpcer,
            "bona_fide_groups": groups,
            "real_attacks": real_t,
            "simulated_attacks": sim_t,
            "acer_real": _acer(real_t, bpcer["bpcer"]),
            "acer_simulated": _acer(sim_t, bpcer["bpcer"]),
            "attack_groups": {g: sorted({o.label for o in real + sim if o.group == g}) for g in sorted({o.group for o in real + sim})},
        }
    return summary


def partial(summary: dict, total: int, why: str) -> dict:
    """The summary of a batch that stopped after ``summary["inputs"]`` of ``total`` inputs: its
    rates are of those alone, which need not be like the rest (a manifest in order of label)."""
    return {**summary, "partial": True, "inputs_total": total, "stopped": why}


def partial_note(summary: dict) -> str:
    """"" for a whole run; else the line that says the rates are not the whole manifest's."""
    if not summary.get("partial"):
        return ""
    return (f"PARTIAL: {summary['inputs']} of {summary['inputs_total']} inputs finished before the run stopped "
            f"({summary['stopped']}); the rates are of those alone, not of the whole manifest")


def _fmt_rate(r: float | None) -> str:
    return "—" if r is None else f"{100 * r:.1f}%"


def _fmt_s(s: float | None) -> str:
    return "—" if s is None or (isinstance(s, float) and math.isnan(s)) else f"{s:.2f} s"


def group_rate(row: dict, mode: str) -> tuple[str, str]:
    """A bona fide group's BPCER cell, and for a group left out of BPCER (told not to blink) its
    own share not accepted, said apart: in the BPCER column, NUAA's 90.0% read as a BPCER."""
    if row["expect_blink"]:
        return _fmt_rate(row["bpcer"]), ""
    return "—", f"told not to blink, not in BPCER: {_fmt_rate(row['bpcer'])} not {mode}"


def format_summary(summary: dict, pipeline: str = "blinkgate") -> str:
    """Plain-text tables for the terminal."""
    note = partial_note(summary)
    lines = [note] if note else []
    inputs = f"{summary['inputs']} of {summary['inputs_total']}" if note else summary["inputs"]
    lines.append(f"pipeline: {pipeline}; {inputs} inputs; bona fide time limit {summary['time_limit_s']:g} s")
    for mode in ("accepted", "granted"):
        if mode not in summary:
            continue
        s = summary[mode]
        rule = "any face judged live" if mode == "accepted" else "the named person recognised and live"
        lines.append("")
        lines.append(f"== {mode}: {rule}{' (PARTIAL)' if note else ''} ==")
        for title, table in (("real attacks", s["real_attacks"]), ("SIMULATED attacks (simulations, not real attacks)", s["simulated_attacks"])):
            if not table:
                continue
            lines.append(f"{title:<52} {'n':>5} {'accepted':>9} {'APCER':>7}")
            for label, row in table.items():
                lines.append(f"  {label:<50} {row['n']:>5} {row['accepted']:>9} {_fmt_rate(row['apcer']):>7}")
        lines.append(f"{'bona fide (group)':<52} {'n':>5} {'accepted':>9} {'BPCER':>7}  time to accept median / p90")
        for g, row in s["bona_fide_groups"].items():
            rate, apart = group_rate(row, mode)
            lines.append(f"  {g:<50} {row['n']:>5} {row['accepted']:>9} {rate:>7}  "
                         f"{_fmt_s(row['time_median_s'])} / {_fmt_s(row['time_p90_s'])}" + (f"  ({apart})" if apart else ""))
        b = s["bona_fide"]
        lines.append(f"  {'BPCER (all bona fide expected to blink)':<50} {b['n']:>5} {b['accepted']:>9} {_fmt_rate(b['bpcer']):>7}  "
                     f"{_fmt_s(b['time_median_s'])} / {_fmt_s(b['time_p90_s'])}")
        if s["acer_real"] is not None:
            lines.append(f"ACER (real attacks) = {_fmt_rate(s['acer_real'])}")
        if s["acer_simulated"] is not None:
            lines.append(f"ACER (simulated attacks) = {_fmt_rate(s['acer_simulated'])}")
        for title, table in (("real", s["real_attacks"]), ("simulated", s["simulated_attacks"])):
            for label, row in table.items():
                if row["accepted_ids"]:
                    ids = ", ".join(row["accepted_ids"][:20]) + (" …" if len(row["accepted_ids"]) > 20 else "")
                    lines.append(f"accepted {title} {label}: {ids}")
    if summary["errors"]:
        lines.append("")
        for i, e in summary["errors"].items():
            lines.append(f"error in {i}: {e}")
    if note:  # at both ends: the start of a long summary scrolls away
        lines += ["", note]
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------------


def make_pipeline(kind: str, db: str | None, options: dict, article_dir: str | None, eye_model: str | None = None) -> Pipeline:
    """Build a pipeline by name (top level, so that worker processes can build their own)."""
    if kind == "article":
        from .article import ArticlePipeline, load_article_model

        if not article_dir:
            raise BlinkgateError("--pipeline article needs --article-dir (the folder with the article's model.json and model.h5)")
        folder = Path(article_dir)
        known, names = [], []
        if db:
            from .database import FaceDatabase

            with FaceDatabase(db, create=False) as store:  # only read: never made here
                known, names = store.known_encodings()
        return ArticleAdapter(ArticlePipeline(load_article_model(folder / "model.json", folder / "model.h5"), known, names))
    from .gate import Gate, GateOptions

    return GatePipeline(Gate(db, GateOptions(**options), eye_model=eye_model))


def _frames_in(folder: Path, presentations: list[Presentation]) -> Presentation | None:
    """The first input whose frames are images in ``folder``: a report written there adds its
    plots (.png) to them, read as frames of that input on the next run."""
    target = folder.expanduser().resolve()
    for p in presentations:
        if p.source is not None and p.source.is_dir() and p.source.resolve() == target:
            return p
        if p.frames and any(parent.resolve() == target for parent in {f.parent for f in p.frames}):
            return p
    return None


def run_cli(args) -> int:
    """``blinkgate eval MANIFEST... [--json] [--report DIR]`` (wired in cli.py)."""
    import functools

    from .eye_model import checked_model

    if args.report:
        from .evaluate_report import plotting

        plotting()  # a missing matplotlib fails now, not after an hour of evaluation
    if args.fps > MAX_FPS:  # said here: each input without an fps of its own would be blamed for it
        raise ManifestError(f"--fps {args.fps:g}: a frame rate is at most {MAX_FPS:g}")
    presentations = load_manifest(*args.manifests, default_fps=args.fps)
    if not presentations:
        raise ManifestError(f"no inputs in {', '.join(args.manifests)}")
    if args.only:
        try:
            only = re.compile(args.only)
        except re.error as err:
            raise ManifestError(f"--only {args.only!r} is not a regular expression: {err}") from None
        presentations = [p for p in presentations if only.search(p.id)]
        if not presentations:
            raise ManifestError(f"--only {args.only!r} selects no input")
    if args.report and (p := _frames_in(Path(args.report), presentations)):
        raise ManifestError(f"--report {args.report} holds the frames of input {p.id!r}: its plots would become "
                            "frames of it; give another folder")
    from .database import existing_database

    # only read: a missing or empty file is refused untouched, a foreign one by FaceDatabase
    db = str(existing_database(Path(args.db).expanduser(), " (enrol someone into it first)")) if args.db else None
    options = {"liveness_ms": args.liveness * 1000.0, "eyes": args.eyes, "tolerance": args.tolerance}
    eye_model = checked_model(args.eye_model)
    factory = functools.partial(make_pipeline, args.pipeline, db, options, args.article_dir, eye_model)
    outcomes: list[Outcome] = []
    try:
        if args.jobs <= 1:
            pipeline = factory()  # built before the progress bar: a missing model fails at once
            evaluate(presentations, lambda: pipeline, check_grant=db is not None, progress=not args.quiet, done=outcomes)
        else:
            evaluate(presentations, factory, check_grant=db is not None, jobs=args.jobs, progress=not args.quiet,
                     done=outcomes)
    except BaseException as err:
        # Minutes of finished inputs were lost to a Ctrl-C: their summary, marked partial, then
        # main's exit code for the stop (130, 143, or 1 with the error).
        why = _why_stopped(err)
        if why is None or not outcomes:
            raise
        _output(args, partial(summarise(outcomes, args.time_limit), len(presentations), why), outcomes)
        raise
    summary = summarise(outcomes, args.time_limit)
    _output(args, summary, outcomes)
    return 2 if summary["errors"] else 0  # as `check`: some input could not be judged


def _why_stopped(err: BaseException) -> str | None:
    """Why a batch stopped early, if it did; None for an error that is no stop (a bug, a bad model)."""
    if isinstance(err, KeyboardInterrupt):
        return "Ctrl-C"
    if isinstance(err, BatchStopped):
        return str(err)
    if not isinstance(err, (Exception, SystemExit, GeneratorExit)):
        return "a signal"  # cli.Terminated: SIGTERM, SIGHUP, SIGQUIT
    return None


def _output(args, summary: dict, outcomes: list[Outcome]) -> None:
    """Print the summary (or JSON) and write the report."""
    import json

    if args.json:
        print(json.dumps({"pipeline": args.pipeline, "partial": summary["partial"], "summary": summary,
                          "outcomes": [o.to_json() for o in outcomes]}))
    else:
        print(format_summary(summary, args.pipeline))
    sys.stdout.flush()  # a batch that stopped leaves through main, which drops what stdout still holds
    if args.report:
        from .evaluate_report import write_report

        report = write_report(args.report, summary, outcomes, args.pipeline)
        print(f"report: {report}", file=sys.stderr)
