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
and printed in the URL. The server binds to loopback unless told otherwise.

Why the standard library's ``http.server`` and not a web framework: four GET routes, no
templates, and no new dependency for a Raspberry Pi.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .errors import BlinkgateError
from .types import Event

log = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{8,}")
BOUNDARY = "blinkgate-frame"


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
        raise BlinkgateError("the browser view's token (ui.token / $BLINKGATE_UI_TOKEN) must be at least "
                             "8 characters of A-Z a-z 0-9 . _ ~ -")
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up exit
    ui: WebUI


class WebUI:
    """Serve the annotated frames and status of a running gate to a browser.

    Args:
        listen: ``PORT`` or ``HOST:PORT`` (see :func:`parse_listen`); port 0 picks a free one.
        draw: ``draw(image, result, fps) -> image``, the same drawing as the window.
        faces: ``faces(result) -> list[dict]``, the faces of a result as JSON-ready dicts.
        token: access token; a random one when None.
        title: the page title, e.g. the source.
        max_fps: frames sent per second to each viewer, at most.
        max_viewers: video streams served at once; more get 503 (each costs JPEG encodes).

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
                 title: str = "blinkgate", max_fps: float = 15.0, max_viewers: int = 4, jpeg_quality: int = 80):
        self.host, port = check_settings(listen, token)
        self.token = token or secrets.token_urlsafe(18)
        self.title, self.max_fps, self.max_viewers = title, max_fps, max_viewers
        self._draw, self._faces, self._quality = draw, faces, jpeg_quality
        self._cond = threading.Condition()
        self._latest: tuple[int, np.ndarray, object, float] | None = None  # seq, image, result, fps
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

    # -- the frame loop's side: cheap ------------------------------------------------------------

    def publish(self, image: np.ndarray, result: object, events: Iterable[Event] = ()) -> None:
        """Hand over the latest frame (not copied: the caller must not draw on it later) and its result."""
        now = time.monotonic()
        if self._last is not None and now > self._last:  # frame rate, smoothed over ~20 frames
            rate = 1.0 / (now - self._last)
            self._fps = rate if self._fps == 0.0 else self._fps + 0.05 * (rate - self._fps)
        self._last = now
        with self._cond:
            self._seq += 1
            self._latest = (self._seq, image, result, self._fps)
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
            seq, image, result, fps = self._latest
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
        with self._cond:
            latest, events = self._latest, list(self._events)
        out = {"title": self.title, "frame": 0, "fps": 0.0, "viewers": self._viewers, "faces": [], "events": events}
        if latest is not None:
            seq, _, result, fps = latest
            out.update(frame=seq, fps=round(fps, 1), faces=self._faces(result))
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
    timeout = 30  # s: a client that stalls (or never sends its request) frees its thread

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("ui %s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        ui = self.server.ui
        url = urlsplit(self.path)
        if url.path == "/app.js":  # code only, no data: needs no token
            return self._send(HTTPStatus.OK, "text/javascript; charset=utf-8", _APP_JS.encode())
        if url.path not in ("/", "/status.json", "/frame.jpg", "/stream.mjpg"):
            return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
        if not ui.authorised(url.query, self.headers.get("Authorization")):
            return self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8",
                              b"wrong or missing token: open the URL blinkgate printed (it ends in ?token=...)\n")
        if url.path == "/":
            return self._send(HTTPStatus.OK, "text/html; charset=utf-8", _PAGE.replace("{title}", _html(ui.title)).encode())
        if url.path == "/status.json":
            return self._send(HTTPStatus.OK, "application/json", json.dumps(ui.status()).encode())
        if url.path == "/frame.jpg":
            got = ui.next_jpeg(-1, timeout=5.0)
            if not got or not got[1]:
                return self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b"no frame yet\n")
            return self._send(HTTPStatus.OK, "image/jpeg", got[1])
        self._stream(ui)

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

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self._common_headers(content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client went away


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)


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
#video { max-width: 100%; height: auto; background: #000; min-width: 320px; min-height: 240px; }
section { flex: 1; min-width: 280px; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #333; }
.granted { color: #4c4; font-weight: bold; } .live { color: #fb3; } .warn { color: #f66; }
ol { padding-left: 0; list-style: none; font: 13px ui-monospace, monospace; max-height: 60vh; overflow-y: auto; }
#conn.down { color: #f66; }
</style></head>
<body><header><h1>blinkgate</h1><span>{title}</span><span id="fps"></span><span id="conn">connecting</span></header>
<main><img id="video" alt="the annotated camera view">
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
function render(s) {
  document.getElementById('fps').textContent = 'frame ' + s.frame + ', ' + s.fps + ' fps';
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
async function poll() {
  try {
    const r = await fetch('status.json' + q, {cache: 'no-store'});
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
  }
  setTimeout(poll, 500);
}
poll();
"""
