"""Atomic file writes: results and models are written to a temporary file in the target
directory and renamed into place, so a reader (or an interrupted run) never sees a half-written
file and an existing file is never lost."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from collections.abc import Callable


def atomic_write(path, write: Callable, binary: bool = True) -> None:
    """Call `write(fileobj)` on a temporary file next to `path`, then rename it to `path`.
    The file gets the usual permissions (0666 less the umask)."""
    path = Path(path)
    if str(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write(path, lambda fh: fh.write(text), binary=False)


def atomic_write_json(path, data, **dump_kwargs) -> None:
    """Write `data` as indented JSON (plus a newline) to `path` atomically."""
    dump_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(data, **dump_kwargs) + "\n")
