"""Settings precedence: flag > environment variable > .env > the script's defaults."""

import os
import re

import pytest
from conftest import REPOSITORY, run_main

import train
from common.checkpoint import load_checkpoint, read_tag_list
from common.errors import UserError
from common.settings import ENVIRONMENT_KEYS, environment_setting, notebook_settings, require


def infer_parser():
    import infer  # here, not at the top: importing infer.py sets OMP_WAIT_POLICY for the process

    return infer.get_args_parser()


@pytest.fixture
def clean_environment(tmp_path):
    """Run in an empty folder; conftest has already removed every one of our keys from the environment."""
    os.chdir(tmp_path)
    assert not set(ENVIRONMENT_KEYS.values()) & set(os.environ)
    return tmp_path


def parse_train(argv):
    return train.get_args_parser().parse_settings(argv)


# The defaults the README documents; a change to one of them must be a deliberate change here too.
DOCUMENTED_TRAINING_DEFAULTS = dict(
    epochs="auto", batch_size=32, image_size=224, lr=3e-3, backbone_lr="auto", warmup=0.1, weight_decay=0.05,
    augment="off", loss="asl", arch="resnet50", weights="imagenet", val_fraction=0.1, min_tag_count=1, patience=0,
    precision="auto", small_input="auto", seed=0, device="auto", cache_mb=2048, index_cache="", lr_scaling="sqrt",
    sync_batchnorm=False, freeze_backbone=False, recursive=False, resume=False, yes=False, data=None, model=None,
    tags=None, env_file=".env", debug=False, decode="auto")
DOCUMENTED_INFERENCE_DEFAULTS = dict(
    batch_size=None, device="auto", precision="auto", sep="\n", sidecar_style="ext", image_size=224,
    threshold=None, top_k=None, whitelist=None, blacklist=None, overwrite=False, merge=False, evaluate=False,
    recursive=False, compile=False, csv=None, jsonl=None, input=None, model=None, tags=None, decode="auto")


def test_the_documented_training_defaults(clean_environment):
    args = vars(parse_train([]))
    assert {key: args[key] for key in DOCUMENTED_TRAINING_DEFAULTS} == DOCUMENTED_TRAINING_DEFAULTS
    assert args["workers"] == min(4, os.cpu_count() or 1)


def test_the_documented_inference_defaults(clean_environment):
    args = vars(infer_parser().parse_settings([]))
    assert {key: args[key] for key in DOCUMENTED_INFERENCE_DEFAULTS} == DOCUMENTED_INFERENCE_DEFAULTS


# Every key the scripts read, with a value that differs from its default and what it becomes.
KEY_EXAMPLES = {
    "TRAINING": ("train", "data", "photos/", "photos/"), "INFERENCE_DIR": ("infer", "input", "new/", "new/"),
    "MODEL": ("train", "model", "m.pth", "m.pth"), "TAGS": ("infer", "tags", "t.json", "t.json"),
    "WHITELIST": ("infer", "whitelist", "only.txt", "only.txt"),
    "BLACKLIST": ("infer", "blacklist", "never.txt", "never.txt"),
    "ARCH": ("train", "arch", "resnet18", "resnet18"), "WEIGHTS": ("train", "weights", "none", "none"),
    "EPOCHS": ("train", "epochs", "3", 3), "BATCH_SIZE": ("infer", "batch_size", "8", 8),
    "IMAGE_SIZE": ("train", "image_size", "99", 99), "DEVICE": ("infer", "device", "cpu", "cpu"),
    "LEARNING_RATE": ("train", "lr", "0.01", 0.01), "VAL_FRACTION": ("train", "val_fraction", "0.2", 0.2),
    "REFIT_EPOCHS": ("train", "refit_epochs", "2", 2), "EMA": ("train", "ema", "0.1", 0.1),
    "SEED": ("train", "seed", "7", 7), "WORKERS": ("infer", "workers", "0", 0),
    "THRESHOLD": ("infer", "threshold", "0.3", 0.3), "LOSS": ("train", "loss", "bce", "bce"),
    "PRECISION": ("train", "precision", "fp32", "fp32"), "PATIENCE": ("train", "patience", "2", 2),
    "AUGMENT": ("train", "augment", "on", "on"), "LR_SCALING": ("train", "lr_scaling", "linear", "linear"),
    "INDEX_CACHE": ("train", "index_cache", "index.json", "index.json"),
    "SMALL_INPUT": ("train", "small_input", "off", "off"), "CACHE_MB": ("train", "cache_mb", "0", 0),
    "BACKBONE_LR": ("train", "backbone_lr", "0.5", 0.5), "DECODE": ("infer", "decode", "cpu", "cpu"),
    "GROUP_DUPLICATES": ("train", "group_duplicates", "off", "off"),
    "GROUP_BY": ("train", "group_by", r"^(\d+)_p", r"^(\d+)_p"), "GROUPS": ("train", "groups", "g.csv", "g.csv"),
}


