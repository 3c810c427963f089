"""Door-opener mode: challenge-response, lockout and grant decisions on top of the Gate.

The Gate says "this tracked face blinked". A phone replaying a video of the person blinking
passes that. Door mode asks an *unpredictable question* instead: once a recognised face is
tracked, at a random moment, it shows "blink k times now" (k random, 1–3) and grants only if
exactly k blinks start inside a short response window after the prompt, close together,
followed by a few seconds of open eyes. A recording cannot know when the prompt comes or
which k it asks for. docs/door.md works out the chance that it answers correctly anyway.

Layers:

* :class:`DoorLogic` is pure: it consumes the Gate's :class:`~blinkgate.types.FrameResult`
  (faces and events: appeared, recognised, blink with ``start_ms``/``end_ms``, granted,
  expired, identity_changed, lost) on the source clock and returns door events and
  :class:`Decision` s. No images, no threads, no I/O; the RNG is injected. Tests feed it
  scripted frame results.
* :class:`Door` owns a Gate, runs the logic on every frame, and hands decisions to the access
  log (with a face snapshot) and granted decisions to the unlock actions. Both run on
  background threads, so the frame loop never waits on a disk, a relay script or the network.

Rules (each tested in tests/test_door.py):

* a challenge is issued only to a recognised, not-locked-out face, at a delay drawn when it
  is scheduled. Nothing the face does moves the prompt: a prompt that waited for open eyes
  could be steered by a video that keeps them shut until a moment of its choosing;
  with ``rounds`` > 1 that many challenges must be passed in a row, and a failure in any of
  them starts the series again;
* blinks are timed by their onset (``start_ms``: the last open frame before the closure);
  blinks starting before ``prompt + min_reaction`` do not count, the first counted blink must
  start by ``prompt + max_reaction`` and more than ``clear`` after any earlier blink of the face
  (so the tail of a burst under way at the prompt is no answer), each further one within
  ``max_interval`` of the previous,
  and no blink may start within ``hold`` after the last; the count must be exactly k; eyes
  closed for longer than ``max_closed`` at any time during the challenge fail it;
* an answer is granted only once the Gate has named the closed frame of each of its blinks
  as the challenged person (``checked`` blinks, or ``blink_checked`` events from background
  recognition), or failed after ``check_wait``: a print held open and swapped for a moment
  with someone's shut eyes makes blinks, and a queue of decoy faces could otherwise delay
  the check of who blinked past the hold;
* a failed, abandoned (face left) or face-swapped challenge counts as a failure of that
  identity; ``failures`` failures within ``window`` lock the identity out for ``cooldown``.
  A track that has never blinked (since it got its name) has made no guess: its "no blink",
  "eyes closed", "face left", stall and re-check swap are denied but not counted
  (``counted: false``), so a photo held up and taken away cannot lock its person out, and it
  is challenged again only once it blinks. A swap found on a blink's own closed frame (the
  Gate's ``identity_changed`` with ``blink``) always counts;
* a gap of more than ``max_gap_ms`` between frames during a challenge (a stalled stream)
  cancels it, denied ``stalled``, without counting a failure: blinks in the gap were never
  seen. Only ``failures - 1`` such cancels per identity per ``window`` go uncounted, so a
  jammed stream cannot buy unlimited fresh prompts;
* a re-recognition that names someone else (``identity_changed``) revokes a grant and aborts
  a challenge, and the new face starts from scratch;
* a grant lasts ``grant_ms`` or until the track is lost; after that the face must answer a
  new challenge. A photo of someone granted a moment ago is a new track and never blinks.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .types import Box, Event, EyeState, FaceResult, FrameResult, refuse_nan

log = logging.getLogger("blinkgate.door")

if TYPE_CHECKING:
    from .gate import Gate
    from .sources import Frame, FrameSource

# Access-log decisions and the reasons each can carry.
GRANTED, DENIED, REVOKED, EXPIRED = "granted", "denied", "revoked", "expired"
REASONS = {
    GRANTED: ("challenge_passed", "blink"),
    DENIED: ("unknown", "no_blink", "challenge_failed", "locked_out", "expired", "identity_changed", "stalled"),
    REVOKED: ("identity_changed", "locked_out"),
    EXPIRED: ("timeout", "lost"),
}


MAX_CHECKED = 16  # checked blink onsets kept per track (a long-lived track must not grow for ever)
UNKNOWN_SNAPSHOTS_PER_MIN = 10  # unknown faces logged with a snapshot per minute of source time
UNKNOWN_ROWS_PER_MIN = 60  # ... and logged at all
FROZEN_WARN_FRAMES = 50  # the same frame this many times in a row: say the source looks frozen


@dataclass(frozen=True)
class ChallengePolicy:
    """When the prompt comes and what counts as an answer. Times in ms on the source clock.

    The defaults keep the chance that a video whose blinks come as a Poisson process answers
    one challenge below 5 % at *every* blink rate (worst case 3.0 % near 15 blinks/min; see
    :func:`replay_pass_probability` and docs/door.md), while a person who follows the prompt
    has 1 s to start, up to 0.7 s between blinks, and then keeps the eyes open for 4 s. A video
    edited for the door and started as the face appears passes up to about 12 %
    (docs/door.md, "A video made for the door"); ``rounds=2`` squares that.
    """

    enabled: bool = True
    counts: tuple[int, ...] = (1, 2, 3)  # k is drawn uniformly from these
    delay_min_ms: float = 500.0  # prompt comes this long after the face is recognised, at least
    delay_max_ms: float = 6500.0  # ... and at most: wide, as a video can know when the face appeared
    min_reaction_ms: float = 200.0  # blinks starting sooner after the prompt are not answers
    max_reaction_ms: float = 1200.0  # the first blink must start by then
    max_interval_ms: float = 700.0  # onset to onset within the answer
    clear_ms: float = 700.0  # the first answer blink starts more than this long after any earlier blink
    hold_ms: float = 4000.0  # no blink may start this long after the last one
    settle_ms: float = 800.0  # wait for blinks still in progress before deciding (≥ max closure + 2 frames)
    max_closed_ms: float = 1000.0  # eyes closed longer than this during a challenge: not an answer
    check_wait_ms: float = 5000.0  # after the answer settles, wait this long for its blinks to be checked
    max_gap_ms: float = 1000.0  # a longer gap between frames mid-challenge (a stalled stream) cancels it
    rounds: int = 1  # challenges in a row to pass, each with its own delay and k: P(replay) ** rounds

    def __post_init__(self) -> None:
        refuse_nan(self, " of milliseconds")
        if not self.counts or any(int(k) != k or k < 1 for k in self.counts):
            raise ValueError(f"challenge counts must be positive integers, got {self.counts!r}")
        object.__setattr__(self, "counts", tuple(int(k) for k in self.counts))
        if not 0 <= self.delay_min_ms <= self.delay_max_ms:
            raise ValueError("need 0 <= delay_min <= delay_max")
        if self.clear_ms < 0:
            raise ValueError("clear must not be negative")
        if not 0 <= self.min_reaction_ms < self.max_reaction_ms:
            raise ValueError("need 0 <= min_reaction < max_reaction")
        if self.max_interval_ms <= 0 or self.hold_ms < self.max_interval_ms:
            raise ValueError("need 0 < max_interval <= hold")
        if self.settle_ms < 0 or self.max_closed_ms <= 0 or self.check_wait_ms < 0 or self.max_gap_ms <= 0:
            raise ValueError("settle and check_wait must not be negative, max_closed and max_gap must be positive")
        if int(self.rounds) != self.rounds or self.rounds < 1:
            raise ValueError(f"challenge rounds must be a positive integer, got {self.rounds!r}")

    def prompt(self, k: int, round_: int = 1) -> str:
        text = f"Blink {k} time{'s' if k != 1 else ''} now, then keep your eyes open"
        return f"{text} ({round_}/{self.rounds})" if self.rounds > 1 else text


@dataclass(frozen=True)
class LockoutPolicy:
    """``failures`` failed challenges of one identity within ``window_ms`` lock it out for
    ``cooldown_ms``; a lockout starting within ``escalate_ms`` of the end of the previous one
    lasts twice as long as that one, up to ``max_cooldown_ms``. ``failures=0`` disables it."""

    failures: int = 5
    window_ms: float = 180_000.0
    cooldown_ms: float = 600_000.0
    escalate_ms: float = 86_400_000.0  # a new lockout this soon after the last one lasts twice as long
    max_cooldown_ms: float = 86_400_000.0

    def __post_init__(self) -> None:
        refuse_nan(self, " of milliseconds")
        if self.failures < 0 or self.window_ms <= 0 or self.cooldown_ms < 0:
            raise ValueError("lockout failures must be >= 0, window > 0, cooldown >= 0")


@dataclass(frozen=True)
class DoorOptions:
    challenge: ChallengePolicy = field(default_factory=ChallengePolicy)
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    grant_ms: float = 10_000.0  # a door grant lasts this long on the source clock
    unknown_after_ms: float = 500.0  # log an unknown face once it has been tracked this long

    def __post_init__(self) -> None:
        refuse_nan(self, " of milliseconds")
        if self.grant_ms <= 0 or self.unknown_after_ms < 0:
            raise ValueError("grant_ms must be positive and unknown_after_ms not negative")


@dataclass(frozen=True)
class Decision:
    """One access decision, as it goes to the access log (``decision``, ``reason``) and, when
    granted, to the unlock actions."""

    time_ms: float
    track_id: int
    name: str | None
    decision: str  # granted | denied | revoked | expired
    reason: str
    box: Box
    distance: float | None = None
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "time_ms": round(self.time_ms, 1),
            "track": self.track_id,
            "name": self.name,
            "distance": None if self.distance is None else round(self.distance, 3),
            "box": [round(v, 1) for v in self.box],
            **self.detail,
        }


@dataclass(frozen=True)
class DoorFace:
    """One tracked face on one frame, as door mode sees it.

    ``state`` is one of ``pending`` (not recognised yet), ``unknown``, ``waiting`` (prompt
    comes soon), ``challenge`` (prompt shown: ``prompt``/``count``/``deadline_ms``),
    ``granted``, ``locked``.
    """

    face: FaceResult
    state: str
    granted: bool
    prompt: str | None = None
    count: int | None = None
    answered: int = 0  # blinks counted towards the challenge so far
    prompt_ms: float | None = None
    locked_until_ms: float | None = None

    @property
    def track_id(self) -> int:
        return self.face.track_id

    @property
    def name(self) -> str | None:
        return self.face.name


@dataclass(frozen=True)
class DoorResult:
    """The Gate's frame result plus the door's view: faces, door events, decisions."""

    frame: FrameResult
    faces: list[DoorFace]
    events: list[Event]  # door events only: challenge, door_granted, door_denied, ...
    decisions: list[Decision]

    def __iter__(self) -> Iterator[DoorFace]:
        return iter(self.faces)

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def granted(self) -> list[DoorFace]:
        return [f for f in self.faces if f.granted]

    @property
    def timestamp_ms(self) -> float:
        return self.frame.timestamp_ms


class _RNG(Protocol):
    def uniform(self, a: float, b: float) -> float: ...
    def choice(self, seq): ...


@dataclass
class _Track:
    id: int
    first_ms: float
    box: Box
    state: str = "pending"
    name: str | None = None
    distance: float | None = None
    prompt_ms: float | None = None  # waiting: when the prompt comes; challenge: when it came
    count: int = 0
    onsets: list[float] = field(default_factory=list)
    granted_until_ms: float | None = None
    logged_unknown: bool = False
    logged_lock_until: float | None = None
    closed_since: float | None = None  # first CLOSED reading since the last OPEN one
    open_since: float | None = None  # first OPEN reading of the current run of OPEN readings
    last_onset_ms: float = float("-inf")  # start of the latest blink, in any state
    rounds_passed: int = 0  # challenges passed in a row towards ChallengePolicy.rounds
    checked: set[float] = field(default_factory=set)  # onsets of blinks whose closed frame named this face

    def forget_blinks(self) -> None:
        self.last_onset_ms, self.checked = float("-inf"), set()

    @property
    def has_blinked(self) -> bool:
        """A track that never blinked has made no guess at a challenge (a photo, or no one trying)."""
        return self.last_onset_ms > float("-inf")

    @property
    def blink_checked(self) -> bool:
        """The latest blink's closed frame named this face (or no blink was seen: a door attached late)."""
        return not self.has_blinked or self.last_onset_ms in self.checked

    def remember_checked(self, onset: float) -> None:
        """Keep the onsets of the latest checked blinks: an answer has at most a few."""
        self.checked.add(onset)
        if len(self.checked) > MAX_CHECKED:
            self.checked.discard(min(self.checked))


