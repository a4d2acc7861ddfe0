"""Training checkpoints: a model's arrays and its spec in one `.npz` file (no pickle).

A checkpoint holds a float or quantized training model exactly (the fp teacher that
`accelsim train --method fp` writes and `--teacher` reads); the integer machine runs the native
model format instead (`accelsim.frontend.native`).
"""

from __future__ import annotations

import json

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.fileio import atomic_write
from accelsim.quant.models import Model, build_model, load_state_dict, state_dict

SPEC_KEY = "__spec__.json"  # member of a training checkpoint holding the model spec as JSON


def save_checkpoint(model: Model, path) -> None:
    """Write a training checkpoint at `path` (atomically): the model's arrays plus its spec as
    JSON."""
    text = json.dumps(model.spec).encode("utf-8")
    arrays = {SPEC_KEY: np.frombuffer(text, np.uint8), **state_dict(model)}
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def load_checkpoint(path) -> Model:
    """The Model saved by `save_checkpoint` at `path`. Raises `AccelsimError` naming the file
    if it is missing, not an `.npz` file or has no spec."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise AccelsimError(f"checkpoint {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise AccelsimError(f"checkpoint {str(path)!r} is not an .npz file ({exc})") from None
    if SPEC_KEY not in arrays:
        raise AccelsimError(
            f"checkpoint {str(path)!r} has no {SPEC_KEY} (not written by "
            "`accelsim train --method fp`?)"
        )
    spec = json.loads(arrays.pop(SPEC_KEY).tobytes().decode("utf-8"))
    return load_state_dict(build_model(spec), arrays)