def test_every_key_has_an_example():
    assert set(KEY_EXAMPLES) == set(ENVIRONMENT_KEYS.values())


@pytest.mark.parametrize("key", sorted(KEY_EXAMPLES))
def test_every_key_is_read_from_env_file_and_from_the_environment(key, clean_environment):
    script, name, text, value = KEY_EXAMPLES[key]
    parser = (lambda: train.get_args_parser()) if script == "train" else infer_parser
    default = getattr(parser().parse_settings([]), name)
    (clean_environment / ".env").write_text(f"{key}={text}\n")
    assert getattr(parser().parse_settings([]), name) == value != default
    (clean_environment / ".env").unlink()
    os.environ[key] = text
    assert getattr(parser().parse_settings([]), name) == value


def test_env_file_overrides_defaults(clean_environment):
    (clean_environment / ".env").write_text("EPOCHS=3\nTRAINING=from_dotenv/\nARCH=resnet18  # a comment\n")
    args = parse_train([])
    assert (args.epochs, args.data, args.arch) == (3, "from_dotenv/", "resnet18")


def test_environment_variable_overrides_env_file(clean_environment, monkeypatch):
    (clean_environment / ".env").write_text("EPOCHS=3\nBATCH_SIZE=8\n")
    monkeypatch.setenv("EPOCHS", "5")
    args = parse_train([])
    assert (args.epochs, args.batch_size) == (5, 8)


def test_flag_overrides_everything(clean_environment, monkeypatch):
    (clean_environment / ".env").write_text("EPOCHS=3\n")
    monkeypatch.setenv("EPOCHS", "5")
    assert parse_train(["--epochs", "7"]).epochs == 7


def test_env_file_flag_reads_another_file(clean_environment):
    (clean_environment / "other.env").write_text("MODEL=elsewhere.pth\n")
    assert parse_train(["--env-file", "other.env"]).model == "elsewhere.pth"
    with pytest.raises(UserError, match="missing.env"):
        parse_train(["--env-file", "missing.env"])


def test_infer_reads_its_own_keys(clean_environment):
    (clean_environment / ".env").write_text("INFERENCE_DIR=photos\nMODEL=m.pth\nTHRESHOLD=0.3\n")
    args = infer_parser().parse_settings([])
    assert (args.input, args.model, args.threshold) == ("photos", "m.pth", 0.3)


def test_bad_value_in_env_file_names_the_key(clean_environment, capsys):
    (clean_environment / ".env").write_text("EPOCHS=ten\n")
    with pytest.raises(SystemExit):
        parse_train([])
    assert "EPOCHS in .env" in capsys.readouterr().err


def test_missing_required_setting_names_flag_and_key(clean_environment):
    args = parse_train([])
    with pytest.raises(UserError) as error:
        require(args, "data", "training folder")
    assert str(error.value) == "no training folder given: pass --data or set TRAINING in .env"


def test_environment_setting_for_scripts_without_a_flag(clean_environment, monkeypatch):
    (clean_environment / ".env").write_text("TRAINING=a\n")
    assert environment_setting("TRAINING") == "a"
    monkeypatch.setenv("TRAINING", "b")
    assert environment_setting("TRAINING") == "b"


def test_a_notebook_settings_cell_is_overridden_by_environment_and_env_file(clean_environment, monkeypatch):
    cell = dict(training="cell_data/", model="cell.pth", epochs=3, batch_size=8, arch="resnet18")
    args = notebook_settings(train.get_args_parser(), cell)
    assert (args.data, args.model, args.epochs, args.batch_size, args.arch) == ("cell_data/", "cell.pth", 3, 8,
                                                                              "resnet18")
    (clean_environment / ".env").write_text("EPOCHS=5\nARCH=resnet34\n")
    monkeypatch.setenv("EPOCHS", "7")
    args = notebook_settings(train.get_args_parser(), cell)
    assert (args.epochs, args.arch, args.batch_size) == (7, "resnet34", 8)  # environment > .env > cell


