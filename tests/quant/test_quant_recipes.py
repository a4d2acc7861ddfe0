"""Recipes in workloads/trained.py: every width for both methods, shared teacher and budget."""

import pytest

from accelsim.errors import AccelsimError
from workloads.trained import BITS, get_recipe, recipes


def test_every_width_and_method_has_a_recipe():
    table = recipes()
    assert set(BITS) == {(8, 8), (4, 4), (3, 3), (2, 2), (1, 2)}
    for dataset, model in (("digits", "cnn"), ("digits", "mlp"), ("mnist", "cnn")):
        assert f"{dataset}-{model}-fp" in table
        for w, a in BITS:
            lsq = table[f"{dataset}-{model}-lsq-w{w}a{a}"]
            ulq = table[f"{dataset}-{model}-ulq-w{w}a{a}"]
            assert (lsq.w_bits, lsq.a_bits) == (w, a) and ulq.method == "ulq"
            assert lsq.epochs == ulq.epochs and lsq.config == ulq.config  # same budget
            assert lsq.teacher == ulq.teacher == table[f"{dataset}-{model}-fp"]


def test_get_recipe_seed_and_unknown_name():
    assert get_recipe("digits-cnn-lsq-w4a4", seed=3).seed == 3
    with pytest.raises(AccelsimError, match="not found"):
        get_recipe("digits-cnn-lsq-w5a5")
