"""Settings precedence: flag > environment variable > .env > the script's defaults."""

import pytest

import infer
import train
from common.errors import UserError
from common.settings import environment_setting, notebook_settings, require


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """Run in an empty folder, with none of our keys set in the environment."""
    monkeypatch.chdir(tmp_path)
    for key in ("TRAINING", "MODEL", "EPOCHS", "BATCH_SIZE", "ARCH", "INFERENCE_DIR", "THRESHOLD"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def parse_train(argv):
    return train.get_args_parser().parse_settings(argv)


def test_defaults_come_from_the_block_at_the_top_of_train_py(clean_environment):
    args = parse_train([])
    assert (args.epochs, args.batch_size, args.image_size, args.arch) == (
        train.num_epochs, train.batch_size, train.image_size, train.arch)


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
    args = infer.get_args_parser().parse_settings([])
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
