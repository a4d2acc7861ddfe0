"""Quantization-aware training in NumPy: LSQ quantizers, ULQ teacher-constrained bit lowering,
layers with backward passes, the digit classifiers and their export for the integer hardware.

Training knows nothing of the hardware; `export_layers` is the hand-off to the front end and
`to_ir` builds the graph IR from it. `checkpoint` saves and loads training models, and `machine`
runs a trained model on the simulated machine (the one module here that imports the front end
and the simulator; import it as `accelsim.quant.machine`).
"""

from accelsim.quant.data import Dataset, load_dataset, validation_split
from accelsim.quant.export import export_layers, fake_quant_logits, fake_quant_predict, run_exported
from accelsim.quant.fold import fold_batchnorm
from accelsim.quant.models import (
    Model,
    build_model,
    calibrate,
    cnn,
    load_state_dict,
    mlp,
    quantize,
    set_bits,
    state_dict,
)
from accelsim.quant.quantizer import LsqQuantizer, q_range, weight_mode
from accelsim.quant.trainer import TrainConfig, train, ulq_stages

__all__ = [
    "Dataset",
    "LsqQuantizer",
    "Model",
    "TrainConfig",
    "build_model",
    "calibrate",
    "cnn",
    "export_layers",
    "fake_quant_logits",
    "fake_quant_predict",
    "fold_batchnorm",
    "load_dataset",
    "load_state_dict",
    "mlp",
    "q_range",
    "quantize",
    "run_exported",
    "set_bits",
    "state_dict",
    "train",
    "ulq_stages",
    "validation_split",
    "weight_mode",
]
