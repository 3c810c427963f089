"""Unlock actions: run a command, POST a webhook, publish to MQTT — never in the frame loop.

:class:`ActionRunner` takes granted :class:`~blinkgate.door.Decision` s from the video loop.
``fire`` only checks the per-person cool-down and puts the grant on each action's bounded
queue (``put_nowait``); every action has its own worker thread, so a hung relay script or an
unreachable webhook never delays a frame, nor the other actions. A door that opens late is
worse than one that skips an opening, so when a queue is full the grant is dropped for that
action, and a grant that waited longer than ``max_age_s`` (5 s) behind a slow one is dropped
when its turn comes; both are logged. A webhook stops retrying at that age too.

Security notes:

* ``CommandAction`` never uses a shell. The command line is split once with :func:`shlex.split`
  and the placeholders ``{name}``, ``{track}``, ``{time_ms}``, ``{distance}`` are substituted
  inside each argument, so a person's name (whatever characters it holds) is always exactly
  one argument and can never add pipes or commands. A name is one argument, but one that
  starts with ``-`` would still read as an option, so an argument that becomes an option only
  through a placeholder is refused (enrolment refuses such names too). A program that cannot
  be started is refused when the action is built, at the door's start. On a timeout the
  command's whole process group is killed, so a wrapper script cannot leave a child holding
  the relay.
* ``WebhookAction`` accepts only http(s) URLs and signs each body with HMAC-SHA256:
  ``X-Blinkgate-Signature: sha256=<hex of HMAC(secret, timestamp + "." + body)>`` and
  ``X-Blinkgate-Timestamp: <unix seconds of the grant>``. The timestamp is the grant's, not the
  sending's, so a receiver that refuses old timestamps also refuses an unlock that a stalled
  network delivered late. Receivers should check it with a constant-time comparison. Every message has a unique ``id`` (retries repeat it)
  so a receiver can drop duplicates.
* MQTT messages are not retained: a broker restart must not replay an unlock.
"""

from __future__ import annotations

import hashlib
import http.client
import hmac
import json
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import BlinkgateError

log = logging.getLogger("blinkgate.actions")

PLACEHOLDERS = ("name", "track", "time_ms", "distance")
MAX_GRANT_AGE_S = 5.0  # a grant not started (or a webhook not delivered) by then is dropped: too late
SIGNATURE_HEADER = "X-Blinkgate-Signature"
TIMESTAMP_HEADER = "X-Blinkgate-Timestamp"


@dataclass(frozen=True)
class Grant:
    """What an action is told about one opening."""

    name: str
    track: int
    time_ms: float
    distance: float | None
    source: str = ""
    id: str = ""
    wall_time: str = ""
    unix_time: float = 0.0  # when it was granted (0: now), for the webhook's signed timestamp
    queued_at: float | None = None  # time.monotonic() when it was queued, to drop stale grants

    def payload(self) -> dict:
        return {
            "event": "granted",
            "id": self.id,
            "name": self.name,
            "track": self.track,
            "time_ms": round(self.time_ms, 1),
            "distance": None if self.distance is None else round(self.distance, 3),
            "source": self.source,
            "wall_time": self.wall_time,
            "unix_time": round(self.unix_time, 3),  # the grant's; a relay should refuse an old one
        }


class Action:
    """One way of opening the door. ``run`` is called on the action's own worker thread."""

    name = "action"

    def run(self, grant: Grant) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# -- command -----------------------------------------------------------------------------------


# Words a shell would read as a pipe, a redirection or a list. Without a shell they are plain
# arguments: `open-door {name} | logger` runs open-door with '|' and 'logger' as arguments.
SHELL_OPERATORS = frozenset({"|", ">", ">>", "<", ";", "&&", "||", "&"})


def check_program(program: str) -> None:
    """Refuse, with :class:`BlinkgateError`, a program the command cannot start: found as
    ``subprocess`` finds it (a path as given, a bare name on ``$PATH``) and executable. Checked
    at start: otherwise the door started fine and the error came at the first grant, with
    someone waiting at the door."""
    if "{" in program:
        return  # a placeholder in it: which program is known only at a grant
    found = shutil.which(program)
    if found is not None:
        why = _script_problem(found)
        if why:
            raise BlinkgateError(f"--on-grant program {program} {why}")
        return
    if not os.path.dirname(program):
        why = "is not on PATH (give its full path; a service's PATH is short)"
    elif not os.path.exists(program):
        why = "does not exist"
    elif os.path.isdir(program):
        why = "is a directory"
    else:
        why = f"is not executable (chmod +x {shlex.quote(program)})"
    raise BlinkgateError(f"--on-grant program {program} {why}")


