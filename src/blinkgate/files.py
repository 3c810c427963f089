"""Writing a file so that no reader ever sees half of it."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(target: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``target`` through a temporary file beside it, renamed over it: a reader
    (``enroll``, an image viewer) sees the old file or the new one, never half of one, and an
    error or Ctrl-C leaves no temporary file. The file gets ``mode`` (less the umask), also when
    it replaces one: a write in place would keep the old file's mode. Raises OSError."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
