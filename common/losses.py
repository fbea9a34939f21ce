"""Loss functions for multi-label training: Asymmetric Loss (the default) and plain BCE."""

import torch
from torch import nn

from common.choices import LOSS_CHOICES
from common.errors import UserError



class AsymmetricLoss(nn.Module):
    """Asymmetric Loss (Ridnik et al., ICCV 2021) for multi-label data, where most image-tag
    pairs are negatives: easy negatives are down-weighted (focusing, gamma_negative) and very
    unlikely ones ignored (probability shifting, clip), while positives keep plain BCE."""

    def __init__(self, gamma_negative=4.0, gamma_positive=0.0, clip=0.05):
        super().__init__()
        self.gamma_negative, self.gamma_positive, self.clip = gamma_negative, gamma_positive, clip

    def forward(self, logits, targets):
        logits = logits.float()
        probability = torch.sigmoid(logits)
        negative_probability = probability
        if self.clip:
            negative_probability = (probability - self.clip).clamp(min=0)
        # log(p) and log(1 - p_shifted), computed stably from the logits where possible
        loss_positive = targets * nn.functional.logsigmoid(logits)
        loss_negative = (1 - targets) * torch.log((1 - negative_probability).clamp(min=1e-8))
        if self.gamma_negative or self.gamma_positive:
            with torch.no_grad():  # the focusing weights are constants, as in the paper's implementation
                weight_positive = (1 - probability).pow(self.gamma_positive)
                weight_negative = negative_probability.pow(self.gamma_negative)
            loss_positive = loss_positive * weight_positive
            loss_negative = loss_negative * weight_negative
        return -(loss_positive + loss_negative).sum() / logits.shape[0]


def make_loss(name):
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "asl":
        return AsymmetricLoss()
    raise UserError(f"unknown --loss '{name}': choose one of {', '.join(LOSS_CHOICES)}")
