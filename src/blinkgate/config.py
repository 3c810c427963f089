"""Settings for ``blinkgate door``: defaults < ``blinkgate.toml`` < environment < command line.
``enroll``, ``people``, ``forget``, ``run`` and ``check`` read the gate's settings from here too
(``cli._fill_settings``).

Every setting has a dotted key (``challenge.hold``); in the TOML file the part before the dot
is a table (``[challenge]`` / ``hold = 4.0``), top-level keys have no table. Its environment
variable is ``BLINKGATE_`` + the key in capitals with dots as underscores
(``BLINKGATE_CHALLENGE_HOLD``; ``BLINKGATE_DB`` for ``db``). Its command-line flag, where it
has one, is listed by ``blinkgate door --help``. Durations are in seconds.

The file is the first of: ``--config PATH``, ``$BLINKGATE_CONFIG``, ``./blinkgate.toml``,
``<user config dir>/blinkgate/blinkgate.toml``. An unknown key or a wrong type in it is an
error, not silently ignored: a misspelt ``[lockout]`` must not leave the door unprotected.
``blinkgate config`` prints every effective value and where it came from; secrets print as
``***``. Prefer the file (``chmod 600``) or the environment for secrets: command-line
arguments are visible to every user of the machine in ``ps``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BlinkgateError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("blinkgate")

CONFIG_NAME = "blinkgate.toml"
CONFIG_ENV = "BLINKGATE_CONFIG"


@dataclass(frozen=True)
class Setting:
    key: str
    type: str  # str | float | int | bool | ints
    default: object
    help: str
    flag: str | None = None
    secret: bool = False
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None  # default: from the choices or the key (TOLERANCE)

    @property
    def placeholder(self) -> str:
        """The flag's metavar: one for every command that takes the flag (door, run, check)."""
        if self.metavar:
            return self.metavar
        return "{" + ",".join(map(str, self.choices)) + "}" if self.choices else self.key.split(".")[-1].upper()

    def flag_help(self, settings: bool = True) -> str:
        """The flag's help: what it does, its default, and for a command that reads settings
        (``settings``) its key and variable; eval's, which does not, names neither."""
        default = "" if "default" in self.help or self.default is None else f"default {_show(self, self.default)}"
        where = f"{self.key} / ${self.env}" if settings else ""
        extra = "; ".join(part for part in (default, where) if part)
        return f"{self.help} ({extra})" if extra else self.help

    @property
    def env(self) -> str:
        return "BLINKGATE_" + self.key.upper().replace(".", "_")

    @property
    def dest(self) -> str:
        return "cfg_" + self.key.replace(".", "__")


