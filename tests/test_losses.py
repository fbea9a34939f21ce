"""The training losses: Asymmetric Loss against plain BCE, and the choice by name."""


import pytest
import torch
from torch import nn

from common.errors import UserError
from common.losses import AsymmetricLoss, make_loss


def test_asymmetric_loss_without_focusing_or_clipping_is_plain_bce():
    logits, targets = torch.randn(8, 5), torch.randint(0, 2, (8, 5)).float()
    plain = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 8
    assert AsymmetricLoss(gamma_negative=0, clip=0)(logits, targets) == pytest.approx(plain.item(), rel=1e-5)


def test_asymmetric_loss_ignores_easy_negatives_but_not_positives():
    loss = AsymmetricLoss()
    easy_negative = loss(torch.tensor([[-4.0]]), torch.tensor([[0.0]]))
    hard_negative = loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]))
    missed_positive = loss(torch.tensor([[-2.0]]), torch.tensor([[1.0]]))
    assert easy_negative.item() == 0.0  # below the 0.05 probability margin
    assert hard_negative.item() > 0.1 and missed_positive.item() > 2.0
    with pytest.raises(UserError, match="bce, asl"):
        make_loss("focal")
