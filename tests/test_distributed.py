"""train.py and infer.py under torchrun: two CPU processes talking over gloo, as on GPUs over NCCL."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CHILD_ENVIRONMENT, REPOSITORY, RunningScript, run_script
from torch.utils.data import DataLoader
from torchvision import models

from common.checkpoint import load_checkpoint, model_from_checkpoint
from common.dataset import ImageTagDataset, UnreadableImages, collate_readable
from common.demo import write_demo_dataset
from common.distributed import Processes, contiguous_shard, learning_rate_for
from common.duplicates import find_duplicates
from common.passes import predict
from common.folder_scan import multi_hot, scan_folder
from common.transforms import eval_transform
from common.metrics import evaluate
from common.tagfiles import default_tag_file, read_tag_file

TWO_PROCESSES = ["--standalone", "--nproc_per_node=2"]
FLAGS = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "8", "--workers", "0",
         "--device", "cpu", "--precision", "fp32", "--yes"]


TORCHRUN = (sys.executable, "-m", "torch.distributed.run", *TWO_PROCESSES)

def torchrun(script, *args, cwd, check=True):
    """`torchrun --standalone --nproc_per_node=2 script args`, as a user would type it."""
    result = subprocess.run([*TORCHRUN, str(REPOSITORY / script), *map(str, args)], cwd=cwd, env=CHILD_ENVIRONMENT,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=500)
    if check and result.returncode != 0:
        raise AssertionError(f"torchrun {script} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    """A two-process training run on 240 shape pictures, one of them unreadable."""
    root = tmp_path_factory.mktemp("distributed")
    truth = write_demo_dataset(root / "shapes", train_count=240, infer_count=60, seed=3)
    (root / "shapes" / "train" / "broken.png").write_bytes(b"")  # one bad image must not stop any process
    (root / "shapes" / "train" / "broken.png.txt").write_text("red\n")
    # --refit-epochs 0: the saved model is the validated one, which the metrics test scores again
    result = torchrun("train.py", "--data", root / "shapes" / "train", "--model", root / "models" / "m.pth",
                      *FLAGS, "--epochs", "4", "--refit-epochs", "0", cwd=root)
    return root, truth, result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_under_torchrun_the_held_out_images_train_in_the_last_epochs(tmp_path):
    write_demo_dataset(tmp_path / "shapes", train_count=80, infer_count=0, seed=4)
    result = torchrun("train.py", "--data", tmp_path / "shapes" / "train", "--model", tmp_path / "m.pth", *FLAGS,
                      "--epochs", "2", "--refit-epochs", "1", cwd=tmp_path)
    assert result.stdout.count("held-out images train too, no validation") == 1  # the main process prints it
    checkpoint = load_checkpoint(tmp_path / "m.pth")
    assert checkpoint["epoch"] == 2 and checkpoint["metrics"]["validated_epoch"] == 1
    assert checkpoint["calibration"]["refit"]["from_epoch"] == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_under_torchrun_prints_once_and_writes_one_model(distributed_run):
    root, _, result = distributed_run
    assert result.stdout.count("epoch 4/4 |") == 1  # only the main process prints
    assert "processes: 2 | global batch: 8 x 2 = 16" in result.stdout
    assert "broken.png" in result.stdout + result.stderr  # named, and the run went on
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    assert checkpoint["settings"]["process_count"] == 2
    assert "module." not in next(iter(checkpoint["state_dict"]))  # the bare model, not its DDP wrapper
    assert sorted(path.name for path in (root / "models").iterdir()) == sorted(
        f"m.{kind}" for kind in ("pth", "tags.txt", "metrics.csv", "report.csv", "report.html", "suspects.html",
                                 "curves.png", "pr.png", "split.json"))  # no training state left, no per-process files
    # the main process found the groups of near-duplicates, every process split by them
    split = json.loads((root / "models" / "m.split.json").read_text())
    tagged = [image for image in scan_folder(root / "shapes" / "train").images
              if (image.parent / f"{image.name}.txt").exists()]
    found = find_duplicates(tagged)
    assert result.stdout.count("groups: ") == 1 and split["groups"]
    assert sorted(map(sorted, split["groups"])) == sorted(sorted(tagged[row].name for row in group)
                                                          for group in found.groups)
    assert not any(set(group) & set(split["train"]) and set(group) & set(split["validation"])
                   for group in split["groups"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_validation_metrics_are_those_of_one_process_over_the_whole_set(distributed_run):
    """Each process scores half of the validation images; gathered, they must give exactly what one
    process scoring all of them gives."""
    root, _, _ = distributed_run
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    split = json.loads((root / "models" / "m.split.json").read_text())
    images = [root / "shapes" / "train" / name for name in split["validation"]]
    targets = multi_hot([read_tag_file(default_tag_file(image)) for image in images], checkpoint["tags"])
    dataset = ImageTagDataset(images, eval_transform(checkpoint["image_size"]), torch.from_numpy(targets))
    loader = DataLoader(dataset, batch_size=7, collate_fn=collate_readable)
    model = model_from_checkpoint(checkpoint, torch.device("cpu"))
    with torch.no_grad():  # undo the calibration folded into the head, back to the model that was validated
        model.fc.bias += torch.logit(torch.tensor(checkpoint["calibration"]["thresholds"]).clamp(1e-4, 1 - 1e-4))
    _, targets, probabilities, _ = predict(model, loader, torch.device("cpu"), "fp32", UnreadableImages())
    with open(root / "models" / "m.metrics.csv") as file:
        best = max(csv.DictReader(file), key=lambda row: float(row["mAP"]))
    counts = sum(int(best[name]) for name in ("tp", "fp", "fn", "tn"))
    assert counts == len(targets) * len(checkpoint["tags"])  # every readable validation image, each once
    assert evaluate(targets, probabilities, [0.5] * len(checkpoint["tags"]))["mAP"] == pytest.approx(
        checkpoint["metrics"]["mAP"], abs=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sharded_inference_tags_every_image_once_and_joins_the_tables(distributed_run, tmp_path):
    root, truth, _ = distributed_run
    folder = root / "shapes" / "infer"
    flags = ["--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu", "--workers", "0",
             "--precision", "fp32"]
    result = torchrun("infer.py", *flags, "--csv", tmp_path / "all.csv", "--jsonl", tmp_path / "all.jsonl",
                      cwd=tmp_path)
    assert "tagged 60 image(s): 60 sidecars written" in result.stdout
    assert all(default_tag_file(image).exists() for image in truth)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["all.csv", "all.jsonl"]  # parts joined, removed

    run_script("infer.py", *flags, "--csv", tmp_path / "one.csv", cwd=tmp_path)  # one process, for comparison
    with open(tmp_path / "all.csv") as joined, open(tmp_path / "one.csv") as single:
        joined_rows, single_rows = list(csv.reader(joined)), list(csv.reader(single))
    assert [row[0] for row in joined_rows] == [row[0] for row in single_rows]  # same header, same order
    assert np.allclose(np.array(joined_rows[1:])[:, 1:].astype(float),
                       np.array(single_rows[1:])[:, 1:].astype(float), atol=1e-4)
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    assert [json.loads(line)["file"] for line in lines] == [row[0] for row in single_rows[1:]]

    # well above chance, where each tag's AP would be its frequency
    tags = joined_rows[0][1:]
    probabilities = np.array([[float(value) for value in row[1:]] for row in joined_rows[1:]])
    true_tags = {path.name: tags_of_image for path, tags_of_image in truth.items()}
    targets = multi_hot([true_tags[row[0]] for row in joined_rows[1:]], tags)
    scores = evaluate(targets, probabilities, [0.5] * len(tags))
    assert scores["mAP"] > targets.mean(axis=0).mean() + 0.2, scores


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_under_torchrun_saves_the_state_and_resume_needs_the_same_processes(tmp_path):
    write_demo_dataset(tmp_path / "shapes", train_count=96, infer_count=0, seed=4)
    model = tmp_path / "m.pth"
    flags = ["--data", tmp_path / "shapes" / "train", "--model", model, *FLAGS, "--epochs", "3"]
    running = RunningScript("train.py", *flags, cwd=tmp_path, launcher=TORCHRUN, start_new_session=True)
    running.wait_for("epoch 1/3 |")
    running.interrupt(whole_group=True)  # what Ctrl-C in a terminal does: every process gets it
    running.finish(timeout=120)
    output = running.stdout + running.stderr
    assert "the best model (epoch 1)" in output, output
    assert load_checkpoint(model)["epoch"] == 1 and (tmp_path / "m.last.pth").exists()

    single = run_script("train.py", *flags, "--resume", cwd=tmp_path, check=False)
    assert single.returncode == 2 and "used 2 process(es)" in single.stderr

    resumed = torchrun("train.py", *flags, "--resume", cwd=tmp_path)
    assert "resuming after epoch 1" in resumed.stdout and "epoch 3/3 |" in resumed.stdout
    assert not (tmp_path / "m.last.pth").exists()


@pytest.mark.parametrize("count", [0, 1, 5, 6, 7, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_contiguous_shards_cover_the_list_in_order(count, world_size):
    items = list(range(count))
    shards = [contiguous_shard(items, Processes(rank, 0, world_size)) for rank in range(world_size)]
    assert sum(shards, []) == items
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_learning_rate_grows_with_the_global_batch_as_documented():
    assert learning_rate_for(3e-3, 1, "sqrt") == 3e-3
    assert learning_rate_for(3e-3, 4, "sqrt") == pytest.approx(6e-3)
    assert learning_rate_for(3e-3, 4, "linear") == pytest.approx(1.2e-2)
    assert learning_rate_for(3e-3, 4, "none") == 3e-3


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_frozen_backbone_under_torchrun_trains_the_head_on_features_shared_by_both_processes(tmp_path):
    write_demo_dataset(tmp_path / "shapes", train_count=96, infer_count=0, seed=5)
    torch.save(models.resnet18().state_dict(), tmp_path / "backbone.pth")
    result = torchrun("train.py", "--data", tmp_path / "shapes" / "train", "--model", tmp_path / "m.pth", *FLAGS,
                      "--epochs", "2", "--weights", tmp_path / "backbone.pth", "--freeze-backbone", cwd=tmp_path)
    assert result.stdout.count("features: computed once for 86 training images") == 1  # all of them, printed once
    assert "epoch 2/2 |" in result.stdout
    trained = load_checkpoint(tmp_path / "m.pth")["state_dict"]
    original = torch.load(tmp_path / "backbone.pth", weights_only=True)
    assert all(torch.equal(trained[name], original[name]) for name in original if not name.startswith("fc."))
