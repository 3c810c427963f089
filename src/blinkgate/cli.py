"""Command-line interface: ``blinkgate enroll | capture | people | forget | run | check | train-eyes | eval-blinks | eval-eyes | eval | simulate-attack | door | verify | log | unlock | config``.

Exit codes: 0 success (``check`` returns 0 whatever the verdicts; ``verify`` 1 when no one was
granted; ``enroll`` 1 when photos were given and none of them is enrolled, or a person's none), 1 the output could not be written (a full disk), 2 unusable input or
arguments (one line on stderr saying why; ``check`` reports each unusable input and goes on with
the rest), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP, unless ignored as
under nohup), 131 quit (Ctrl-\\, SIGQUIT, likewise): recordings and logs are closed first; 141 the
reader of the output went away (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import __version__
from .errors import BatchStopped, BlinkgateError, SourceError

if TYPE_CHECKING:
    from .gate import Gate

log = logging.getLogger("blinkgate")


GATE_SETTINGS = ("db", "fps", "eyes", "liveness", "tolerance", "eye_model")  # flags of _add_gate
# Other settings a command reads as door does, by their flag's dest: one ui.token in blinkgate.toml
# opens run's browser view too (run read only --ui-token and the environment: a new token each run).
DEST_SETTINGS = {"ui_token": "ui.token"}
# An OSError on a path the user gave that is theirs to fix, not a bug: one line and exit 2.
PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENAMETOOLONG)
# train-eyes --seed: keras seeds numpy's 32-bit generator, and fold f of seed s trains with seed s*100+f.
TRAIN_MAX_SEED = (2**32 - 1) // 100 - 1


def _fill_settings(args: argparse.Namespace) -> None:
    """Fill in the gate flags the user did not give (left None by the parser).

    ``enroll``, ``people``, ``forget``, ``run``, ``check`` (and ``capture``, its tolerance) take
    them from ``blinkgate.toml`` and ``BLINKGATE_*`` as ``door`` does (config.py), so all of them
    use one database; ``eval``
    and ``eval-blinks`` from the defaults alone, so their numbers do not depend on the folder
    they run in."""
    from .config import BY_KEY, resolve

    keys = {k: k for k in GATE_SETTINGS if hasattr(args, k)}  # dest: setting
    if not keys:
        return  # door, log and config resolve their own settings
    keys.update({dest: key for dest, key in DEST_SETTINGS.items() if hasattr(args, dest)})
    if hasattr(args, "config"):
        given = {BY_KEY[k].dest: getattr(args, d) for d, k in keys.items() if getattr(args, d) is not None}
        settings = resolve({"config": args.config, **given})
        values = {d: settings[k] for d, k in keys.items()}
    else:
        values = {d: BY_KEY[k].default for d, k in keys.items()}
    for dest in keys:
        if getattr(args, dest) is None:
            setattr(args, dest, values[dest])


def _writable_folder(path: str | Path, flag: str, mode: int = 0o777) -> None:
    """Make the output folder ``path`` now, so an unwritable one fails before the work, not
    with a traceback after an hour of it; the folders made get ``mode`` (less the umask)."""
    import tempfile

    from .files import make_folders

    folder = Path(path).expanduser()
    try:
        make_folders(folder, mode)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except NotADirectoryError as err:  # make_folders names the file in the way
        raise BlinkgateError(f"{flag} {path}: {err.strerror}") from None
    except OSError as err:
        raise BlinkgateError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None


def _opencv_can_take(out: Path) -> None:
    """Refuse an --out that OpenCV will write or read back: on a name that is not UTF-8 it
    crashes the process (a segfault), after the work (train-eyes: the whole training)."""
    from .sources import not_utf8

    if (shown := not_utf8(str(out))) is not None:
        raise BlinkgateError(f"--out {shown}: its name is not UTF-8, which OpenCV cannot take (choose another)")


def _db_path(args: argparse.Namespace) -> Path:
    from .database import default_db_path

    return Path(args.db).expanduser() if args.db else default_db_path()


def _gate_options(args: argparse.Namespace, live: bool = False):
    """Gate settings from the command line. A camera or stream (``live``) is recognised in a
    background process: a frame waiting ~100 ms for a face encoding is a dropped frame."""
    from .gate import GateOptions

    return GateOptions(liveness_ms=args.liveness * 1000.0, eyes=args.eyes, tolerance=args.tolerance,
                       recognition="background" if live else "inline")


def _eye_model(args: argparse.Namespace) -> str | None:
    from .eye_model import checked_model

    return checked_model(args.eye_model)


def _gate_factory(args: argparse.Namespace, eye_model: str | None, live: bool = False) -> Callable[[], Gate]:
    """What builds a Gate on the enrolled database, or with nobody enrolled if there is no
    database yet (said once, here), with an eye model from ``_eye_model``. A partial, so
    worker processes can take it."""
    from functools import partial

    from .gate import Gate

    db = _db_path(args)
    if not db.exists():
        log.warning("no face database at %s: every face is unknown (enrol with `blinkgate enroll DIR`)", db)
    return partial(Gate, db if db.exists() else None, _gate_options(args, live), eye_model=eye_model)


# -- enrolment ---------------------------------------------------------------------------------

# A running door (its access-log thread) and `run` (between frames) poll the database for it.
RUNNING_NOTE = "a running door or `blinkgate run` uses this change within a few seconds"


def cmd_enroll(args: argparse.Namespace) -> int:
    from .database import FaceDatabase
    from .enroll import check_people_dir, enroll_directory
    from .recognize import FaceEncoder

    check_people_dir(Path(args.people_dir))  # a typo must not leave an empty database behind
    with FaceDatabase(_db_path(args)) as db:
        report = enroll_directory(db, Path(args.people_dir), FaceEncoder(), progress=not args.quiet)
    print(report.format())
    if report.added or report.updated or report.removed:
        log.info(RUNNING_NOTE)
    return 1 if report.failed else 0  # a script must not go on as if the people were enrolled


def cmd_capture(args: argparse.Namespace) -> int:
    from collections import deque

    from .capture import WAITING, CaptureOptions, capture, draw_capture, known_faces, person_folder
    from .files import PRIVATE_FOLDER
    from .recognize import FaceEncoder
    from .sources import open_source
    from .viewer import Viewer

    folder = person_folder(Path(args.people_dir).expanduser(), args.name)
    name = folder.name
    created = not folder.exists()
    # Made now: a typo fails before the camera opens. The owner's only, as the photos in it.
    _writable_folder(folder, "PEOPLE_DIR", PRIVATE_FOLDER)
    options = CaptureOptions(count=args.count, every_ms=args.every * 1000.0, timeout_ms=args.timeout * 1000.0,
                             same_person=args.tolerance)
    refused: deque[str] = deque(maxlen=1)  # why the last frame looked at was not taken, for the summary
    try:
        encoder = FaceEncoder()
        known = known_faces(folder, encoder)  # seconds for large photos: before the camera's window opens
        if len(known):
            log.info("each face must be the person of the photos already in %s (%d with a face)", folder, len(known))
        source = open_source(args.source, fps=args.fps, retries=3)
        viewer = None
        try:
            viewer = Viewer("blinkgate capture", not args.no_display, None, source.fps, pace=not source.live,
                            outputs=False)  # capture has no --ui or --record to suggest

            def show(frame, box, why, saved) -> bool:
                if why and why != WAITING:
                    refused.append(why)
                viewer.wait(frame.timestamp_ms)
                return not viewer.display or viewer.show(draw_capture(frame.image, box, why, saved, args.count),
                                                         frame.timestamp_ms)

            saved = capture(source, folder, encoder.detect, options, on_frame=show, encode=encoder.encode,
                            known=known)
        finally:
            source.close()
            if viewer is not None:
                viewer.close()
    finally:
        if created:  # left empty (no camera, no face): enroll would report the folder at every run
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
    # the window showed why each frame was not taken; without one, nothing did
    last = f" (the last frame not taken: {refused[-1]})" if refused else ""
    if not saved:
        log.error("no photo of %s taken: no frame showed exactly one face at least %d px wide, of the person%s",
                  name, options.min_face_px, last)
        return 1
    print(f"{_count(len(saved), 'photo')} of {name} in {folder}; enrol with: "
          f"blinkgate enroll {shlex.quote(str(args.people_dir))}")
    if len(saved) < args.count:
        log.warning("only %d of %d photos: the source ended, the window was closed or %g s passed%s",
                    len(saved), args.count, args.timeout, last)
        return 1
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    from .database import FaceDatabase, existing_database, shown_name, text_width

    # Not FaceDatabase's check: it adopts an empty file as a new database, which a listing must not make.
    db_path = existing_database(_db_path(args), ": enrol people with `blinkgate enroll DIR`")
    with FaceDatabase(db_path, create=False) as db:
        people = db.people()
    if args.json:
        print(json.dumps([{"name": n, "images": c} for n, c in people]))
    elif not people:
        print(f"nobody enrolled in {db_path}")
    else:
        shown = [shown_name(n) for n, _ in people]  # 'bob' + U+200B must not read as 'bob'
        width = max(map(text_width, shown))
        for name, (_, count) in zip(shown, people):
            print(f"{name}{' ' * (width - text_width(name))}  {_count(count, 'image')}")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def cmd_forget(args: argparse.Namespace) -> int:
    from .database import FaceDatabase, existing_database, name_key, shown_name

    db_path = existing_database(_db_path(args))  # an empty file is no database to forget anyone from
    with FaceDatabase(db_path, create=False) as db:
        name = db.enrolled_name(args.name) or args.name
        paths = [Path(i.path) for i in db.images() if name_key(i.name) == name_key(name)]
        removed = db.forget(name)
    # Two folders, 'José' in two Unicode forms or with a space after it: both went.
    also = (f", enrolled under {len(removed.names)} names that differ only in Unicode form or spaces"
            if len(removed.names) > 1 else "")
    print(f"forgot {shown_name(name)}{also} ({_count(removed.images, 'image')}; {_count(removed.snapshots, 'face snapshot')} "
          "deleted from the access log, its entries kept)")
    log.info(RUNNING_NOTE)
    # enroll re-adds whatever is still in the person's folder: a revoked person would be back
    # at the next enrolment of somebody else.
    folders = sorted({str(p.parent) for p in paths if p.exists()})
    if folders:
        log.warning("%s's photos are still in %s: the next `blinkgate enroll` enrols %s again unless "
                    "you delete them", name, ", ".join(folders), name)
    return 0


# -- run and check -----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from .annotate import draw
    from .events import EventLog
    from .gate import FollowPeople
    from .sources import is_live, open_source
    from .viewer import Viewer

    eye_model = _eye_model(args)  # a bad --eye-model or --ui fails before the camera opens
    token = args.ui_token  # --ui-token, else $BLINKGATE_UI_TOKEN, else ui.token (_fill_settings)
    if args.ui:
        from .webui import check_settings

        check_settings(args.ui, token)
    # A camera's models are loaded (~1 s) before it opens: the load holds the GIL, so the source's
    # reader thread read nothing meanwhile, then read the frames buffered back to back; stamped a
    # fraction of a millisecond apart they were a false clock warning, and the first face's track
    # was lost over the stall (doorrun.run_door does the same).
    live = is_live(args.source)
    gate = _gate_factory(args, eye_model, live=live)()
    try:
        if live:
            gate.load_models()
        source = open_source(args.source, fps=args.fps)
    except BaseException:
        gate.close()
        raise
    people = FollowPeople(gate, _db_path(args))  # an attendance kiosk runs for days: enrol without a restart
    events = viewer = ui = None
    try:
        viewer = Viewer("blinkgate", not args.no_display, args.record, source.fps, pace=not source.live, ui=bool(args.ui),
                        live=source.live)
        if args.ui:
            from .webui import WebUI, announce, face_json

            ui = WebUI(args.ui, draw=draw, faces=lambda result: [face_json(f) for f in result.faces],
                       token=token, title=source.description)
            announce(ui, log)
        # Last: a --record or --ui port refused must not leave an empty --events file behind.
        events = EventLog(args.events, source.description) if args.events else None
        tally = RunTally()
        for frame, result in gate.run(source):
            people.poll()  # `enroll` or `forget` since: from the next frame on
            tally.add(result.events)
            if events:
                events.write(result.events)
            for ev in result.events:
                if ev.kind in ("granted", "identity_changed", "expired"):
                    log.info("%s track %d %s", ev.kind, ev.track_id, ev.name or "unknown")
            if ui:
                ui.publish(frame.image, result, result.events)
            viewer.wait(frame.timestamp_ms)
            if viewer.active and not viewer.show(draw(frame.image, result, viewer.rate), frame.timestamp_ms):
                break
        if not source.live:  # a camera is watched until stopped; a file has an end to sum up
            log.info("%s: %s", source.description, tally.line())
    finally:
        if events:  # the faces still in view at the end leave too, also when a stream is given up
            events.write(gate.end())
        source.close()
        gate.close()  # stops the background recognition process, if any
        for part in (viewer, ui, events, people):
            if part:
                part.close()
    return 0


class RunTally:
    """What `run` saw in a file, for its last line: without a grant it printed nothing at all.

    Counts, and remembers only the tracks still in view: on a camera `run` goes on for months,
    and a set of every track id ever seen grew with each face that passed."""

    def __init__(self) -> None:
        self.frames = self.tracks = self.named = self.granted = 0
        self._live: dict[int, set[str]] = {}  # track id -> what it was counted as (tracks in view only)

    def add(self, events: list) -> None:
        self.frames += 1
        for ev in events:
            counted = self._live.get(ev.track_id)
            if counted is None:
                counted = self._live[ev.track_id] = set()
                self.tracks += 1
            if ev.name is not None and "named" not in counted:
                counted.add("named")
                self.named += 1
            if ev.kind == "granted" and "granted" not in counted:
                counted.add("granted")
                self.granted += 1
            if ev.kind == "lost":
                del self._live[ev.track_id]

    def line(self) -> str:
        return (f"{_count(self.frames, 'frame')}, {_count(self.tracks, 'face')} tracked, "
                f"{self.named} named, {self.granted} granted")


def cmd_check(args: argparse.Namespace) -> int:
    from functools import cache

    from tqdm.contrib.logging import logging_redirect_tqdm

    args.inputs = _check_inputs(args)
    eye_model = _eye_model(args)
    if not args.inputs:
        return 0  # an empty list, or every input done already: _check_inputs said which
    if args.jobs > 1 and len(args.inputs) > 1:
        return _check_in_parallel(args, eye_model)
    gate = cache(lambda: _gate_factory(args, eye_model)())  # at the first usable input, so a typo fails at once
    failed = 0
    with logging_redirect_tqdm():  # a warning (a truncated file) prints above the bar, not into it
        for n, spec in enumerate(args.inputs, 1):
            failed += not _check_one(gate, spec, f"{n}/{len(args.inputs)}" if len(args.inputs) > 1 else None, args)
    if gate.cache_info().currsize:
        timer = gate().timer
        frames = max(1, timer.calls["decode"])
        log.debug("ms per frame: " + ", ".join(f"{k} {v / frames:.2f}" for k, v in timer.total_ms.items()))
    return 2 if failed else 0


def _check_usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """check's flags that only make sense together: each alone would be quietly without effect.
    ``parser`` is check's own, so the error shows check's usage."""
    if not args.inputs and args.files_from is None:
        parser.error("give the INPUTs to check, or --files-from FILE")
    if args.null and args.files_from is None:
        parser.error("--null is for the list of --files-from")
    if args.skip_done is not None and not args.json:
        parser.error("--skip-done reads an earlier run's --json lines, so it needs --json too")


def _check_inputs(args: argparse.Namespace) -> list[str]:
    """The inputs on the command line, then those of --files-from, less those --skip-done has a
    verdict for (as the input is now: see check.input_stamp). A list file that cannot be read stops
    the batch before any work."""
    from .check import input_stamp, is_done, read_done, read_input_list

    inputs = list(args.inputs)
    if args.files_from is not None:
        try:
            data = sys.stdin.buffer.read() if args.files_from == "-" else Path(args.files_from).read_bytes()
        except OSError as err:
            raise BlinkgateError(f"--files-from {args.files_from}: cannot read it ({err.strerror or err})") from None
        listed = read_input_list(data, null=args.null)
        if not listed:
            log.info("--files-from %s lists no inputs", args.files_from)
        inputs += listed
    inputs = _distinct(inputs)
    # Before any is checked: one that changes while the batch runs is checked again next time.
    args.stamps = {spec: input_stamp(spec) for spec in inputs} if args.json else {}  # --skip-done needs --json
    if args.skip_done is None:
        return inputs
    done = read_done(args.skip_done)
    if done.bad_lines:
        log.warning("--skip-done %s: %d line%s not from check --json (cut short?): ignored",
                    args.skip_done, done.bad_lines, "" if done.bad_lines == 1 else "s")
    if done.ends_cut and _is_stdout(args.skip_done):
        _write_out("", "its first input")  # appended with >>, the first verdict would join the cut line
    todo = [spec for spec in inputs if not is_done(spec, done, args.stamps.get(spec))]
    if len(todo) < len(inputs):
        log.info("skipping %d of %d inputs: %s has a verdict for each, unchanged since", len(inputs) - len(todo),
                 len(inputs), args.skip_done)
    return todo


def _distinct(inputs: list[str]) -> list[str]:
    """``inputs`` with each name once, where it first comes: a name given twice (a glob and a list
    that overlap) was decoded twice and had two lines. Names only: "./a.mp4" and "a.mp4" stay two,
    as each line is named, and --skip-done matched, by the name as given."""
    distinct = list(dict.fromkeys(inputs))
    if len(distinct) < len(inputs):
        log.info("%d input%s given more than once: checked once", len(inputs) - len(distinct),
                 "" if len(inputs) - len(distinct) == 1 else "s")
    return distinct


def _is_stdout(path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path))
    except (AttributeError, OSError, ValueError):  # no such file yet, or stdout is not a file (captured)
        return False


def _check_one(gate: Callable[[], Gate], spec: str, position: str | None, args: argparse.Namespace) -> bool:
    """Print one input's verdict, or its error and False if it is unusable.

    One input is open at a time: an open video holds its decoder (~5 MB) and a batch can be
    thousands of files. An unusable input does not stop the batch; the exit code says so."""
    from tqdm import tqdm

    from .check import check_source, open_recording

    verdict, error = None, None
    try:
        with open_recording(spec, args.fps) as source, tqdm(
            total=getattr(source, "frame_count", None), unit="frame", desc=position, disable=True if args.quiet else None,
            file=sys.stderr, leave=False,
        ) as bar:
            verdict = check_source(gate(), source, name=str(spec), on_frame=bar.update)
    except SourceError as err:
        error = str(err)
    return _print_verdict(spec, verdict, error, args)


def _check_in_parallel(args: argparse.Namespace, eye_model: str | None) -> int:
    """check --jobs N: a Gate per worker process, verdicts printed in input order."""
    from tqdm import tqdm

    from .check import check_in_parallel

    make_gate, failed = _gate_factory(args, eye_model), 0
    jobs, level = min(args.jobs, len(args.inputs)), logging.DEBUG if args.verbose else logging.INFO
    with tqdm(total=len(args.inputs), unit="input", disable=True if args.quiet else None, file=sys.stderr, leave=False) as bar:
        for spec, verdict, error, logged in check_in_parallel(args.inputs, make_gate, args.fps, jobs, level):
            for line in logged:
                tqdm.write(f"blinkgate: {line}", file=sys.stderr)
            failed += not _print_verdict(spec, verdict, error, args)
            bar.update()
    return 2 if failed else 0


def _print_verdict(spec: str, verdict, error: str | None, args: argparse.Namespace) -> bool:
    """One input's line on stdout (its error on stderr, too), above any progress bar; False if
    the input was unusable."""
    from tqdm import tqdm

    stamp = getattr(args, "stamps", {}).get(spec)  # for a later --skip-done: the input as checked
    if error is not None:
        tqdm.write(f"blinkgate: error: {error}", file=sys.stderr)
        if not args.json:
            return False
        line = json.dumps({"source": str(spec), "error": error, "stamp": stamp})
    else:
        line = json.dumps({**verdict.to_json(), "stamp": stamp}) if args.json else verdict.format()
    _write_out(line, spec)
    return error is None


def _write_out(line: str, spec: str) -> None:
    """``line`` on stdout, above any progress bar, at once: a batch stopped later keeps it."""
    from tqdm import tqdm

    try:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader went away (`| head`): main's own exit code
    except OSError as err:  # a full disk: the verdicts so far are written, the rest would be lost
        raise OutputError(f"cannot write the verdicts ({err.strerror or err}): stopped at {spec}") from None


class OutputError(BatchStopped):
    """check's verdicts could not be written: the batch stopped before its end (exit 1)."""


