"""Unlock actions: command without a shell, signed webhook against a local HTTP server, MQTT
against a real mosquitto broker, all off the frame loop, once per visit."""

from __future__ import annotations

import http.server
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from blinkgate.actions import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Action,
    ActionRunner,
    CommandAction,
    Grant,
    MqttAction,
    WebhookAction,
    sign,
    verify,
)
from blinkgate.door import Decision
from blinkgate.errors import BlinkgateError

BOX = (0.0, 0.0, 10.0, 10.0)


def grant(name: str = "alice", track: int = 7, t: float = 1234.0) -> Decision:
    return Decision(t, track, name, "granted", "challenge_passed", BOX, 0.31)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Recorder(Action):
    name = "recorder"

    def __init__(self, delay: float = 0.0):
        self.grants: list[Grant] = []
        self.delay = delay

    def run(self, g: Grant) -> None:
        time.sleep(self.delay)
        self.grants.append(g)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the runner ----------------------------------------------------------------------------------------


def test_fire_never_waits_for_a_slow_action():
    slow = Recorder(delay=1.0)
    runner = ActionRunner([slow], cooldown_s=0, queue_size=2)
    t = time.perf_counter()
    for i in range(5):  # more than the queue holds: the extra ones are dropped, not waited for
        runner.fire(grant(f"p{i}"))
    assert time.perf_counter() - t < 0.1
    runner.close()
    assert 1 <= len(slow.grants) <= 3


def test_one_visit_fires_once_per_person():
    clock, rec = Clock(), Recorder()
    runner = ActionRunner([rec], cooldown_s=30, clock=clock)
    assert runner.fire(grant("alice", 1))
    clock.t += 5
    assert not runner.fire(grant("alice", 2))  # re-granted on a new track, same visit
    assert runner.fire(grant("bob", 3))  # someone else is not held back
    clock.t += 30
    assert runner.fire(grant("alice", 4))  # a later visit
    runner.close()
    assert [(g.name, g.track) for g in rec.grants] == [("alice", 1), ("bob", 3), ("alice", 4)]
    assert len({g.id for g in rec.grants}) == 3 and runner.skipped_cooldown == 1


def test_the_cool_down_ends_when_its_time_is_up_and_a_nameless_decision_fires_nothing():
    clock, rec = Clock(), Recorder()
    runner = ActionRunner([rec], cooldown_s=30, clock=clock)
    assert runner.fire(grant("alice", 1))
    clock.t += 30
    assert runner.fire(grant("alice", 2))  # 30 s on: a new visit
    assert not runner.fire(grant(None, 3))  # no one's grant opens nothing
    runner.close()
    assert [g.track for g in rec.grants] == [1, 2]


def test_an_older_grant_dropped_late_does_not_lift_the_cool_down_of_a_newer_one():
    """A grant dropped as too late ends only its own cool-down: bob's first grant, dropped after
    his second one ran, must not clear the cool-down that the second started."""
    clock, slow = Clock(), Recorder(delay=2.0)
    runner = ActionRunner([slow], cooldown_s=30, max_age_s=1.0, clock=clock)
    runner.fire(grant("alice", 1))  # the action is busy with her for 2 s
    runner.fire(grant("bob", 2))  # waits 2 s: dropped
    time.sleep(1.5)
    clock.t += 31
    assert runner.fire(grant("bob", 3))  # waits 0.5 s: run
    assert runner.join()
    assert [g.track for g in slow.grants] == [1, 3]
    clock.t += 5
    assert not runner.fire(grant("bob", 4))  # the door opened for bob 5 s ago
    runner.close()


def test_an_action_that_raises_does_not_stop_the_others():
    class Boom(Action):
        name = "boom"

        def run(self, g):
            raise RuntimeError("relay on fire")

    rec = Recorder()
    runner = ActionRunner([Boom(), rec], cooldown_s=0)
    runner.fire(grant("a"))
    runner.fire(grant("b"))
    runner.close()
    assert [g.name for g in rec.grants] == ["a", "b"]


