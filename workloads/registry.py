"""Every built-in workload by name, for `accelsim run NAME` and `accelsim workloads`.

Dense models come from `workloads.dense`, `workloads.imagenet` and `workloads.bert`, sparse
LiDAR networks from
`workloads.sparse_nets` (when present). Each builder takes (bits_a, bits_w, seed); image models
also take `--image-size` (their `input_hw`). Two name patterns build a model from the name
itself: `gemm:M,N,K` (one GEMM, `workloads.single_layer`) and a SCALE-Sim topology file
`FILE.csv` (`workloads.topology`, read by `accelsim.cli.commands.resolve_model`).
"""

from __future__ import annotations

import importlib

from accelsim.errors import AccelsimError
from workloads.single_layer import GEMM_PATTERN, gemm_workload

DEFAULT = "resnet18"  # `accelsim run` with no model
DEFAULT_KWARGS = {"input_hw": 64}  # keeps the default run a few seconds on a laptop
PATTERNS = (  # names that are not table entries, listed by `accelsim workloads`
    (GEMM_PATTERN, "one GEMM: M x K input times K x N weights (a QuantLinear), at --bits"),
    (
        "FILE.csv",
        "SCALE-Sim topology file (convolution or GEMM format): each row one layer, "
        "run back to back",
    ),
)


_MODULES = (  # lookup order
    "workloads.dense",
    "workloads.imagenet",
    "workloads.bert",
    "workloads.sparse_nets",
)


def _all(name: str | None = None) -> dict:
    """Workloads by name from every builder module, or, given `name`, from the modules up to
    the first that has it (so `run mlp` does not import the sparse builders)."""
    table: dict = {}
    for module in _MODULES:
        try:
            table.update(importlib.import_module(module).WORKLOADS)
        except ImportError:
            if module != "workloads.sparse_nets":  # optional
                raise
        if name in table:
            break
    return table


def listing() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in workload, then the name patterns.
    Models that take an image size say so."""
    rows = []
    for name, w in sorted(_all().items()):
        sized = "" if w.min_image_size is None else f" [--image-size >= {w.min_image_size}]"
        rows.append((name, w.description + sized))
    return rows + list(PATTERNS)


def names() -> list[str]:
    """Names of the built-in workloads (not the name patterns)."""
    return sorted(_all())


def check_image_size(name: str, image_size: int) -> None:
    """AccelsimError unless built-in workload `name` takes an input of `image_size` pixels."""
    _image_kwargs(name, _all()[name], image_size)


def _image_kwargs(name: str, workload, image_size: int | None) -> dict:
    if image_size is None:
        return {}
    if workload.min_image_size is None:
        sized = sorted(n for n, w in _all().items() if w.min_image_size is not None)
        raise AccelsimError(
            f"workload {name!r} has no image size; --image-size applies to {', '.join(sized)}"
        )
    if image_size < workload.min_image_size:
        raise AccelsimError(
            f"--image-size {image_size}: workload {name!r} needs at least "
            f"{workload.min_image_size} pixels"
        )
    return {"input_hw": image_size}


def build(name: str, bits=(8, 8), seed: int = 0, image_size: int | None = None, **kwargs):
    """Build workload `name` at (activation, weight) bits with seeded random weights;
    image_size: the side of an image model's square input (its name then ends in _NxN)."""
    if name.startswith("gemm:"):
        if image_size is not None:
            raise AccelsimError(f"workload {name!r} has no image size (--image-size)")
        return gemm_workload(name, bits, seed)
    table = _all(name)
    if name not in table:
        raise AccelsimError(
            f"{name!r} is neither a model file nor a built-in workload "
            f"(built-in: {', '.join(sorted(table))}; or {GEMM_PATTERN}, or a FILE.csv "
            f"SCALE-Sim topology)"
        )
    graph = table[name].build(
        bits[0], bits[1], seed, **kwargs, **_image_kwargs(name, table[name], image_size)
    )
    if image_size is not None:
        graph.name = f"{name}_{image_size}x{image_size}"
    return graph


def default_model(bits=(8, 8), seed: int = 0, image_size: int | None = None):
    """The workload `accelsim run` simulates when no model is given (at `image_size` if
    given, else at DEFAULT_KWARGS' size)."""
    hw = DEFAULT_KWARGS["input_hw"] if image_size is None else image_size
    return build(DEFAULT, bits, seed, image_size=hw)
