"""Shapes are checked at test time: pytest installs jaxtyping's import hook (with beartype) over modeldiff_cli
before any of it is imported (``--jaxtyping-packages`` in pyproject.toml), so a wrongly shaped or typed tensor
passed to an annotated function raises."""

import pytest
import torch
from jaxtyping import TypeCheckError

from modeldiff_cli.commands.lens.extract import last_position_mask
from modeldiff_cli.core.model.divergence import kl


def test_right_shape_and_dtype_pass():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert last_position_mask(mask).tolist() == [[False, True, False], [True, False, False]]
    assert kl(torch.zeros(2, 5).log_softmax(-1), torch.zeros(2, 5).log_softmax(-1)).shape == (2,)


@pytest.mark.parametrize("mask", [torch.ones(2, 3), torch.ones(3, dtype=torch.bool)], ids=["float", "1-d"])
def test_wrong_dtype_or_rank_raises(mask):
    with pytest.raises(TypeCheckError, match="last_position_mask"):
        last_position_mask(mask)


def test_dimension_names_bind_within_a_call():
    with pytest.raises(TypeCheckError, match="logq"):
        kl(torch.zeros(2, 5), torch.zeros(3, 5))  # both "n v": the row counts must agree
