"""Settings: a command-line flag wins over an environment variable, which wins over .env,
which wins over the defaults written in the script.

Every script builds a `SettingsParser` and declares its flags with the script's own defaults.
`parse_settings()` then turns the environment and the .env file into flags placed *before*
the user's own, so argparse itself applies the precedence (a later flag overrides an earlier
one) and checks every value, whatever its source, with the same types and choices.
"""

import argparse
import os
import sys
from pathlib import Path

from dotenv import dotenv_values

from common.errors import UserError

# argparse destination -> the key read from the environment and from .env
ENVIRONMENT_KEYS = {
    "data": "TRAINING",
    "input": "INFERENCE_DIR",
    "model": "MODEL",
    "tags": "TAGS",
    "whitelist": "WHITELIST",
    "blacklist": "BLACKLIST",
    "arch": "ARCH",
    "weights": "WEIGHTS",
    "epochs": "EPOCHS",
    "batch_size": "BATCH_SIZE",
    "image_size": "IMAGE_SIZE",
    "device": "DEVICE",
    "lr": "LEARNING_RATE",
    "val_fraction": "VAL_FRACTION",
    "seed": "SEED",
    "workers": "WORKERS",
    "threshold": "THRESHOLD",
    "loss": "LOSS",
    "precision": "PRECISION",
    "patience": "PATIENCE",
    "augment": "AUGMENT",
    "lr_scaling": "LR_SCALING",
    "index_cache": "INDEX_CACHE",
    "small_input": "SMALL_INPUT",
    "cache_mb": "CACHE_MB",
    "backbone_lr": "BACKBONE_LR",
}

# Keys that earlier versions read, and the ones that replaced them: a leftover one is named, not
# silently ignored.
RENAMED_KEYS = {"STEM_MAXPOOL": "SMALL_INPUT"}

DEFAULT_ENV_FILE = ".env"


class SettingsParser(argparse.ArgumentParser):
    """An ArgumentParser whose unset flags fall back to the environment, then to a .env file."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        self._flag_by_dest = {}  # set before super().__init__, which already adds --help
        self._origin_by_flag = {}  # for error messages: which key and file a bad value came from
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--env-file",
            default=DEFAULT_ENV_FILE,
            help="file of KEY=value settings; a missing .env in the working folder is fine",
        )
        self.add_argument("--debug", action="store_true", help="show full tracebacks")

    def add_argument(self, *names, **kwargs):
        action = super().add_argument(*names, **kwargs)
        long_flags = [name for name in action.option_strings if name.startswith("--")]
        if long_flags:  # the first flag declared for a setting takes its value (--augment, not --no-augment)
            self._flag_by_dest.setdefault(action.dest, long_flags[0])
        return action

    def parse_settings(self, argv=None, use_environment=True):
        """Parse argv after the environment and .env. With use_environment=False (the demo),
        only flags and the script's defaults count, so a user's .env cannot redirect it."""
        argv = list(argv) if argv is not None else sys.argv[1:]
        env_file = self._early_value(argv, "--env-file") or DEFAULT_ENV_FILE
        layered_flags = []
        if use_environment:
            sources = [
                (f"{env_file}", read_env_file(env_file, required=env_file != DEFAULT_ENV_FILE)),
                ("the environment", os.environ),
            ]
            for source, values in sources:
                layered_flags += self._flags_from(values, source)
        return self.parse_args(layered_flags + argv)

    def _flags_from(self, values, source):
        for old_key, new_key in RENAMED_KEYS.items():
            if (values.get(old_key) or "").strip():
                print(f"warning: {old_key} in {source} is no longer read; {new_key} replaced it (see "
                      ".env.example)", file=sys.stderr)
        flags = []
        for dest, key in ENVIRONMENT_KEYS.items():
            value = (values.get(key) or "").strip()
            if dest in self._flag_by_dest and value:
                flag = self._flag_by_dest[dest]
                flags.append(f"{flag}={value}")  # '=' keeps values such as '-1' from looking like flags
                self._origin_by_flag[flag] = f"{key} in {source}"
        return flags

    def _early_value(self, argv, flag):
        """The value of one flag, read before the full parse (needed to find the .env file)."""
        peek = argparse.ArgumentParser(add_help=False)
        peek.add_argument(flag)
        known, _ = peek.parse_known_args(argv)
        return getattr(known, flag.lstrip("-").replace("-", "_"))

    def error(self, message):
        origins = [f"{flag} was set by {origin}" for flag, origin in self._origin_by_flag.items() if flag in message]
        super().error("; ".join([message, *origins]))


def notebook_settings(parser, cell_values):
    """A notebook's settings: the values of its settings cell (named like the keys, in lower case:
    training, model, epochs, ...), each overridden by an environment variable or .env key of the
    same name in upper case, exactly as the scripts' own defaults are."""
    dest_of_key = {key.lower(): dest for dest, key in ENVIRONMENT_KEYS.items()}
    parser.set_defaults(**{dest_of_key.get(name, name): value for name, value in cell_values.items()})
    return parser.parse_settings([])


def read_env_file(path, required=False):
    """Return the KEY=value pairs of a .env file, or {} if it does not exist and is not required."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise UserError(f"settings file {path} does not exist: check the --env-file path")
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def require(args, dest, description):
    """Fail with one line naming the setting, its flag and its .env key when it is missing."""
    if getattr(args, dest, None) in (None, ""):
        flag = "--" + dest.replace("_", "-")
        key = ENVIRONMENT_KEYS.get(dest)
        where = f" or set {key} in .env" if key else ""
        raise UserError(f"no {description} given: pass {flag}{where}")
    return getattr(args, dest)


def environment_setting(key, env_file=DEFAULT_ENV_FILE):
    """One setting from the environment, else from .env, else None (for scripts without flags for it)."""
    value = os.environ.get(key) or read_env_file(env_file, required=env_file != DEFAULT_ENV_FILE).get(key)
    return value.strip() if value and value.strip() else None