class DoorLogic:
    """The per-track challenge state machine. Pure: feed it each ``FrameResult`` in order.

    ``rng`` draws the prompt delays and counts. The default is the operating system's
    randomness (``random.SystemRandom``): the prompt must be unpredictable. Pass a seeded
    ``random.Random`` only for tests and simulations.
    """

    def __init__(self, options: DoorOptions | None = None, rng: _RNG | None = None):
        self.options = options or DoorOptions()
        self.rng: _RNG = rng if rng is not None else random.SystemRandom()
        self._tracks: dict[int, _Track] = {}
        self._failures: dict[str, deque] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lockouts: dict[str, tuple[float, int]] = {}  # name -> (end of last lockout, escalation level)
        self._stalls: dict[str, deque] = defaultdict(deque)  # name -> times of uncounted stalled challenges
        self._last_frame_ms: float | None = None
        self._last_index = -1  # of the last frame: the visit's end (``end``) is reported on it

    # -- public state ------------------------------------------------------------------------

    def locked_until(self, name: str, now_ms: float) -> float | None:
        until = self._locked_until.get(name)
        return until if until is not None and now_ms < until else None

    def failures(self, name: str) -> int:
        return len(self._failures.get(name, ()))

    def seed_failures(self, name: str, times_ms: list[float]) -> float | None:
        """Replay earlier failures of ``name`` (source-clock ms, e.g. from the access log after
        a restart) through the lockout rule; returns when a lockout they cause ends, if any."""
        for t in sorted(times_ms):
            self._count_failure(name, t)
        return self._locked_until.get(name)

    def count_elsewhere(self, name: str, at_ms: float) -> float | None:
        """Count a failure of ``name`` that another process on the database made at ``at_ms``
        (this source's clock); returns the end of the lockout it starts, if it starts one."""
        return self._count_failure(name, at_ms)

    def _count_failure(self, name: str, now: float) -> float | None:
        """Count one failure; returns the end of the lockout it starts, if it starts one.

        Each lockout of the same identity within ``escalate_ms`` of the previous one lasts
        twice as long (capped at ``max_cooldown_ms``): a patient attacker gets five tries per
        10 min, then per 20 min, 40 min, …"""
        lock = self.options.lockout
        if lock.failures <= 0 or self.locked_until(name, now) is not None:
            return None
        times = self._failures[name]
        bisect.insort(times, now)  # in order: a failure counted elsewhere comes in late (count_elsewhere)
        while times and times[-1] - times[0] > lock.window_ms:
            times.popleft()
        if len(times) < lock.failures:
            return None
        times.clear()
        previous = self._lockouts.get(name)
        level = previous[1] + 1 if previous is not None and now - previous[0] <= lock.escalate_ms else 0
        # 2**level past 1023 is no float (OverflowError): the cap is reached long before 2**64
        cooldown = min(lock.cooldown_ms * 2 ** min(level, 64), max(lock.cooldown_ms, lock.max_cooldown_ms))
        self._lockouts[name] = (now + cooldown, level)
        self._locked_until[name] = now + cooldown
        return now + cooldown

    def clear(self, name: str) -> bool:
        """Lift ``name``'s lockout and forget its failures (``blinkgate unlock``); True if
        there was anything to clear. Its tracks are challenged afresh on their next frame."""
        found = any(name in d for d in (self._failures, self._locked_until, self._lockouts, self._stalls))
        for d in (self._failures, self._locked_until, self._lockouts, self._stalls):
            d.pop(name, None)
        return found

    def reset(self) -> None:
        """Forget all tracks (e.g. before another video). Lockouts and failures are kept."""
        self._tracks.clear()
        self._last_frame_ms = None

    # -- per frame ---------------------------------------------------------------------------

    def update(self, frame: FrameResult) -> DoorResult:
        now = frame.timestamp_ms
        events: list[Event] = []
        decisions: list[Decision] = []
        out = _Out(events, decisions)
        previous = self._last_frame_ms
        if previous is not None and now - previous > self.options.challenge.max_gap_ms:
            for track in list(self._tracks.values()):
                if track.state == "challenge":
                    self._stalled(track, now - previous, now, out)
        self._last_frame_ms, self._last_index = now, frame.index
        for ev in frame.events:
            track = self._tracks.get(ev.track_id)
            if ev.kind == "lost" and ev.detail.get("stalled") and track is not None and track.state == "challenge":
                # No frame came while the face was in view: the gap ended its track in the Gate, not
                # the face leaving. A stall shorter than max_gap_ms must not count where a longer one does not.
                self._stalled(track, 0.0 if previous is None else now - previous, now, out)
            self._on_event(ev, now, out)
        faces = []
        for face in frame.faces:
            track = self._tracks.get(face.track_id)
            if track is None:  # a track we never saw appear (e.g. logic attached late)
                track = self._tracks[face.track_id] = _Track(face.track_id, now, face.box, name=face.name)
                if face.name is not None:
                    self._arm(track, now, out)
            track.box = face.box
            if face.distance is not None:
                track.distance = face.distance
            self._tick(track, face, now, out)
            faces.append(self._view(track, face, now))
        return DoorResult(frame, faces, events, decisions)

    def end(self, now: float) -> DoorResult:
        """The visit ends (``verify``'s timeout or a grant, its window closed): a challenge under
        way is denied as if its face had left, counted if the face has blinked. Otherwise
        whoever can end a visit could drop every prompt whose count does not suit a replay.
        The track is kept, as after a failed answer: a face still there when frames come again
        (a kiosk's next visit) gets a new prompt after a new delay, and its blinks before the
        end still count against that prompt's clear rule (a track made afresh had forgotten
        them, and one made by a blink reported on the next frame had no name: "unknown").
        The result has no faces, and the events and decisions of a frame (a lockout included),
        so they are reported as every other frame's are."""
        out = _Out([], [])
        for track in list(self._tracks.values()):
            if track.state == "challenge":
                detail = {"why": "the visit ended before the answer", **self._answer_detail(track, now)}
                self._deny(track, now, out, "expired", detail, counted=track.has_blinked)
                if track.state == "challenge":  # not locked out by this failure
                    self._rearm(track, now, out)
        return DoorResult(FrameResult(self._last_index, now, [], []), [], out.events, out.decisions)

    # -- events ------------------------------------------------------------------------------

    def _on_event(self, ev: Event, now: float, out: _Out) -> None:
        track = self._tracks.get(ev.track_id)
        if ev.kind == "appeared" and track is not None:
            # The Gate gives an id once, until it is reset (Gate.reset or Gate.end, e.g. between
            # visitors): this is a new face, and must not inherit the old one's prompt or grant.
            self._lost(track, now, out)
            track = None
        if ev.kind == "appeared" or track is None:
            if ev.kind == "lost":
                return
            track = self._tracks.setdefault(ev.track_id, _Track(ev.track_id, now, ev.box))
        track.box = ev.box
        if ev.kind == "recognised":
            track.distance = ev.detail.get("distance", track.distance)
            if track.state == "pending" or (track.state == "unknown" and track.name is None):  # a late first name
                if track.state == "unknown":
                    track.forget_blinks()  # blinks of the face while it was unknown are not this name's
                track.name = ev.name
                if ev.name is None:
                    track.state = "unknown"
                else:
                    self._arm(track, now, out)
        elif ev.kind == "identity_changed":
            self._identity_changed(track, ev.name, now, out, blink=bool(ev.detail.get("blink")),
                                   unenrolled=bool(ev.detail.get("unenrolled")))
        elif ev.kind == "blink_checked":
            track.remember_checked(float(ev.detail["start_ms"]))
        elif ev.kind == "blink":
            onset = float(ev.detail.get("start_ms", now))
            if ev.detail.get("checked") is True:
                track.remember_checked(onset)
            previous, track.last_onset_ms = track.last_onset_ms, max(track.last_onset_ms, onset)
            if self.options.challenge.enabled and track.state == "challenge":
                self._answer(track, onset, previous, now, out)
            elif self.options.challenge.enabled and track.state == "waiting" and track.prompt_ms is None:
                self._arm(track, now, out)  # a face held back until it blinked (_rearm) blinked
        elif ev.kind == "lost":
            self._lost(track, now, out)

    def _identity_changed(self, track: _Track, new_name: str | None, now: float, out: _Out, blink: bool,
                          unenrolled: bool = False) -> None:
        """Someone else under the track. Mid-challenge it is a failure of the challenged name if
        the track has blinked, or if it was a blink's own closed frame that named someone else
        (``blink``: shut eyes spliced under a photo); a photo swapped for another without a
        blink has made no guess and is not counted. ``unenrolled``: the same face, whose name
        was just forgotten (``blinkgate forget``): denied or revoked, but no guess was wrong."""
        previous = track.name
        detail = {"previous": previous, "new": new_name, **({"unenrolled": True} if unenrolled else {})}
        if track.state == "granted":
            out.decide(track, now, REVOKED, "identity_changed", detail)
        elif track.state == "challenge":
            self._deny(track, now, out, "identity_changed", detail,
                       counted=(track.has_blinked or blink) and not unenrolled)
        track.name, track.onsets, track.count, track.granted_until_ms = new_name, [], 0, None
        track.logged_unknown, track.logged_lock_until = False, None
        track.forget_blinks()  # the new face has made no guess: an unknown's blink is not its own
        if new_name is None:
            track.state, track.first_ms = "unknown", now
        else:
            self._arm(track, now, out)

    def _lost(self, track: _Track, now: float, out: _Out) -> None:
        self._tracks.pop(track.id, None)
        if track.state == "challenge":
            detail = {"why": "face left before answering", **self._answer_detail(track, now)}
            self._deny(track, now, out, "expired", detail, counted=track.has_blinked)
        elif track.state == "granted":
            out.decide(track, now, EXPIRED, "lost")

    # -- timers ------------------------------------------------------------------------------

    def _tick(self, track: _Track, face: FaceResult, now: float, out: _Out) -> None:
        opts = self.options
        if track.state in ("pending", "unknown"):
            # A face whose first encoding is still being computed is not unknown yet: on a slow box
            # or behind a queue that takes longer than unknown_after_ms, and its name must count.
            if (not track.logged_unknown and now - track.first_ms >= opts.unknown_after_ms and track.name is None
                    and not face.recognising):
                track.logged_unknown, track.state = True, "unknown"
                out.decide(track, now, DENIED, "unknown")
        elif track.state == "locked":
            assert track.name is not None
            if self.locked_until(track.name, now) is None:
                self._arm(track, now, out)
        elif track.state == "waiting":
            assert track.name is not None
            if self._check_locked(track, now, out):
                return
            if not opts.challenge.enabled:
                # The Gate's blink-only grant, once the latest blink's closed frame is named too: a
                # blink stays live until its check comes back, and a grant run out would otherwise
                # come again at once on a blink not yet checked (someone else's shut eyes).
                if face.granted and face.name == track.name and track.blink_checked:
                    self._grant(track, now, out, "blink")
            elif track.prompt_ms is not None and now >= track.prompt_ms:
                self._issue(track, now, out)
        elif track.state == "challenge":
            state = face.eyes.state
            if state is EyeState.OPEN:
                track.closed_since = None
                track.open_since = now if track.open_since is None else track.open_since
            else:
                track.open_since = None
                if state is EyeState.CLOSED and track.closed_since is None:
                    track.closed_since = now
            if track.closed_since is not None and now - track.closed_since > self.options.challenge.max_closed_ms:
                self._fail(track, now, out, "eyes closed", None)
            else:
                self._check_answer(track, now, out)
        elif track.state == "granted":
            if track.granted_until_ms is not None and now > track.granted_until_ms:
                out.decide(track, now, EXPIRED, "timeout")
                self._arm(track, now, out)

    def _arm(self, track: _Track, now: float, out: _Out, next_round: bool = False) -> None:
        """A recognised face with nothing going on: schedule its next challenge (the first
        of a new series of ``rounds``, unless ``next_round``)."""
        track.onsets, track.count, track.granted_until_ms = [], 0, None
        track.rounds_passed = track.rounds_passed if next_round else 0
        if self._check_locked(track, now, out):
            return
        c = self.options.challenge
        track.state = "waiting"
        track.prompt_ms = now + self.rng.uniform(c.delay_min_ms, c.delay_max_ms) if c.enabled else None

    def _check_locked(self, track: _Track, now: float, out: _Out) -> bool:
        assert track.name is not None
        until = self.locked_until(track.name, now)
        if until is None:
            return False
        track.state, track.prompt_ms = "locked", None
        if track.logged_lock_until != until:
            track.logged_lock_until = until
            out.decide(track, now, DENIED, "locked_out", {"locked_until_ms": round(until, 1)})
        return True

    def _issue(self, track: _Track, now: float, out: _Out) -> None:
        c = self.options.challenge
        track.state, track.prompt_ms, track.onsets, track.closed_since = "challenge", now, [], None
        track.open_since = None
        track.checked = {t for t in track.checked if t >= now}  # earlier blinks are no answers
        track.count = int(self.rng.choice(c.counts))
        detail = {
            "count": track.count,
            "prompt": c.prompt(track.count, track.rounds_passed + 1),
            "answer_from_ms": round(now + c.min_reaction_ms, 1),
            "first_blink_by_ms": round(now + c.max_reaction_ms, 1),
            "round": track.rounds_passed + 1,
            "rounds": c.rounds,
        }
        out.events.append(Event("challenge", now, track.id, track.name, track.box, detail))

    # -- answers -----------------------------------------------------------------------------

    def _answer(self, track: _Track, onset: float, previous: float, now: float, out: _Out) -> None:
        """A blink starting at ``onset`` while ``track`` is challenged; the face's blink before
        it started at ``previous``."""
        c = self.options.challenge
        assert track.prompt_ms is not None
        if onset < track.prompt_ms + c.min_reaction_ms:
            return  # started before the prompt (or too soon to be a reaction to it): not an answer
        if not track.onsets:
            if onset > track.prompt_ms + c.max_reaction_ms:
                self._fail(track, now, out, "late", onset)
            elif onset - previous <= c.clear_ms:
                # The rest of a burst that began before the prompt would answer k = 1, 2 or 3
                # depending on where the prompt fell, whatever k is (docs/door.md).
                self._fail(track, now, out, "blink just before", onset)
            else:
                track.onsets.append(onset)
            return
        gap = onset - track.onsets[-1]
        if gap > c.hold_ms:
            return  # after the hold: the answer is already complete (decided on the next tick)
        if gap > c.max_interval_ms:
            self._fail(track, now, out, "blink during hold" if len(track.onsets) >= track.count else "too slow", onset)
            return
        track.onsets.append(onset)
        if len(track.onsets) > track.count:
            self._fail(track, now, out, "too many", onset)

    def _settled(self, track: _Track, deadline: float, now: float) -> bool:
        """True once no blink starting by ``deadline`` can still be reported: ``settle_ms``
        after it, or as soon as the eyes have read open on every frame of the last
        ``settle_ms`` (a blink still in progress would show a non-open frame there)."""
        c = self.options.challenge
        if now >= deadline + c.settle_ms:
            return True
        return now > deadline and track.open_since is not None and track.open_since <= now - c.settle_ms

    def _check_answer(self, track: _Track, now: float, out: _Out) -> None:
        c = self.options.challenge
        assert track.prompt_ms is not None
        if not track.onsets:
            if self._settled(track, track.prompt_ms + c.max_reaction_ms, now):
                self._fail(track, now, out, "no blink", None)
            return
        # Judged on a frame read open: a blink that reopens with an unreadable frame is reported a
        # frame later, which at 5 fps is past the settle time, and its start in the hold unseen.
        if self._settled(track, track.onsets[-1] + c.hold_ms, now) and track.open_since is not None:
            if len(track.onsets) == track.count and not track.checked.issuperset(track.onsets):
                if now >= track.onsets[-1] + c.hold_ms + c.settle_ms + c.check_wait_ms:
                    self._fail(track, now, out, "blinks not checked", None)
                return  # the Gate has not yet named the closed frame of every answer blink
            if len(track.onsets) == track.count and track.rounds_passed + 1 < c.rounds:
                track.rounds_passed += 1
                out.events.append(Event("challenge_passed", now, track.id, track.name, track.box,
                                        {"round": track.rounds_passed, "rounds": c.rounds}))
                self._arm(track, now, out, next_round=True)
            elif len(track.onsets) == track.count:
                self._grant(track, now, out, "challenge_passed")
            else:
                self._fail(track, now, out, "too few", None)

    def _answer_detail(self, track: _Track, now: float) -> dict:
        base = track.prompt_ms if track.prompt_ms is not None else now
        return {"count": track.count, "blinks": len(track.onsets),
                "onsets_ms": [round(t - base, 1) for t in track.onsets]}

    def _fail(self, track: _Track, now: float, out: _Out, why: str, onset: float | None) -> None:
        detail = {"why": why, **self._answer_detail(track, now)}
        if onset is not None and track.prompt_ms is not None:
            detail["offending_onset_ms"] = round(onset - track.prompt_ms, 1)
        reason = "no_blink" if why == "no blink" else "challenge_failed"
        # only "no blink" or "eyes closed" can fail a track that never blinked: no guess to count
        self._deny(track, now, out, reason, detail, counted=track.has_blinked)
        if track.state == "challenge":  # not locked out by this failure: try again after a delay
            self._rearm(track, now, out)

    def _deny(self, track: _Track, now: float, out: _Out, reason: str, detail: dict, counted: bool) -> None:
        """Deny ``track``'s challenge; a failure of its name only if ``counted`` (it made a guess)."""
        out.decide(track, now, DENIED, reason, detail if counted else {**detail, "counted": False})
        if counted and track.name is not None:
            self._failed(track.name, now, track, out)

    def _rearm(self, track: _Track, now: float, out: _Out) -> None:
        """After a failed challenge: another after a new delay; for a face that has never blinked
        (a photo, a poster), only once it blinks, or it would be challenged and logged every few
        seconds for as long as it hangs there."""
        self._arm(track, now, out)
        if not track.has_blinked and track.state == "waiting":
            track.prompt_ms = None  # see _on_event: a blink schedules the prompt

    def _stalled(self, track: _Track, gap: float, now: float, out: _Out) -> None:
        """Frames stopped for ``gap`` ms mid-challenge: blinks may have gone unseen. Cancel it
        uncounted, unless this identity has had its share of stalls in the lockout window."""
        assert track.name is not None
        lock = self.options.lockout
        stalls = self._stalls[track.name]
        while stalls and now - stalls[0] > lock.window_ms:
            stalls.popleft()
        # A track that never blinked made no guess: not counted, and it uses up no one's quota.
        counted = track.has_blinked and lock.failures > 0 and len(stalls) >= max(0, lock.failures - 1)
        if track.has_blinked and not counted:
            stalls.append(now)
        detail = {"why": f"no frames for {gap:.0f} ms", "counted": counted, **self._answer_detail(track, now)}
        out.decide(track, now, DENIED, "stalled", detail)
        if counted:
            self._failed(track.name, now, track, out)
        if track.state == "challenge":
            self._rearm(track, now, out)

    def _failed(self, name: str, now: float, track: _Track, out: _Out) -> None:
        """Count a failure of ``name``; lock it out when there are too many."""
        lock = self.options.lockout
        until = self._count_failure(name, now)
        if until is not None:
            out.events.append(Event("lockout", now, track.id, name, track.box,
                                    {"failures": lock.failures, "window_ms": lock.window_ms, "locked_until_ms": round(until, 1),
                                     "cooldown_ms": round(until - now, 1)}))
            for other in self._tracks.values():
                if other.name == name and other.state in ("waiting", "challenge", "granted"):
                    if other.state == "challenge" and other is not track:
                        out.decide(other, now, DENIED, "expired", {"why": "identity locked out", **self._answer_detail(other, now)})
                    if other.state == "granted":
                        out.decide(other, now, REVOKED, "locked_out")
                    self._check_locked(other, now, out)
            if track.id not in self._tracks or self._tracks[track.id] is not track:
                # the failing track is gone (lost, or its identity changed): log the lockout anyway
                out.decide(track, now, DENIED, "locked_out", {"locked_until_ms": round(until, 1)}, name=name)

    def _grant(self, track: _Track, now: float, out: _Out, reason: str) -> None:
        assert track.name is not None
        if self._check_locked(track, now, out):
            return
        detail = self._answer_detail(track, now) if reason == "challenge_passed" else {}
        track.state, track.granted_until_ms = "granted", now + self.options.grant_ms
        out.decide(track, now, GRANTED, reason, detail)

    # -- views -------------------------------------------------------------------------------

    def _view(self, track: _Track, face: FaceResult, now: float) -> DoorFace:
        c = self.options.challenge
        challenged = track.state == "challenge"
        return DoorFace(
            face=face,
            state=track.state,
            granted=track.state == "granted",
            prompt=c.prompt(track.count, track.rounds_passed + 1) if challenged else None,
            count=track.count if challenged else None,
            answered=len(track.onsets) if challenged else 0,
            prompt_ms=track.prompt_ms if challenged else None,
            locked_until_ms=self.locked_until(track.name, now) if track.name else None,
        )


