"""A read-only browser view of ``blinkgate run`` and ``blinkgate door``.

``--ui [HOST:]PORT`` serves three things over HTTP: the annotated video as MJPEG, the faces on
the latest frame, and the latest events (JSON, polled by a small page). It is for a door box or
a Pi with no screen. It cannot unlock anything: every route is a GET that reads.

The frame loop only hands over a reference to the frame and its result (:meth:`WebUI.publish`).
Drawing and JPEG encoding happen in the HTTP threads, at most ``max_fps`` times a second and
only while someone watches. OpenCV releases the GIL while it encodes, so that work runs on the
other core instead of the frame loop.

Every request needs the access token (``?token=`` or ``Authorization: Bearer``), as in Jupyter:
the stream shows faces, and a LAN is not private. Without one, a random token is made per run
and shown on the terminal (:func:`announce`); a token never goes into the log, which journald or
syslog let others read. Wrong tokens are logged (at most a line a minute per client) and a
client that keeps guessing is refused for a while. The server binds to loopback unless told
otherwise.

Each connection is a thread, started before its token can be checked, so connections are
capped (in all and per client) and a request must arrive whole within a few seconds: a LAN
client opening hundreds of idle connections, or dripping a byte at a time, cannot use up the
threads (or, on a 32-bit Pi, the address space) that the gate and its door actions need.

Why the standard library's ``http.server`` and not a web framework: four GET routes, no
templates, and no new dependency for a Raspberry Pi.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import math
import numbers
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .errors import BlinkgateError
from .types import Event

log = logging.getLogger(__name__)

MIN_TOKEN = 16  # characters: a typed word is guessable; a random run's token has 24
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{%d,}" % MIN_TOKEN)
BOUNDARY = "blinkgate-frame"
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)
Clock = Callable[[], float]
_CONTROL_CHARS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def parse_listen(text: str) -> tuple[str, int]:
    """``8080``, ``:8080``, ``0.0.0.0:8080`` or ``[::1]:8080`` (IPv6 in brackets) → (host, port);
    loopback if no host."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (":" in host and not (bracketed and _is_ip(host))):
        raise BlinkgateError(f"--ui wants PORT or HOST:PORT (e.g. 8080 or 0.0.0.0:8080), got {text!r}")
    return host or "127.0.0.1", int(port)


def check_settings(listen: str, token: str | None) -> tuple[str, int]:
    """Validate ``--ui`` and the token before anything opens; (host, port)."""
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise BlinkgateError(f"the browser view's token (ui.token / $BLINKGATE_UI_TOKEN) must be at least "
                             f"{MIN_TOKEN} characters of A-Z a-z 0-9 . _ ~ - (a word can be guessed; make one with "
                             "python3 -c 'import secrets; print(secrets.token_urlsafe(18))')")
    return parse_listen(listen)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback


def mask_token(text: str) -> str:
    """``text`` with any ``token=...`` value hidden, for the log."""
    return _TOKEN_IN_TEXT.sub(r"\1***", text)


