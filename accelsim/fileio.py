"""Atomic file writes: results and models are written to a temporary file in the target
directory and renamed into place, so a reader (or an interrupted run) never sees a half-written
file and an existing file is never lost."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from accelsim.errors import AccelsimError

_UMASK = os.umask(0o022)  # read once at import (setting and restoring it is process-wide)
os.umask(_UMASK)


def atomic_write(path, write: Callable, binary: bool = True) -> None:
    """Call `write(fileobj)` on a temporary file next to `path`, then rename it to `path`.
    A new file gets the usual permissions (0666 less the umask), a replaced one keeps its mode.
    Raises `AccelsimError` naming the path if it cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise AccelsimError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AccelsimError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise AccelsimError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_write_text(path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write(path, lambda fh: fh.write(text), binary=False)


def atomic_write_json(path, data, **dump_kwargs) -> None:
    """Write `data` as indented JSON (plus a newline) to `path` atomically."""
    dump_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(data, **dump_kwargs) + "\n")
