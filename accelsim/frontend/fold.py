"""Lowering pass 1: fold batch norms into the conv / linear before them.

The fold itself lives in `accelsim.ir.fold` (the IR's reference execution folds too, and the
IR must not import the front end); this module is the pass as `lower()` calls it.
"""

from accelsim.ir.fold import fold_batchnorm, fold_one

__all__ = ["fold_batchnorm", "fold_one"]
