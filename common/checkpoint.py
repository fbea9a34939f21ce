"""The model file, which describes itself, and the separate tag-list file.

A checkpoint is a plain dict of tensors, strings, numbers, lists and dicts, so that it loads
with torch.load(weights_only=True): loading never unpickles arbitrary objects, and therefore
never runs code hidden in a file from a stranger.
"""

import datetime
import json
import pickle
from pathlib import Path

import torch

from common.errors import UserError
from common.files import atomic_write, interrupts_deferred, load_torch_file, write_text_atomically
from common.transforms import IMAGENET_MEAN, IMAGENET_STD
from common.model import available_architectures, build_model, small_input_layout_of

CHECKPOINT_FORMAT = "multitag-trainer"
CHECKPOINT_VERSION = 1
RESUME_FORMAT = "multitag-trainer-resume"
REQUIRED_KEYS = ("arch", "tags", "thresholds", "image_size", "mean", "std", "state_dict")


def make_checkpoint(model, *, arch, tags, thresholds, image_size, mean, std, settings, metrics, epoch,
                    calibration=None):
    """Everything infer.py needs to rebuild and run the model, with nothing else to look up."""
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": arch,
        "small_input": small_input_layout_of(model),  # how a ResNet was adapted to small inputs (model.py)
        "tags": list(tags),
        "thresholds": [float(value) for value in thresholds],
        "image_size": int(image_size),
        "mean": [float(value) for value in mean],
        "std": [float(value) for value in std],
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "settings": _plain(settings),
        "metrics": _plain(metrics),
        "epoch": int(epoch),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),  # a str subclass that weights_only loading refuses
        **({"calibration": _plain(calibration)} if calibration else {}),
    }


def _plain(value):
    """Paths and numpy numbers to str/float, so that weights_only loading accepts the result."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    if hasattr(value, "item"):  # numpy and torch scalars, including np.float64 (a float subclass)
        return value.item()
    return str(value)


def save_checkpoint(checkpoint, path):
    """Write a checkpoint atomically; a Ctrl-C during the write takes effect once it is done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_deferred(), atomic_write(path, "wb") as file:
        torch.save(checkpoint, file)


def load_checkpoint(path):
    """Read and check a checkpoint; every failure is a UserError that names the file."""
    path = Path(path)
    checkpoint = _read_model_file(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a multitag-trainer checkpoint (no 'format' entry); "
                        "if it is a bare state dict, train a new model with train.py")
    return _checked(checkpoint, path)


def _read_model_file(path):
    if not path.is_file() and not path.is_dir():
        raise UserError(f"model file {path} does not exist: train one with train.py, or check MODEL / --model")
    return load_torch_file(path, "model file")


def _checked(checkpoint, path):
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise UserError(f"checkpoint {path} is incomplete: it lacks {', '.join(missing)}")
    if len(checkpoint["thresholds"]) != len(checkpoint["tags"]):
        raise UserError(f"checkpoint {path} is inconsistent: {len(checkpoint['tags'])} tags but "
                        f"{len(checkpoint['thresholds'])} thresholds")
    return checkpoint


def load_model_file(path, tags_path=None, arch=None, image_size=224):
    """A checkpoint written by train.py, or a model from the original multitag-trainer: a bare
    torchvision state dict whose tags live in a separate pickle (tags_path). The latter is
    converted on the fly; its architecture is recognised from the weights unless arch is given,
    and image_size (which it does not record) says what input side it was trained at."""
    path = Path(path)
    content = _read_model_file(path)
    if isinstance(content, dict) and content.get("format") == CHECKPOINT_FORMAT:
        return _checked(content, path)
    if isinstance(content, dict) and content.get("format") == RESUME_FORMAT:
        raise UserError(f"{path} is the state an interrupted training run keeps for --resume, not a model: use the "
                        f"model beside it ({path.name.removesuffix('.last.pth')}.pth)")
    state_dict = _bare_state_dict(content)
    if state_dict is None:
        raise UserError(f"{path} is neither a multitag-trainer checkpoint nor a bare model state dict; "
                        "point MODEL / --model at a file written by train.py")
    if not tags_path:
        raise UserError(f"{path} is a bare state dict, as the original multitag-trainer saved models, so its tags "
                        "are in a separate file: pass that tag list (.pkl, .json or .txt) with TAGS / --tag-list")
    tags = read_tag_list(tags_path)
    arch = arch or guess_architecture(state_dict, len(tags), path)
    model = build_model(arch, len(tags), weights="none")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise UserError(f"the weights in {path} do not fit a {arch} with the {len(tags)} tags of {tags_path} "
                        f"({str(error).splitlines()[0]}); check that the model and tag list belong together, "
                        "or name the architecture with --arch") from error
    return make_checkpoint(model, arch=arch, tags=tags, thresholds=[0.5] * len(tags), image_size=image_size,
                           mean=IMAGENET_MEAN, std=IMAGENET_STD, metrics={}, epoch=0,
                           settings={"converted_from": str(path), "tags_from": str(tags_path)})


