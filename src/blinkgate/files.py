"""Writing files: so that no reader ever sees half of one, and, for faces and names, so that
no other user can read it."""

from __future__ import annotations

import csv
import errno
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Faces (photos, snapshots, recordings) and who came when are biometric and personal data:
# the owner's only, as the face database is. Less the umask, like any mode given to open().
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700

TEMP_NAME = re.compile(r"\.(.+)\.([0-9]+)\.tmp")  # write_atomic's: .TARGET.PID.tmp
STALE_TEMP_S = 3600.0  # a temporary file this old is no write in progress, whatever its PID now is


def one_line(text: str) -> str:
    """``text`` as it is if printable, else with its control characters (and any non-ASCII)
    escaped: a name with a line break must not split or forge a line of output."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


@contextmanager
def reading_text(path: Path, error: type[Exception], hint: str = "") -> Iterator[None]:
    """Read ``path`` (UTF-8 text, a CSV) inside this block: a file in another encoding, a CSV
    the csv module cannot parse (a quote never closed runs into its field limit) or an OS error
    (permission, disk) is one ``error`` line naming the file, not a traceback. ``hint`` ends
    the first two (": is it the manifest?")."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise error(f"{path} is not UTF-8 text (byte {err.start}){hint}") from None
    except csv.Error as err:
        raise error(f"{path}: not a readable CSV ({err}){hint}") from None
    except OSError as err:
        raise error(f"cannot read {path}: {err.strerror or err}") from None


def write_atomic(target: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``target`` through a temporary file beside it, renamed over it: a reader
    (``enroll``, an image viewer) sees the old file or the new one, never half of one, and an
    error or Ctrl-C leaves no temporary file. The file gets ``mode`` (less the umask), also when
    it replaces one: a write in place would keep the old file's mode. The data is synced before
    the rename and the rename after it: ext4 (data=writeback, or any filesystem that delays
    allocation) may otherwise commit the rename first, and a power cut leaves an empty or
    partial file under the final name. Raises OSError."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """fsync ``folder``, so that a rename in it survives a power cut. Not where a folder cannot
    be opened (Windows) or synced (some network and FUSE filesystems say EINVAL)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def remove_stale_temps(folder: Path, targets: Callable[[str], bool],
                       pattern: re.Pattern[str] = TEMP_NAME) -> list[Path]:
    """Delete the temporary files write_atomic left in ``folder`` when it was killed (kill -9,
    a power cut) between writing and renaming one, for a target name ``targets`` accepts: only
    regular files of that exact pattern whose process is gone, or older than ``STALE_TEMP_S``
    (a PID is reused, after a reboot at once). Hidden, they are skipped by enroll, but stay a
    face on disk nobody sees. ``pattern``: another writer's temporary names, its groups the
    target name and the PID, as ``TEMP_NAME``'s. Best effort: what cannot be listed or deleted
    stays. Returns the paths deleted."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if not found or not targets(found[1]):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                continue
            if _process_alive(int(found[2])) and time.time() - info.st_mtime < STALE_TEMP_S:
                continue  # another capture writing into the same folder now
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would end the process
        return True
    if pid <= 0:  # os.kill(0) signals our own process group
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True


def create_private(target: Path) -> None:
    """Create ``target`` as a new, empty file only its owner can read (``PRIVATE_FILE``), for a
    writer that cannot be given a mode (OpenCV's VideoWriter truncates it and keeps the mode).
    O_EXCL: never an existing file, whose mode is its owner's to choose. Raises OSError
    (FileExistsError if something is there)."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def make_folders(folder: Path, mode: int = 0o777) -> None:
    """``mkdir -p folder``, each folder it makes given ``mode`` (less the umask), not only the
    last: ``Path.mkdir(parents=True)`` makes the parents with the default mode. Raises OSError:
    NotADirectoryError naming the file that is in the way, which mkdir called "File exists"."""
    missing = []
    while not folder.is_dir() and folder.parent != folder:
        if os.path.lexists(folder):
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is there and is not a folder", str(folder))
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode, exist_ok=True)