SETTINGS: tuple[Setting, ...] = (
    # the gate
    Setting("db", "str", None, "face database (default: the user data directory)", "--db"),
    Setting("source", "str", "0", "camera index, video file, frame folder or rtsp/http URL", "--source"),
    Setting("fps", "float", 20.0, "frame rate of a frame folder", "--fps", minimum=0.1),
    Setting("eyes", "str", "landmarks", "eye backend", "--eyes", choices=("landmarks", "haar")),
    Setting("tolerance", "float", 0.5, "face distance accepted as a match", "--tolerance", minimum=0.0, maximum=1.0),
    Setting("eye_model", "str", None, "eye-state ONNX model, e.g. from train-eyes (default: the shipped one)", "--eye-model",
            metavar="ONNX"),
    Setting("liveness", "float", 10.0, "a blink keeps a face live, and a grant lasts, this long (s)", "--liveness",
            minimum=0.1, metavar="SECONDS"),
    Setting("display", "bool", True, "show a window", "--display"),
    Setting("record", "str", None, "write the annotated video here (.mkv plays after a power cut; .mp4, .avi, .mov, "
            ".m4v)", "--record", metavar="OUT.mkv"),
    Setting("events", "str", None, "append one JSON line per event here", "--events", metavar="OUT.jsonl"),
    Setting("ui.listen", "str", None, "serve a browser view on [HOST:]PORT (loopback unless HOST is given)", "--ui",
            metavar="[HOST:]PORT"),
    Setting("ui.token", "str", None, "the browser view's access token (default: a new random one per run)", "--ui-token", secret=True),
    # challenge-response
    Setting("challenge.enabled", "bool", True, "challenge-response: ask for 1-3 blinks at a random moment", "--challenge"),
    Setting("challenge.counts", "ints", (1, 2, 3), "blink counts to ask for, drawn uniformly", "--challenge-counts"),
    Setting("challenge.delay_min", "float", 0.5, "prompt comes at least this long after recognition (s)", "--challenge-delay-min", minimum=0.0),
    Setting("challenge.delay_max", "float", 6.5, "... and at most this long (s)", "--challenge-delay-max", minimum=0.0),
    Setting("challenge.min_reaction", "float", 0.2, "blinks starting sooner after the prompt do not count (s)", "--min-reaction", minimum=0.0),
    Setting("challenge.max_reaction", "float", 1.2, "the first blink must start by then (s)", "--max-reaction", minimum=0.0),
    Setting("challenge.max_interval", "float", 0.7, "onset to onset between the asked blinks (s)", "--max-interval", minimum=0.01),
    Setting("challenge.clear", "float", 0.7, "the first answer blink must start more than this long after any earlier blink (s)", "--challenge-clear", minimum=0.0),
    Setting("challenge.hold", "float", 4.0, "eyes open, no blink, this long after the last (s)", "--hold", minimum=0.01),
    Setting("challenge.settle", "float", 0.8, "wait for blinks still in progress before deciding (s)", "--settle", minimum=0.0),
    Setting("challenge.rounds", "int", 1, "challenges in a row to pass (2: a replay's chance squared)", "--challenge-rounds", minimum=1),
    Setting("challenge.max_closed", "float", 1.0, "eyes closed longer than this fail the challenge (s)", "--max-closed", minimum=0.01),
    Setting("challenge.check_wait", "float", 5.0, "wait this long for the answer's blinks to be named before failing it (s)", "--check-wait", minimum=0.0),
    # lockout
    Setting("lockout.failures", "int", 5, "failed challenges of one identity that lock it out (0: never)", "--lockout-failures", minimum=0),
    Setting("lockout.window", "float", 180.0, "... within this long (s)", "--lockout-window", minimum=1.0),
    Setting("lockout.cooldown", "float", 600.0, "a locked-out identity is refused this long (s)", "--lockout-cooldown", minimum=0.0),
    Setting("lockout.max_cooldown", "float", 86400.0, "repeated lockouts double the cool-down up to this (s)", "--lockout-max-cooldown", minimum=0.0),
    # unlock actions
    Setting("actions.on_grant", "str", None, "command to run on a grant, e.g. 'open-door {name} {track}' (no shell)", "--on-grant"),
    Setting("actions.command_timeout", "float", 10.0, "kill the on-grant command after this long (s)", "--on-grant-timeout", minimum=0.1, maximum=3600.0),
    Setting("actions.cooldown", "float", 30.0, "fire the actions at most once per person this often (s)", "--action-cooldown", minimum=0.0),
    Setting("webhook.url", "str", None, "POST each grant as JSON to this http(s) URL", "--webhook"),
    Setting("webhook.secret", "str", None, "HMAC-SHA256 key for the X-Blinkgate-Signature header", "--webhook-secret", secret=True),
    Setting("webhook.timeout", "float", 3.0, "per-request timeout (s)", "--webhook-timeout", minimum=0.1, maximum=3600.0),
    Setting("webhook.retries", "int", 2, "retries after a failed POST", "--webhook-retries", minimum=0),
    Setting("mqtt.host", "str", None, "publish each grant to this MQTT broker", "--mqtt-host"),
    Setting("mqtt.port", "int", 1883, "MQTT broker port", "--mqtt-port", minimum=1, maximum=65535),
    Setting("mqtt.topic", "str", "blinkgate/door/granted", "MQTT topic", "--mqtt-topic"),
    Setting("mqtt.username", "str", None, "MQTT user name", "--mqtt-username"),
    Setting("mqtt.password", "str", None, "MQTT password", "--mqtt-password", secret=True),
    Setting("mqtt.tls", "bool", False, "connect to the broker with TLS", "--mqtt-tls"),
    Setting("mqtt.qos", "int", 1, "MQTT QoS", "--mqtt-qos", choices=(0, 1, 2)),
    # access log
    Setting("log.snapshots", "bool", True, "store a JPEG of the face with each decision", "--snapshots"),
    Setting("log.retention_days", "float", 30.0, "delete snapshots older than this (days; rows go after a year, or this if longer)", "--retention-days", minimum=0.001),
)
BY_KEY = {s.key: s for s in SETTINGS}
MAX_NUMBER = 1e9  # the largest number any setting without its own maximum takes (~31 years in seconds)
PATH_KEYS = ("db", "source", "eye_model", "record", "events")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Resolved:
    """Effective settings: ``values[key]`` and ``origins[key]`` (default, file:PATH,
    env:NAME, cli:--flag); ``file`` is the config file read, if any."""

    values: dict[str, object]
    origins: dict[str, str]
    file: Path | None

    def __getitem__(self, key: str):
        return self.values[key]

    def lines(self) -> list[str]:
        width = max(len(k) for k in self.values)
        out = [f"# config file: {self.file if self.file else 'none'}"]
        for s in SETTINGS:
            out.append(f"{s.key:<{width}} = {_show(s, self.values[s.key])}  # {self.origins[s.key]}")
        return out

    def to_json(self) -> dict:
        return {
            "file": str(self.file) if self.file else None,
            "settings": {s.key: {"value": _masked(s, self.values[s.key]), "origin": self.origins[s.key]} for s in SETTINGS},
        }


