"""Training loops: full precision, LSQ fine-tuning and ULQ (teacher-constrained, bit lowering).

- `fp`: train the float model from scratch (the teacher and the start point of the others).
- `lsq`: quantize the fp model (steps from LSQ init) and fine-tune it at the target widths for
  `epochs` with the task loss (cross entropy).
- `ulq`: the same budget of `epochs` spent over stages of decreasing width (`ulq_stages`:
  halving from `ulq_start_bits`, by default twice the target weight width, capped at 8: W2A2
  runs 4/4 -> 2/2 and W1A2 runs 2/2 -> 1/2), the last stage taking `ulq_last_fraction` of the
  epochs; each stage starts from the previous one's weights with the steps re-initialised, on
  the loss `CE + lambda * MSE(student logits, fp teacher logits)`. The start width and lambda
  were chosen on a validation split (see `workloads/trained.py`).
- both quantized methods end by folding batch norm into the model (`fold.fold_batchnorm`):
  no BN, every bias on the int32 accumulator grid, i.e. the arithmetic of the machine. The
  returned model is the folded one, so its eval-mode predictions are the classes the machine
  reproduces; the last entry of `metrics["stages"]` (`folded`) gives its accuracy. Optionally
  `fold_epochs` fine-tune the folded model with the method's own loss. Off by default: on the
  digits CNN, 5 epochs at lr 0.005 lost 1-5 of 359 test images at W2A2 and W1A2 in most of
  seeds 0-3, and lr 0.001 or 0.0002 gained nothing over folding alone (seeds 0 and 3).

Both quantized methods start from the same fp model, so they compare on equal epochs.
Training is reproducible for fixed seeds. Ctrl-C (KeyboardInterrupt) stops cleanly and returns
the model as it was at the end of the last completed epoch, with `metrics["interrupted"]`.
"""

import contextlib
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from accelsim.errors import AccelsimError
from accelsim.quant.data import Dataset, load_dataset, shift_augment
from accelsim.quant.fold import fold_batchnorm
from accelsim.quant.models import (
    Model,
    calibrate,
    cnn,
    load_state_dict,
    mlp,
    quantize,
    set_bits,
    state_dict,
)
from accelsim.quant.optim import SGD, Adam, cosine_lr

METHODS = ("fp", "lsq", "ulq")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters shared by all methods (fp_* for the teacher, q_* for quantized stages)."""

    batch_size: int = 64
    optimizer: str = "sgd"  # "sgd" (momentum 0.9, Nesterov) or "adam"
    fp_epochs: int = 40  # epochs of the fp teacher when none is given
    fp_lr: float = 0.1
    fp_weight_decay: float = 5e-4
    q_lr: float = 0.02
    q_weight_decay: float = 5e-5
    warmup_epochs: float = 1.0  # linear warm-up before the cosine decay (fp training only)
    shift_px: int = 1  # random translation augmentation, pixels
    label_smoothing: float = 0.1  # weight of the uniform distribution in the CE targets
    per_channel: bool = True  # weight step per output channel
    first_a_bits: int = 8  # input image quantizer width
    ulq_lambda: float = 3.0  # weight of the logit MSE to the fp teacher (chosen on validation)
    ulq_last_fraction: float = 0.6  # share of the epochs spent at the target widths
    ulq_start_bits: int = 0  # widths of the first ULQ stage, halved down to the target;
    #                          0: twice the target weight width, capped at 8
    fold_epochs: int = 0  # epochs of fine-tuning after BN folding (0: fold only; see docstring)
    fold_lr: float = 0.005  # peak learning rate of the folded fine-tune (cosine decay)
    fold_train: str = "all"  # what the folded fine-tune trains: "all" or "bias" (biases only)
    # BLAS threads while training. OpenBLAS splits a GEMM differently at each thread count, so
    # float sums, and after a few epochs the trained weights, depend on it: 1 makes a fixed seed
    # give the same model on every machine (same BLAS kernel). 0 keeps the BLAS default.
    blas_threads: int = 1
    grad_clip_norm: float | None = 10.0  # global gradient-norm clip (guards against spikes)
    model_kwargs: dict = field(default_factory=dict)  # extra arguments of `cnn` / `mlp`

    def __post_init__(self):
        if self.fold_train not in ("all", "bias"):
            raise ValueError(
                f"TrainConfig.fold_train must be 'all' or 'bias', got {self.fold_train!r}"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(
                f"TrainConfig.optimizer must be 'sgd' or 'adam', got {self.optimizer!r}"
            )


def ulq_stages(w_bits: int, a_bits: int, start_bits: int = 8) -> list[tuple[int, int]]:
    """Widths (w, a) of the ULQ stages: from `start_bits` halving down to the target
    (W1A2 from 8: 8/8, 4/4, 2/2, 1/2)."""
    stages, w, a = [], start_bits, start_bits
    while True:
        w, a = max(w, w_bits), max(a, a_bits)
        stages.append((w, a))
        if (w, a) == (w_bits, a_bits):
            return stages
        w, a = w // 2, a // 2


def stage_epochs(total: int, n_stages: int, last_fraction: float) -> list[int]:
    """Split `total` epochs: `last_fraction` to the last stage, the rest equally before it."""
    if n_stages == 1:
        return [total]
    last = max(1, round(total * last_fraction))
    rest = total - last
    early = [rest // (n_stages - 1) + (i < rest % (n_stages - 1)) for i in range(n_stages - 1)]
    return early + [last]


def cross_entropy(logits: np.ndarray, y: np.ndarray, smoothing: float = 0.0):
    """Mean softmax cross entropy (targets smoothed by `smoothing`) and its gradient w.r.t. the
    logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n, c = logits.shape
    target = np.full((n, c), smoothing / c)
    target[np.arange(n), y] += 1.0 - smoothing
    loss = -(target * logp).sum(axis=1).mean()
    return float(loss), (np.exp(logp) - target) / n


