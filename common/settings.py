"""Settings: a command-line flag wins over an environment variable, which wins over .env,
which wins over the defaults written in the script.

Every script builds a `SettingsParser` and declares its flags with the script's own defaults.
`parse_settings()` then turns the environment and the .env file into flags placed *before*
the user's own, so argparse itself applies the precedence (a later flag overrides an earlier
one) and checks every value, whatever its source, with the same types and choices.
"""

import argparse
import difflib
import math
import os
import re
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
    "refit_epochs": "REFIT_EPOCHS",
    "ema": "EMA",
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
    "decode": "DECODE",
    "group_duplicates": "GROUP_DUPLICATES",
    "group_by": "GROUP_BY",
    "groups": "GROUPS",
}

# Keys that earlier versions read, and the ones that replaced them: a leftover one is named, not
# silently ignored.
RENAMED_KEYS = {"STEM_MAXPOOL": "SMALL_INPUT"}

DEFAULT_ENV_FILE = ".env"
ENV_LINE = re.compile(r"^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*=")  # what a .env setting line looks like

# The smallest input side accepted: below it a network sees too little to tag anything (and some
# architectures cannot run at all; train.py also checks the chosen one).
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 4096  # far beyond what the networks were built for, and gigabytes per batch


# Keys that are not settings of a script but are still ours: never reported as unknown in a .env file.
OTHER_KEYS = {"MULTITAG_DEBUG"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help with each setting's default where it has one (not "default: None" or "default: "),
    and the examples at the end kept as they are written."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == "" or default == argparse.SUPPRESS)
        if shown and "%(default)" not in help_text and action.option_strings and action.nargs != 0:
            text = repr(default) if isinstance(default, str) and default != default.strip() or "\n" in str(default) \
                else "%(default)s"
            help_text += f" (default: {text})"
        return help_text


def whole_number(minimum, maximum=None):
    """An argparse type: an integer from `minimum` (to `maximum`), with a message that says so."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def auto_or_whole_number(minimum):
    """An argparse type: 'auto' or an integer from `minimum`."""
    parse_number = whole_number(minimum)

    def parse(text):
        if text.strip().lower() == "auto":
            return "auto"
        try:
            return parse_number(text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{error}; give auto or a whole number") from None

    parse.__name__ = "auto or a whole number"
    return parse


def number(minimum=None, maximum=None, above=None, below=None):
    """An argparse type: a finite number within the given bounds (inclusive, or strict with above/below)."""
    bounds = [text for text in (minimum is not None and f"at least {minimum:g}",
                                above is not None and f"above {above:g}",
                                maximum is not None and f"at most {maximum:g}",
                                below is not None and f"below {below:g}") if text]

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not (math.isfinite(value) and (minimum is None or value >= minimum) and (above is None or value > above)
                and (maximum is None or value <= maximum) and (below is None or value < below)):
            raise argparse.ArgumentTypeError(f"must be {' and '.join(bounds)}, not {text}")
        return value

    parse.__name__ = "number"
    return parse


def backbone_lr_setting(text):
    """The --backbone-lr value: 'auto' or a share of --lr from 0 (frozen) to 1 (the same)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not auto or a number from 0 to 1 (a share of --lr)")
    return share


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are one line (not argparse's usage block), whose --help shows
    meaningful defaults, and whose flags must be spelled out."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # a flag is spelled out, so that we know which were given
        super().__init__(*args, **kwargs)

    def error(self, message):
        message = message.replace("\r", "\\r").replace("\n", "\\n")  # a value's line breaks, shown, on one line
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def note_renamed_flags(argv, renamed_flags):
    """A note for each old flag name used: it still works, under its new name."""
    for old, new in renamed_flags.items():
        if any(arg == old or arg.startswith(old + "=") for arg in argv):
            print(f"note: {old} is now called {new}; the old name still works in this release", file=sys.stderr)


class SettingsParser(CommandParser):
    """An ArgumentParser whose unset flags fall back to the environment, then to a .env file."""

    def __init__(self, *args, **kwargs):
        self._flag_by_dest = {}  # set before super().__init__, which already adds --help
        self._origin_by_flag = {}  # for error messages: which key and file a bad value came from
        self.renamed_flags = {}  # old flag -> its new name: still accepted, with a note
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
        only flags and the script's defaults count, so a user's .env cannot redirect it.

        The result's `given` maps each setting given on the command line or in the environment
        to where it came from ("--epochs", "EPOCHS in the environment"): --resume lets the saved
        run's settings win over everything else, and infer.py names the flags a checkpoint ignores."""
        argv = [str(arg) for arg in argv] if argv is not None else sys.argv[1:]
        env_file = self._early_value(argv, "--env-file") or DEFAULT_ENV_FILE
        layered_flags, given = [], {}
        if use_environment:
            file_values = read_env_file(env_file, required=env_file != DEFAULT_ENV_FILE)
            self._check_keys(file_values, env_file)
            layered_flags += self._flags_from(file_values, env_file)
            environment_flags = self._flags_from(os.environ, "the environment")
            layered_flags += environment_flags
            given |= {self._dest_of_flag[flag.split("=")[0]]: self._origin_by_flag[flag.split("=")[0]]
                      for flag in environment_flags}
        args = self.parse_args(layered_flags + argv)
        note_renamed_flags(argv, self.renamed_flags)
        given |= {action.dest: name for action in self._actions for name in action.option_strings
                  if any(arg == name or arg.startswith(name + "=") for arg in argv)}
        args.given = given
        return args

    @property
    def _dest_of_flag(self):
        return {flag: dest for dest, flag in self._flag_by_dest.items()}

    def _check_keys(self, values, source):
        """A key in a .env file that is none of ours is most likely a typo: name the key it resembles."""
        known = set(ENVIRONMENT_KEYS.values()) | set(RENAMED_KEYS) | OTHER_KEYS
        for key in values:
            if key in known:
                continue
            close = difflib.get_close_matches(key.upper(), sorted(known), n=1, cutoff=0.75)
            if close:
                raise UserError(f"{key} in {source} is not a setting; did you mean {close[0]}? (every key is listed "
                                "in .env.example)")
            print(f"warning: {key} in {source} is not a setting of these scripts and is ignored (every key is listed "
                  "in .env.example)", file=sys.stderr)

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
        """One line, naming the flag and where its value came from."""
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
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#") and not ENV_LINE.match(line):
            raise UserError(f"line {number} of {path} is not KEY=value: {line.strip()!r}. Write it as, for example, "
                            "EPOCHS=10 (every key is listed in .env.example)")
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
