"""Recipes for trained low-bit digit classifiers (LSQ and ULQ), the simulator's real workloads.

A recipe fixes everything a training run needs: data set, model, method, widths, epochs,
hyperparameters and seed. Names read `<dataset>-<model>-<method>-w<W>a<A>` (for example
`digits-cnn-ulq-w1a2`) or `<dataset>-<model>-fp`. Widths cover W/A 8/8, 4/4, 3/3, 2/2 and 1/2
(binary bipolar weights) for both methods; LSQ and ULQ of one model share the fp teacher recipe
and the same epoch budget, so their accuracies compare directly.

    from workloads.trained import get_recipe, run_recipe
    model, metrics = run_recipe(get_recipe("digits-cnn-lsq-w4a4"))
"""

from dataclasses import dataclass, replace

from accelsim.errors import AccelsimError
from accelsim.quant.trainer import TrainConfig, train

BITS = ((8, 8), (4, 4), (3, 3), (2, 2), (1, 2))  # (w_bits, a_bits)
METHODS = ("lsq", "ulq")

# Hyperparameters per (dataset, model). fp_* train the teacher; q_* the quantized stages. ULQ
# (TrainConfig defaults) starts at twice the target weight width (W2A2: 4/4 -> 2/2, W1A2:
# 2/2 -> 1/2), gives 60% of the budget to the target widths and weighs the logit MSE to the
# teacher by 3. Both were chosen on a validation split (15% of the digits training images,
# never the test split), mean of seeds 0-3, ULQ CNN W2A2 / W1A2 accuracy %: lambda 0.3:
# 99.31 / 99.19, 1: 99.31 / 98.96, 3: 99.65 / 99.19, 10: 99.31 / 99.31 (start 4/4); start 2/2
# at W1A2: lambda 3: 99.65, 10: 99.54; LSQ: 99.31 / 99.54 (`workloads/train_sweep.py
# --validation --set ...`; benchmarks/results/trained/validation_ulq.json). Both methods end
# by folding batch norm (bias on the int32 grid), with no fine-tune after it (`fold_epochs` 0).
CONFIGS = {
    ("digits", "cnn"): TrainConfig(
        fp_epochs=40,
        fp_lr=0.1,
        q_lr=0.02,
        batch_size=64,
        shift_px=1,
        label_smoothing=0.1,
        model_kwargs={"channels": (32, 32, 64), "pools": (False, True, False)},
    ),
    ("digits", "mlp"): TrainConfig(
        fp_epochs=40,
        fp_lr=0.1,
        q_lr=0.02,
        batch_size=64,
        shift_px=1,
        label_smoothing=0.1,
        model_kwargs={"hidden": (256, 128)},
    ),
    ("mnist", "cnn"): TrainConfig(
        fp_epochs=20,
        fp_lr=0.1,
        q_lr=0.02,
        batch_size=64,
        shift_px=2,
        label_smoothing=0.1,
        model_kwargs={"channels": (16, 32), "pools": (True, True)},
    ),
    ("mnist", "mlp"): TrainConfig(
        fp_epochs=20,
        fp_lr=0.1,
        q_lr=0.02,
        batch_size=64,
        shift_px=2,
        label_smoothing=0.1,
        model_kwargs={"hidden": (256, 128)},
    ),
}
Q_EPOCHS = {"digits": 30, "mnist": 15}  # epochs of LSQ and of ULQ (all stages), after the teacher


@dataclass(frozen=True)
class Recipe:
    """One training run: `train(dataset, model, method, a_bits, w_bits, epochs, seed, config)`."""

    name: str
    dataset: str
    model: str
    method: str
    w_bits: int | None
    a_bits: int | None
    epochs: int
    config: TrainConfig
    seed: int = 0

    @property
    def teacher(self) -> "Recipe":
        """The fp recipe whose model this one starts from (itself for fp)."""
        cfg = self.config
        return Recipe(
            f"{self.dataset}-{self.model}-fp",
            self.dataset,
            self.model,
            "fp",
            None,
            None,
            cfg.fp_epochs,
            cfg,
            self.seed,
        )


def recipes() -> dict[str, Recipe]:
    """All recipes by name: fp teachers and LSQ/ULQ at every width in `BITS`."""
    out = {}
    for (dataset, model), cfg in CONFIGS.items():
        fp = Recipe(f"{dataset}-{model}-fp", dataset, model, "fp", None, None, cfg.fp_epochs, cfg)
        out[fp.name] = fp
        for method in METHODS:
            for w, a in BITS:
                name = f"{dataset}-{model}-{method}-w{w}a{a}"
                out[name] = Recipe(name, dataset, model, method, w, a, Q_EPOCHS[dataset], cfg)
    return out


def get_recipe(name: str, seed: int = 0) -> Recipe:
    """The recipe called `name`, with training seed `seed`."""
    table = recipes()
    if name not in table:
        raise AccelsimError(f"recipe {name!r} not found; known: {', '.join(sorted(table))}")
    return replace(table[name], seed=seed)


def run_recipe(recipe: Recipe, progress: bool = True, teacher=None, dataset=None):
    """Train `recipe`; returns (model, metrics). `teacher`: its fp model if already trained
    (else trained here from `recipe.teacher`); `dataset`: a loaded `Dataset` to reuse."""
    data = dataset if dataset is not None else recipe.dataset
    model, metrics = train(
        data,
        recipe.model,
        recipe.method,
        recipe.a_bits or 8,
        recipe.w_bits or 8,
        recipe.epochs,
        recipe.seed,
        progress,
        config=recipe.config,
        teacher=teacher,
    )
    metrics["recipe"] = recipe.name
    return model, metrics