def mse(student: np.ndarray, teacher: np.ndarray):
    """Mean squared error over all elements and its gradient w.r.t. `student`."""
    d = student - teacher
    return float((d * d).mean()), 2.0 * d / d.size


def accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of images classified correctly by the model in eval mode."""
    return float((model.predict(x) == y).mean())


def _clip_grad_norm(params: list, max_norm: float | None) -> float:
    """Scale all gradients down so their global L2 norm is at most `max_norm`; returns the norm."""
    norm = float(np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in params)))
    if max_norm is not None and norm > max_norm:
        for p in params:
            p.grad *= max_norm / norm
    return norm


def _fit(
    model,
    data,
    epochs,
    lr,
    weight_decay,
    cfg,
    rng,
    desc,
    progress,
    teacher=None,
    lam=0.0,
    warmup_epochs=0.0,
    params=None,
):
    """Train `model` in place (only `params` if given); returns (losses per epoch, images seen,
    interrupted)."""
    n = len(data.x_train)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = epochs * steps_per_epoch
    params = model.params() if params is None else params
    if cfg.optimizer == "adam":
        opt = Adam(params, lr, weight_decay=weight_decay)
    else:
        opt = SGD(params, lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    snapshot = {k: v.copy() for k, v in state_dict(model).items()}
    losses, seen, step = [], 0, 0
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False, mininterval=0.5)
    try:
        for _ in range(epochs):
            order = rng.permutation(n)
            run = 0.0
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x = shift_augment(data.x_train[idx], cfg.shift_px, rng)
                opt.lr = cosine_lr(step, total, lr, int(warmup_epochs * steps_per_epoch))
                opt.zero_grad()
                logits = model.forward(x, train=True)
                loss, dz = cross_entropy(logits, data.y_train[idx], cfg.label_smoothing)
                if teacher is not None and lam > 0:
                    dloss, dt = mse(logits, teacher.forward(x))
                    loss, dz = loss + lam * dloss, dz + lam * dt
                model.backward(dz.astype(logits.dtype))
                _clip_grad_norm(params, cfg.grad_clip_norm)
                opt.step()
                run += loss
                seen += len(idx)
                step += 1
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{run / (b + 1):.4f}")
            losses.append(run / steps_per_epoch)
            snapshot = {k: v.copy() for k, v in state_dict(model).items()}
    except KeyboardInterrupt:
        load_state_dict(model, snapshot)
        return losses, seen, True
    finally:
        bar.close()
    return losses, seen, False


def _fold_params(model: Model, what: str) -> list:
    """Parameters of the fine-tune after folding: all, or the biases alone (`fold_train`)."""
    return model.params() if what == "all" else [g.b for g in model.gemms() if g.b is not None]


def _build(model, data: Dataset, seed: int, cfg: TrainConfig) -> Model:
    if isinstance(model, Model):
        return model
    kwargs = dict(in_shape=data.image_shape, classes=data.classes, seed=seed, **cfg.model_kwargs)
    if model == "cnn":
        return cnn(**kwargs)
    if model == "mlp":
        return mlp(**kwargs)
    raise AccelsimError(f"train: model must be 'mlp' or 'cnn', got {model!r}")


def train(
    dataset="digits",
    model="cnn",
    method: str = "fp",
    a_bits: int = 8,
    w_bits: int = 8,
    epochs: int = 30,
    seed: int = 0,
    progress: bool = True,
    config: TrainConfig | None = None,
    teacher: Model | None = None,
):
    """Train a digit classifier; returns (model, metrics).

    dataset: "digits" | "mnist" or a `Dataset`. model: "mlp" | "cnn" or a fresh `Model`.
    method: "fp" (ignores the widths) | "lsq" | "ulq". a_bits, w_bits: target widths (w_bits 1
    is binary bipolar, 2 ternary). epochs: epochs of this method (for lsq/ulq, after the fp
    teacher, which takes `config.fp_epochs` unless `teacher`, a trained fp model, is given).
    metrics: test_accuracy, test_loss (cross entropy, no smoothing), train_accuracy,
    teacher_test_accuracy, losses, stages (widths,
    epochs and test accuracy per stage), images_seen, seconds, images_per_s, interrupted, and
    the arguments.
    """
    if method not in METHODS:
        raise AccelsimError(f"train: method must be one of {METHODS}, got {method!r}")
    cfg = config or TrainConfig()
    with _blas_limit(cfg.blas_threads):
        return _train(dataset, model, method, a_bits, w_bits, epochs, seed, progress, cfg, teacher)


def _blas_limit(threads: int):
    """Context that runs BLAS with `threads` threads (0: leave the BLAS default)."""
    if threads <= 0:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise AccelsimError(
            "train: threadpoolctl is missing; install the training extras with "
            "pip install -e '.[data]'"
        ) from None
    return threadpool_limits(limits=threads, user_api="blas")


def _train(dataset, model, method, a_bits, w_bits, epochs, seed, progress, cfg, teacher):
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    t0 = time.perf_counter()
    metrics = {
        "dataset": data.name,
        "model": model if isinstance(model, str) else model.spec["arch"],
        "method": method,
        "epochs": epochs,
        "seed": seed,
        "config": asdict(cfg),
        "w_bits": None if method == "fp" else w_bits,
        "a_bits": None if method == "fp" else a_bits,
        "stages": [],
        "images_seen": 0,
    }
    interrupted = False
    rng = np.random.default_rng(seed)
    if method == "fp" or teacher is None:
        net = _build(model, data, seed, cfg)
        n_ep = epochs if method == "fp" else cfg.fp_epochs
        losses, seen, interrupted = _fit(
            net,
            data,
            n_ep,
            cfg.fp_lr,
            cfg.fp_weight_decay,
            cfg,
            rng,
            "fp",
            progress,
            warmup_epochs=cfg.warmup_epochs,
        )
        metrics["images_seen"] += seen
        metrics["stages"].append(
            {
                "w_bits": None,
                "a_bits": None,
                "epochs": n_ep,
                "losses": losses,
                "test_accuracy": accuracy(net, data.x_test, data.y_test),
            }
        )
        teacher = net
    metrics["teacher_test_accuracy"] = accuracy(teacher, data.x_test, data.y_test)
    net = teacher
    if method != "fp" and not interrupted:
        if method == "lsq":
            plan = [(w_bits, a_bits)]
        else:
            plan = ulq_stages(w_bits, a_bits, cfg.ulq_start_bits or min(8, 2 * w_bits))
        split = stage_epochs(epochs, len(plan), cfg.ulq_last_fraction)
        lam = cfg.ulq_lambda if method == "ulq" else 0.0
        net = None
        for i, ((w, a), n_ep) in enumerate(zip(plan, split)):
            if net is None:
                net = quantize(teacher, w, a, cfg.first_a_bits, cfg.per_channel)
            else:
                set_bits(net, w, a)
            calib = data.x_train[np.random.default_rng([seed, i]).permutation(len(data.x_train))]
            calibrate(net, calib[: 4 * cfg.batch_size])
            srng = np.random.default_rng([seed, i + 1])
            losses, seen, interrupted = _fit(
                net,
                data,
                n_ep,
                cfg.q_lr,
                cfg.q_weight_decay,
                cfg,
                srng,
                f"{method} W{w}A{a}",
                progress,
                teacher=teacher if lam > 0 else None,
                lam=lam,
            )
            metrics["images_seen"] += seen
            metrics["stages"].append(
                {
                    "w_bits": w,
                    "a_bits": a,
                    "epochs": n_ep,
                    "losses": losses,
                    "test_accuracy": accuracy(net, data.x_test, data.y_test),
                }
            )
            if interrupted:
                break
        # Interrupted or not, the model handed out is folded: it is the one the machine runs.
        net = fold_batchnorm(net)
        losses = []
        if cfg.fold_epochs > 0 and not interrupted:
            srng = np.random.default_rng([seed, len(plan) + 1])
            losses, seen, interrupted = _fit(
                net,
                data,
                cfg.fold_epochs,
                cfg.fold_lr,
                cfg.q_weight_decay,
                cfg,
                srng,
                f"{method} W{w_bits}A{a_bits} folded",
                progress,
                teacher=teacher if lam > 0 else None,
                lam=lam,
                params=_fold_params(net, cfg.fold_train),
            )
            metrics["images_seen"] += seen
        q = net.spec["quant"]  # the target widths unless Ctrl-C came in an earlier stage
        metrics["stages"].append(
            {
                "w_bits": q["w_bits"],
                "a_bits": q["a_bits"],
                "folded": True,
                "epochs": len(losses),
                "losses": losses,
                "test_accuracy": accuracy(net, data.x_test, data.y_test),
            }
        )
    seconds = time.perf_counter() - t0
    test_loss, _ = cross_entropy(net.logits(data.x_test), data.y_test)
    metrics.update(
        test_accuracy=accuracy(net, data.x_test, data.y_test),
        test_loss=test_loss,
        train_accuracy=accuracy(net, data.x_train, data.y_train),
        seconds=seconds,
        images_per_s=metrics["images_seen"] / max(seconds, 1e-9),
        interrupted=interrupted,
    )
    return net, metrics
