"""Exceptions raised for bad user input and for faults the simulated hardware detects.

Every error a user can cause (a bad config key, a malformed instruction word, a broken model
file, an accumulator overflow) is an `AccelsimError`; the CLI prints its message and exits with
status 2 instead of showing a traceback.
"""


class AccelsimError(Exception):
    """Base class: a problem the user can fix, with a message naming what and where."""


class ConfigError(AccelsimError):
    """A hardware or energy configuration file or override is invalid."""


class IsaError(AccelsimError):
    """An instruction word or assembly line is malformed (bad opcode, field out of range)."""


class ModelFormatError(AccelsimError):
    """A model file is missing, truncated, inconsistent or of an unsupported version."""


class AccumulatorOverflow(AccelsimError, ArithmeticError):
    """An int32 accumulator overflowed on hardware configured not to wrap."""


class DeadlockError(AccelsimError):
    """The simulated units wait on each other forever; the message names units and channels."""


class RaceError(AccelsimError):
    """A buffer region was accessed without a token chain ordering it after its last writer."""


class SparseInputError(AccelsimError):
    """Sparse tensor input is invalid (duplicate or negative coordinates, length mismatch...)."""


class HardwareLimitError(AccelsimError):
    """A legal model needs more than the modelled hardware offers (a tensor beyond the DRAM
    address space, operands wider than `matmul.max_bits`, a channel count beyond an instruction
    field, buffers too small for the smallest tile). The message names the node and the limit;
    `limit` is a short name of the limit (for counting refusals by reason)."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit
