"""Per-layer bits rules: which nodes a rule sets, the graph a builder makes under
`layer_bits`, and the MAC widths the machine then runs each layer at."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import AccelsimError
from accelsim.ir.builder import layer_bits
from accelsim.runner import run_model
from accelsim.sweep.bits import check_overrides, layer_overrides
from accelsim.sweep.spec import BitsRule
from workloads.dense import small_cnn

FIRST_LAST = BitsRule(("first", "last"), (8, 8))


def test_first_and_last_set_weights_and_the_producers_of_their_inputs():
    """small_cnn: conv1 reads the input quantizer xq (already 8-bit); fc reads
    flatten <- gap <- avgpool <- conv3, so conv3 (the producer) and both average pools
    (which requantize to a width of their own) are set to A = 8."""
    over = layer_overrides(small_cnn(2, 2), [FIRST_LAST], "small_cnn")
    assert over == {
        "conv1": {"w_bits": 8},
        "xq1": {"bits": 8},
        "fc": {"w_bits": 8},
        "gap": {"bits": 8},
        "avgpool": {"bits": 8},
        "conv3": {"bits": 8},
    }


def test_patterns_select_by_name_and_later_rules_win():
    rules = [BitsRule(("*conv*",), (4, 4)), BitsRule(("pwconv",), (8, 2))]
    over = layer_overrides(small_cnn(2, 2), rules, "small_cnn")
    assert {k: v["w_bits"] for k, v in over.items() if "w_bits" in v} == {
        "conv1": 4,
        "dwconv": 4,
        "pwconv": 2,
        "conv3": 4,
    }
    assert over["dwconv"]["bits"] == 8  # pwconv reads dwconv's output: the last rule's A
    with pytest.raises(AccelsimError, match=r"no layer of 'small_cnn' matches \(its weighted"):
        layer_overrides(small_cnn(2, 2), [BitsRule(("layer9.*",), (8, 8))], "small_cnn")


def test_built_graph_carries_the_widths_and_the_machine_runs_them():
    """Under layer_bits the builder gives conv1 and fc 8-bit weights and fc 8-bit inputs;
    dwconv (untouched, before any changed tensor) keeps exactly the uniform 2/2 build's
    weights, conv1 the uniform 8/8 build's. The machine then runs conv1 and fc at 8 x 8 and
    the other layers at 2 x 2."""
    plain = small_cnn(2, 2)
    over = layer_overrides(plain, [FIRST_LAST], "small_cnn")
    with layer_bits(over):
        mixed = small_cnn(2, 2)
    check_overrides(mixed, over, "small_cnn")
    np.testing.assert_array_equal(mixed.node("dwconv").weight, plain.node("dwconv").weight)
    np.testing.assert_array_equal(mixed.node("conv1").weight, small_cnn(8, 8).node("conv1").weight)
    assert small_cnn(2, 2).node("conv1").w_bits == 2  # the override ended with the block
    cfg = load_config("edge")
    x = np.random.default_rng(0).random(mixed.tensors[mixed.input].shape)
    res = run_model(mixed, cfg, x, count_only=True)
    widths = {res.stats.tags[t]: set(res.stats.macs_by_width(t)) for t in res.stats.tags}
    assert widths["conv1"] == {(8, 8)} and widths["fc"] == {(8, 8)}
    assert widths["dwconv"] == widths["pwconv"] == widths["conv3"] == {(2, 2)}


def test_a_builder_that_ignores_the_overrides_is_caught():
    over = layer_overrides(small_cnn(2, 2), [FIRST_LAST], "small_cnn")
    with pytest.raises(AccelsimError, match=r"layer 'conv1' was built with w_bits = 2, its bits"):
        check_overrides(small_cnn(2, 2), over, "small_cnn")


def test_a_sweep_point_runs_its_rules(tmp_path):
    """A point of small_cnn at 2/2 with first/last at 8/8: conv1 and fc cost 0.2 + 0.1 pJ per
    MAC (8 x 8), conv3 0.2 * 4/64 + 0.1 = 0.1125 pJ (2 x 2): the rule reached the run."""
    from accelsim.cli.sources import CliWorkloads
    from accelsim.sweep.points import expand
    from accelsim.sweep.spec import parse_spec
    from accelsim.sweep.worker import run_point

    text = 'name = "r"\nworkloads = ["small_cnn"]\n[axes]\nbits = ["2/2"]\n'
    text += '[[bits_rules]]\nlayers = ["first", "last"]\nbits = "8/8"\n'
    source = CliWorkloads(str(tmp_path))
    (point,) = expand(parse_spec(text, "r.toml"), source, "event", "test")
    res = run_point(point, source, "event")
    assert res["status"] == "ok", res["error"]
    per_mac = {r["name"]: r["energy_mac_pj"] / r["macs"] for r in res["layers"] if r["macs"]}
    assert per_mac["conv1"] == pytest.approx(0.3, abs=1e-4)
    assert per_mac["fc"] == pytest.approx(0.3, abs=1e-2)
    assert per_mac["conv3"] == pytest.approx(0.1125, abs=1e-4)
