"""ONNX front end: import ONNX QDQ, QOperator and QONNX (Brevitas) models as IR graphs.

    from accelsim.frontend.onnx import load_onnx
    graph = load_onnx("model.onnx")        # IR graph; host pre/post-processing as host ops

The imported graph takes the ONNX input in its declared layout (NCHW) and returns one tensor
per ONNX graph output, named as in the file. Imported models follow ONNX rounding (half to
even), so run them with `rescale.round_mode = "rne"` (`ONNX_ROUND_MODE`). Needs the `onnx`
package (`pip install 'accelsim[onnx]'`).
"""

from __future__ import annotations

from accelsim.frontend.onnx.convert import convert
from accelsim.frontend.onnx.reader import read_onnx
from accelsim.ir.graph import Graph

ONNX_ROUND_MODE = "rne"  # QuantizeLinear and QLinear requantization round half to even


def load_onnx(src, *, input_shape=None) -> Graph:
    """Import an ONNX model (path or bytes) as a validated IR graph.

    input_shape: a fixed shape for the model input (ONNX layout) replacing the declared one,
    e.g. a smaller image for a fully convolutional model. Raises ModelFormatError naming the
    file and node for anything malformed or unsupported.
    """
    return convert(read_onnx(src, input_shape=input_shape))


__all__ = ["ONNX_ROUND_MODE", "load_onnx"]