def _script_problem(path: str) -> str:
    """Why the kernel cannot start the executable file ``path`` as a script, "" if it can (or it
    is not a script). Without a shell a script needs its ``#!`` line, and that line's interpreter:
    both failed only at the first grant ("Exec format error", "No such file or directory")."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return ""  # unreadable: only the kernel knows (a binary may be execute-only)
    if not head.startswith(b"#!"):
        if head and not head.startswith(b"\x7fELF") and b"\0" not in head:
            return "is a script without a #! line: no shell runs it (make #!/bin/sh its first line)"
        return ""
    line = head[2:].split(b"\n", 1)[0]
    if line.endswith(b"\r"):  # the kernel reads the \r as part of the interpreter's name
        return "has Windows line ends (CRLF): convert it (dos2unix, or sed -i 's/\\r$//')"
    words = line.decode("utf-8", "replace").replace("\t", " ").split()
    if not words:
        return "has an empty #! line"
    interpreter = words[0]
    if not os.path.isfile(interpreter) or not os.access(interpreter, os.X_OK):
        return f"names an interpreter that cannot be run: #!{interpreter}"
    # `#!/usr/bin/env python3`: env finds the program on PATH, the door's own
    if os.path.basename(interpreter) == "env" and len(words) > 1 and not words[1].startswith("-"):
        if len(words) > 2:  # Linux hands env the rest of the line as one word: "python3 -u"
            return f"passes {' '.join(words[1:])!r} to env as one program name (use #!{interpreter} -S ...)"
        if shutil.which(words[1]) is None:
            return f"runs {words[1]} through env, and {words[1]} is not on PATH"
    return ""


def warn_shell_operators(argv: list[str]) -> None:
    """Say, once at start, that a pipe or a redirection in the command does nothing: the
    command runs without a shell, so they are passed to the program as arguments."""
    found = list(dict.fromkeys(word for word in argv if word in SHELL_OPERATORS))
    if found:
        log.warning("--on-grant command has %s: no shell is used, so %s passed to %s as %s; put the "
                    "pipeline or redirection in a script and give the script to --on-grant",
                    " ".join(repr(w) for w in found), "they are" if len(found) > 1 else "it is", argv[0],
                    "arguments" if len(found) > 1 else "an argument")


def parse_command(template: str) -> list[str]:
    """``template`` split as :class:`CommandAction` runs it, its program checked
    (:func:`check_program`); :class:`BlinkgateError` if it cannot be run."""
    try:
        argv = shlex.split(template)
    except ValueError as err:
        raise BlinkgateError(f"--on-grant command cannot be parsed: {err}") from err
    if not argv:
        raise BlinkgateError("--on-grant command is empty")
    check_program(argv[0])
    return argv


_PLACEHOLDER = re.compile(r"\{(name|track|time_ms|distance)\}")


class CommandAction(Action):
    """Run ``template`` (e.g. ``"/usr/local/bin/open-door {name} {track}"``) without a shell.
    A command that cannot be run is refused here, at start (:func:`parse_command`)."""

    name = "command"

    def __init__(self, template: str, timeout_s: float = 10.0):
        self.argv = parse_command(template)
        warn_shell_operators(self.argv)
        self.timeout_s = timeout_s
        self._running: subprocess.Popen | None = None  # for close: the door's exit ends its timeout too

    def command(self, grant: Grant) -> list[str]:
        """The argv for ``grant``; :class:`BlinkgateError` if a placeholder would make an option."""
        values = {
            "name": grant.name,
            "track": str(grant.track),
            "time_ms": f"{grant.time_ms:.0f}",
            "distance": "" if grant.distance is None else f"{grant.distance:.3f}",
        }
        out = []
        for template in self.argv:
            # One pass: a name holding "{track}" stays as typed, not expanded in turn.
            arg = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
            if arg.startswith("-") and not template.startswith("-"):
                raise BlinkgateError(f"on-grant argument {arg[:40]!r} would start with '-' (an option)")
            out.append(arg)
        return out

    def run(self, grant: Grant) -> None:
        try:
            argv = self.command(grant)
        except BlinkgateError as err:
            log.warning("on-grant command not run for %r: %s", grant.name[:40], err)
            return
        # Output goes to a file, not a pipe held in memory: a chatty script must not grow the door.
        with tempfile.TemporaryFile() as stderr:
            try:
                # its own session, so a timeout can kill the whole group, not only the first process
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                        start_new_session=True)
            except OSError as err:
                log.warning("on-grant command failed to start: %s (%s)", argv[0], err.strerror or err)
                return
            self._running = proc
            try:
                proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                log.warning("on-grant command timed out after %.0f s: %s", self.timeout_s, argv[0])
                return
            finally:
                self._running = None
            if proc.returncode != 0:
                log.warning("on-grant command exited with %d: %s", proc.returncode, _last_line(stderr)[:200])
            else:
                log.info("on-grant command done for %s", grant.name)

    def close(self) -> None:
        """Kill a command still running (the runner waited for it first): in its own session it
        outlived the door, past its timeout, holding the relay for as long as it hung."""
        proc = self._running
        if proc is not None and proc.poll() is None:
            log.warning("on-grant command still running as the door stops: killed (%s)", self.argv[0])
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _last_line(f) -> str:
    """The last non-empty line of the last 4 KiB of an open binary file."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 4096))
    lines = f.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc``'s process group and reap it, without waiting on pipes a child may hold."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