def test_a_grant_that_waited_behind_a_slow_action_is_dropped_not_run_late():
    slow = Recorder(delay=2.0)  # a relay script that takes longer than the grant may wait
    runner = ActionRunner([slow], cooldown_s=0, max_age_s=1.0)
    runner.fire(grant("alice", 1))
    runner.fire(grant("bob", 2))  # queued behind alice's 2 s: opening for bob now would be late
    runner.close()
    assert [g.name for g in slow.grants] == ["alice"] and runner._workers[0].stale == 1


def test_a_grant_dropped_as_too_late_does_not_start_the_cool_down():
    clock, slow = Clock(), Recorder(delay=2.0)
    runner = ActionRunner([slow], cooldown_s=30, max_age_s=1.0, clock=clock)
    runner.fire(grant("alice", 1))
    runner.fire(grant("bob", 2))  # dropped: it waited behind alice's opening
    assert runner.join()
    clock.t += 2
    assert runner.fire(grant("bob", 3))  # the door never opened for bob: no cool-down holds him back
    runner.close()
    assert [(g.name, g.track) for g in slow.grants] == [("alice", 1), ("bob", 3)]
    assert runner._pending == {}  # nothing kept per grant once every action is done with it


def test_a_grant_one_action_ran_keeps_the_cool_down_though_another_dropped_it():
    clock, fast, slow = Clock(), Recorder(), Recorder(delay=2.0)
    runner = ActionRunner([fast, slow], cooldown_s=30, max_age_s=1.0, clock=clock)
    runner.fire(grant("alice", 1))
    runner.fire(grant("bob", 2))  # the relay opened for bob; the slow webhook dropped it
    assert runner.join()
    clock.t += 2
    assert not runner.fire(grant("bob", 3))  # the door did open for bob: one visit, one opening
    runner.close()
    assert [g.name for g in fast.grants] == ["alice", "bob"] and runner._pending == {}


# -- command -------------------------------------------------------------------------------------------


def test_command_placeholders_are_substituted_per_argument_without_a_shell(tmp_path):
    out = tmp_path / "argv.json"
    script = "import json,sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"
    action = CommandAction(f"{sys.executable} -c \"{script}\" {out} {{name}} track={{track}} '{{name}} x'")
    evil = "Robert'); rm -rf / #; $(reboot) `id` | tee"
    action.run(Grant(evil, 12, 99.0, 0.2))
    assert json.loads(out.read_text()) == [str(out), evil, "track=12", f"{evil} x"]


def test_a_placeholder_inside_a_name_is_passed_as_typed_not_expanded_again(tmp_path):
    out = tmp_path / "argv.json"
    script = "import json,sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"
    CommandAction(f"{sys.executable} -c \"{script}\" {out} {{name}}").run(Grant("R&D {track}", 7, 0.0, None))
    assert json.loads(out.read_text()) == [str(out), "R&D {track}"]


def test_a_chatty_command_s_output_is_not_held_in_memory_and_its_last_error_line_is_logged(caplog):
    # 50 MB on stdout and stderr each: before, communicate() kept all of it in the door's memory.
    script = ("import sys; b = b'x' * 1_000_000; [(sys.stdout.buffer.write(b), sys.stderr.buffer.write(b)) "
              "for _ in range(50)]; sys.stderr.write('\\nthe relay is jammed\\n'); sys.exit(3)")
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with caplog.at_level(logging.WARNING, logger="blinkgate.actions"):
        CommandAction(f"{sys.executable} -c \"{script}\"", timeout_s=60).run(Grant("a", 1, 0.0, None))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # ru_maxrss is KiB on Linux
    assert "exited with 3: the relay is jammed" in caplog.text
    assert grown_mb < 40


def test_a_name_that_would_read_as_an_option_is_not_passed_to_the_command(tmp_path):
    out = tmp_path / "argv.json"
    script = "import json,sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"
    action = CommandAction(f"{sys.executable} -c \"{script}\" {out} {{name}}")
    action.run(Grant("--all-doors", 1, 0.0, None))
    assert not out.exists()
    action = CommandAction(f"{sys.executable} -c \"{script}\" {out} --who={{name}}")  # the option is the template's
    action.run(Grant("-x", 1, 0.0, None))
    assert json.loads(out.read_text()) == [str(out), "--who=-x"]


