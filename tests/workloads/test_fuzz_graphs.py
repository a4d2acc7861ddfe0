"""The fuzz script and its generators: cases are drawn again from (seed, index), outcomes are
classified, and a saved failing case replays from the command line."""

import json

import numpy as np
import pytest

import accelsim.runner
from accelsim.cli import main as cli_main
from accelsim.errors import AccelsimError
from accelsim.ir.builder import GraphBuilder
from workloads import fuzz_graphs
from workloads.fuzz_graphs import Outcome, draw, run_case, save_case
from workloads.random_graphs import Case


def test_a_case_is_drawn_again_from_its_seed_and_index():
    a, b, c = draw(5, 3, False), draw(5, 3, False), draw(5, 4, False)
    assert a.graph.summary() == b.graph.summary() and a.overrides == b.overrides
    np.testing.assert_array_equal(a.x, b.x)
    assert (a.graph.summary(), a.overrides) != (c.graph.summary(), c.overrides)
    s1, s2 = draw(5, 3, True), draw(5, 3, True)
    np.testing.assert_array_equal(s1.x[0], s2.x[0])
    assert [n.name for n in s1.graph.nodes] == [n.name for n in s2.graph.nodes]


def _small_case(overrides=()):
    rng = np.random.default_rng(0)
    b = GraphBuilder("t", (1, 3, 3, 2), rng)
    y = b.conv(b.quantize(8, signed=True), 3, 3, w_bits=4, bits=4)
    return Case(b.finish(y), list(overrides), rng.standard_normal((1, 3, 3, 2)))


def test_outcomes_exact_limit_refused_crashed(monkeypatch):
    assert run_case(_small_case()) == Outcome("exact")
    limit = run_case(_small_case(["matmul.max_bits=4"]))
    assert (limit.status, limit.reason) == ("limit", "operands wider than matmul.max_bits")
    assert limit.ok and "node 'conv1'" in limit.detail and "matmul.max_bits = 4" in limit.detail

    def refuse(*args, **kwargs):
        raise AccelsimError("node 'x': not supported")

    monkeypatch.setattr(accelsim.runner, "run_model", refuse)
    assert run_case(_small_case()) == Outcome("refused", "node 'x': not supported")

    def crash(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(accelsim.runner, "run_model", crash)
    crashed = run_case(_small_case())
    assert crashed == Outcome("crashed", "ValueError: boom") and not crashed.ok


@pytest.mark.parametrize("sparse", [False, True])
def test_a_saved_case_replays_from_the_command_line(capsys, tmp_path, sparse):
    case = draw(0, 1, sparse)
    save_case(case, tmp_path / "case", Outcome("wrong", "for the test"))
    folder = tmp_path / "case"
    assert json.loads((folder / "outcome.json").read_text())["status"] == "wrong"
    inp = folder / ("input.npz" if sparse else "input.npy")
    argv = ["run", str(folder / "model.npz"), "--config", str(folder / "config.toml")]
    code = cli_main([*argv, "--input", str(inp), "--check"])
    out = capsys.readouterr().out
    assert code == 0 and "check passed" in out
    assert run_case(case).status in ("exact", "limit")


def test_main_counts_every_case_and_writes_the_summary(capsys, tmp_path, monkeypatch):
    """Three cases in-process (the pool is replaced by map): every case gets one status."""
    monkeypatch.setattr(fuzz_graphs, "ProcessPoolExecutor", _InlinePool)
    code = fuzz_graphs.main(["--n", "3", "--seed", "4", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary-dense-4.json").read_text())
    assert sum(summary["counts"].values()) == 3
    assert code == (1 if summary["failing_cases"] else 0)
    out = capsys.readouterr().out
    assert "3 dense cases, seed 4" in out and "exact" in out


class _InlinePool:
    def __init__(self, max_workers):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, jobs, chunksize=1):
        return map(fn, jobs)