# -- webhook -----------------------------------------------------------------------------------


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Blinkgate-Signature`` value for ``body`` sent at ``timestamp``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, timestamp: str, body: bytes, signature: str, max_age_s: float = 30.0,
           now: float | None = None) -> bool:
    """Check a signature as a receiver should: constant-time, and not older than ``max_age_s``
    (the timestamp is the grant's: an unlock delivered later than that is refused; the two
    clocks must agree, e.g. both run NTP)."""
    try:
        age = (time.time() if now is None else now) - float(timestamp)
    except ValueError:
        return False
    if abs(age) > max_age_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookAction(Action):
    """POST the grant as JSON to ``url``, signed with ``secret`` if given.

    Connection errors, timeouts and 5xx answers are retried ``retries`` times with
    exponential back-off (0.5 s, 1 s, 2 s, …); a 4xx answer is not retried.
    """

    name = "webhook"

    def __init__(self, url: str, secret: str | None = None, timeout_s: float = 3.0, retries: int = 2,
                 backoff_s: float = 0.5, max_age_s: float = MAX_GRANT_AGE_S):
        check_webhook_url(url)
        if retries < 0 or timeout_s <= 0:
            raise BlinkgateError("webhook retries must be >= 0 and timeout > 0")
        self.url, self.secret, self.timeout_s, self.retries, self.backoff_s = url, secret, timeout_s, retries, backoff_s
        self.max_age_s = max_age_s
        # Never follow redirects: a signed unlock must go where it was configured to go.
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(self, grant: Grant) -> urllib.request.Request:
        body = json.dumps(grant.payload(), separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "blinkgate"}
        if self.secret:
            ts = str(int(grant.unix_time or time.time()))
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def _post(self, req: urllib.request.Request) -> int:
        """Send ``req`` and return its HTTP status, raising as urllib does, within ``timeout_s``
        in all. urllib's timeout is per socket operation: a receiver that sent its headers a byte
        a second held the webhook's worker for hours, and every later grant was dropped as too
        late. Past the timeout the send is left to its own thread, whose socket goes when the
        receiver lets go."""
        answer: list = []

        def send() -> None:
            try:
                # The status line says it was delivered; the body is not read. A receiver that
                # answered 200 and kept the connection open timed the read out, and the grant
                # was sent again: the door opened three times, and the log said it failed.
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    answer.append(resp.status)
            except BaseException as err:  # handed to the worker's thread, which decides
                answer.append(err)

        sender = threading.Thread(target=send, name="blinkgate-webhook-send", daemon=True)
        sender.start()
        sender.join(self.timeout_s)
        if not answer:
            raise TimeoutError(f"no answer within {self.timeout_s:g} s")
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return answer[0]

    def run(self, grant: Grant) -> None:
        req = self.request(grant)
        for attempt in range(self.retries + 1):
            if attempt and grant.unix_time and time.time() - grant.unix_time > self.max_age_s:
                log.warning("webhook: grant for %s is %.0f s old; not retrying", grant.name,
                            time.time() - grant.unix_time)
                return
            try:
                status = self._post(req)
                log.info("webhook: %s for %s", status, grant.name)
                return
            except urllib.error.HTTPError as err:
                if err.code < 500:
                    log.warning("webhook refused with HTTP %d; not retrying", err.code)
                    return
                why = f"HTTP {err.code}"
            except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as err:
                why = str(getattr(err, "reason", err)) or type(err).__name__  # HTTPException: a garbled reply
            except ValueError as err:  # the request cannot be sent at all: retrying will not help
                log.warning("webhook not sent (%s)", type(err).__name__)
                return
            if attempt < self.retries:
                log.info("webhook attempt %d failed (%s); retrying", attempt + 1, why)
                time.sleep(self.backoff_s * 2**attempt)
            else:
                log.warning("webhook failed after %d attempts (%s)", attempt + 1, why)