def test_a_command_still_running_when_the_door_stops_is_killed(tmp_path):
    """The command runs in its own session: it outlived the door's exit, and its timeout with it."""
    pid_file = tmp_path / "pid"
    script = tmp_path / "hang.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    script.chmod(0o755)
    runner = ActionRunner([CommandAction(str(script), timeout_s=60)])
    runner.fire(grant("alice"))
    deadline = time.monotonic() + 5
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    runner.close(timeout_s=0.2)
    time.sleep(0.2)
    state = Path(f"/proc/{pid}/stat")
    alive = state.exists() and state.read_text().split(")")[-1].split()[0] != "Z"
    if alive:
        subprocess.run(["kill", "-9", str(pid)], check=False)
    assert not alive


def test_bad_command_lines_are_refused():
    with pytest.raises(BlinkgateError):
        CommandAction("open-door 'unbalanced")
    with pytest.raises(BlinkgateError):
        CommandAction("   ")


def test_a_hung_command_is_killed_after_its_timeout():
    action = CommandAction(f"{sys.executable} -c 'import time; time.sleep(30)'", timeout_s=0.3)
    t = time.perf_counter()
    action.run(Grant("a", 1, 0.0, None))
    assert time.perf_counter() - t < 5


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a container's init may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_timed_out_command_does_not_leave_its_children_running(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = ("import subprocess,sys; p=subprocess.Popen(['sleep','30']); "
              "open(sys.argv[1],'w').write(str(p.pid)); p.wait()")
    action = CommandAction(f"{sys.executable} -c \"{script}\" {pidfile}", timeout_s=3.0)
    action.run(Grant("a", 1, 0.0, None))
    pid = int(pidfile.read_text())
    for _ in range(50):  # the kill is sent before run returns; give the kernel a moment
        if not _running(pid):
            break
        time.sleep(0.05)
    assert not _running(pid)


# -- webhook -------------------------------------------------------------------------------------------


class Hook:
    """A local HTTP server that records POSTs; ``status`` lists the answers to give."""

    def __init__(self, status: list[int] | None = None):
        self.requests: list[tuple[dict, bytes]] = []
        self.status = list(status or [])
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append((dict(self.headers), body))
                code = hook.status.pop(0) if hook.status else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/door"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def test_webhook_posts_signed_json_exactly_once_per_visit(hook):
    clock = Clock()
    runner = ActionRunner([WebhookAction(hook.url, secret="s3cret")], cooldown_s=30, clock=clock)
    runner.fire(grant("alice", 1))
    clock.t += 3
    runner.fire(grant("alice", 2))  # the same visit: no second POST
    runner.close()
    assert len(hook.requests) == 1
    headers, body = hook.requests[0]
    payload = json.loads(body)
    assert payload["event"] == "granted" and payload["name"] == "alice" and payload["track"] == 1
    assert payload["distance"] == 0.31 and len(payload["id"]) == 32
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert sig == sign("s3cret", ts, body) and verify("s3cret", ts, body, sig)
    assert not verify("wrong", ts, body, sig)
    assert not verify("s3cret", ts, body.replace(b"alice", b"mallory"), sig)
    assert not verify("s3cret", str(int(ts) - 3600), body, sign("s3cret", str(int(ts) - 3600), body))  # too old


def test_the_signature_is_the_documented_hmac_and_a_timestamp_from_the_future_is_refused():
    """README: ``sha256=HMAC(secret, timestamp + "." + body)``; a receiver's check refuses any
    grant more than max_age_s from its own clock, either way (a timestamp ahead of it would stay
    valid until then: a captured request could be replayed)."""
    import hashlib
    import hmac

    body, ts = b'{"name":"alice"}', "1700000000"
    assert sign("k", ts, body) == "sha256=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    sig = sign("k", ts, body)
    assert verify("k", ts, body, sig, max_age_s=30, now=1700000030) and verify("k", ts, body, sig, now=1699999970)
    assert not verify("k", ts, body, sig, max_age_s=30, now=1700000031)
    assert not verify("k", ts, body, sig, max_age_s=30, now=1700000000 - 3600)  # signed an hour ahead