# -- eye model ---------------------------------------------------------------------------------


def cmd_train_eyes(args: argparse.Namespace) -> int:
    import importlib.util

    from .errors import TRAIN_EXTRA_HINT

    missing = [m for m in ("keras", "torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:  # before any work: calibration runs first and would only fail minutes later
        raise BlinkgateError(f"training needs the [train] extra ({', '.join(missing)} missing): {TRAIN_EXTRA_HINT}")
    from .train_eyes import config_with, train_eyes
    config = config_with(args.set)  # a bad KEY=VALUE fails here, not after calibration
    if args.calibration_folds == 1:
        raise BlinkgateError("--calibration-folds must be 0 (skip) or at least 2")
    out = Path(args.out).expanduser()
    # Checked before the training, not after it: a folder was a traceback at the end, and any
    # other name was written over (split.csv, or a .json that the sidecar then replaced).
    if out.suffix.lower() != ".onnx" or out.is_dir():
        raise BlinkgateError(f"--out {args.out}: give a .onnx file to write (its thresholds go beside it, "
                             f"in {out.with_suffix('.json').name})")
    if out.with_suffix(".json").is_dir():  # the sidecar is written after the training: a traceback then
        raise BlinkgateError(f"--out {args.out}: its thresholds go in {out.with_suffix('.json')}, a folder")
    _opencv_can_take(out)
    _writable_folder(out.parent, "--out")
    result = train_eyes(Path(args.data_dir), Path(args.out), seed=args.seed, epochs=args.epochs,
                        calibration_folds=args.calibration_folds, jobs=args.jobs, config=config)
    print(json.dumps(result, indent=2))
    return 0


def cmd_eval_eyes(args: argparse.Namespace) -> int:
    from .eye_model import evaluate_eyes

    result = evaluate_eyes(Path(args.data_dir), model_path=args.model)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"eye-state accuracy on {result['n']} test crops: {result['accuracy']:.4f}")
        print(f"undecided with calibrated thresholds: {result['undecided_rate']:.2%}")
        cm = result["confusion"]
        print("confusion          predicted closed  predicted open")
        for true in ("closed", "open"):
            print(f"  true {true:<7} {cm[true][0]:>17} {cm[true][1]:>15}")
        f = result["faces"]
        print(f"faces (both eyes, as the gate reads them): {f['right']} of {f['faces']} right, {f['unknown']} "
              f"unknown, {f['open_read_closed']} open read closed, {f['closed_read_open']} closed read open")
    return 0


def cmd_eval_blinks(args: argparse.Namespace) -> int:
    from .evaluate_blinks import evaluate_blinks
    from .gate import Gate, GateOptions

    clips = [Path(c) for c in args.clips]
    missing = [c for c in clips if not c.is_file()]
    if missing:  # a folder is there, not missing: eval-blinks reads video files only
        raise BlinkgateError(f"clip {missing[0]} is a folder: give its video files" if missing[0].is_dir()
                             else f"no such clip: {missing[0]}")
    with Gate(None, GateOptions(eyes=args.eyes), eye_model=_eye_model(args)) as gate:
        result = evaluate_blinks(gate, clips, Path(args.labels) if args.labels else None)
    if args.json:
        print(json.dumps(result))
        return 0

    def fmt(value, spec: str) -> str:  # a rate with nothing to count (no labelled blink) is None
        return "—" if value is None else format(value, spec)

    for name, r in result.items():
        print(f"{name:>12}: precision {fmt(r['precision'], '.3f')}  recall {fmt(r['recall'], '.3f')}  "
              f"F1 {fmt(r['f1'], '.3f')}  ({r['detected']} detected, {r['labelled']} labelled; closed frames "
              f"read closed {fmt(r['closed_frame_accuracy'], '.1%')}, open frames read open "
              f"{fmt(r['open_frame_accuracy'], '.1%')})")
        for c in r["clips"]:
            if c["missed"] or c["false_at"]:
                print(f"{'':>14}{c['clip']}: missed at {c['missed']}, false at {c['false_at']}")
    return 0


# -- evaluation harness ------------------------------------------------------------------------


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import run_cli

    if args.report:
        from .evaluate_report import check_report_folder, plotting

        plotting()  # a missing matplotlib is said before the report folder is made
        _writable_folder(args.report, "--report")
        check_report_folder(args.report)
    return run_cli(args)


def cmd_simulate_attack(args: argparse.Namespace) -> int:
    from .simulate import run_cli

    _opencv_can_take(Path(args.out).expanduser())
    _writable_folder(args.out, "--out")
    return run_cli(args)


# -- door mode ---------------------------------------------------------------------------------


def cmd_door(args: argparse.Namespace) -> int:
    from .config import resolve
    from .doorrun import run_door

    return run_door(resolve(args))


def cmd_verify(args: argparse.Namespace) -> int:
    from .config import for_verify, resolve
    from .doorrun import verify

    return verify(for_verify(resolve(args)), args.name, args.timeout)


def cmd_log(args: argparse.Namespace) -> int:
    from .config import resolve
    from .doorrun import show_log

    if args.out and args.snapshot is None:  # taken and ignored before
        raise BlinkgateError("--out is where --snapshot writes: give --snapshot ID too")
    if args.prune and args.snapshot is not None:  # pruning first could delete the snapshot asked for
        raise BlinkgateError("--prune and --snapshot do different things: run one, then the other")
    listing = [flag for flag, given in (("--since", args.since is not None), ("--name", args.name is not None),
                                        ("--limit", args.limit is not None), ("--json", args.json)) if given]
    if listing and (args.prune or args.snapshot is not None):  # ignored before: `--prune --name bob` pruned everyone's
        raise BlinkgateError(f"{', '.join(listing)} {'chooses' if len(listing) == 1 else 'choose'} what the listing "
                             f"shows, not what {'--prune' if args.prune else '--snapshot'} does: leave "
                             f"{'it' if len(listing) == 1 else 'them'} out")
    return show_log(resolve(args), args.since, args.json, name=args.name, limit=args.limit,
                    snapshot=args.snapshot, out=args.out, prune=args.prune)


def cmd_unlock(args: argparse.Namespace) -> int:
    from .config import resolve
    from .doorrun import unlock

    return unlock(resolve(args), args.name)


def cmd_config(args: argparse.Namespace) -> int:
    from .config import not_for_verify, resolve, weakened
    from .doorrun import db_path

    settings = resolve(args)
    db = str(db_path(settings))  # `db = unset` alone did not say which file the door uses
    ignored = not_for_verify(settings)  # the door's outputs, which `verify` leaves alone
    if args.json:
        print(json.dumps({**settings.to_json(), "db_path": db, "weaker_than_default": weakened(settings),
                          "not_for_verify": ignored}, indent=2))
    else:
        print("\n".join(settings.lines() + [f"# face database: {db}"]
                        + [f"# weaker than the default: {line}" for line in weakened(settings)]
                        + ([f"# verify does not use {', '.join(ignored)} from here: only from its own command line"]
                           if ignored else [])))
    return 0


# -- parser ------------------------------------------------------------------------------------


def _add_db(p: argparse.ArgumentParser, config: bool = True) -> None:
    """``--db`` and, where settings come from the config file (``config``), ``--config``. A command
    without (eval) reads no $BLINKGATE_DB either, and no database unless given one."""
    if not config:
        _add_setting(p, "db", help="face database: also score 'granted' for the manifest's identities "
                                   "(default: none; $BLINKGATE_DB is not read)")
        return
    _add_setting(p, "db", help="face database (default: $BLINKGATE_DB, db in blinkgate.toml, else the user data directory)")
    p.add_argument("--config", metavar="FILE", help="settings file (default: ./blinkgate.toml or the user config dir)")


def _number(low: float, high: float = math.inf, least: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (at least ``low``, with ``least``) and at
    most ``high``. NaN would slip past a plain comparison, and a tolerance above 1 names strangers
    as the nearest enrolled person."""

    from .config import MAX_NUMBER

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):  # "inf must be above 0" read as nonsense
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if value > high:
            raise argparse.ArgumentTypeError(f"{text} must be at most {high:g}")
        if not (low <= value if least else low < value):
            bound = f" and at most {high:g}" if high < MAX_NUMBER else ""  # not the ceiling of every setting
            raise argparse.ArgumentTypeError(f"{text} must be {'at least' if least else 'above'} {low:g}{bound}")
        return value

    return parse


def _setting_number(key: str) -> Callable[[str], float]:
    """An argparse type for the number setting ``key``: the range the settings file and door take
    (config.SETTINGS). run's --liveness 0.05 was taken where `liveness = 0.05` in the file was
    refused, and its --tolerance 0 refused where the file's was taken."""
    from .config import BY_KEY, MAX_NUMBER

    s = BY_KEY[key]
    return _number(s.minimum, MAX_NUMBER if s.maximum is None else s.maximum, least=True)


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low`` and at most ``high`` (jobs, epochs,
    counts, limits, seeds)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} must be at least {low}")
        from .config import MAX_NUMBER  # the settings' ceiling: past SQLite's integers a --limit was "datatype mismatch"

        ceiling = MAX_NUMBER if high is None else high
        if value > ceiling:
            raise argparse.ArgumentTypeError(f"{text} must be at most {ceiling:.0f}")
        return value

    return parse


def _add_setting(p: argparse.ArgumentParser, key: str, settings: bool = False, **kwargs) -> None:
    """The flag of the door setting ``key`` (config.SETTINGS), its metavar and help as door's:
    written once, run's --liveness S and door's --liveness LIVENESS told two stories. Its value
    is checked here (``type``), before any work; ``settings`` if the command reads the file."""
    from .config import BY_KEY

    s = BY_KEY[key]
    options = {"metavar": s.placeholder, "help": s.flag_help(settings), "choices": s.choices}
    if s.type == "float":
        options["type"] = _setting_number(key)
    p.add_argument(s.flag, **{**options, **kwargs})


def _add_gate(p: argparse.ArgumentParser, config: bool = True, keys: tuple[str, ...] = GATE_SETTINGS) -> None:
    """The gate's flags, those of ``keys``. They default to None: ``_fill_settings`` fills in the rest."""
    if "db" in keys:
        _add_db(p, config)
    for key in ("fps", "eyes", "liveness", "tolerance", "eye_model"):
        if key in keys:
            _add_setting(p, key, config)


class _Version(argparse.Action):
    """--version. argparse's own ignores an error writing the line (its _print_message drops any
    OSError), so `blinkgate --version > /dev/full` exited 0 without a word; here the error reaches
    main's handlers, as any other command's output does."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"blinkgate {__version__}\n")
        sys.stdout.flush()  # now, inside main's handlers: not in the interpreter's last flush
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but an error writing help or usage reaches main's handlers: argparse
    drops it (its _print_message catches OSError, the only hook it has), so `blinkgate --help >
    /dev/full` exited 0 without a word. Subcommand parsers are of this class too."""

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        if message:
            file = file or sys.stderr
            file.write(message)
            file.flush()  # now, inside main's handlers: not in the interpreter's last flush


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="blinkgate", description="Face-liveness gate: grant only after the same face blinks.")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    # Not required: a bare `blinkgate` gets the command list (main), not "arguments are required: COMMAND".
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # -v also after the command (`blinkgate check -v clip.mp4`); SUPPRESS keeps a -v given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        if "help" in kwargs and "description" not in kwargs:  # `COMMAND --help` says what it does too
            kwargs["description"] = kwargs["help"][0].upper() + kwargs["help"][1:] + "."
        p = sub.add_parser(name, parents=[verbose], **kwargs)
        p.set_defaults(command_parser=p)  # a usage error found after parsing shows this command's usage
        return p

    p = command("enroll", aliases=["enrol"], help="enrol people from PEOPLE_DIR/<name>/*.jpg|png",
                description="Enrol each PEOPLE_DIR/<name>/ folder's photos (.jpg, .png; one face each) under "
                            "<name>. A re-run encodes only new or changed photos and removes those deleted. "
                            "Each skipped photo gets a line saying why; exit 1 if nothing is enrolled, or a "
                            "person none of whose photos is usable.")
    p.add_argument("people_dir", metavar="PEOPLE_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_db(p)
    p.set_defaults(func=cmd_enroll)

    p = command("capture", help="take enrolment photos of one person with the camera",
                description="Save photos of NAME from the camera into PEOPLE_DIR/NAME/ (frames with exactly one "
                            "face, big enough, spaced in time), then enrol them with `blinkgate enroll PEOPLE_DIR`. "
                            "Exit 1 if fewer than --count were taken.")
    p.add_argument("people_dir", metavar="PEOPLE_DIR")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--source", default="0", help="camera index, video file, frame folder or URL (default 0)")
    p.add_argument("--count", type=_whole(1), default=5, help="photos to take (default 5)")
    p.add_argument("--every", type=_number(0), default=0.7, metavar="SECONDS",
                   help="at least this long between photos: turn your head a little (default 0.7)")
    p.add_argument("--timeout", type=_number(0), default=60.0, metavar="SECONDS", help="give up this long after the first frame (of a video file: its first SECONDS) (default 60)")
    # A default, so _fill_settings leaves it: capture reads only its tolerance from the settings file
    # (README, --config), and the door's fps there changed how many photos a frame folder gave.
    p.add_argument("--fps", type=_setting_number("fps"), default=20.0, help="frame rate of a frame folder (default 20)")
    p.add_argument("--no-display", action="store_true", help="no window")
    # The door's: a face capture took that the gate would not name as the person would be named so once enrolled.
    p.add_argument("--tolerance", type=_setting_number("tolerance"),
                   help="a face further than this from the person's photos is not taken (default: the gate's, 0.5)")
    p.add_argument("--config", metavar="FILE", help="settings file, for tolerance (default: ./blinkgate.toml or the user config dir)")
    p.set_defaults(func=cmd_capture)

    p = command("people", help="list enrolled people")
    p.add_argument("--json", action="store_true", help="one JSON list of {name, images}")
    _add_db(p)
    p.set_defaults(func=cmd_people)

    p = command("forget", help="remove a person from the database")
    p.add_argument("name")
    _add_db(p)
    p.set_defaults(func=cmd_forget)

    p = command("run", help="watch a camera, video, frame folder or stream",
                description="Show each face's box, name, eye state and LIVE once it blinks; a recognised face "
                            "that blinked is granted. Nothing is unlocked: `blinkgate door` does that. Reads "
                            "db, fps, eyes, liveness, tolerance, eye_model and ui.token from the settings file, as "
                            "door does.")
    _add_setting(p, "source", default="0")
    p.add_argument("--no-display", action="store_true", help="run without a window")
    _add_setting(p, "record")
    _add_setting(p, "events")
    _add_setting(p, "ui.listen", dest="ui")
    _add_setting(p, "ui.token", True, dest="ui_token")
    _add_gate(p)
    p.set_defaults(func=cmd_run)

    p = command("check", help="print a liveness verdict for each video or frame folder",
                description="Print one verdict per video file or frame folder (--json: one JSON line each): live "
                            "if a face blinked, granted if an enrolled one did. Exit 0 whatever the verdicts, "
                            "2 if an input could not be read.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video files or frame folders")
    p.add_argument("--files-from", metavar="FILE",
                   help="also check the inputs listed in FILE, one a line ('-': stdin), beyond the command line's limit")
    # No -0 (xargs's): a dash-digit option makes argparse read `--tolerance -1` as a missing value.
    p.add_argument("--null", action="store_true", help="--files-from's inputs end with NUL, as find -print0 writes")
    p.add_argument("--skip-done", metavar="JSONL",
                   help="skip the inputs that have a verdict in JSONL, an earlier run's --json output (to resume a batch)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--jobs", type=_whole(1), default=1, metavar="N", help="check N inputs at once, one process each (default 1)")
    _add_gate(p)
    p.set_defaults(func=cmd_check)

    p = command("train-eyes", help="train the eye-state CNN (needs the [train] extra)")
    p.add_argument("data_dir")
    p.add_argument("--out", default="eye_state.onnx", help="ONNX file to write (default eye_state.onnx)")
    p.add_argument("--seed", type=_whole(0, TRAIN_MAX_SEED), default=0)  # negative: a traceback after loading
    p.add_argument("--epochs", type=_whole(1), default=None, help="default: the shipped model's setting")
    p.add_argument("--calibration-folds", type=_whole(0), default=5,
                   help="grouped CV folds to calibrate closed_below on (0 = skip; default 5)")
    p.add_argument("--jobs", type=_whole(1), default=2, metavar="N", help="N processes for the calibration folds (default 2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting of the shipped configuration, e.g. --set epochs=40 "
                        "--set filters=16,32,64 (repeatable; the fields of train_eyes.EyeNetConfig)")
    p.set_defaults(func=cmd_train_eyes)

    p = command("eval-blinks", help="blink precision/recall against hand labels (labels/<clip>.csv)")
    p.add_argument("clips", nargs="+", metavar="CLIP")
    p.add_argument("--labels", help="label folder (default: labels/ beside each clip)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    # Not --db, --tolerance, --liveness or --fps: it names nobody, blinks do not depend on how long
    # they keep a face live, and its clips are video files with their own timestamps. Taken before,
    # they changed nothing: `--db typo.db` ran without a word.
    _add_gate(p, config=False, keys=("eyes", "eye_model"))
    p.set_defaults(func=cmd_eval_blinks)

    p = command("eval-eyes", help="eye-state accuracy on the test rows of a CEW-style DATA_DIR")
    p.add_argument("data_dir")
    # --eye-model as in run, check, door, eval and eval-blinks; --model, its first name, still works
    p.add_argument("--eye-model", "--model", dest="model", metavar="ONNX",
                   help="eye-state ONNX model, e.g. from train-eyes (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=cmd_eval_eyes)

    p = command("eval", help="APCER/BPCER/ACER and time to accept over a manifest of live and attack inputs")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="CSV or TOML manifest(s)")
    p.add_argument("--json", action="store_true", help="print the summary and every outcome as JSON")
    p.add_argument("--report", metavar="DIR", help="write report.md, results.json and plots here")
    p.add_argument("--time-limit", type=_number(0), default=10.0, metavar="S", help="bona fide must be accepted within this (default 10 s)")
    p.add_argument("--pipeline", choices=("blinkgate", "article"), default="blinkgate", help="what to evaluate (default blinkgate)")
    p.add_argument("--article-dir", metavar="DIR", help="folder with the article's model.json + model.h5 (for --pipeline article)")
    p.add_argument("--only", metavar="REGEX", help="evaluate only inputs whose id matches")
    p.add_argument("--jobs", type=_whole(1), default=1, metavar="N", help="evaluate N inputs at once, one process each (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_gate(p, config=False)
    p.set_defaults(func=cmd_eval)

    p = command("simulate-attack", help="make reproducible simulated print-attack videos from still photos")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photos or folders of photos (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the videos, manifest.csv and params.jsonl")
    p.add_argument("--seed", type=_whole(0), default=0)  # numpy's SeedSequence takes no negative seed
    p.add_argument("--count", type=_whole(1), default=None, help="sequences to make (default: one per photo)")
    p.add_argument("--kinds", default="print,bent-print,folded-print", help="attack kinds to draw from (comma list)")
    p.add_argument("--duration", type=_number(0.1), default=None, metavar="S",
                   help="seconds per sequence, above 0.1 (default: random 6-10)")
    p.add_argument("--jobs", type=_whole(1), default=1, metavar="N", help="make N sequences at once, one process each (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate_attack)

    from .config import ACTION_KEYS
    from .config import add_arguments as add_door_settings

    p = command("door", help="door opener: challenge-response, lockout, access log, unlock actions",
                description="Grant a recognised face that blinked and then answered a random blink challenge "
                            "(unless --no-challenge); run --on-grant, --webhook and --mqtt-* on each grant and "
                            "log every decision (`blinkgate log`). Every flag can also be set in blinkgate.toml "
                            "or a BLINKGATE_* variable: `blinkgate config` shows the effective settings.")
    add_door_settings(p)
    p.set_defaults(func=cmd_door)

    p = command("verify", help="one visit for a login or kiosk script: exit 0 and print the name once "
                               "someone is granted, 1 if no one is",
                description="Run the door's checks (recognition, blink, challenge, lockout, access log) until "
                            "someone is granted, then print the name and exit 0. Exit 1 if no one is within "
                            "--timeout, the source ends, or --name is locked out; 2 on an error. No unlock "
                            "action runs: the exit code is the action, so it takes no --on-grant, --webhook "
                            "or --mqtt-* flags and ignores the settings file's. It takes the door's other "
                            "settings, but --record, --events and --ui only from its command line, never "
                            "from the door's settings file or environment.")
    p.add_argument("--name", help="only this enrolled person counts (as `blinkgate people` shows it)")
    p.add_argument("--timeout", type=_number(0), default=30.0, metavar="SECONDS",
                   help="give up after this long from the first frame (default 30)")
    add_door_settings(p, without=ACTION_KEYS)  # no unlock action runs: a flag for one would be ignored
    p.set_defaults(func=cmd_verify)

    p = command("log", help="show the door's access log",
                description="List the door's decisions (granted, denied, revoked, expired), oldest first, from "
                            "the access log in its face database; --snapshot writes the face a decision was "
                            "made on, --prune deletes old snapshots now.")
    p.add_argument("--since", metavar="AGE", help="only entries newer than this: 30m, 1h, 2d, 1w or an ISO date")
    p.add_argument("--name", help="only this person")
    p.add_argument("--limit", type=_whole(1), metavar="N", help="only the newest N entries")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--snapshot", type=int, metavar="ID", help="write the face snapshot of entry ID as a JPEG")
    p.add_argument("--out", metavar="FILE.jpg", help="where --snapshot writes (default blinkgate-ID.jpg)")
    p.add_argument("--prune", action="store_true", help="delete snapshots older than log.retention_days, and rows older than a year, now")
    add_door_settings(p, only=("db", "log.retention_days"))  # not the door's 40 other flags
    p.set_defaults(func=cmd_log)

    p = command("unlock", help="lift a person's lockout and forget their failed challenges")
    p.add_argument("name", help="the enrolled name, as `blinkgate people` shows it")
    add_door_settings(p, only=("db",))
    p.set_defaults(func=cmd_unlock)

    p = command("config", help="print the effective door settings and where each came from")
    p.add_argument("--json", action="store_true", help="print them as one JSON object")
    add_door_settings(p)
    p.set_defaults(func=cmd_config)
    return parser


def _quiet_native_logs() -> None:
    """Hide OpenCV's and FFmpeg's own log lines; -v keeps them.

    They would land beside our one-line error for the same cause: a missing camera gives five
    lines of V4L2/FFmpeg/obsensor warnings, a broken MP4 "moov atom not found".
    """
    # OpenCV reads this when it first opens a video, so it must be set before that.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush meets no closed pipe either."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (captured in a test): nothing will flush to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class Terminated(BaseException):
    """SIGTERM (systemd, ``docker stop``, ``kill``), SIGHUP (the terminal closed) or SIGQUIT
    (Ctrl-\\). Raised in the frame loop, it unwinds the same ``finally`` blocks as Ctrl-C, so a
    recording gets its index, the logs are closed and ``verify`` counts the prompt it showed; a
    BaseException, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def _catch_terminal_signals() -> dict:
    """Raise :class:`Terminated` on SIGHUP and SIGQUIT where their action is the default; the
    handlers replaced, to put back. A hang-up or Ctrl-\\ killed verify mid-prompt without
    unwinding: a free way to drop a prompt from the keyboard. Not when one is ignored (nohup):
    the user asked to outlive the terminal."""
    caught = {}
    for name in ("SIGHUP", "SIGQUIT"):
        signum = getattr(signal, name, None)  # neither exists on Windows
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            caught[signum] = signal.signal(signum, _terminate)
    return caught


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but an unknown option is refused by the command's own parser: the
    top parser's error showed its usage (``blinkgate [-h] [--version] [-v] COMMAND ...``) for
    ``blinkgate run --sorce x``, not run's options."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        own = getattr(args, "command_parser", parser)
        own.error(f"unrecognized arguments: {' '.join(unknown)}{_option_hint(own, unknown)}")
    return args


def _option_hint(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """" (did you mean --source?)" for the first mistyped option: argparse takes a prefix
    (``--sour``) but says nothing of a misspelling (``--sorce``) before Python 3.14."""
    from .config import closest_name

    # Compared without the dashes: with them, any two options share two characters, and
    # --bogus came out as "did you mean --verbose?".
    options = [o[2:] for o in parser._option_string_actions if o.startswith("--")]  # argparse keeps no public list
    names = (closest_name(arg.split("=", 1)[0][2:], options) for arg in unknown if arg.startswith("--"))
    return next((f" (did you mean --{name}?)" for name in names if name), "")


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None:  # started with stdout closed (`>&-`): its lines go nowhere, as print's would
        sys.stdout = open(os.devnull, "w")  # for the process's life
    if sys.stderr is None:  # `2>&-`: print(file=None) wrote the messages into stdout's data, and a
        sys.stderr = open(os.devnull, "w")  # progress bar's write failed (check exited 1, no verdict)
    parser = build_parser()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    caught = _catch_terminal_signals() if main_thread else {}
    try:
        args = _parse(parser, argv)  # in here: --version's line on a full disk is one line and exit 1 too
        if args.command is None:  # as git and pip do: what the commands are, not just that one is missing
            parser.print_help(sys.stderr)
            return 2
        if args.func is cmd_check:
            _check_usage(args, args.command_parser)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="blinkgate: %(message)s")
        if not args.verbose:
            _quiet_native_logs()
        _fill_settings(args)
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        _detach_stdout()
        return 141  # what a shell reports for a tool stopped by SIGPIPE: `blinkgate log | head`
    except BatchStopped as err:
        _detach_stdout()  # what is left in stdout's buffer would fail again, with a traceback, at exit
        print(f"blinkgate: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno in PATH_ERRNOS and err.filename is not None:
            # A path given that cannot be looked at: a file in a folder without the x bit, a name
            # past NAME_MAX. Python < 3.14's Path.is_file()/exists() raise these where they
            # return False for a missing one, so `--db locked/x.db` was a traceback.
            print(f"blinkgate: error: {err.filename}: {err.strerror}", file=sys.stderr)
            return 2
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise  # a bug: its traceback says where
        _detach_stdout()  # `blinkgate log --json > out.json` on a full disk: its buffer would fail again at exit
        print(f"blinkgate: error: {err.strerror}", file=sys.stderr)
        return 1
    except BlinkgateError as err:
        print(f"blinkgate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Terminated as stop:
        return 128 + stop.signum  # what a shell reports for a process ended by it: 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        for signum, handler in caught.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
