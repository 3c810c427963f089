"""Settings: defaults < blinkgate.toml < environment < command line, each value's origin."""

from __future__ import annotations

import json

import pytest

from blinkgate.cli import build_parser, main
from blinkgate.config import SETTINGS, find_config, resolve, weakened
from blinkgate.door import ChallengePolicy
from blinkgate.doorrun import build_actions, door_options
from blinkgate.errors import BlinkgateError

TOML = """
source = "door.mp4"
liveness = 8

[challenge]
hold = 5.0
counts = [2, 3]

[lockout]
failures = 3

[webhook]
url = "http://127.0.0.1:9/hook"
secret = "from-file"
"""


def cli(*argv: str):
    return build_parser().parse_args(["door", *argv])


@pytest.fixture
def conf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./blinkgate.toml
    path = tmp_path / "door.toml"
    path.write_text(TOML)
    path.chmod(0o600)
    return path


def test_defaults_with_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    r = resolve(cli(), env={})
    assert r.file is None and set(r.origins.values()) == {"default"}
    assert r["challenge.enabled"] is True and r["challenge.counts"] == (1, 2, 3) and r["lockout.failures"] == 5
    opts = door_options(r)
    assert opts.challenge.hold_ms == 4000 and opts.lockout.window_ms == 180_000 and opts.grant_ms == 10_000
    # The settings' defaults are the policy's own.
    assert opts.challenge == ChallengePolicy()
    assert door_options(resolve(cli("--challenge-clear", "0.9"), env={})).challenge.clear_ms == 900


def test_precedence_and_origins(conf):
    env = {"BLINKGATE_CHALLENGE_HOLD": "6", "BLINKGATE_LOCKOUT_FAILURES": "4", "BLINKGATE_CONFIG": str(conf)}
    r = resolve(cli("--hold", "7", "--no-challenge"), env=env)
    assert r.file == conf
    assert (r["source"], r.origins["source"]) == (str(conf.parent / "door.mp4"), f"file:{conf}")
    assert (r["liveness"], r["challenge.counts"]) == (8.0, (2, 3))
    assert (r["lockout.failures"], r.origins["lockout.failures"]) == (4, "env:BLINKGATE_LOCKOUT_FAILURES")
    assert (r["challenge.hold"], r.origins["challenge.hold"]) == (7.0, "cli:--hold")
    assert (r["challenge.enabled"], r.origins["challenge.enabled"]) == (False, "cli:--no-challenge")
    assert (r["fps"], r.origins["fps"]) == (20.0, "default")


def test_relative_paths_in_a_settings_file_are_taken_from_its_folder(tmp_path, monkeypatch):
    # `db = "mine.db"` named ./mine.db of whichever folder a command ran in: `enroll` in one
    # folder and `door` or `people --config` in another used two databases.
    conf = tmp_path / "etc" / "blinkgate.toml"
    conf.parent.mkdir()
    conf.write_text('db = "mine.db"\neye_model = "m/eye.onnx"\nevents = "/var/log/ev.jsonl"\n'
                    'record = "~/door.mkv"\nsource = "door.mp4"\n')
    monkeypatch.chdir(tmp_path)
    r = resolve(cli("--config", str(conf)), env={})
    assert r["db"] == str(conf.parent / "mine.db") and r["eye_model"] == str(conf.parent / "m" / "eye.onnx")
    assert (r["events"], r["record"], r["source"]) == ("/var/log/ev.jsonl", "~/door.mkv", str(conf.parent / "door.mp4"))
    for camera in ("0", "rtsp://cam/1"):
        conf.write_text(f'source = "{camera}"\n')
        assert resolve(cli("--config", str(conf)), env={})["source"] == camera
    # the environment and the command line are the user's own: taken from where the command runs
    assert resolve(cli("--config", str(conf), "--db", "x.db"), env={"BLINKGATE_EVENTS": "e.jsonl"})[
        "db"] == "x.db"
    assert resolve(cli("--config", str(conf)), env={"BLINKGATE_EVENTS": "e.jsonl"})["events"] == "e.jsonl"