def _bare_state_dict(content):
    """The name -> tensor dict in a file, with DataParallel's 'module.' prefixes removed; None if
    the file holds something else. Also accepts {'state_dict': ...} wrappers."""
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not content or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in content.items()):
        return None
    return {key.removeprefix("module."): value for key, value in content.items()}


def guess_architecture(state_dict, num_tags, path):
    """The ResNet-family architecture whose weights have exactly these names and shapes. Models are
    built on the 'meta' device, which allocates nothing, so trying them all takes a moment."""
    shapes = {name: tuple(tensor.shape) for name, tensor in state_dict.items()}
    if "fc.weight" in shapes and shapes["fc.weight"][0] != num_tags:
        raise UserError(f"{path} gives {shapes['fc.weight'][0]} tag outputs but its tag list has {num_tags} tags: "
                        "they belong to different models. Point TAGS / --tag-list at the list saved with this model.")
    family = [arch for arch in available_architectures() if arch.startswith(("resnet", "wide_resnet", "resnext"))]
    for arch in family:
        with torch.device("meta"):
            candidate = build_model(arch, num_tags)
        if {name: tuple(tensor.shape) for name, tensor in candidate.state_dict().items()} == shapes:
            return arch
    raise UserError(f"could not recognise the architecture of {path} among torchvision's ResNets: name it with "
                    "--arch (e.g. --arch efficientnet_b0)")


def save_training_state(state, path):
    """The state needed to continue an interrupted run: weights, optimizer, schedule, history."""
    save_checkpoint({"format": RESUME_FORMAT, **_plain_except_tensors(state)}, path)


def _plain_except_tensors(state):
    return {key: value if key in ("model", "optimizer", "scheduler", "scaler", "refit", "averaged") else _plain(value)
            for key, value in state.items()}


def load_training_state(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--resume needs {path}, the state an interrupted run leaves beside the model, and it "
                        "does not exist. Start a fresh run without --resume.")
    state = load_torch_file(path, "training state")
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise UserError(f"{path} is not a multitag-trainer training state; start a fresh run without --resume")
    return state


def small_input_of(checkpoint):
    """The checkpoint's small-input layout; files from before it was recorded by name have a flag."""
    if "small_input" in checkpoint:
        return checkpoint["small_input"]
    return "stem_maxpool" if checkpoint.get("stem_maxpool_removed") else None


def model_from_checkpoint(checkpoint, device):
    """Rebuild the network described by a checkpoint and load its weights, ready for inference."""
    model = build_model(checkpoint["arch"], len(checkpoint["tags"]), weights="none",
                        small_input=small_input_of(checkpoint))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise UserError(f"the checkpoint's weights do not fit a {checkpoint['arch']} with "
                        f"{len(checkpoint['tags'])} tags: {str(error).splitlines()[0]}") from error
    return model.to(device).eval()


def write_tag_list(path, tags):
    """Save the tag list: JSON for .json, a pickled list for .pkl (as the original tool wrote),
    and one tag per line for anything else."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".pkl":
        with atomic_write(path, "wb") as file:
            pickle.dump(list(tags), file, protocol=4)
    elif path.suffix.lower() == ".json":
        write_text_atomically(path, json.dumps(list(tags), ensure_ascii=False, indent=1) + "\n")
    else:
        write_text_atomically(path, "".join(f"{tag}\n" for tag in tags))


class _PlainDataUnpickler(pickle.Unpickler):
    """Refuses every class and function: a list of strings needs none, and refusing them is
    what stops a crafted pickle from running code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def read_tag_list(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"tag list {path} does not exist: check TAGS / --tag-list")
    if path.suffix.lower() == ".pkl":
        try:
            with open(path, "rb") as file:
                tags = _PlainDataUnpickler(file).load()
        except Exception as error:
            raise UserError(f"refused to load tag list {path}: {error}. A tag pickle must hold only a list "
                            "of strings; re-create it with train.py, or use a .txt tag list.") from error
    elif path.suffix.lower() == ".json":
        try:
            tags = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise UserError(f"tag list {path} is not valid JSON ({error})") from error
    else:
        tags = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not isinstance(tags, (list, tuple)) or not all(isinstance(tag, str) for tag in tags):
        raise UserError(f"tag list {path} must hold a list of strings, not {type(tags).__name__}")
    return list(tags)
