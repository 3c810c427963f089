"""``blinkgate door``, ``log``, ``unlock`` and ``config``: wiring settings to the door.

:func:`build_door` turns resolved settings (:mod:`blinkgate.config`) into a ready
:class:`~blinkgate.door.Door` — gate, challenge policy, access log, unlock actions — for the
CLI or for a program of your own. :func:`run_door` is the camera loop with the prompt drawn
on screen.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import Resolved, weakened
from .door import (ChallengePolicy, Door, DoorFace, DoorOptions, DoorResult, LockoutPolicy, door_events,
                   door_faces_for_drawing, standing_grants)
from .errors import BlinkgateError

if TYPE_CHECKING:
    from .gate import Gate

log = logging.getLogger("blinkgate")


def db_path(settings: Resolved) -> Path:
    from .database import default_db_path

    return Path(settings["db"]).expanduser() if settings["db"] else default_db_path()


def door_options(settings: Resolved) -> DoorOptions:
    s = settings
    challenge = ChallengePolicy(
        enabled=s["challenge.enabled"],
        counts=tuple(s["challenge.counts"]),
        delay_min_ms=s["challenge.delay_min"] * 1000.0,
        delay_max_ms=s["challenge.delay_max"] * 1000.0,
        min_reaction_ms=s["challenge.min_reaction"] * 1000.0,
        max_reaction_ms=s["challenge.max_reaction"] * 1000.0,
        max_interval_ms=s["challenge.max_interval"] * 1000.0,
        clear_ms=s["challenge.clear"] * 1000.0,
        hold_ms=s["challenge.hold"] * 1000.0,
        settle_ms=s["challenge.settle"] * 1000.0,
        max_closed_ms=s["challenge.max_closed"] * 1000.0,
        check_wait_ms=s["challenge.check_wait"] * 1000.0,
        rounds=s["challenge.rounds"],
    )
    lockout = LockoutPolicy(s["lockout.failures"], s["lockout.window"] * 1000.0, s["lockout.cooldown"] * 1000.0,
                            max_cooldown_ms=s["lockout.max_cooldown"] * 1000.0)
    return DoorOptions(challenge=challenge, lockout=lockout, grant_ms=s["liveness"] * 1000.0)


def check_on_grant(settings: Resolved) -> None:
    """:func:`actions.parse_command` on the on-grant command; its error, which says --on-grant,
    names the file or variable that set it when the flag was not typed: that is where to fix it."""
    from .actions import parse_command

    try:
        parse_command(settings["actions.on_grant"])
    except BlinkgateError as err:
        origin = settings.origins["actions.on_grant"]
        if origin.startswith("cli:"):
            raise
        raise BlinkgateError(f"{err} (actions.on_grant, {origin})") from None


def build_actions(settings: Resolved, source: str = ""):
    """The ActionRunner for the configured command, webhook and MQTT broker (None if none)."""
    from .actions import ActionRunner, CommandAction, MqttAction, WebhookAction

    s, actions = settings, []
    if s["actions.on_grant"]:
        check_on_grant(s)
        actions.append(CommandAction(s["actions.on_grant"], timeout_s=s["actions.command_timeout"]))
    if s["webhook.url"]:
        if not s["webhook.secret"]:
            log.warning("webhook without --webhook-secret: anyone who can reach it can forge an unlock")
        actions.append(WebhookAction(s["webhook.url"], s["webhook.secret"], s["webhook.timeout"], s["webhook.retries"]))
    elif s["webhook.secret"]:
        raise BlinkgateError("--webhook-secret given without --webhook URL")
    if s["mqtt.host"]:
        if not s["mqtt.tls"] or not s["mqtt.username"]:
            # anyone on the network could then publish the same unlock message
            log.warning("mqtt: %s; a relay listening on %s cannot tell blinkgate's unlock from anyone's "
                        "(set mqtt.username/password and mqtt.tls, and an ACL on the topic)",
                        "no TLS and no login" if not s["mqtt.tls"] and not s["mqtt.username"]
                        else "no TLS" if not s["mqtt.tls"] else "no login", s["mqtt.topic"])
        actions.append(MqttAction(s["mqtt.host"], s["mqtt.port"], s["mqtt.topic"], username=s["mqtt.username"],
                                  password=s["mqtt.password"], tls=s["mqtt.tls"], qos=s["mqtt.qos"]))
    if not actions:
        return None
    return ActionRunner(actions, cooldown_s=s["actions.cooldown"], source=source)


def build_gate(settings: Resolved, live: bool = False) -> Gate:
    """The door's Gate, from settings. A ``live`` one is recognised in a background process and
    has its models loaded now: see :func:`run_door` for why before the camera opens."""
    from .gate import Gate, GateOptions

    db = db_path(settings)
    options = GateOptions(liveness_ms=settings["liveness"] * 1000.0, eyes=settings["eyes"],
                          tolerance=settings["tolerance"], recognition="background" if live else "inline")
    if not db.exists():
        log.warning("no face database at %s: every face is unknown (enrol with `blinkgate enroll DIR`)", db)
    gate = Gate(db if db.exists() else None, options, eye_model=settings["eye_model"])
    try:
        if live:
            gate.load_models()
    except BaseException:
        gate.close()
        raise
    if db.exists() and not len(gate.recognizer):
        # also after the first start, which created the file for the access log
        log.warning("nobody is enrolled in %s: every face is unknown (enrol with `blinkgate enroll DIR`, "
                    "with the same --db or settings file)", db)
    return gate


def build_door(settings: Resolved, source: str = "", gate=None, live: bool = False, actions: bool = True) -> Door:
    """Gate + challenge + access log + actions, from settings. Restores lockout counts of
    the last ``lockout.window`` from the access log, so a restart does not reset them. A
    ``live`` source (camera, stream) is recognised in a background process. ``actions=False``
    (``verify``) leaves the unlock actions out: its exit code is the action."""
    from .accesslog import AccessLogWriter

    db = db_path(settings)
    gate = gate if gate is not None else build_gate(settings, live)
    writer = AccessLogWriter(db, retention_days=settings["log.retention_days"])
    try:
        runner = build_actions(settings, source) if actions else None
    except BaseException:
        writer.close()
        raise
    door = Door(gate, door_options(settings), access_log=writer, actions=runner,
                snapshots=settings["log.snapshots"], source=source)
    _restore_failures(door, db, settings)
    return door


FUTURE_SLACK_S = 60.0  # a logged failure dated later than now + this: the clock was wrong


def replay_back_s(lock: LockoutPolicy) -> float:
    """How far back a restart replays failures (s): over as many lockouts in a row as it takes
    the cool-down to double up to its cap, so that the next lockout lasts as long as it would
    have without the restart. Replaying one day (as before) forgot the lockouts before the last:
    after a day-long lockout the next lasted 10-20 min again, and a `verify` per attempt (each
    one a restart) had about three times the attempts of a door that ran on."""
    cap = max(lock.cooldown_ms, lock.max_cooldown_ms)
    doublings = math.ceil(math.log2(cap / lock.cooldown_ms)) if 0 < lock.cooldown_ms < cap else 0
    # each lockout of the run: its failures (window), itself (up to cap), the time to the next (up to escalate)
    return (doublings + 1) * (lock.window_ms + cap + lock.escalate_ms) / 1000.0


def _restore_failures(door: Door, db: Path, settings: Resolved) -> None:
    """Replay logged failures (:func:`replay_back_s`) onto the new source clock, whose origin
    (0 ms) is about now: a restart neither forgets failures nor lifts a lockout, nor shortens
    the next one.

    Failures dated in the future are ignored: the wall clock was wrong when they were logged
    or is wrong now (no RTC, before NTP), and replaying them would lock people out for as
    long as the error, possibly decades."""
    from .accesslog import AccessLog

    if settings["lockout.failures"] <= 0:
        return
    now = time.time()
    since = now - replay_back_s(door.options.lockout)
    with AccessLog(db, settings["log.retention_days"]) as store:
        for name in store.names_since(since):
            times = store.failures(name, since)
            future = [t for t in times if t > now + FUTURE_SLACK_S]
            if future:
                log.warning("%d logged failures of %s are dated after now (is the clock right?): not restored",
                            len(future), name)
            times = [t for t in times if t <= now + FUTURE_SLACK_S]
            door.logic.seed_failures(name, [(t - now) * 1000.0 for t in times])
            if door.logic.locked_until(name, 0.0) is not None:  # not one that ended before the restart
                log.warning("%s is still locked out after too many failed challenges (`blinkgate unlock %s` lifts it)",
                            name, shlex.quote(name))


def unlock(settings: Resolved, name: str) -> int:
    """``blinkgate unlock NAME``: forget NAME's failed challenges and lift its lockout, for a
    restart and for a door running now (it polls every few seconds)."""
    from .accesslog import AccessLog

    db = db_path(settings)
    if not db.exists():
        raise BlinkgateError(f"no face database at {db}")
    with AccessLog(db, settings["log.retention_days"], create=False) as store:
        enrolled = [n for n, _ in store.db.people()]
        name = store.db.enrolled_name(name) or name
        if name not in enrolled and name not in store.names_since(0.0):
            raise BlinkgateError(f"{name!r} is neither enrolled nor in the access log; enrolled: "
                                 + (", ".join(enrolled) or "nobody"))
        store.clear_lockout(name)
    print(f"cleared the failed challenges and any lockout of {name}; a running door lifts it within seconds")
    return 0


# -- drawing -----------------------------------------------------------------------------------


def banner(face: DoorFace) -> list[tuple[str, tuple[int, int, int]]]:
    """The lines (text, BGR colour) the door shows one face in large letters; none if nothing to say."""
    who = f"#{face.track_id} {face.name or 'unknown'}: "
    if face.prompt:
        return [(f"BLINK {face.count}x NOW", (0, 215, 255)),
                (f"then keep eyes open ({face.answered}/{face.count})", (0, 215, 255))]
    if face.state == "granted":
        return [(who + "OPEN", (0, 200, 0))]
    if face.state == "locked":
        return [(who + "LOCKED OUT (too many failed attempts)", (0, 0, 230))]
    if face.state == "waiting":
        return [(who + "look at the camera and wait for the prompt", (255, 255, 255))]
    return []


def door_face_json(face: DoorFace) -> dict:
    """A door face as the browser view shows it: the gate's view, with the door's state and grant."""
    from dataclasses import replace

    from .webui import face_json

    # as drawn: in door mode a face counts as live and granted only when the door grants it
    out = face_json(replace(face.face, granted=face.granted, live=face.granted))
    lines = banner(face)
    out.update(door=face.state, prompt=face.prompt, count=face.count, answered=face.answered)
    if lines:
        out["status"] = " - ".join(text.split(": ", 1)[-1] for text, _ in lines)
    return out


def draw_door(image: np.ndarray, result: DoorResult, fps: float | None = None) -> np.ndarray:
    """The Gate's drawing (with the door's grant), and a banner on top with each face's
    prompt or state in large letters."""
    import cv2

    from .annotate import draw, drawable

    out = draw(image, door_faces_for_drawing(result), fps)
    lines = [line for face in result.faces for line in banner(face)]
    if not lines:
        return out
    scale = max(0.6, image.shape[1] / 1000)
    height = int(36 * scale)
    band = out[: height * len(lines) + 10]
    band[:] = (band * 0.35).astype(np.uint8)
    for i, (text, colour) in enumerate(lines):
        y = height * (i + 1) - 4
        cv2.putText(out, drawable(text), (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)
    return out


# -- commands ----------------------------------------------------------------------------------


def _report(result: DoorResult, image: np.ndarray, events, ui) -> None:
    """One result's events to ``--events`` (``events``), the browser view (``ui``) and the log
    lines: a frame's, and the visit's end (``Door.end_visit``) the same way."""
    shown = door_events(result)  # not the Gate's blink-only `granted`: the door decides
    if events:
        events.write(shown)
    if ui:
        ui.publish(image, result, shown)
    for ev in result.events:
        if ev.kind == "challenge":
            log.info("track %d %s: %s", ev.track_id, ev.name, ev.detail["prompt"])
        elif ev.kind == "challenge_passed":
            log.info("track %d %s: round %d of %d passed", ev.track_id, ev.name, ev.detail["round"],
                     ev.detail["rounds"])
        elif ev.kind.startswith("door_") or ev.kind == "lockout":
            why = ev.detail.get("why")
            what = " ".join(filter(None, (ev.kind, ev.detail.get("reason"))))
            log.info("%s track %d %s%s", what, ev.track_id,
                     ev.name or "unknown", f" ({why})" if why else "")


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")  # what ends a visit from outside (a key, kill)


@contextlib.contextmanager
def _stops_held(hold: bool) -> Iterator[None]:
    """With ``hold``, keep the stop signals that arrive inside the block for its end, then deliver
    them as they came (Ctrl-C still exits 130). The first Ctrl-C ends a visit by unwinding to
    its ``finally``, which writes the prompt under way as failed; a second (Ctrl-C twice, or
    Ctrl-C and Ctrl-\\ at once) raised there stopped it first, and dropped the prompt for free.
    Signals another handler ignores (nohup) stay ignored; only the main thread has handlers."""
    if not hold or threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    kept = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)  # not all exist on Windows
        if signum is not None and signal.getsignal(signum) not in (signal.SIG_IGN, None):
            kept[signum] = signal.signal(signum, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)  # its own handler now: KeyboardInterrupt, Terminated, ...


def run_door(settings: Resolved, until: Callable[[float, DoorResult | None], int | None] | None = None,
             actions: bool = True, title: str = "blinkgate door", retries: int | None = None) -> int:
    """The door's frame loop until the source ends or the window closes (0), or until
    ``until(timestamp_ms, result)`` returns an exit code; ``result`` is None for a frame the door
    skips (a frozen stream's repeat) and while a stalled stream gives none, so a clock ``until``
    keeps still runs. With ``until`` (one visit), every end, a grant's too, ends the visit
    (``Door.end_visit``): a challenge under way (another face's, after a grant) counts as failed.
    A camera that drops is reconnected ``retries`` times (None: for ever, as a door outlives a
    camera unplugged)."""
    from .events import EventLog
    from .eye_model import checked_model
    from .sources import is_live, open_source
    from .viewer import Viewer

    checked_model(settings["eye_model"])  # a bad model, --on-grant, --webhook or --ui fails before the camera opens
    if actions and settings["actions.on_grant"]:
        check_on_grant(settings)
    if actions and settings["webhook.url"]:
        from .actions import check_webhook_url

        check_webhook_url(settings["webhook.url"])
    if settings["ui.listen"]:
        from .webui import check_settings

        check_settings(settings["ui.listen"], settings["ui.token"])
    # A camera's Gate is made, and its models loaded (~1 s), before the camera opens: the load holds
    # the GIL, so the source's reader thread read nothing meanwhile, then read the frames buffered
    # back to back; stamped a fraction of a millisecond apart they were a false clock warning, and
    # the first face's track was lost over the stall.
    gate = build_gate(settings, live=True) if is_live(settings["source"]) else None
    try:
        source = open_source(settings["source"], fps=settings["fps"], retries=retries)
    except BaseException:
        if gate is not None:
            gate.close()
        raise
    try:
        door = build_door(settings, source=source.description, live=source.live, actions=actions,
                          **({"gate": gate} if gate is not None else {}))  # else its own (or a test's)
    except BaseException:
        source.close()
        if gate is not None:
            gate.close()
        raise
    for line in weakened(settings):
        log.warning("weaker than the default: %s", line)
    c = door.options.challenge
    log.info("door: challenge %s, lockout after %d failures in %.0f s; access log in %s",
             f"on (k in {list(c.counts)}, hold {c.hold_ms / 1000:g} s{f', {c.rounds} rounds' if c.rounds > 1 else ''})" if c.enabled else "OFF (blink only)",
             door.options.lockout.failures, door.options.lockout.window_ms / 1000, db_path(settings))
    events = EventLog(settings["events"], source.description) if settings["events"] else None
    viewer = ui = None
    image = None  # the last frame's, for the visit's end in the browser view
    stopped: list[int] = []

    def idle(now_ms: float) -> bool:  # no frame (a stalled stream): the visit's clock runs on
        if (code := until(now_ms, None)) is not None:
            stopped.append(code)
            return True
        return False

    if until is not None:
        source.on_idle = idle

    def frames():
        for frame in source:
            # Door.run drops a frozen stream's repeats, which would otherwise never reach `until`
            if until is not None and (code := until(frame.timestamp_ms, None)) is not None:
                stopped.append(code)
                return
            yield frame

    try:
        viewer = Viewer(title, settings["display"], settings["record"], source.fps, pace=not source.live,
                        ui=bool(settings["ui.listen"]), live=source.live)
        if settings["ui.listen"]:
            from .webui import WebUI, announce

            ui = WebUI(settings["ui.listen"], draw=draw_door, faces=lambda result: [door_face_json(f) for f in result.faces],
                       token=settings["ui.token"], title=f"door: {source.description}")
            announce(ui, log)
        for frame, result in door.run(frames()):
            image = frame.image
            _report(result, image, events, ui)
            viewer.wait(frame.timestamp_ms)
            if viewer.active and not viewer.show(draw_door(image, result, viewer.rate), frame.timestamp_ms):
                break
            if until is not None and (code := until(frame.timestamp_ms, result)) is not None:
                return code
    finally:
        with _stops_held(until is not None):  # delivered once all is written and closed
            source.close()
            try:
                # A grant ends the visit too: another face's prompt must not be dropped for free.
                if until is not None and (ended := door.end_visit()) is not None:
                    _report(ended, image, events, ui)
                if events:  # the faces still in view leave too, as in `run`: also after a grant or a lost camera
                    events.write(door.gate.end())
            finally:
                door.close()  # writes the access log's last rows: the end's decisions among them
            for part in (viewer, ui, events):
                if part:
                    part.close()
    return stopped[0] if stopped else 0


VERIFY_RETRIES = 3  # reconnects of a dropped camera before `verify` gives up (back-off 0.5, 1, 2 s)


def _write_private(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` as a new 0600 file, atomically. A face is biometric data,
    kept 0600 in the database: the copy is the owner's too, also over an existing file, whose
    mode an in-place write would have kept (0644: readable by every user)."""
    from .files import PRIVATE_FILE, remove_stale_temps, write_atomic

    # An export killed between writing and renaming left the face hidden beside the target
    # (".face.jpg.PID.tmp", 0600), for ever: only that name's, of a process that is gone.
    for stale in remove_stale_temps(target.parent, lambda name: name == target.name):
        log.info("deleted %s, a copy a killed export never finished writing", stale.name)
    try:
        write_atomic(target, data, PRIVATE_FILE)
    except OSError as err:
        raise BlinkgateError(f"cannot write {target}: {err.strerror or err}") from None


def _refuse_to_replace(target: Path) -> None:
    """An export may replace an earlier export (a JPEG), nothing else: `--out faces.db` swapped
    the database, every enrolment and the audit trail with it, for one face. Nor anything but a
    file: reading a FIFO (or /dev/stdout on a pipe) hung for ever, and /dev/null would be renamed over."""
    try:
        kind = target.stat().st_mode
    except OSError:
        return  # not there (or unreachable: the write says why)
    if stat.S_ISDIR(kind):
        raise BlinkgateError(f"{target} is a folder: give --out a file name")
    if not stat.S_ISREG(kind):
        raise BlinkgateError(f"{target} is not a regular file (a device or a pipe): give --out a file name")
    try:
        with open(target, "rb") as f:
            head = f.read(3)
    except OSError:
        return  # unreadable: the write says why
    if head and head != b"\xff\xd8\xff":
        raise BlinkgateError(f"{target} exists and is not a JPEG: not replaced (give --out a new file name)")


def verify(settings: Resolved, name: str | None, timeout_s: float) -> int:
    """``blinkgate verify``: the door's checks for one visit, for a login or kiosk script.

    0, with the name on stdout, once someone (``name``, if given) is granted; 1 when no one is
    within ``timeout_s`` of the first frame, the source ends first, or ``name`` is locked out.
    Failures count towards the door's lockout and everything goes to its access log, so a
    script cannot be used to try a replay again and again; no unlock action runs."""
    if name is not None:
        name = _enrolled(settings, name)
    first: list[float] = []
    granted: list[str] = []
    why: list[str] = []  # why no one was granted

    def until(now_ms: float, result: DoorResult | None) -> int | None:
        first[:] = first or [now_ms]
        decisions = result.decisions if result is not None else []
        for d in standing_grants(decisions):  # not one the same frame took back
            if name is None or d.name == name:
                granted.append(d.name)
                print(d.name, flush=True)
                return 0
        for d in decisions:
            if name is not None and d.name == name and d.reason == "locked_out":
                left_s = (d.detail.get("locked_until_ms", now_ms) - now_ms) / 1000.0
                until_text = f" until {time.strftime('%H:%M', time.localtime(time.time() + left_s))}" if left_s > 0 else ""
                why.append(f"{name} is locked out{until_text} after failed challenges (`blinkgate unlock "
                           f"{shlex.quote(name)}` lifts it)")
                return 1
        if now_ms - first[0] > timeout_s * 1000.0:
            why.append(f"no one{'' if name is None else ' recognised as ' + name} was granted within {timeout_s:g} s")
            return 1
        return None

    # A camera that drops mid-visit fails the visit after a few reconnects rather than outliving the timeout.
    code = run_door(settings, until=until, actions=False, title="blinkgate verify", retries=VERIFY_RETRIES)
    if code == 0 and not first:
        why.append("the source gave no frame")
    elif code == 0 and not granted and not why:  # a file ended, or the window was closed
        why.append("the source ended before anyone was granted")
    if why:
        log.error(why[0])
        return 1
    return code


def _enrolled(settings: Resolved, name: str) -> str:
    """``name`` as enrolled (Unicode form and spaces aside), or a clear error. The error names
    no one else: at a kiosk, whoever mistypes a name must not learn who is enrolled."""
    from .database import FaceDatabase

    db = db_path(settings)
    if not db.exists():
        raise BlinkgateError(f"no face database at {db} (enrol with `blinkgate enroll DIR`)")
    with FaceDatabase(db, create=False) as store:
        enrolled = store.enrolled_name(name)
    if enrolled is None:
        raise BlinkgateError(f"{name!r} is not enrolled (`blinkgate people` lists who is)")
    return enrolled


def show_log(settings: Resolved, since: str | None, as_json: bool, name: str | None = None,
             limit: int | None = None, snapshot: int | None = None, out: str | None = None,
             prune: bool = False) -> int:
    from .accesslog import AccessLog, parse_since
    from .database import existing_database

    db = existing_database(db_path(settings), ": nothing logged yet")
    with AccessLog(db, settings["log.retention_days"], create=False) as store:
        if prune:
            n = store.prune()
            print(f"deleted {n} snapshot{'s' if n != 1 else ''} older than {settings['log.retention_days']:g} days")
            return 0
        if snapshot is not None:
            jpeg = store.snapshot(snapshot)
            if not jpeg:
                raise BlinkgateError(f"access-log entry #{snapshot} has no snapshot (none taken, past retention, or "
                                     "its person forgotten)")
            target = Path(out or f"blinkgate-{snapshot}.jpg")
            _refuse_to_replace(target)
            _write_private(target, jpeg)
            print(f"wrote {target} ({len(jpeg)} bytes)")
            return 0
        # `--since "$WHEN"` with WHEN unset is an error, not the whole log
        entries = store.entries(since=parse_since(since) if since is not None else None, name=name, limit=limit)
    if as_json:
        for e in entries:
            print(json.dumps(e.to_json()))
    elif not entries:
        print("no access-log entries" + (f" since {since}" if since else ""))
    else:
        for e in entries:
            print(e.format())
    return 0