def test_a_renamed_key_is_named_with_its_replacement_instead_of_silently_ignored(clean_environment, capsys):
    (clean_environment / ".env").write_text("STEM_MAXPOOL=off\nEPOCHS=3\n")
    args = parse_train([])
    assert args.epochs == 3 and args.small_input == train.small_input
    assert "STEM_MAXPOOL in .env is no longer read; SMALL_INPUT replaced it" in capsys.readouterr().err


def test_missing_settings_and_folders_are_one_clear_line(tmp_path):
    result = run_main("train.py", "--model", tmp_path / "m.pth", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no training folder given: pass --data or set TRAINING in .env"
    result = run_main("train.py", "--data", tmp_path / "nowhere", "--model", "m.pth", cwd=tmp_path, check=False)
    assert f"--data {tmp_path / 'nowhere'} does not exist" in result.stderr and "Traceback" not in result.stderr
    result = run_main("infer.py", "--input", tmp_path, "--model", tmp_path / "none.pth", cwd=tmp_path,
                      check=False)
    assert result.returncode == 2 and "none.pth does not exist" in result.stderr


def test_settings_from_env_file_drive_a_whole_run(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    (tmp_path / ".env").write_text(f"TRAINING={root / 'train'}\nINFERENCE_DIR={root / 'infer'}\n"
                                   f"MODEL=models/m.pth\nTAGS=models/tags.pkl\nEPOCHS=1\nIMAGE_SIZE=32\n"
                                   "ARCH=resnet18\nWEIGHTS=none\nDEVICE=cpu\nWORKERS=0\nBATCH_SIZE=8\n")
    run_main("train.py", "--yes", cwd=tmp_path)
    assert read_tag_list(tmp_path / "models" / "tags.pkl") == load_checkpoint(tmp_path / "models" / "m.pth")["tags"]
    run_main("infer.py", cwd=tmp_path)
    assert len(list((root / "infer").glob("*.png.txt"))) == 6


def test_a_mistyped_key_in_env_file_names_the_key_it_resembles(clean_environment):
    for line, message in (("EPOCH=1", "EPOCH in .env is not a setting; did you mean EPOCHS?"),
                          ("TRAINNG=photos/", "TRAINNG in .env is not a setting; did you mean TRAINING?")):
        (clean_environment / ".env").write_text(line + "\n")
        result = run_main("train.py", cwd=clean_environment, check=False)
        assert result.returncode == 2 and result.stderr == f"error: {message} (every key is listed in .env.example)\n"


def test_other_keys_in_env_file_are_named_and_the_environment_is_left_alone(clean_environment, capsys):
    (clean_environment / ".env").write_text("HF_TOKEN=abc\nEPOCHS=3\n")
    os.environ["EPOCH"] = "1"  # not ours: the environment holds every program's variables
    assert parse_train([]).epochs == 3
    assert capsys.readouterr().err == ("warning: HF_TOKEN in .env is not a setting of these scripts and is ignored "
                                       "(every key is listed in .env.example)\n")


def test_env_example_lists_every_key():
    text = (REPOSITORY / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z_]+)=", text, re.MULTILINE))
    assert listed == set(ENVIRONMENT_KEYS.values())


@pytest.mark.parametrize("script", ["train.py", "infer.py", "prepare.py"])
def test_help_ends_with_examples_and_shows_only_real_defaults(script, tmp_path):
    result = run_main(script, "--help", cwd=tmp_path)
    assert "(default: None)" not in result.stdout and "(default: )" not in result.stdout
    examples = result.stdout.split("examples:\n")[1].strip().splitlines()
    assert 2 <= len(examples) <= 4 and all(line.strip().startswith(f"python {script}") for line in examples)


def test_old_flag_names_still_work_with_a_note(trained, tmp_path):
    root, _ = trained
    args = parse_train(["--tags", "t.json"])
    assert args.tags == "t.json"
    folder = root / "shapes" / "infer"
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--tags",
                      root / "models" / "tags.json", "--workers", "0", cwd=tmp_path)
    assert "note: --tags is now called --tag-list; the old name still works in this release" in result.stderr
    tagged = run_main("prepare.py", "tag", folder, "--tags", "extra", cwd=tmp_path)
    assert "note: --tags is now called --add" in tagged.stderr and "added extra to 6" in tagged.stdout