def test_webhook_backs_off_twice_as_long_after_each_failure(monkeypatch):
    import types

    from blinkgate import actions

    slept = []
    monkeypatch.setattr(actions, "time", types.SimpleNamespace(time=time.time, monotonic=time.monotonic,
                                                               sleep=slept.append))
    h = Hook(status=[503, 503, 503, 200])
    WebhookAction(h.url, timeout_s=2, retries=3, backoff_s=0.5).run(Grant("a", 1, 0.0, None))
    h.close()
    assert len(h.requests) == 4 and slept == [0.5, 1.0, 2.0]


def test_webhook_retries_server_errors_but_not_refusals():
    h = Hook(status=[503, 500, 200])
    WebhookAction(h.url, timeout_s=2, retries=3, backoff_s=0.01).run(Grant("a", 1, 0.0, None))
    assert len(h.requests) == 3
    h.requests.clear()
    h.status = [403]
    WebhookAction(h.url, timeout_s=2, retries=3, backoff_s=0.01).run(Grant("a", 1, 0.0, None))
    assert len(h.requests) == 1
    h.close()


def test_webhook_signs_the_grant_time_so_a_late_delivery_is_refused(hook):
    late = Grant("a", 1, 0.0, None, unix_time=time.time() - 60)  # granted a minute ago
    WebhookAction(hook.url, secret="k").run(late)
    headers, body = hook.requests[0]
    assert headers[TIMESTAMP_HEADER] == str(int(late.unix_time))
    assert not verify("k", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])


def test_webhook_stops_retrying_once_the_grant_is_too_old_to_open_for():
    h = Hook(status=[503, 503, 503, 503])
    old = Grant("a", 1, 0.0, None, unix_time=time.time() - 10)
    WebhookAction(h.url, timeout_s=2, retries=3, backoff_s=0.01, max_age_s=5).run(old)
    assert len(h.requests) == 1
    h.close()


def test_webhook_gives_up_on_an_unreachable_server_within_its_timeouts():
    action = WebhookAction(f"http://127.0.0.1:{free_port()}/x", timeout_s=0.5, retries=1, backoff_s=0.01)
    t = time.perf_counter()
    action.run(Grant("a", 1, 0.0, None))
    assert time.perf_counter() - t < 3


def test_webhook_only_takes_http_urls():
    # A bad port or an unclosed IPv6 bracket: refused at start, not a traceback at every grant.
    for url in ("file:///etc/passwd", "ftp://x/y", "localhost:8000", "gopher://x", "http://door:8o80/",
                "http://door:99999/", "http://door:0/", "http://[::1/", "http://:8080/", "http://user@/"):
        with pytest.raises(BlinkgateError):
            WebhookAction(url)
    assert WebhookAction("https://[::1]:8443/door").url == "https://[::1]:8443/door"


@pytest.mark.parametrize(("url", "why"), [
    ("http://user:pw@127.0.0.1:8123/hook", "user name or password"),  # urllib took user:pw@host as the host
    ("http://127.0.0.1:8123/api/webhook/tür-öffnen", "percent-encode"),  # a UnicodeEncodeError at every grant
    ("http://127.0.0.1:8123/my hook", "percent-encode"),  # retried in vain at every grant
])
def test_a_webhook_url_that_could_never_be_sent_is_refused_at_start(url, why):
    with pytest.raises(BlinkgateError, match=why):
        WebhookAction(url)


def test_a_refused_webhook_url_is_not_printed_in_full():
    # Home Assistant's webhook id is the path: it is the secret that opens the door.
    for url in ("htps://ha.example/api/webhook/S3CRET-HOOK-ID", "http://ha.example:99999/api/webhook/S3CRET-HOOK-ID"):
        with pytest.raises(BlinkgateError) as err:
            WebhookAction(url)
        assert "S3CRET" not in str(err.value) and "ha.example" in str(err.value)