def _masked(s: Setting, value):
    if s.secret and value:
        return "***"
    if s.key == "webhook.url" and isinstance(value, str):
        from .actions import shown_webhook_url

        return shown_webhook_url(value)
    if s.key == "source" and isinstance(value, str):
        from .sources import redact_url  # a URL may carry a password or a token

        return redact_url(value)
    return list(value) if isinstance(value, tuple) else value


def _show(s: Setting, value) -> str:
    v = _masked(s, value)
    return "unset" if v is None else json.dumps(v)


# -- parsing -----------------------------------------------------------------------------------


def _convert(s: Setting, value, where: str, typed: bool = False):
    """A value from TOML (``typed``) or from a string (env, CLI) → the setting's type. Only
    text is parsed: in a TOML file `tolerance = "0.4"` or `enabled = "yes"` is a wrong type,
    as `enabled = 1` is, not a number or a switch."""
    def bad(why: str) -> BlinkgateError:
        shown = "***" if s.secret else repr(_masked(s, value) if isinstance(value, str) else value)
        return BlinkgateError(f"{where}: {s.key} {why}, got {shown}")

    text = isinstance(value, str)
    if typed and text and s.type != "str":
        raise bad({"bool": "must be true or false (without quotes)", "ints": "must be a list of whole numbers, like [1, 2]"}
                  .get(s.type, "must be a number (without quotes)"))
    if s.type == "str":
        if not text:
            raise bad("must be a string")
        if not value.strip() and s.key in PATH_KEYS:  # `--db "$UNSET"` must not quietly mean the default
            raise bad("must not be empty (leave it out for the default)")
        out = value
    elif s.type == "bool":
        if isinstance(value, bool):
            out = value
        elif text and value.strip().lower() in _TRUE | _FALSE:
            out = value.strip().lower() in _TRUE
        else:
            raise bad("must be true or false")
    elif s.type in ("int", "float"):
        if isinstance(value, bool) or not (text or isinstance(value, (int, float))):
            raise bad("must be a number")
        if s.type == "int" and isinstance(value, float):
            raise bad("must be a whole number")
        try:
            out = int(value) if s.type == "int" else float(value)
        except (ValueError, OverflowError):  # OverflowError: a TOML integer past a float's range
            raise bad(f"must be {'a whole number' if s.type == 'int' else 'a number'}") from None
        if not math.isfinite(out):
            raise bad("must be a finite number")
        if s.minimum is not None and out < s.minimum:
            raise bad(f"must be at least {s.minimum:g}")
        # No setting means more than 30 years: 1e306 s passed, then overflowed a date at a lockout.
        maximum = MAX_NUMBER if s.maximum is None else s.maximum
        if out > maximum:
            raise bad(f"must be at most {maximum:g}")
    elif s.type == "ints":
        items = value.replace(",", " ").split() if text else value
        if not isinstance(items, (list, tuple)) or not items:
            raise bad("must be a list of whole numbers")
        try:
            out = tuple(int(v) for v in items if not isinstance(v, (bool, float)))
        except (TypeError, ValueError):
            raise bad("must be a list of whole numbers") from None
        if len(out) != len(items) or any(v < 1 for v in out):
            raise bad("must be a list of positive whole numbers")
    else:  # pragma: no cover
        raise AssertionError(s.type)
    if s.choices is not None and out not in s.choices:
        raise bad(f"must be one of {', '.join(map(str, s.choices))}")
    return out


