"""The optimizer and schedule: decay on weights only, the pretrained layers' share of the rate, warm-up and cosine."""

import argparse
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from common.model import build_model
from common.optimizer import (
    backbone_lr_factor,
    make_optimizer,
    make_scheduler,
    parameter_groups,
    warmup_cosine,
)
from common.settings import backbone_lr_setting


def test_weight_decay_skips_biases_and_normalisation_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 5, 5))
    decayed, not_decayed = parameter_groups(model, 0.05)
    assert decayed["weight_decay"] == 0.05 and not_decayed["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [(4, 3, 3, 3), (2, 36)]
    assert len(not_decayed["params"]) == 4  # conv bias, BN weight and bias, linear bias


def test_pretrained_layers_learn_at_their_share_of_the_rate_through_the_whole_schedule():
    model = build_model("resnet18", num_tags=3)
    optimizer = make_optimizer(model, 0.01, 0.05, backbone_lr_factor=0.1)
    scheduler = make_scheduler(optimizer, total_steps=20, warmup_fraction=0.1)
    head = {id(parameter) for parameter in model.fc.parameters()}
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    rate_of = {id(parameter): group["lr"] for group in optimizer.param_groups for parameter in group["params"]}
    head_rate = rate_of[id(model.fc.weight)]
    assert 0 < head_rate < 0.01  # mid-schedule
    assert {rate_of[id(p)] for p in model.fc.parameters()} == {head_rate}
    backbone_rates = {rate_of[id(p)] for p in model.parameters() if id(p) not in head}
    assert backbone_rates and all(rate == pytest.approx(head_rate * 0.1) for rate in backbone_rates)
    assert len(rate_of) == len(list(model.parameters()))  # every parameter is in exactly one group


@pytest.mark.parametrize("text, weights, factor", [("auto", "none", 1.0), ("auto", "models/pretrained.pth", 0.3),
                                                   ("AUTO", "imagenet", 0.3), ("0.1", "imagenet", 0.1),
                                                   ("0", "none", 0.0), ("1", "imagenet", 1.0)])
def test_backbone_rate_auto_slows_only_pretrained_layers(text, weights, factor):
    args = SimpleNamespace(backbone_lr=backbone_lr_setting(text), weights=weights)
    assert backbone_lr_factor(args) == factor


@pytest.mark.parametrize("text", ["1.5", "-0.1", "fast", "nan", ""])
def test_backbone_rate_outside_zero_to_one_is_refused_with_the_rule(text):
    with pytest.raises(argparse.ArgumentTypeError, match="from 0 to 1"):
        backbone_lr_setting(text)


def test_schedule_warms_up_then_decays_to_zero():
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    values = [factor(step) for step in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:]))  # never rises after the warm-up
    assert values[100] == pytest.approx(0.0, abs=1e-9)


def test_the_optimizer_is_adamw_with_decay_on_weights_only_and_takes_steps():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 3), nn.LayerNorm(3))
    optimizer = make_optimizer(model, 0.01, 0.05)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay_of = {id(parameter): group["weight_decay"] for group in optimizer.param_groups
                for parameter in group["params"]}
    named = dict(model.named_parameters())
    assert {name: decay_of[id(parameter)] for name, parameter in named.items()} == {
        "0.weight": 0.05, "0.bias": 0.0, "1.weight": 0.0, "1.bias": 0.0, "3.weight": 0.05, "3.bias": 0.0,
        "4.weight": 0.0, "4.bias": 0.0}
    before = {name: parameter.detach().clone() for name, parameter in named.items()}
    model(torch.randn(8, 3, 5, 5)).pow(2).sum().backward()
    optimizer.step()
    assert all(not torch.equal(before[name], parameter) for name, parameter in named.items())