def test_a_webhook_answered_200_is_delivered_once_though_the_receiver_keeps_the_connection_open(caplog):
    """The body was read after the status: a receiver that answered 200 and held the connection
    timed the read out, and the grant was POSTed again (the door opened three times, logged as failed)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    seen, conns = [], []

    def answer():
        while True:
            conn, _ = server.accept()
            conn.recv(65536)
            seen.append(1)
            conns.append(conn)  # kept open: no body, no close
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/door"
    caplog.set_level(logging.INFO, logger="blinkgate.actions")
    t = time.perf_counter()
    WebhookAction(url, timeout_s=0.5, retries=2, backoff_s=0.01).run(Grant("a", 1, 0.0, None))
    assert len(seen) == 1 and time.perf_counter() - t < 0.5
    assert "webhook: 200 for a" in caplog.text and "failed" not in caplog.text
    server.close()


def test_a_webhook_answered_a_byte_at_a_time_gives_up_at_its_timeout(caplog):
    """urllib's timeout is per socket read: headers dripped a byte every 0.1 s held the worker
    for as long as the receiver went on, and every later grant was dropped as too late."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def answer():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not stop.wait(0.1):
            conn.sendall(b"x")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/door"
    t = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="blinkgate.actions"):
        action = WebhookAction(url, timeout_s=0.5, retries=0)
        done = threading.Thread(target=action.run, args=(Grant("a", 1, 0.0, None),))
        done.start()
        done.join(5)
    stop.set()
    server.close()
    assert not done.is_alive() and time.perf_counter() - t < 2
    assert "webhook failed after 1 attempts (no answer within 0.5 s)" in caplog.text