def _flatten(table: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def find_config(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: explicit, $BLINKGATE_CONFIG, ./blinkgate.toml, user dir."""
    if explicit is not None and not explicit.strip():  # `--config "$UNSET"` must not read another file
        raise BlinkgateError("--config is empty: give a settings file, or leave the flag out")
    for given in (explicit, env.get(CONFIG_ENV) or None):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():  # a folder is there, not missing
                raise BlinkgateError(f"config file {path} is a folder: give the {CONFIG_NAME} in it"
                                     if path.is_dir() else f"no config file at {path}")
            return path
    from platformdirs import user_config_dir

    for path in (Path.cwd() / CONFIG_NAME, Path(user_config_dir("blinkgate", appauthor=False)) / CONFIG_NAME):
        if path.is_file():
            return path
    return None


def check_file_owner(path: Path, what: str = "config file", harm: str = "could switch the challenge off",
                     error: type[BlinkgateError] = BlinkgateError) -> None:
    """Refuse a file that someone else can change: whoever can write the settings file can switch
    the challenge or the lockout off, whoever can write the face database can enrol their own face.
    Owned by us or root, not writable by others (as ssh does); group-writable only warns, since
    many systems give each user a group of their own. ``what``/``harm``/``error`` word the refusal."""
    if os.name != "posix":
        return
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.getuid(), 0):
        raise error(f"{what} {path} belongs to another user (uid {info.st_uid}), who {harm}: use a file "
                    f"you or root own (chown {os.getuid()} {path} if you trust its contents)")
    if mode & stat.S_IWOTH:
        raise error(f"{what} {path} can be changed by any user (mode {mode:o}), who {harm}: chmod o-w {path}")
    if mode & stat.S_IWGRP:
        log.warning("%s %s can be changed by its group (mode %o): chmod g-w %s", what, path, mode, path)


# Settings that, moved from their default this way, let more through: (key, weaker, what it costs).
WEAKER = (
    ("challenge.enabled", lambda v, d: not v, "no challenge: a replayed video of the person blinking is granted"),
    # k is drawn from the list as written: a count listed twice comes up twice as often
    ("challenge.counts", lambda v, d: _likeliest(v) > _likeliest(d),
     "fewer blink counts to ask for, or one listed more than once: a replay guesses k more often"),
    ("challenge.rounds", lambda v, d: v < d, "fewer challenge rounds"),
    ("challenge.delay_min", lambda v, d: v > d, "a narrower window for the prompt: a replay times it more easily"),
    ("challenge.delay_max", lambda v, d: v < d, "a narrower window for the prompt: a replay times it more easily"),
    ("challenge.max_reaction", lambda v, d: v > d, "a longer window for the first answer blink: a replay hits it more often"),
    ("challenge.min_reaction", lambda v, d: v < d, "a longer window for the first answer blink: a replay hits it more often"),
    ("challenge.max_closed", lambda v, d: v > d, "longer closures pass the challenge: eyes covered for longer count as a blink"),
    ("challenge.max_interval", lambda v, d: v > d, "a longer gap allowed between answer blinks"),
    ("challenge.hold", lambda v, d: v < d, "a shorter hold after the answer: a replay's next blink falls outside it more often"),
    ("challenge.clear", lambda v, d: v < d, "a shorter quiet time before the answer"),
    ("challenge.settle", lambda v, d: v < d,
     "the answer is judged before a blink started late in the hold is seen: a shorter hold in effect"),
    ("lockout.failures", lambda v, d: v == 0 or v > d, "no lockout (0), or more failed challenges before one"),
    ("lockout.window", lambda v, d: v < d, "failures counted over a shorter window"),
    ("lockout.cooldown", lambda v, d: v < d, "a shorter lockout"),
    ("lockout.max_cooldown", lambda v, d: v < d, "repeated lockouts grow less (not at all below lockout.cooldown)"),
    ("tolerance", lambda v, d: v > d, "a looser face match: a look-alike is named as the enrolled person"),
    ("eyes", lambda v, d: v != d, "no eye aspect ratio, fold or sharpness checks: more photo attacks blink"),
)


def _likeliest(counts: tuple[int, ...]) -> float:
    """The chance of the likeliest k in a uniform draw from ``counts`` as listed."""
    return max(counts.count(k) for k in counts) / len(counts)


def weakened(settings: Resolved) -> list[str]:
    """One line per security setting moved below its default, saying where from: a stray
    ``BLINKGATE_*`` variable or an old config file must not weaken the door unnoticed."""
    out = []
    for key, weaker, why in WEAKER:
        value, default = settings[key], BY_KEY[key].default
        if settings.origins[key] != "default" and weaker(value, default):
            out.append(f"{key} = {_show(BY_KEY[key], value)} ({settings.origins[key]}; default "
                       f"{_show(BY_KEY[key], default)}): {why}")
    return out


# The door's outputs: its browser view's port, its recording, its event log. `verify` reads the
# door's settings file (the same database, challenge and lockout), but bound to these it would
# take the running door's port (an error) and write into its recording and events.
VERIFY_OWN = ("record", "events", "ui.listen")


# The unlock actions. `verify` runs none (its exit code is the action), so they are not among its
# flags: taken and ignored, `verify --on-grant X` exited 0 without running X or a word. Set in
# the settings file or the environment they are the running door's, and verify ignores them.
ACTION_KEYS = tuple(s.key for s in SETTINGS if s.key.split(".")[0] in ("actions", "webhook", "mqtt"))


def not_for_verify(settings: Resolved) -> list[str]:
    """The keys of :data:`VERIFY_OWN` that ``settings`` took from the file or the environment."""
    return [k for k in VERIFY_OWN if settings.origins[k] != "default" and not settings.origins[k].startswith("cli:")]


def for_verify(settings: Resolved) -> Resolved:
    """``settings`` for ``blinkgate verify``: :data:`VERIFY_OWN` only from its own command line;
    set in the file or the environment, they are the door's and go back to their defaults."""
    dropped = not_for_verify(settings)
    if not dropped:
        return settings
    log.info("verify: not using the door's %s (%s): verify takes them only from its own command line (%s)",
             ", ".join(dropped), ", ".join(sorted({settings.origins[k] for k in dropped})),
             ", ".join(BY_KEY[k].flag for k in VERIFY_OWN))
    values, origins = dict(settings.values), dict(settings.origins)
    for key in dropped:
        values[key], origins[key] = BY_KEY[key].default, "default"
    return Resolved(values, origins, settings.file)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """" (did you mean X?)" for the known name closest to a mistyped one, or "". A key in the
    wrong table (``hold`` for ``challenge.hold``) first, then a misspelling (``tolerence``),
    which before got no hint at all."""
    close = closest_name(name, known)
    return f" (did you mean {close}?)" if close else ""


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name a mistyped one most likely meant: the same last part of a dotted key
    first, then the closest spelling; None if none is close."""
    known = list(known)
    if f"{name}.enabled" in known:  # `challenge = false`: its switch, not the nearest spelling (challenge.hold)
        return f"{name}.enabled"
    same_leaf = [k for k in known if k.split(".")[-1] == name.split(".")[-1]]
    close = same_leaf or difflib.get_close_matches(name, known, n=1)
    return close[0] if close else None


def load_file(path: Path) -> dict[str, object]:
    """The settings in a TOML file, converted; an unknown key is an error."""
    check_file_owner(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # -sig: Notepad starts with a BOM
    except OSError as err:
        raise BlinkgateError(f"cannot read config file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise BlinkgateError(f"config file {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise BlinkgateError(f"config file {path} is not valid TOML: {err}") from err
    out = {}
    for key, value in _flatten(data).items():
        s = BY_KEY.get(key)
        if s is None:
            raise BlinkgateError(f"config file {path}: unknown setting {key!r}{_file_hint(key)}")
        out[key] = _convert(s, value, f"config file {path}", typed=True)
        if key in PATH_KEYS:
            out[key] = _beside(path, out[key], key)
    if any(BY_KEY[k].secret and v for k, v in out.items()) and os.name == "posix":
        mode = path.stat().st_mode
        # group-readable is how a service reads a root-owned file (root:blinkgate, 640)
        if mode & stat.S_IROTH:
            log.warning(
                "config file %s holds a secret and is readable by every user: chmod 600 %s (or 640 for a "
                "service's group)", path, path)
    return out


def _file_hint(key: str) -> str:
    """:func:`did_you_mean` for a key in a settings file, but first a key of the same table whose
    value the word names: `[ui] port = 8080` meant ui.listen ([HOST:]PORT), not mqtt.port."""
    table, _, leaf = key.rpartition(".")
    word = re.compile(rf"\b{re.escape(leaf)}\b", re.IGNORECASE)
    for s in SETTINGS:
        if table and s.key.startswith(table + ".") and word.search(f"{s.placeholder} {s.help}"):
            return f" (did you mean {s.key}?)"
    return did_you_mean(key, BY_KEY)


def _beside(config: Path, value: str, key: str) -> str:
    """A relative path in a settings file, taken from the file's folder, not the folder a command
    runs in: `db = "faces.db"` in the user config dir's file named a new database in each folder
    `enroll` or `door` ran from. A camera number or a URL as ``source`` is no path."""
    if key == "source" and (value.strip().isdigit() or "://" in value):
        return value
    if Path(value).expanduser().is_absolute():
        return value
    return str(config.parent / value)


def _warn_unknown_env(env: Mapping[str, str]) -> None:
    """A misspelt variable (BLINKGATE_CHALLENG_HOLD) would be ignored without a word, where an
    unknown key in the file is an error; a setting the user believes applied may not be."""
    known = {s.env for s in SETTINGS} | {CONFIG_ENV}
    for name in sorted(k for k in env if k.startswith("BLINKGATE_") and k not in known):
        log.warning("unknown environment variable %s is ignored%s", name, did_you_mean(name, known))


def resolve(cli: argparse.Namespace | Mapping | None = None, config: str | None = None,
            env: Mapping[str, str] | None = None) -> Resolved:
    """Defaults < config file < environment < command line. ``cli`` holds only the flags
    the user gave (see :func:`add_arguments`); ``config`` is the ``--config`` path."""
    env = os.environ if env is None else env
    given = vars(cli) if isinstance(cli, argparse.Namespace) else dict(cli or {})
    if config is None:
        config = given.get("config")
    values = {s.key: s.default for s in SETTINGS}
    origins = {s.key: "default" for s in SETTINGS}
    path = find_config(config, env)
    if path is not None:
        for key, value in load_file(path).items():
            values[key], origins[key] = value, f"file:{path}"
    _warn_unknown_env(env)
    for s in SETTINGS:
        raw = env.get(s.env)
        if raw:  # an empty variable counts as unset
            values[s.key], origins[s.key] = _convert(s, raw, f"${s.env}"), f"env:{s.env}"
        if s.dest in given:
            values[s.key] = _convert(s, given[s.dest], f"{s.flag}") if isinstance(given[s.dest], str) else given[s.dest]
            typed = s.flag.replace("--", "--no-", 1) if s.type == "bool" and given[s.dest] is False else s.flag
            origins[s.key] = f"cli:{typed}"  # the flag as typed: --no-challenge, not --challenge
    _warn_secret_flags(origins)
    if values["challenge.delay_min"] > values["challenge.delay_max"]:
        raise BlinkgateError("challenge.delay_min must not exceed challenge.delay_max")
    if values["challenge.min_reaction"] >= values["challenge.max_reaction"]:
        raise BlinkgateError("challenge.min_reaction must be less than challenge.max_reaction")
    if values["challenge.hold"] < values["challenge.max_interval"]:
        raise BlinkgateError("challenge.hold must be at least challenge.max_interval")
    return Resolved(values, origins, path)


def _warn_secret_flags(origins: Mapping[str, str]) -> None:
    """A secret typed on the command line is in every user's `ps` and in shell history: README
    says to keep it in the environment or the file, and the flag took it without a word."""
    for s in SETTINGS:
        if s.secret and origins[s.key].startswith("cli:"):
            log.warning("%s on the command line can be read by every user of this machine (ps, shell history): "
                        "set $%s or %s in a settings file only you can read instead", s.flag, s.env, s.key)


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None,
                  without: tuple[str, ...] = ()) -> None:
    """Add ``--config`` and every setting's flag (or the flags of the keys in ``only``), but those
    of the keys in ``without``. Flags default to *absent*, so only what the user typed overrides
    the file and the environment."""
    parser.add_argument("--config", metavar="FILE", help=f"settings file (default: ./{CONFIG_NAME} or the user config dir)")
    for s in SETTINGS:
        if s.flag is None or (only is not None and s.key not in only) or s.key in without:
            continue
        if s.type == "bool":
            parser.add_argument(s.flag, dest=s.dest, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=s.flag_help())
        else:
            parser.add_argument(s.flag, dest=s.dest, default=argparse.SUPPRESS, metavar=s.placeholder, help=s.flag_help())
