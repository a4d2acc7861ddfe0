"""Property: every legal graph on every machine variant either runs exactly (every layer equals
the IR integer reference, and the timing-only run gives the same cycles) or is refused for a
limit of the modelled hardware (`HardwareLimitError`). Graphs and machines are drawn by the
generators of `workloads/random_graphs.py` and `workloads/sparse_graphs.py`; Hypothesis
shrinks a failure to its simplest graph, which then becomes a test in `test_regressions.py`.

CI runs a fixed, derandomized set of examples (profile `ci` in `strategies.py`);
HYPOTHESIS_PROFILE=long runs ten times as many random ones. Long runs outside pytest:
`python workloads/fuzz_graphs.py`.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import SCALE, HypothesisDraw
from workloads.fuzz_graphs import run_case
from workloads.random_graphs import dense_case
from workloads.sparse_graphs import sparse_case

DENSE_EXAMPLES = 200
SPARSE_EXAMPLES = 100


def _explain(case, outcome) -> str:
    graph = case.graph
    lines = [f"{outcome.status}: {outcome.reason}", f"machine: edge {case.overrides}"]
    for node in graph.nodes:
        attrs = {
            k: v
            for k, v in vars(node).items()
            if k not in ("name", "inputs", "output", "weight", "bias", "w_scale")
        }
        t = graph.tensors[node.output]
        shape = getattr(t, "shape", None) or (t.coord_set, t.channels)
        lines.append(
            f"  {node.name} {type(node).__name__}{tuple(node.inputs)} -> {shape} "
            f"{t.bits}b {t.mode} zp {t.zero_point} {attrs}"
        )
    return "\n".join(lines)


@settings(max_examples=DENSE_EXAMPLES * SCALE)
@given(st.data())
def test_dense_graphs_run_exactly_or_hit_a_hardware_limit(data):
    case = dense_case(HypothesisDraw(data))
    outcome = run_case(case)
    assert outcome.ok, _explain(case, outcome)


@settings(max_examples=SPARSE_EXAMPLES * SCALE)
@given(st.data())
def test_sparse_graphs_run_exactly_or_hit_a_hardware_limit(data):
    case = sparse_case(HypothesisDraw(data))
    outcome = run_case(case)
    assert outcome.ok, _explain(case, outcome)