def check_webhook_url(url: str) -> None:
    """:class:`BlinkgateError` if no grant could be sent to ``url``, naming its scheme and host
    only: checked at start, not at the first grant (`http://door:8o80/` started fine, then every
    grant failed with a traceback)."""
    problem = _url_problem(url)
    if problem:
        raise BlinkgateError(f"webhook URL {shown_webhook_url(url)}: {problem}")


def _url_problem(url: str) -> str:
    """Why ``url`` cannot take a grant, "" if it can."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port, or an unclosed [IPv6 bracket
        return "its port or [host] is malformed"
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return "must be http:// or https:// with a host and a valid port"
    if "@" in parts.netloc:  # urllib takes user:password@host for the host name and sends no login
        return "must not hold a user name or password (use --webhook-secret, or a token in the path)"
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        return "holds spaces or non-ASCII characters: percent-encode them (%20, ...)"
    return ""


def shown_webhook_url(url: str) -> str:
    """``url`` for a message or ``blinkgate config``: login and query hidden (``redact_url``),
    and the path too, since Home Assistant's webhook id is the path."""
    from .sources import redact_url

    shown = redact_url(url)
    if "://" not in shown:
        return shown
    scheme, rest = shown.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/***" if "/" in rest.strip("/") else shown


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# -- MQTT --------------------------------------------------------------------------------------


class MqttAction(Action):
    """Publish the grant as JSON to ``topic`` on an MQTT broker (QoS 1, not retained).

    The connection is made on the worker thread at the first grant and kept; paho reconnects
    in the background if the broker goes away. Home Assistant: trigger an automation on the
    topic (README, "Door opener").
    """

    name = "mqtt"

    def __init__(self, host: str, port: int = 1883, topic: str = "blinkgate/door/granted", *,
                 username: str | None = None, password: str | None = None, tls: bool = False,
                 qos: int = 1, client_id: str | None = None, timeout_s: float = 5.0):
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError as err:  # pragma: no cover - a dependency
            raise BlinkgateError("MQTT needs paho-mqtt: pip install 'paho-mqtt>=2.1,<3'") from err
        if not topic or any(c in topic for c in "#+\x00"):
            raise BlinkgateError(f"MQTT topic must be a plain topic name without wildcards, got {topic!r}")
        if qos not in (0, 1, 2):
            raise BlinkgateError("MQTT qos must be 0, 1 or 2")
        self.host, self.port, self.topic, self.qos, self.timeout_s = host, int(port), topic, qos, timeout_s
        self.username, self.password, self.tls = username, password, tls
        self.client_id = client_id or f"blinkgate-{uuid.uuid4().hex[:8]}"
        self._client = None

    def _connect(self):
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set()
        client.reconnect_delay_set(1, 30)
        connected = threading.Event()
        client.on_connect = lambda c, userdata, flags, rc, props=None: connected.set() if not rc.is_failure else None
        client.connect(self.host, self.port, keepalive=60)
        client.loop_start()
        if not connected.wait(self.timeout_s):
            client.loop_stop()
            client.disconnect()
            raise OSError(f"MQTT broker {self.host}:{self.port} did not accept the connection")
        return client

    def run(self, grant: Grant) -> None:
        payload = json.dumps(grant.payload(), separators=(",", ":"))
        try:
            if self._client is None:
                self._client = self._connect()
            info = self._client.publish(self.topic, payload, qos=self.qos, retain=False)
            info.wait_for_publish(self.timeout_s)
            if info.is_published():
                log.info("mqtt: published to %s for %s", self.topic, grant.name)
            else:
                # Drop the connection with the message: paho would resend it for as long as the
                # broker is stuck, and an unlock delivered minutes later opens the door then.
                log.warning("mqtt: publish to %s not confirmed within %.0f s; dropped", self.topic, self.timeout_s)
                self.close()
        except (OSError, RuntimeError, ValueError) as err:
            log.warning("mqtt: cannot publish to %s:%d (%s)", self.host, self.port, err)
            self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


# -- the runner ----------------------------------------------------------------------------------


class _Worker(threading.Thread):
    def __init__(self, action: Action, maxsize: int, max_age_s: float, on_done: Callable[[Grant, bool], None]):
        super().__init__(name=f"blinkgate-{action.name}", daemon=True)
        self.action, self.max_age_s, self.on_done = action, max_age_s, on_done
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.done = 0
        self.stale = 0

    def run(self) -> None:
        while True:
            grant = self.queue.get()
            try:
                if grant is None:
                    return
                age = time.monotonic() - grant.queued_at if grant.queued_at is not None else 0.0
                if age > self.max_age_s:
                    self.stale += 1
                    log.warning("%s action: grant for %s waited %.1f s behind a slow one; dropped (too late to open)",
                                self.action.name, grant.name, age)
                    self.on_done(grant, False)
                    continue
                try:
                    self.action.run(grant)
                finally:
                    self.on_done(grant, True)
            except Exception:  # an action must never kill its worker
                log.exception("%s action failed", self.action.name)
            finally:
                self.done += 1
                self.queue.task_done()


class ActionRunner:
    """Fires each action for a grant, once per person per ``cooldown_s`` (one visit, one
    opening), on background threads; a grant not started within ``max_age_s`` is dropped.
    ``clock`` (seconds, monotonic, for the cool-down only) is injectable for tests."""

    def __init__(self, actions: list[Action], cooldown_s: float = 30.0, queue_size: int = 8,
                 clock: Callable[[], float] = time.monotonic, source: str = "", max_age_s: float = MAX_GRANT_AGE_S):
        self.actions, self.cooldown_s, self.clock, self.source = list(actions), cooldown_s, clock, source
        self._last: dict[str, tuple[float, str]] = {}  # name -> (clock, grant id) of the last opening
        self._pending: dict[str, list[int]] = {}  # grant id -> [actions not done with it, actions that ran it]
        self._lock = threading.Lock()
        self._workers = [_Worker(a, queue_size, max_age_s, self._done) for a in self.actions]
        for w in self._workers:
            w.start()
        self.fired = 0
        self.skipped_cooldown = 0

    def fire(self, decision) -> bool:
        """Queue the actions for a granted decision; False if in cool-down (or no actions)."""
        name = decision.name
        if not self.actions or name is None:
            return False
        now = self.clock()
        with self._lock:
            last = self._last.get(name)
        if last is not None and now - last[0] < self.cooldown_s:
            self.skipped_cooldown += 1
            log.info("%s granted again within the %.0f s cool-down: actions not fired", name, self.cooldown_s)
            return False
        wall = datetime.now(timezone.utc)
        grant = Grant(name, decision.track_id, decision.time_ms, decision.distance, self.source,
                      uuid.uuid4().hex, wall.isoformat(timespec="seconds"), wall.timestamp(), time.monotonic())
        with self._lock:
            self._last[name] = (now, grant.id)
            self._pending[grant.id] = [len(self._workers), 0]
        for w in self._workers:
            try:
                w.queue.put_nowait(grant)
            except queue.Full:
                log.warning("%s action is busy (%d queued): grant for %s dropped", w.action.name, w.queue.maxsize, name)
                self._done(grant, False)
        self.fired += 1
        return True

    def _done(self, grant: Grant, ran: bool) -> None:
        """One action is done with ``grant``: it ran it, or dropped it (too late, or its queue
        was full). If every action dropped it, the door never opened: the person's cool-down
        must not hold back their next grant."""
        with self._lock:
            left_ran = self._pending.get(grant.id)
            if left_ran is None:
                return
            left_ran[0] -= 1
            left_ran[1] += ran
            if left_ran[0] > 0:
                return
            del self._pending[grant.id]
            if not left_ran[1] and self._last.get(grant.name, (0.0, ""))[1] == grant.id:
                del self._last[grant.name]

    def join(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued grant has been handled; False on timeout."""
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            while w.queue.unfinished_tasks:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued (up to ``timeout_s``), then stop the workers and the actions
        (a command still running is killed)."""
        self.join(timeout_s)
        for w in self._workers:
            try:
                w.queue.put(None, timeout=1.0)
            except queue.Full:
                pass
        for w in self._workers:
            w.join(timeout=1.0)
        for a in self.actions:
            try:
                a.close()
            except Exception:
                log.exception("closing %s action", a.name)

    def __enter__(self) -> ActionRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