def client_key(ip: str) -> str:
    """Whom limits apply to: the address (an IPv4-mapped one as IPv4). Not an IPv6 /64: on a
    home LAN that is every host, and one of them could lock the owner out of the view. A host
    with many addresses can still only fill the total cap, and a 16+ character token is not
    guessed at any rate."""
    try:
        address = ipaddress.ip_address(ip.partition("%")[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _put_recent(table: dict, key: str, value, max_keys: int) -> None:
    """Store ``value`` as the most recent entry of ``table`` (popped by the caller first),
    forgetting the longest-quiet key when full: a hostile client must not decide the memory."""
    if len(table) >= max_keys:
        table.pop(next(iter(table)))
    table[key] = value


class _Reports:
    """At most one log line per key per period, with how many times it happened since the last.

    A hostile client decides how often things happen; it must not decide how big the log gets."""

    def __init__(self, clock: Clock, period_s: float = 60.0, max_keys: int = 1024):
        self._clock, self._period, self._max = clock, period_s, max_keys
        self._keys: dict[str, tuple[float, int]] = {}  # key -> (last line at, happened since)

    def due(self, key: str) -> int:
        """Count one occurrence; how many to report now (this one included), or 0 if not yet."""
        now = self._clock()
        last, count = self._keys.pop(key, (None, 0))
        count += 1
        if last is None or now - last >= self._period:
            last, count, due = now, 0, count
        else:
            due = 0
        _put_recent(self._keys, key, (last, count), self._max)
        return due


class _Connections:
    """Connections open at once, in all and per client.

    Each is a thread from before its token is checked; uncapped, idle connections from one LAN
    client used up the threads the gate's own actions (an MQTT unlock) need."""

    def __init__(self, total: int, per_client: int, clock: Clock):
        self.total, self.per_client = total, per_client
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()
        self._reports = _Reports(clock)

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def enter(self, ip: str) -> bool:
        key = client_key(ip)
        with self._lock:
            mine, everyone = self._open.get(key, 0), sum(self._open.values())
            if mine < self.per_client and everyone < self.total:
                self._open[key] = mine + 1
                return True
            due = self._reports.due(key)
        if due:
            log.warning("browser view: refused %d connection(s) from %s: %d open from it, %d in all (at most %d, %d)",
                        due, key, mine, everyone, self.per_client, self.total)
        return False

    def leave(self, ip: str) -> None:
        key = client_key(ip)
        with self._lock:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)


@dataclass
class _Guesses:
    failures: int = 0  # wrong tokens since ``since``
    since: float = 0.0
    blocked_until: float = float("-inf")


class TokenGuard:
    """Wrong tokens per client: logged (rate-limited), and a client that keeps guessing is refused
    for a while, so a word list cannot be tried at full speed, nor unseen.

    Args:
        clock: monotonic seconds.
        limit: wrong tokens within ``window_s`` that get a client blocked ...
        block_s: ... for this long (its requests get 429, right token or not).
    """

    def __init__(self, clock: Clock, limit: int = 10, window_s: float = 60.0, block_s: float = 60.0,
                 max_clients: int = 1024):
        self.limit, self.window_s, self.block_s = limit, window_s, block_s
        self._clock, self._max = clock, max_clients
        self._clients: dict[str, _Guesses] = {}
        self._lock = threading.Lock()
        self._reports = _Reports(clock)

    def blocked_for(self, ip: str) -> float:
        """Seconds this client is still refused for; 0 if it is not."""
        with self._lock:
            guesses = self._clients.get(client_key(ip))
            return max(0.0, guesses.blocked_until - self._clock()) if guesses else 0.0

    def failed(self, ip: str) -> None:
        key, now = client_key(ip), self._clock()
        with self._lock:
            guesses = self._record(key, now)
            guesses.failures += 1
            blocked = guesses.failures >= self.limit
            if blocked:
                guesses.blocked_until, guesses.failures, guesses.since = now + self.block_s, 0, now
            due = self._reports.due(key)
        if blocked:  # once per block: at most one more line a minute
            log.warning("browser view: %s sent %d wrong or missing tokens within %g s: refused for %g s",
                        key, self.limit, self.window_s, self.block_s)
        elif due:
            log.warning("browser view: %d wrong or missing token(s) from %s (said at most once a minute)", due, key)

    def _record(self, key: str, now: float) -> _Guesses:
        guesses = self._clients.pop(key, None) or _Guesses(since=now)
        if now - guesses.since > self.window_s:  # the window is over: count afresh
            guesses.failures, guesses.since = 0, now
        _put_recent(self._clients, key, guesses, self._max)
        return guesses


class _Deadline(io.RawIOBase):
    """A socket's reads, all within one deadline: a per-read timeout let a client that sends a byte
    every few seconds hold its thread for ever. ``stop()`` once the request is in."""

    def __init__(self, sock: socket.socket, seconds: float, then: float | None):
        self._sock, self._then = sock, then
        self._until: float | None = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._until is not None:
            left = self._until - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request did not arrive in time")
            self._sock.settimeout(left)
        return self._sock.recv_into(buffer)

    def stop(self) -> None:
        """The request is in: from now on only each read or write has a timeout (a stream is long)."""
        self._until = None
        self._sock.settimeout(self._then)


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end (end of stream or reset), peeking without waiting; not
    select(), which fails on descriptors past 1023. A client that half-closes after its request
    looks gone too; browsers and players do not."""
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False  # nothing to read: still connected
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up exit
    request_queue_size = 64  # waiting to be accepted costs no thread; a flood must not crowd out the owner's SYN
    ui: WebUI

    def process_request(self, request, client_address) -> None:
        if not self.ui.connections.enter(client_address[0]):
            self.shutdown_request(request)  # over the cap: closed at once, no thread started
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread: give the slot back (the caller closes the socket)
            self.ui.connections.leave(client_address[0])
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.ui.connections.leave(client_address[0])

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client reset or went away: no traceback for it to fill the log
            log.debug("ui %s: %s", client_address[0], sys.exc_info()[1])
            return
        super().handle_error(request, client_address)


class WebUI:
    """Serve the annotated frames and status of a running gate to a browser.

    Args:
        listen: ``PORT`` or ``HOST:PORT`` (see :func:`parse_listen`); port 0 picks a free one.
        draw: ``draw(image, result, fps) -> image``, the same drawing as the window.
        faces: ``faces(result) -> list[dict]``, the faces of a result as JSON-ready dicts.
        token: access token (at least 16 characters); a random one when None.
        title: the page title, e.g. the source.
        max_fps: frames sent per second to each viewer, at most.
        max_viewers: video streams served at once; more get 503 (each costs JPEG encodes).
        max_connections, max_per_client: connections open at once, in all and from one client
            (one address); more are closed at once. Video streams count.
        request_s: the time a client has to send its whole request (line and headers).
        stall_s: with no new frame for longer, the view says so (``stalled``, fps 0, no faces).
        clock: monotonic seconds, for the frame's age and the token guard.

    Example::

        from blinkgate.annotate import draw
        from blinkgate.webui import WebUI, face_json

        describe = lambda result: [face_json(f) for f in result.faces]
        with WebUI("8080", draw=draw, faces=describe) as ui:
            print(ui.url)
            for frame, result in gate.run(source):
                ui.publish(frame.image, result, result.events)
    """

    def __init__(self, listen: str, draw: Callable, faces: Callable[[object], list[dict]], token: str | None = None,
                 title: str = "blinkgate", max_fps: float = 15.0, max_viewers: int = 4, jpeg_quality: int = 80,
                 max_connections: int = 32, max_per_client: int = 8, request_s: float = 5.0, stall_s: float = 2.0,
                 clock: Clock = time.monotonic):
        # Before the port opens: a max_fps of 0 failed only in the first viewer's thread, and a
        # NaN stall_s never said NO VIDEO (the last faces, granted or not, stayed on the page).
        for name, value in (("max_fps", max_fps), ("request_s", request_s), ("stall_s", stall_s)):
            if not (isinstance(value, numbers.Real) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a finite, positive number, got {value!r}")
        self.host, port = check_settings(listen, token)
        self.token_generated = token is None  # then only the terminal may be told it (see announce)
        self.token = token or secrets.token_urlsafe(18)
        self.title, self.max_fps, self.max_viewers = title, max_fps, max_viewers
        self.request_s, self.stall_s = request_s, stall_s
        self.connections = _Connections(max_connections, max_per_client, clock)
        self.guard = TokenGuard(clock)
        self._clock = clock
        self._draw, self._faces, self._quality = draw, faces, jpeg_quality
        self._cond = threading.Condition()
        self._latest: tuple[int, np.ndarray, object, float, float] | None = None  # seq, image, result, fps, when
        self._seq = 0
        self._events: deque[dict] = deque(maxlen=50)
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._encode_lock = threading.Lock()
        self._encode_failed = False
        self._viewers = 0
        self.frames_sent = 0  # JPEG parts written to all viewers
        self._closed = threading.Event()
        self._last: float | None = None  # when the previous frame was published (monotonic s)
        self._fps = 0.0
        self._server = self._bind(self.host, port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="blinkgate-ui", daemon=True)
        self._thread.start()
        if not is_loopback(self.host):
            log.warning("the browser view is reachable from other machines on %s: anyone with the token sees the "
                        "camera (it is in the URL: share it like a password)", self.host)

    def _bind(self, host: str, port: int) -> _Server:
        server_class = _Server
        if ":" in host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        try:
            server = server_class((host, port), _Handler)
        except OSError as err:
            raise BlinkgateError(f"cannot serve the browser view on {host}:{port}: {err.strerror or err}") from err
        server.ui = self
        return server

    @property
    def url(self) -> str:
        """The address to open, token included. A wildcard bind shows this machine's host name."""
        if self.host in ("127.0.0.1", "::1", "localhost"):
            host = "localhost"
        elif self.host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        else:
            host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    @property
    def masked_url(self) -> str:
        """:attr:`url` with the token hidden, for the log."""
        return mask_token(self.url)

    # -- the frame loop's side: cheap ------------------------------------------------------------

    def publish(self, image: np.ndarray, result: object, events: Iterable[Event] = ()) -> None:
        """Hand over the latest frame (not copied: the caller must not draw on it later) and its result."""
        now = self._clock()
        if self._last is not None and now - self._last > self.stall_s:  # after a stall the rate starts afresh
            self._fps = 0.0
        elif self._last is not None and now > self._last:  # frame rate, smoothed over ~20 frames
            # The interval is smoothed, not its inverse: frames paced in bursts (a short gap after
            # a long one) averaged 1/gap to 30-60 fps for a 24 fps file.
            gap = now - self._last
            gap = gap if self._fps == 0.0 else 1.0 / self._fps + 0.05 * (gap - 1.0 / self._fps)
            self._fps = 1.0 / gap
        self._last = now
        with self._cond:
            self._seq += 1
            self._latest = (self._seq, image, result, self._fps, now)
            if events:
                wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                self._events.extend({"wall_time": wall, **e.to_json()} for e in events)
            self._cond.notify_all()

    # -- the HTTP side -------------------------------------------------------------------------------

    def next_jpeg(self, after: int, timeout: float = 1.0) -> tuple[int, bytes] | None:
        """The newest frame after ``after`` as JPEG, waiting up to ``timeout`` s; None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed.is_set() or (self._latest and self._latest[0] > after),
                                       timeout):
                return None
            if self._closed.is_set():
                return None
            seq, image, result, fps, _ = self._latest
        with self._encode_lock:  # viewers share one encode per frame
            if self._jpeg[0] != seq:
                self._jpeg = (seq, self._encode(image, result, fps))
            return self._jpeg

    def _encode(self, image: np.ndarray, result: object, fps: float) -> bytes:
        """The frame drawn and JPEG-encoded; empty (said once) if that fails: the view goes on."""
        import cv2

        try:
            ok, buf = cv2.imencode(".jpg", self._draw(image, result, fps), [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            return buf.tobytes() if ok else b""
        except Exception as err:  # a drawing bug must not end the view, nor the gate
            if not self._encode_failed:
                log.warning("browser view: cannot draw a frame (%s); such frames are skipped", err)
                self._encode_failed = True
            return b""

    def status(self) -> dict:
        """The page's data. ``age_ms``: since the latest frame came (None before the first);
        ``stalled``: none for over ``stall_s``, when fps is 0 and no faces are listed, as the
        last ones (maybe granted) are no longer in front of the camera as far as anyone knows."""
        with self._cond:
            latest, events = self._latest, list(self._events)
        out = {"title": self.title, "frame": 0, "fps": 0.0, "age_ms": None, "stalled": True, "viewers": self._viewers,
               "faces": [], "events": events}
        if latest is not None:
            seq, _, result, fps, when = latest
            age = max(0.0, self._clock() - when)
            out.update(frame=seq, age_ms=round(age * 1000), stalled=age > self.stall_s)
            if not out["stalled"]:
                out.update(fps=round(fps, 1), faces=self._faces(result))
        return out

    def authorised(self, query: str, header: str | None) -> bool:
        given = parse_qs(query).get("token", [""])[0]
        if header and header.startswith("Bearer "):
            given = header[len("Bearer "):].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    def enter_viewer(self) -> bool:
        with self._cond:
            if self._viewers >= self.max_viewers:
                return False
            self._viewers += 1
            return True

    def count_sent(self) -> None:
        with self._cond:
            self.frames_sent += 1

    def leave_viewer(self) -> None:
        with self._cond:
            self._viewers -= 1

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._cond:
            self._cond.notify_all()  # streams waiting for a frame end now
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebUI:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "blinkgate"
    sys_version = ""
    timeout = 30  # s per read or write once the request is in: a viewer that stops reading frees its thread

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # read instead through a deadline for the whole request
        self._reading = _Deadline(self.connection, self.server.ui.request_s, self.timeout)
        self.rfile = io.BufferedReader(self._reading)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        message = mask_token(format % args).translate(_CONTROL_CHARS)  # the request line is the client's text
        log.debug("ui %s %s", self.client_address[0], message)

    def do_GET(self) -> None:
        self._reading.stop()
        ui = self.server.ui
        url = urlsplit(self.path)
        if url.path == "/app.js":  # code only, no data: needs no token
            return self._send(HTTPStatus.OK, "text/javascript; charset=utf-8", _APP_JS.encode())
        if url.path not in ("/", "/status.json", "/frame.jpg", "/stream.mjpg"):
            return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
        if not self._admitted(ui, url.query):
            return None
        if url.path == "/":
            return self._send(HTTPStatus.OK, "text/html; charset=utf-8", _PAGE.replace("{title}", _html(ui.title)).encode())
        if url.path == "/status.json":
            return self._send(HTTPStatus.OK, "application/json", json.dumps(ui.status(), default=_plain).encode())
        if url.path == "/frame.jpg":
            got = ui.next_jpeg(-1, timeout=5.0)
            if not got or not got[1]:
                return self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b"no frame yet\n")
            return self._send(HTTPStatus.OK, "image/jpeg", got[1])
        self._stream(ui)

    def _admitted(self, ui: WebUI, query: str) -> bool:
        """Whether the token is right; if not, the refusal is sent, and counted against the client."""
        ip = self.client_address[0]
        wait = math.ceil(ui.guard.blocked_for(ip))
        if wait:  # the right token too: else guessing would go on
            self._send(HTTPStatus.TOO_MANY_REQUESTS, "text/plain; charset=utf-8",
                       f"too many wrong tokens from here: try again in {wait} s\n".encode(), {"Retry-After": str(wait)})
            return False
        if ui.authorised(query, self.headers.get("Authorization")):
            return True  # not forgiving earlier failures: a guesser may share a NAT with a viewer
        ui.guard.failed(ip)
        self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8",
                   b"wrong or missing token: open the URL blinkgate printed (it ends in ?token=...)\n")
        return False

    def _stream(self, ui: WebUI) -> None:
        if not ui.enter_viewer():
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                              f"at most {ui.max_viewers} video viewers at once\n".encode())
        try:
            self.send_response(HTTPStatus.OK)
            self._common_headers(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            seq, period = -1, 1.0 / ui.max_fps
            while not ui.closed:
                sent = time.monotonic()
                got = ui.next_jpeg(seq)
                if got is None:
                    if _client_gone(self.connection):  # in a stall no write fails to tell us: the slot was kept
                        return
                    continue
                seq, jpeg = got
                if not jpeg:  # this frame failed to encode: wait for the next one
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                                 + jpeg + b"\r\n")
                self.wfile.flush()
                ui.count_sent()
                time.sleep(max(0.0, period - (time.monotonic() - sent)))
            self.wfile.write(f"--{BOUNDARY}--\r\n".encode())  # the view closed: end the stream properly
        except OSError:
            pass  # the viewer went away, or stalled past the timeout
        finally:
            ui.leave_viewer()

    def _common_headers(self, content_type: str) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the token is in the page's URL
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self._common_headers(content_type)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client went away


def announce(ui: WebUI, logger: logging.Logger, terminal: TextIO | None = None) -> None:
    """Say where the view is without putting its token in the log, which journald or syslog let
    others read. A token made for this run is shown on a terminal only: set one to use the view
    from a service."""
    terminal = sys.stderr if terminal is None else terminal
    if ui.token_generated and terminal.isatty():
        print(f"blinkgate: browser view: {ui.url}", file=terminal, flush=True)  # the terminal, not the log
        return
    if not ui.token_generated:
        logger.info("browser view: %s (the token is ui.token / $BLINKGATE_UI_TOKEN; it is not logged)", ui.masked_url)
        return
    logger.info("browser view: %s", ui.masked_url)
    logger.warning("the browser view's token was made for this run and is shown on a terminal only, never in the "
                   "log: to open the view, set ui.token or $BLINKGATE_UI_TOKEN (%d+ characters)", MIN_TOKEN)


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _plain(value: object) -> object:
    """A value json cannot write as it is: a NumPy number as a number, anything else as text. One
    such value in an event (a caller's own) failed every poll, with a traceback each, until 50
    newer events had pushed it out: the page said "disconnected" all that time."""
    return value.item() if isinstance(value, np.generic) else str(value)


def face_json(face) -> dict:
    """A :class:`~blinkgate.types.FaceResult` as the page shows it."""
    from .annotate import status_text

    return {
        "track": face.track_id,
        "name": face.name,
        "status": status_text(face),
        "eyes": face.eyes.state.value,
        "blinks": face.blinks,
        "live": face.live,
        "granted": face.granted,
    }


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body { margin: 0; font: 15px system-ui, sans-serif; background: #111; color: #eee; }
header { padding: 8px 14px; background: #222; display: flex; gap: 16px; align-items: baseline; }
h1 { font-size: 18px; margin: 0; } h2 { font-size: 15px; margin: 14px 0 6px; color: #aaa; }
main { display: flex; flex-wrap: wrap; gap: 14px; padding: 14px; }
#view { position: relative; max-width: 100%; }
#video { max-width: 100%; height: auto; background: #000; min-width: 320px; min-height: 240px; display: block; }
#video.stale { opacity: 0.3; }
#novideo { position: absolute; top: 40%; left: 0; right: 0; text-align: center; padding: 10px; background: #b00;
  color: #fff; font-size: 22px; font-weight: bold; }
#novideo[hidden] { display: none; }
section { flex: 1; min-width: 280px; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #333; }
.granted { color: #4c4; font-weight: bold; } .live { color: #fb3; } .warn { color: #f66; }
ol { padding-left: 0; list-style: none; font: 13px ui-monospace, monospace; max-height: 60vh; overflow-y: auto; }
#conn.down { color: #f66; }
</style></head>
<body><header><h1>blinkgate</h1><span>{title}</span><span id="fps"></span><span id="conn">connecting</span></header>
<main><div id="view"><img id="video" alt="the annotated camera view"><div id="novideo" role="alert">NO VIDEO</div></div>
<section><h2>Faces</h2><table><thead><tr><th>#</th><th>name</th><th>state</th><th>eyes</th><th>blinks</th></tr></thead>
<tbody id="faces"></tbody></table>
<h2>Events, newest first</h2><ol id="events"></ol></section></main>
<script src="app.js"></script></body></html>
"""

# Text only goes in through textContent: names come from folder names and must not become HTML.
_APP_JS = """'use strict';
const q = '?token=' + encodeURIComponent(new URLSearchParams(location.search).get('token') || '');
const video = document.getElementById('video');
let down = true;
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; }
// The picture keeps the last frame it got: when frames stop, say so over it, loudly.
function noVideo(why) {
  const banner = document.getElementById('novideo');
  banner.hidden = !why;
  banner.textContent = why ? 'NO VIDEO: ' + why : '';
  video.className = why ? 'stale' : '';
}
function render(s) {
  document.getElementById('fps').textContent = 'frame ' + s.frame + ', ' + s.fps + ' fps';
  noVideo(!s.stalled ? '' : s.age_ms === null ? 'waiting for the first frame'
    : 'no frame for ' + Math.round(s.age_ms / 1000) + ' s');
  const faces = document.getElementById('faces');
  faces.replaceChildren();
  for (const f of s.faces) {
    const row = faces.insertRow();
    cell(row, f.track); cell(row, f.name === null ? 'unknown' : f.name);
    cell(row, f.status, f.granted ? 'granted' : f.live ? 'live' : '');
    cell(row, f.eyes); cell(row, f.blinks);
  }
  const list = document.getElementById('events');
  list.replaceChildren();
  for (const e of s.events.slice().reverse()) {
    const li = document.createElement('li');
    const why = e.why || e.reason || e.prompt || '';
    li.textContent = e.wall_time.slice(11, 19) + '  ' + e.event + '  #' + e.track + ' ' + (e.name === null ? 'unknown' : e.name) + (why ? '  ' + why : '');
    if (/grant/.test(e.event)) li.className = 'granted';
    if (/denied|lockout|fail/.test(e.event)) li.className = 'warn';
    list.appendChild(li);
  }
}
let wait = 500;
async function poll() {
  try {
    const r = await fetch('status.json' + q, {cache: 'no-store'});
    wait = r.status === 403 || r.status === 429 ? 10000 : 500;  // a wrong token: do not keep guessing
    if (!r.ok) throw new Error(r.status + ' ' + (await r.text()));
    if (down) video.src = 'stream.mjpg' + q + '&t=' + Date.now();
    down = false;
    document.getElementById('conn').textContent = 'connected';
    document.getElementById('conn').className = '';
    render(await r.json());
  } catch (err) {
    down = true;
    document.getElementById('conn').textContent = 'disconnected: ' + err.message;
    document.getElementById('conn').className = 'down';
    noVideo('the view cannot be reached');
  }
  setTimeout(poll, wait);
}
poll();
"""
