"""The plot kinds by name, importable without matplotlib or the results reader (the command
line lists them as choices at start-up); `accelsim.plots.kinds.KINDS` maps each to its plot."""

KIND_NAMES = ("bits", "pareto", "groups", "breakdown", "roofline", "layers", "rescale")