def test_config_file_discovery(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_config(None, {}) is None
    (tmp_path / "blinkgate.toml").write_text('source = "x"\n')
    assert find_config(None, {}) == tmp_path / "blinkgate.toml"
    with pytest.raises(BlinkgateError, match="no config file"):
        find_config(str(tmp_path / "missing.toml"), {})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[lockuot]\nfailures = 1\n", "unknown setting 'lockuot.failures'.*did you mean lockout.failures"),
        ("tolerence = 0.4\n", r"unknown setting 'tolerence' \(did you mean tolerance\?\)"),
        ("[challenge]\nhodl = 5.0\n", r"unknown setting 'challenge.hodl' \(did you mean challenge.hold\?\)"),
        # the table's name as a key, to switch it off: its switch, not challenge.hold (the nearest spelling)
        ("challenge = false\n", r"unknown setting 'challenge' \(did you mean challenge.enabled\?\)"),
        ("[challenge]\nhold = \"long\"\n", "challenge.hold must be a number"),
        ("[challenge]\nenabled = 1\n", "challenge.enabled must be true or false"),
        # quoted in the file: a wrong TOML type as `enabled = 1` is, not text to parse (the environment's is)
        ("[challenge]\nenabled = \"yes\"\n", r"^config file .*door.toml: challenge.enabled must be true or false \(without quotes\), got 'yes'$"),
        ('tolerance = "0.4"\n', r"^config file .*door.toml: tolerance must be a number \(without quotes\), got '0.4'$"),
        ('[lockout]\nfailures = "3"\n', "lockout.failures must be a number"),
        ('[challenge]\ncounts = "1,2"\n', r"challenge.counts must be a list of whole numbers, like \[1, 2\]"),
        # a key of the same table that takes a port, not the same word in another table (mqtt.port)
        ("[ui]\nport = 8080\n", r"unknown setting 'ui.port' \(did you mean ui.listen\?\)"),
        ('[mqtt]\nuser = "door"\n', r"unknown setting 'mqtt.user' \(did you mean mqtt.username\?\)"),
        ("[challenge]\ncounts = [0, 2]\n", "counts must be a list of positive"),
        ("[lockout]\nfailures = 2.5\n", "whole number"),
        ("eyes = \"magic\"\n", "eyes must be one of landmarks, haar"),
        ("[challenge\n", "not valid TOML"),
        ("tolerance = 3.0\n", "tolerance must be at most 1"),
        ("liveness = inf\n", "liveness must be a finite number"),
        # past a float's range, and timeouts too long for the clock calls (OverflowError at a grant)
        ("[challenge]\nhold = 1" + "0" * 400 + "\n", "challenge.hold must be a number"),
        ("[webhook]\ntimeout = 1e300\n", "webhook.timeout must be at most 3600"),
        ("[actions]\ncommand_timeout = 1e300\n", "actions.command_timeout must be at most 3600"),
        # no ceiling of its own: 1e306 s became an infinite lockout whose end date overflowed
        ("[lockout]\ncooldown = 1e306\n", "lockout.cooldown must be at most 1e\\+09"),
        ('db = ""\n', "db must not be empty"),
    ],
)
def test_bad_files_are_errors(conf, text, message):
    conf.write_text(text)
    with pytest.raises(BlinkgateError, match=message):
        resolve(cli("--config", str(conf)), env={})