class _Out:
    """Collects one frame's door events and decisions; every decision is also an event."""

    def __init__(self, events: list[Event], decisions: list[Decision]):
        self.events, self.decisions = events, decisions

    def decide(self, track: _Track, now: float, decision: str, reason: str, detail: dict | None = None,
               name: str | None = None) -> None:
        assert reason in REASONS[decision], (decision, reason)
        d = Decision(now, track.id, name if name is not None else track.name, decision, reason, track.box,
                     track.distance, dict(detail or {}))
        self.decisions.append(d)
        self.events.append(Event(f"door_{decision}", now, track.id, d.name, track.box, {"reason": reason, **d.detail}))


# -- the math ------------------------------------------------------------------------------------


def replay_pass_probability(policy: ChallengePolicy, blinks_per_min: float) -> float:
    """Chance that a video whose blinks start as a Poisson process at ``blinks_per_min``
    answers one challenge (all ``rounds`` of it), averaged over the uniformly drawn count k.

    With λ the rate per ms, R = max_reaction − min_reaction, c = clear, g = max_interval,
    h = hold: the first counted blink must start in a window of length R, x after its start,
    with no blink in the c before it (blinks before the window are Poisson too: e^(−λ(c − x))
    while x < c); each of the k − 1 further ones within g of the previous (1 − e^(−λg) each, by
    the Poisson process's memorylessness); and none may start in the h after the last (e^(−λh)):

        P(first) = ∫_0^R λ e^(−λx) e^(−λ·max(0, c − x)) dx
                 = λ·min(R, c)·e^(−λc) + max(0, e^(−λc) − e^(−λR))
        P(pass | k) = P(first) · (1 − e^(−λg))^(k−1) · e^(−λh)

    Real blinking has a refractory pause after each blink, which makes quick pairs rarer than
    Poisson: the Poisson figure is the pessimistic one for k ≥ 2.
    """
    lam = blinks_per_min / 60_000.0
    window, clear = policy.max_reaction_ms - policy.min_reaction_ms, policy.clear_ms
    first = lam * min(window, clear) * math.exp(-lam * clear) + max(0.0, math.exp(-lam * clear) - math.exp(-lam * window))
    more = 1.0 - math.exp(-lam * policy.max_interval_ms)
    quiet = math.exp(-lam * policy.hold_ms)
    one = sum(first * more ** (k - 1) * quiet for k in policy.counts) / len(policy.counts)
    return one ** policy.rounds  # each round starts after a hold: independent by memorylessness


