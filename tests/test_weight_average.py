"""--ema: a running average of the weights is validated, saved and resumed in place of the weights
as trained, while training itself goes on from its own weights."""

import pytest
import torch
from conftest import FAST_TRAINING, assert_same_model, interrupted_run, run_main
from torch import nn

from common.checkpoint import load_checkpoint
from common.optimizer import averaged_weights, make_weight_average


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_the_average_follows_the_weights_with_a_decay_set_by_the_share_of_the_steps():
    model = small_model()
    averaged = make_weight_average(model, total_steps=40, span=0.1)  # 4 steps: decay 0.75
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = None
    for step in range(5):
        loss = model(torch.randn(8, 3)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        averaged.update_parameters(model)
        weight = model[0].weight.detach().clone()
        expected = weight if expected is None else 0.75 * expected + 0.25 * weight
    assert torch.allclose(averaged.module[0].weight, expected, atol=1e-6)
    # BatchNorm's statistics are averaged too, so that they belong to the averaged weights
    assert not torch.allclose(averaged.module[1].running_mean, model[1].running_mean)
    assert make_weight_average(model, total_steps=40, span=0) is None


def test_inside_the_block_the_model_holds_the_average_and_after_it_its_own_weights():
    model = small_model()
    averaged = make_weight_average(model, total_steps=10, span=0.5)
    averaged.update_parameters(model)
    own = [tensor.clone() for tensor in model.state_dict().values()]
    with torch.no_grad():
        for parameter in averaged.module.parameters():
            parameter.add_(1.0)
    with averaged_weights(model, averaged):
        for mine, average in zip(model.parameters(), averaged.module.parameters()):
            assert torch.equal(mine, average)
    for before, after in zip(own, model.state_dict().values()):
        assert torch.equal(before, after)
    with averaged_weights(model, None):  # no average: nothing changes
        assert all(torch.equal(before, after) for before, after in zip(own, model.state_dict().values()))


@pytest.mark.slow
def test_a_run_with_ema_saves_the_average_and_resumes_to_the_uninterrupted_result(shapes_dataset, tmp_path,
                                                                                  monkeypatch):
    root, _ = shapes_dataset
    flags = ["--data", str(root / "train"), *FAST_TRAINING, "--epochs", "3", "--ema", "0.5"]
    whole = tmp_path / "whole.pth"
    run_main("train.py", *flags, "--model", whole, cwd=tmp_path)
    plain = tmp_path / "plain.pth"
    run_main("train.py", *flags[:-2], "--model", plain, cwd=tmp_path)
    expected = load_checkpoint(whole)
    assert expected["settings"]["ema"] == 0.5
    differing = [name for name, tensor in expected["state_dict"].items() if tensor.is_floating_point()
                 and not torch.allclose(tensor.float(), load_checkpoint(plain)["state_dict"][name].float())]
    assert differing  # the same seed and steps: only the average makes the saved weights differ

    model = tmp_path / "m.pth"
    interrupted_run(flags, model, monkeypatch, at_epoch=3)
    assert "averaged" in torch.load(tmp_path / "m.last.pth", weights_only=False)
    run_main("train.py", "--resume", "--model", model, cwd=tmp_path)
    assert_same_model(load_checkpoint(model), expected)


@pytest.mark.parametrize("value", ["-0.1", "2", "often"])
def test_a_wrong_ema_share_is_refused_in_one_line(tmp_path, value):
    result = run_main("train.py", "--data", tmp_path, "--model", tmp_path / "m.pth", "--ema", value, cwd=tmp_path,
                      check=False)
    assert result.returncode == 2 and "--ema" in result.stderr and "Traceback" not in result.stderr