def test_webhook_retries_a_garbled_reply_like_a_dropped_connection(caplog):
    """A reply whose status line is not HTTP raised http.client's BadStatusLine out of run()."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    seen = []

    def answer():
        for _ in range(2):
            conn, _ = server.accept()
            conn.recv(65536)
            seen.append(1)
            conn.sendall(b"garbage\r\n\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/door"
    with caplog.at_level(logging.INFO, logger="blinkgate.actions"):
        WebhookAction(url, timeout_s=2, retries=1, backoff_s=0.01).run(Grant("a", 1, 0.0, None))
    server.close()
    assert len(seen) == 2 and "webhook failed after 2 attempts" in caplog.text


# -- MQTT ----------------------------------------------------------------------------------------------


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)
    if not found:
        pytest.skip("mosquitto not installed (apt-get install mosquitto; .ci/run installs it)")
    return found


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mosquitto did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


def _subscribe(port: int, topic: str):
    import paho.mqtt.client as mqtt

    got: list = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p=None: ready.set()
    client.on_message = lambda c, u, msg: got.append((msg.topic, json.loads(msg.payload), msg.retain))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(5), "subscription not acknowledged"
    return client, got


def test_mqtt_publishes_exactly_one_message_per_visit(broker):
    sub, got = _subscribe(broker, "home/door/#")
    clock = Clock()
    runner = ActionRunner([MqttAction("127.0.0.1", broker, "home/door/granted")], cooldown_s=30, clock=clock)
    runner.fire(grant("alice", 1))
    clock.t += 2
    runner.fire(grant("alice", 2))  # same visit
    clock.t += 60
    runner.fire(grant("alice", 3))  # next visit
    runner.close()
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything extra would arrive now
    sub.loop_stop()
    sub.disconnect()
    assert [(t, m["name"], m["track"], r) for t, m, r in got] == [
        ("home/door/granted", "alice", 1, False), ("home/door/granted", "alice", 3, False)]


def test_mqtt_broker_down_is_logged_not_raised(caplog):
    action = MqttAction("127.0.0.1", free_port(), "x/y", timeout_s=0.5)
    action.run(Grant("a", 1, 0.0, None))
    assert "cannot publish" in caplog.text


def test_mqtt_topic_must_not_be_a_wildcard():
    with pytest.raises(BlinkgateError):
        MqttAction("127.0.0.1", 1883, "home/#")


def test_an_unconfirmed_mqtt_unlock_is_dropped_with_its_connection_not_resent_later():
    """A frozen broker delivered an unlock 25 s after the grant: paho keeps resending it."""
    pytest.importorskip("paho.mqtt.client")

    class Info:
        def wait_for_publish(self, timeout):
            pass

        def is_published(self):
            return False

    class StuckClient:
        published, closed = [], False

        def publish(self, topic, payload, qos, retain):
            self.published.append(json.loads(payload))
            return Info()

        def disconnect(self):
            self.closed = True

        def loop_stop(self):
            pass

    action = MqttAction("127.0.0.1", 1883, "x/y", timeout_s=0.1)
    action._client = client = StuckClient()
    g = Grant("a", 1, 0.0, None, unix_time=1_800_000_000.5)
    action.run(g)
    assert client.closed and action._client is None  # the next grant connects afresh
    assert client.published[0]["unix_time"] == 1_800_000_000.5  # a relay can refuse an old unlock


def test_a_command_that_cannot_be_started_is_refused_at_start(tmp_path, monkeypatch):
    """A broken --on-grant started fine and failed only at the first grant, someone at the door."""
    script = tmp_path / "open-door"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for template, said in (("/nonexistent/open-door {name}", "program /nonexistent/open-door does not exist"),
                           (f"{script} {{name}}", f"program {script} is not executable (chmod +x {script})"),
                           (f"{tmp_path} {{name}}", f"program {tmp_path} is a directory"),
                           ("open-door {name}", "program open-door is not on PATH")):
        with pytest.raises(BlinkgateError, match=re.escape(said)):
            CommandAction(template)
    script.chmod(0o755)
    assert CommandAction(f"{script} {{name}}").argv[0] == str(script)
    monkeypatch.setenv("PATH", str(tmp_path))  # found on PATH, as subprocess finds it
    assert CommandAction("open-door {name}").argv[0] == "open-door"


def test_a_script_the_kernel_cannot_start_is_refused_at_start(tmp_path):
    """Executable, so it passed the start's check, then failed at the first grant: a script without
    its #! line ("Exec format error": no shell runs it) or with a missing interpreter ("No such file")."""
    script = tmp_path / "open-door"
    for text, said in (("echo open >> /tmp/x\n", "is a script without a #! line"),
                       ("#!/usr/bin/nosuch-python\n", "interpreter that cannot be run: #!/usr/bin/nosuch-python"),
                       ("#!/usr/bin/env nosuch-python3\n", "nosuch-python3 is not on PATH"),
                       ("#!/bin/sh\r\necho open\r\n", "Windows line ends (CRLF)"),
                       ("#!/usr/bin/env sh -e\n", "passes 'sh -e' to env as one program name")):  # "No such file": /bin/sh\r
        script.write_text(text)
        script.chmod(0o755)
        with pytest.raises(BlinkgateError, match=re.escape(said)):
            CommandAction(f"{script} {{name}}")
    done = tmp_path / "done"
    for text in (f"#!/bin/sh\necho \"$1\" > {done}\n", f"#!/usr/bin/env sh\necho \"$1\" > {done}\n",
                 f"#!/usr/bin/env -S sh -e\necho \"$1\" > {done}\n"):
        script.write_text(text)
        CommandAction(f"{script} {{name}}").run(Grant("ada", 1, 0.0, None))
        assert done.read_text() == "ada\n"
        done.unlink()
    assert CommandAction(f"{sys.executable} -c pass").argv[0] == sys.executable  # a binary: not read as a script


def test_a_shell_operator_in_the_command_is_warned_about_at_start(caplog):
    """No shell runs the command: `open-door {name} | logger` passed '|' and 'logger' to
    open-door without a word."""
    with caplog.at_level("WARNING", logger="blinkgate"):
        CommandAction(f"{sys.executable} -c pass {{name}} | logger -t door >> /tmp/door.log")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "'|' '>>'" in said[0] and "no shell is used" in said[0], said
    assert "put the pipeline or redirection in a script" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="blinkgate"):
        CommandAction(f"{sys.executable} -c pass {{name}} --mode=a|b x>y")  # inside a word: an argument
    assert not caplog.records
