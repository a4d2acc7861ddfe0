"""Where a sweep's workloads come from: `CliWorkloads`, the `WorkloadSource` the command line
hands to `accelsim.sweep` (only the command line imports the builders of `workloads/`).

Names a sweep accepts:

- a built-in workload (`accelsim workloads`), built at the point's A/W bits and the sweep's
  seed, on the input `accelsim run` gives it; an image model may name its input size,
  `resnet50@112` (as `--image-size 112`); `gemm:M,N,K` is one GEMM;
- a model file (native `.npz` or `.onnx`), at its own widths (the bits axis does not multiply
  it), or a SCALE-Sim topology `.csv`, its rows built at the point's bits and run back to back;
  a file's contents, not its name, identify its points;
- `trained:<dataset>-<model>-<method>` (e.g. `trained:digits-cnn-lsq`): the recipe of
  `workloads/trained.py` at the point's bits (A/W; the recipes' widths W/A 8/8, 4/4, 3/3, 2/2
  and 1/2 are A/W 8/8, 4/4, 3/3, 2/2 and 2/1), trained with the sweep's seed the first time it
  is needed and kept in the cache folder (`$ACCELSIM_CACHE`, default `~/.cache/accelsim`)
  under a key of the recipe and the training code, so a report rebuilt later reuses it and a
  changed recipe trains again. Training is deterministic (one BLAS thread), so the cache only
  saves time. Its points carry `accuracy`: the share of the test set the machine classifies
  correctly (the integer logits of the simulated machine, the whole test set).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.sweep.points import Loaded, WorkloadInfo

TRAINED = "trained:"
_ROOT = Path(__file__).resolve().parents[2]


def default_cache_dir() -> str:
    """`$ACCELSIM_CACHE`, else `~/.cache/accelsim`."""
    return os.environ.get("ACCELSIM_CACHE") or str(Path.home() / ".cache" / "accelsim")


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _training_code() -> str:
    """Hash of the training sources and recipes: a change trains the cached models again."""
    h = hashlib.sha256()
    for path in sorted(
        [*(_ROOT / "accelsim" / "quant").glob("*.py"), _ROOT / "workloads" / "trained.py"]
    ):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:12]


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path`.lock (workers training the same model wait for the first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class CliWorkloads:
    """Built-in workloads, model files and trained recipes for sweeps (module docstring)."""

    cache_dir: str

    def _path(self, name: str, folder: str) -> Path | None:
        """The model file `name` names (relative to the spec's folder), or None for names."""
        path = Path(name)
        if not path.suffix:
            return None
        return (
            path
            if path.is_absolute() or not (Path(folder) / path).exists()
            else Path(folder) / path
        )

    def describe(self, name: str, folder: str) -> WorkloadInfo:
        if name.startswith(TRAINED):
            recipe = name.removeprefix(TRAINED)
            return WorkloadInfo(
                f"{name}#{_training_code()}", tuple(_trained_bits(recipe)), trained=True
            )
        path = self._path(name, folder)
        if path is not None:
            if not path.is_file():
                raise AccelsimError(f"workload {name!r}: model file {str(path)!r} does not exist")
            from workloads.topology import is_topology_path  # noqa: PLC0415

            # a topology's layers are built at the point's bits; a model file has its own
            bits = None if is_topology_path(name) else ()
            return WorkloadInfo(f"file:{_file_hash(path)}", bits=bits)
        from workloads import registry  # noqa: PLC0415
        from workloads.single_layer import parse_gemm_name  # noqa: PLC0415
        from workloads.sparse_nets import WORKLOADS as SPARSE  # noqa: PLC0415

        if name.startswith("gemm:"):
            parse_gemm_name(name)
            return WorkloadInfo(name, None, layer_rules=True)
        base, size = _image_size(name)
        known = registry.names()
        if base not in known:
            raise AccelsimError(
                f"workload {name!r} is not a built-in workload ({', '.join(known)}; an image "
                f"model may take @SIZE), gemm:M,N,K, a model or topology file, or "
                f"{TRAINED}<dataset>-<model>-<method>"
            )
        if size is not None:
            registry.check_image_size(base, size)
        return WorkloadInfo(name, None, layer_rules=base not in SPARSE)

    def load(self, name: str, bits, seed: int, folder: str) -> Loaded:
        from accelsim.cli.commands import make_input, resolve_model  # noqa: PLC0415

        if name.startswith(TRAINED):
            return self._trained(name.removeprefix(TRAINED), bits, seed)
        path = self._path(name, folder)
        base, size = (name, None) if path or name.startswith("gemm:") else _image_size(name)
        model = resolve_model(str(path) if path else base, bits or (8, 8), seed, size)
        if hasattr(model, "graphs"):  # a SCALE-Sim topology: its rows run back to back
            return Loaded(model.name, run=_topology_runner(model, bits, seed))
        return Loaded(model.name, model, make_input(model, None, seed))

    def _trained(self, recipe_prefix: str, bits, seed: int) -> Loaded:
        from accelsim.frontend.native import load_model  # noqa: PLC0415
        from accelsim.quant.data import load_dataset  # noqa: PLC0415
        from workloads.trained import get_recipe  # noqa: PLC0415

        a, w = bits
        recipe = get_recipe(f"{recipe_prefix}-w{w}a{a}", seed)
        data = load_dataset(recipe.dataset)
        path = Path(self.cache_dir) / "trained" / f"{recipe.name}-s{seed}-{_recipe_key(recipe)}.npz"
        with _locked(path):
            if not path.exists():
                _train(recipe, data, path, Path(self.cache_dir) / "trained")
        graph = load_model(path)
        graph.name = f"{TRAINED}{recipe_prefix}"
        return Loaded(graph.name, graph, data.x_test[:1], accuracy=_accuracy_of(graph, data))


def _image_size(name: str) -> tuple[str, int | None]:
    """(model, image side) of a name `model@SIZE` (e.g. resnet50@112), or (name, None)."""
    base, at, size = name.partition("@")
    if not at:
        return name, None
    if not size.isdigit() or int(size) < 1:
        raise AccelsimError(f"workload {name!r}: expected NAME@SIZE with SIZE a positive integer")
    return base, int(size)


def _topology_runner(topo, bits, seed: int):
    """(cfg, count_only, engine) -> the topology's rows simulated back to back on `cfg`."""

    def run(cfg, count_only: bool, engine: str):
        from accelsim.cli.commands import make_input  # noqa: PLC0415
        from accelsim.sequence import run_sequence  # noqa: PLC0415

        models = ((g, make_input(g, None, seed)) for g in topo.graphs(bits or (8, 8), seed))
        # a sweep point: lowered streams are checked race-free by the tests
        return run_sequence(
            topo.name, models, cfg, count_only=count_only, engine=engine, check_races=False
        )

    return run


def _trained_bits(recipe_prefix: str) -> list[tuple[int, int]]:
    """A/W widths the recipes `<recipe_prefix>-w<W>a<A>` exist at."""
    from workloads.trained import recipes  # noqa: PLC0415

    names = [n for n in recipes() if n.startswith(recipe_prefix + "-w")]
    if not names:
        prefixes = sorted({n.rsplit("-", 1)[0] for n in recipes() if not n.endswith("-fp")})
        raise AccelsimError(
            f"workload {TRAINED}{recipe_prefix!s}: no such recipe; known: "
            + ", ".join(TRAINED + p for p in prefixes)
        )
    widths = []
    for n in names:
        wa = n.rsplit("-", 1)[1]  # w<W>a<A>
        w, a = wa[1:].split("a")
        widths.append((int(a), int(w)))
    return widths


def _recipe_key(recipe) -> str:
    return hashlib.sha256(f"{recipe!r}{_training_code()}".encode()).hexdigest()[:12]


def _train(recipe, data, path: Path, folder: Path) -> None:
    """Train `recipe` (its fp teacher from the cache, or trained and cached first), convert it
    to the graph IR at batch 1 and save it at `path`."""
    from accelsim.frontend.native import save_model  # noqa: PLC0415
    from accelsim.quant.checkpoint import load_checkpoint, save_checkpoint  # noqa: PLC0415
    from accelsim.quant.to_ir import model_to_graph  # noqa: PLC0415
    from workloads.trained import run_recipe  # noqa: PLC0415

    fp = recipe.teacher
    teacher_path = folder / f"{fp.name}-s{fp.seed}-{_recipe_key(fp)}.npz"
    with _locked(teacher_path):
        if teacher_path.exists():
            teacher = load_checkpoint(teacher_path)
        else:
            teacher, _ = run_recipe(fp, False, dataset=data)
            save_checkpoint(teacher, teacher_path)
    model, _ = run_recipe(recipe, False, teacher=teacher, dataset=data)
    save_model(model_to_graph(model, batch=1, calib_x=data.x_train), path)


def _accuracy_of(graph, data):
    """cfg -> share of the test images whose class the simulated machine gets right."""

    def accuracy(cfg) -> float:
        from accelsim.quant.machine import simulate_test_set  # noqa: PLC0415

        logits, _, _ = simulate_test_set(graph, cfg, data.x_test)
        return float(np.mean(logits.argmax(axis=1) == data.y_test))

    return accuracy