def worst_case_replay_probability(policy: ChallengePolicy, max_rate: float = 120.0) -> tuple[float, float]:
    """(worst pass probability, the blink rate per minute where it happens), rates 0.5–max."""
    rates = np.arange(0.5, max_rate + 0.01, 0.5)
    probs = [replay_pass_probability(policy, r) for r in rates]
    i = int(np.argmax(probs))
    return float(probs[i]), float(rates[i])


# -- the door: gate + logic + log + actions -------------------------------------------------------


def face_snapshot(image: np.ndarray, box: Box, margin: float = 0.25, max_side: int = 256) -> np.ndarray | None:
    """A copy of the face in ``box`` (plus ``margin`` each side), at most ``max_side`` px."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    x1, y1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    x2, y2 = min(w, int(math.ceil(x2 + mx))), min(h, int(math.ceil(y2 + my)))
    if x2 <= x1 or y2 <= y1:
        return None
    crop = image[y1:y2, x1:x2]
    scale = max_side / max(crop.shape[:2])
    if scale < 1.0:
        import cv2

        return cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return crop.copy()


class Door:
    """A Gate with challenge-response, lockout, an access log and unlock actions.

    Example::

        from blinkgate import Gate, default_db_path, open_source
        from blinkgate.door import Door

        with Door(Gate(db=default_db_path())) as door:
            for frame in open_source(0):
                result = door.process(frame.image, frame.timestamp_ms)
                for face in result:
                    if face.prompt:
                        show(face.prompt)          # "Blink 2 times now, then keep your eyes open"
                for d in result.decisions:
                    print(d.decision, d.reason, d.name)

    ``access_log`` (an :class:`~blinkgate.accesslog.AccessLogWriter`) receives every decision
    with a face snapshot; ``actions`` (an :class:`~blinkgate.actions.ActionRunner`) every grant.
    Both work on their own threads; :meth:`process` only queues.

    Unknown faces, locked-out ones, and denials that count towards no lockout (a face that never
    blinked) are logged at a bounded rate: a sheet of strangers' faces, or a photo of a resident, moved in
    front of the camera makes a new track a second, and would otherwise fill the disk with rows
    and snapshots (which also stops the log from recording the failures a lockout needs). Past
    ``UNKNOWN_SNAPSHOTS_PER_MIN`` their rows have no snapshot, past ``UNKNOWN_ROWS_PER_MIN`` no
    row; ``unlogged_unknown`` counts those, and a warning says so once a minute.
    """

    def __init__(self, gate: Gate, options: DoorOptions | None = None, *, rng: _RNG | None = None,
                 access_log=None, actions=None, snapshots: bool = True, source: str = ""):
        self.gate = gate
        self.logic = DoorLogic(options, rng)
        self.access_log = access_log
        self.actions = actions
        self.snapshots = snapshots
        self.source = source
        self._take_cleared = getattr(access_log, "take_cleared", None)  # an AccessLogWriter's unlock poll
        self._take_people = getattr(access_log, "take_people", None)  # ... and its enrolment poll
        self._take_failures = getattr(access_log, "take_failures", None)  # ... and other processes' failures
        self._unknown_ms: deque[float] = deque()  # source times of the unknown rows of the last minute
        self._unknown_snap_ms: deque[float] = deque()  # ... and of those with a snapshot
        self.unlogged_unknown = 0
        self._warned_unknown_ms = float("-inf")
        self._last: tuple[np.ndarray, float] | None = None  # the last frame and its time, for end_visit

    @property
    def options(self) -> DoorOptions:
        return self.logic.options

    def process(self, image: np.ndarray, timestamp_ms: float) -> DoorResult:
        if self._take_cleared is not None:
            for name in self._take_cleared():  # `blinkgate unlock NAME` while we run
                if self.logic.clear(name):
                    log.warning("lockout of %s cleared (blinkgate unlock)", name)
        if self._take_people is not None and (people := self._take_people()) is not None:
            from .gate import reload_people  # here: importing door loads neither the Gate nor OpenCV

            reload_people(self.gate, *people)  # `blinkgate enroll` or `forget` while we run
        if self._take_failures is not None:
            self._count_elsewhere(self._take_failures(), timestamp_ms)
        result = self.logic.update(self.gate.process(image, timestamp_ms))
        for decision in result.decisions:
            if self.access_log is not None:
                self._log(decision, image, timestamp_ms)
        if self.actions is not None:
            for decision in standing_grants(result.decisions):
                self.actions.fire(decision)
        self._last = (image, timestamp_ms)
        return result

    def end_visit(self) -> DoorResult | None:
        """End a visit (``DoorLogic.end``), logging its decisions with the last frame's
        snapshot; None if no frame came."""
        if self._last is None:
            return None
        image, now = self._last
        result = self.logic.end(now)
        if self.access_log is not None:
            for decision in result.decisions:
                self._log(decision, image, now)
        return result

    def _count_elsewhere(self, failures: list[tuple[str, float]], now_ms: float) -> None:
        """Count failures another process on the database logged (a `verify`, a second door),
        at their age on this source's clock: the lockout limits guesses at a name, wherever made."""
        wall = time.time()
        for name, at in failures:
            if self.logic.count_elsewhere(name, now_ms - (wall - at) * 1000.0) is not None:
                log.warning("%s is locked out after failed challenges, some made by another process on "
                            "this database", name)

    def _log(self, decision: Decision, image: np.ndarray, now: float) -> None:
        snapshot = self.snapshots
        # Rows no lockout counts are rate-limited: a sheet of faces (strangers', or a locked-out
        # resident's) must not fill the disk and cost the failures that do count.
        if decision.reason in ("unknown", "locked_out") or decision.detail.get("counted") is False:
            for times in (self._unknown_ms, self._unknown_snap_ms):
                while times and now - times[0] > 60_000.0:
                    times.popleft()
            if len(self._unknown_ms) >= UNKNOWN_ROWS_PER_MIN:
                self.unlogged_unknown += 1
                if now - self._warned_unknown_ms > 60_000.0:
                    self._warned_unknown_ms = now
                    log.warning("more than %d unknown, locked-out or uncounted faces a minute: not all are logged (%d so far)",
                                UNKNOWN_ROWS_PER_MIN, self.unlogged_unknown)
                return
            self._unknown_ms.append(now)
            snapshot = snapshot and len(self._unknown_snap_ms) < UNKNOWN_SNAPSHOTS_PER_MIN
            if snapshot:
                self._unknown_snap_ms.append(now)
        crop = face_snapshot(image, decision.box) if snapshot else None
        self.access_log.record(decision, snapshot=crop, source=self.source)

    def run(self, source: FrameSource) -> Iterator[tuple[Frame, DoorResult]]:
        """Process each frame of ``source``, except exact repeats of the one before: a frozen
        stream repeating its last picture shows nothing new, and the challenge must see the
        gap (``stalled``) rather than a face that ignored its prompt."""
        previous, repeats = None, 0
        for frame in source:
            image = frame.image
            if (previous is not None and image.shape == previous.shape
                    and np.array_equal(image[::16, ::16], previous[::16, ::16])  # cheap, and rarely equal
                    and np.array_equal(image, previous)):
                repeats += 1
                if repeats == FROZEN_WARN_FRAMES:
                    log.warning("%s repeats the same frame: frozen? (frames are skipped until it changes)",
                                self.source or "the source")
                continue
            previous, repeats = image.copy(), 0
            yield frame, self.process(frame.image, frame.timestamp_ms)

    def reset(self) -> None:
        self.gate.reset()
        self.logic.reset()
        self._last = None

    def close(self) -> None:
        """Close the gate; drain and stop the access log and the actions."""
        try:
            self.gate.close()
        finally:
            for part in (self.actions, self.access_log):
                if part is not None:
                    part.close()

    def __enter__(self) -> Door:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def standing_grants(decisions: list[Decision]) -> list[Decision]:
    """The grants of one frame's decisions that no later decision of the same track takes back.
    One frame can grant a face and then revoke it: another face with the same name fails its
    challenge on that frame and locks the name out. The lock wins: no unlock, no `verify` pass."""
    return [d for i, d in enumerate(decisions)
            if d.decision == GRANTED and not any(e.track_id == d.track_id for e in decisions[i + 1:])]


# The Gate's grant and its end. Its `granted` means only "blinked and named", which a phone
# replaying a video does too: beside the door's own decisions, a script watching for "granted"
# would open for a replay the door denied. The door's decisions (door_granted, ...) replace them.
GATE_GRANT_EVENTS = frozenset({"granted", "expired"})


def door_events(result: DoorResult) -> list[Event]:
    """The events the door reports (``--events``, the browser view) for one result: the Gate's
    (appeared, recognised, blink, lost, ...) without its grant-level ones, then the door's,
    without a ``door_granted`` the same frame took back (``standing_grants``): a script opening
    on it opened for a name locked out on that frame, which no action and no `verify` let in."""
    standing = {d.track_id for d in standing_grants(result.decisions)}
    return [ev for ev in result.frame.events if ev.kind not in GATE_GRANT_EVENTS] + [
        ev for ev in result.events if ev.kind != "door_granted" or ev.track_id in standing]


def door_faces_for_drawing(result: DoorResult) -> FrameResult:
    """The Gate's frame result with ``live``/``granted`` replaced by the door's decision, for
    drawing: in door mode a face is green only when the door grants it."""
    faces = [replace(f.face, granted=f.granted, live=f.granted) for f in result.faces]
    return replace(result.frame, faces=faces)