def test_env_values_are_parsed_and_checked(conf):
    r = resolve(cli(), env={"BLINKGATE_CHALLENGE_ENABLED": "off", "BLINKGATE_CHALLENGE_COUNTS": "1,3",
                            "BLINKGATE_MQTT_TLS": "yes", "BLINKGATE_DB": "", "BLINKGATE_TOLERANCE": "0.4"})
    assert r["challenge.enabled"] is False and r["challenge.counts"] == (1, 3) and r["mqtt.tls"] is True
    assert r["tolerance"] == 0.4  # text, as every variable is: parsed, where in the file it is a wrong type
    assert r.origins["db"] == "default"  # an empty variable is unset
    with pytest.raises(BlinkgateError, match="BLINKGATE_LOCKOUT_FAILURES"):
        resolve(cli(), env={"BLINKGATE_LOCKOUT_FAILURES": "many"})
    with pytest.raises(BlinkgateError, match="min_reaction"):
        resolve(cli("--min-reaction", "2"), env={})


def test_every_setting_has_a_flag_and_an_env_name():
    flags = [s.flag for s in SETTINGS]
    assert all(flags) and len(set(flags)) == len(flags)
    assert all(s.env.startswith("BLINKGATE_") for s in SETTINGS)


def test_config_command_shows_values_and_origins_and_hides_secrets(conf, capsys, monkeypatch):
    monkeypatch.setenv("BLINKGATE_MQTT_PASSWORD", "hunter2")
    monkeypatch.setenv("BLINKGATE_WEBHOOK_URL", "https://ha.local/api/webhook/s3cr3t-id")
    assert main(["config", "--config", str(conf), "--hold", "4.5", "--source", "rtsp://admin:pw9@cam/1"]) == 0
    out = capsys.readouterr().out
    assert '"rtsp://***@cam/1"' in out and '"https://ha.local/***"' in out
    assert "pw9" not in out and "s3cr3t-id" not in out
    assert f"# config file: {conf}" in out
    assert "# face database: " in out and "faces.db" in out  # the file the door uses, not "unset"
    assert "challenge.hold          = 4.5  # cli:--hold" in out
    assert f"lockout.failures        = 3  # file:{conf}" in out
    assert "mqtt.password           = \"***\"  # env:BLINKGATE_MQTT_PASSWORD" in out
    assert "from-file" not in out and "hunter2" not in out
    assert main(["config", "--config", str(conf), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["webhook.secret"] == {"value": "***", "origin": f"file:{conf}"}
    assert data["settings"]["challenge.counts"]["value"] == [2, 3]


def test_a_secret_in_a_world_readable_file_is_warned_about(conf, caplog):
    conf.chmod(0o640)  # root:blinkgate 640 is how a service reads it (README): no warning
    resolve(cli("--config", str(conf)), env={})
    assert "readable" not in caplog.text
    conf.chmod(0o644)
    resolve(cli("--config", str(conf)), env={})
    assert "readable by every user" in caplog.text and "chmod 600" in caplog.text


def test_a_secret_on_the_command_line_is_warned_about(caplog):
    """It shows in every user's `ps`; README says to keep secrets in the environment or the file."""
    resolve(cli("--mqtt-password", "hunter2"), env={"BLINKGATE_WEBHOOK_SECRET": "k"})
    assert "--mqtt-password on the command line can be read by every user" in caplog.text
    assert "$BLINKGATE_MQTT_PASSWORD" in caplog.text and "hunter2" not in caplog.text
    assert "--webhook-secret" not in caplog.text  # from the environment: fine


def test_a_file_others_can_change_is_refused(conf, caplog):
    """Whoever can write the settings file can switch the challenge off."""
    conf.chmod(0o666)
    with pytest.raises(BlinkgateError, match="can be changed by any user"):
        resolve(cli("--config", str(conf)), env={})
    conf.chmod(0o620)
    resolve(cli("--config", str(conf)), env={})
    assert "can be changed by its group" in caplog.text


def test_security_settings_below_their_defaults_are_named_with_their_origin(conf, capsys):
    env = {"BLINKGATE_LOCKOUT_FAILURES": "0", "BLINKGATE_TOLERANCE": "0.4"}
    lines = weakened(resolve(cli("--config", str(conf), "--no-challenge"), env=env))
    assert [line.split(" = ")[0] for line in lines] == ["challenge.enabled", "challenge.counts", "lockout.failures"]
    assert "(cli:--no-challenge; default true)" in lines[0] and f"file:{conf}" in lines[1]
    assert "env:BLINKGATE_LOCKOUT_FAILURES" in lines[2]  # a stricter tolerance (0.4) is not listed
    only_file = weakened(resolve(cli("--config", str(conf)), env={}))
    assert [line.split(" = ")[0] for line in only_file] == ["challenge.counts"]  # its hold of 5 s is stricter
    assert main(["config", "--config", str(conf), "--no-challenge"]) == 0
    assert "# weaker than the default: challenge.enabled = false" in capsys.readouterr().out


def test_every_setting_that_widens_the_replay_window_or_shortens_lockouts_is_named():
    env = {"BLINKGATE_CHALLENGE_MIN_REACTION": "0", "BLINKGATE_LOCKOUT_MAX_COOLDOWN": "0",
           "BLINKGATE_CHALLENGE_MAX_CLOSED": "3"}
    named = [line.split(" = ")[0] for line in weakened(resolve(cli(), env=env))]
    assert named == ["challenge.min_reaction", "challenge.max_closed", "lockout.max_cooldown"]


def test_a_shorter_settle_a_count_listed_twice_and_haar_eyes_are_named_as_weaker():
    """--settle 0 judged the answer before a blink started 0.1 s before the end of the hold was
    reported (the door granted it), counts [1, 1, 1, 1, 1, 2, 3] ask k = 1 five times in seven
    (worst replay chance 5.7 %, not 3.0 %), and --eyes haar drops the EAR, fold and sharpness
    checks: none was named, while --hold 3 was."""
    env = {"BLINKGATE_CHALLENGE_SETTLE": "0", "BLINKGATE_CHALLENGE_COUNTS": "1,1,1,1,1,2,3", "BLINKGATE_EYES": "haar"}
    named = [line.split(" = ")[0] for line in weakened(resolve(cli(), env=env))]
    assert named == ["challenge.counts", "challenge.settle", "eyes"]
    stricter = {"BLINKGATE_CHALLENGE_SETTLE": "1.5", "BLINKGATE_CHALLENGE_COUNTS": "1,2,3,4"}
    assert weakened(resolve(cli(), env=stricter)) == []


def test_errors_about_a_secret_setting_do_not_print_it(conf):
    for text in ("[webhook]\nsecret = 123456789\n", "[mqtt]\npassword = 123456789\n", "[ui]\ntoken = 123456789\n"):
        conf.write_text(text)
        with pytest.raises(BlinkgateError, match=r"must be a string, got \*\*\*") as err:
            resolve(cli("--config", str(conf)), env={})
        assert "123456789" not in str(err.value)


def test_a_settings_file_saved_with_a_bom_loads_and_one_not_in_utf8_is_a_one_line_error(conf):
    conf.write_bytes(TOML.encode("utf-8-sig"))
    assert resolve(cli("--config", str(conf)), env={})["liveness"] == 8
    conf.write_bytes('source = "T\xfcre.mp4"\n'.encode("latin-1"))
    with pytest.raises(BlinkgateError, match="is not UTF-8 text"):
        resolve(cli("--config", str(conf)), env={})


def test_an_empty_config_or_db_flag_is_refused_not_taken_for_the_default(conf, monkeypatch):
    (conf.parent / "blinkgate.toml").write_text('db = "from-file.db"\n')  # what `--config ""` fell back to
    with pytest.raises(BlinkgateError, match="--config is empty"):
        resolve(cli("--config", ""), env={})
    with pytest.raises(BlinkgateError, match="db must not be empty"):
        resolve(cli("--db", ""), env={})
    assert resolve(cli(), env={"BLINKGATE_DB": ""})["db"] == str(conf.parent / "from-file.db")  # an empty variable stays unset


def test_verify_takes_the_doors_outputs_only_from_its_own_command_line(conf, capsys):
    """`verify` beside a running door, on its settings file, took the door's browser-view port
    (an error) and wrote into its recording and events; set on verify's command line they hold."""
    from blinkgate.config import for_verify

    conf.write_text('record = "door.mkv"\n' + TOML + '\n[ui]\nlisten = "8080"\n')
    env = {"BLINKGATE_EVENTS": "door-events.jsonl"}
    door = resolve(cli("--config", str(conf)), env=env)
    verify = for_verify(door)
    assert (door["record"], door["events"], door["ui.listen"]) == (str(conf.parent / "door.mkv"), "door-events.jsonl", "8080")
    assert (verify["record"], verify["events"], verify["ui.listen"]) == (None, None, None)
    assert verify["lockout.failures"] == 3 and verify["challenge.counts"] == (2, 3)  # the rest is the door's
    own = for_verify(resolve(cli("--config", str(conf), "--ui", "9090", "--events", "mine.jsonl"), env=env))
    assert (own["record"], own["events"], own["ui.listen"]) == (None, "mine.jsonl", "9090")
    assert main(["config", "--config", str(conf)]) == 0
    assert "# verify does not use record, ui.listen from here: only from its own command line" in capsys.readouterr().out


def test_actions_are_built_from_settings(conf):
    r = resolve(cli("--config", str(conf), "--on-grant", "true {name}", "--action-cooldown", "12"), env={})
    runner = build_actions(r)
    try:
        assert [a.name for a in runner.actions] == ["command", "webhook"] and runner.cooldown_s == 12
        assert runner.actions[1].secret == "from-file"
    finally:
        runner.close()
    assert build_actions(resolve(cli(), env={})) is None
    with pytest.raises(BlinkgateError, match="without --webhook"):
        build_actions(resolve(cli("--webhook-secret", "x"), env={}))


def test_an_on_grant_program_missing_says_which_setting_named_it(tmp_path, monkeypatch):
    # The README's example file names /usr/local/bin/open-door: the door said "--on-grant program
    # ... does not exist" to a user who never typed --on-grant.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "door.toml"
    path.write_text('[actions]\non_grant = "/nonexistent/open-door {name}"\n')
    with pytest.raises(BlinkgateError, match=r"does not exist \(actions.on_grant, file:.*door.toml\)"):
        build_actions(resolve(cli("--config", str(path)), env={}))
    with pytest.raises(BlinkgateError, match=r"\(actions.on_grant, env:BLINKGATE_ACTIONS_ON_GRANT\)"):
        build_actions(resolve(cli(), env={"BLINKGATE_ACTIONS_ON_GRANT": "/nonexistent/open-door"}))
    with pytest.raises(BlinkgateError, match=r"^--on-grant program /nonexistent/open-door does not exist$"):
        build_actions(resolve(cli("--on-grant", "/nonexistent/open-door"), env={}))


def test_an_mqtt_broker_without_tls_or_login_is_warned_about(caplog):
    pytest.importorskip("paho.mqtt.client")
    for args, warned in ((("--mqtt-host", "broker"), "no TLS and no login"),
                         (("--mqtt-host", "broker", "--mqtt-username", "door"), "no TLS"),
                         (("--mqtt-host", "broker", "--mqtt-username", "door", "--mqtt-tls"), None)):
        caplog.clear()
        runner = build_actions(resolve(cli(*args), env={}))
        runner.close()
        if warned:
            assert f"mqtt: {warned};" in caplog.text
        else:
            assert "mqtt:" not in caplog.text


def test_a_misspelt_environment_variable_is_warned_about(caplog):
    r = resolve(cli(), env={"BLINKGATE_CHALLENG_HOLD": "9", "BLINKGATE_DB": "x.db"})
    assert r["challenge.hold"] == 4.0 and r["db"] == "x.db"
    assert "unknown environment variable BLINKGATE_CHALLENG_HOLD is ignored (did you mean BLINKGATE_CHALLENGE_HOLD?)" \
        in caplog.text and "BLINKGATE_DB" not in caplog.text
