"""Exporting a checkpoint to ONNX, for onnxruntime, OpenCV, browsers and other non-PyTorch runtimes."""

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from common.checkpoint import make_checkpoint, model_from_checkpoint, save_checkpoint
from common.device import pick_device
from common.errors import UserError
from common.files import atomic_write, check_output_file

ONNX_OPSET = 17


class ProbabilityModel(nn.Module):
    """The tagger with its sigmoid, so the exported graph returns probabilities; since train.py folds
    the calibrated thresholds into the last layer, 0.5 is every tag's decision in the export too."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return torch.sigmoid(self.model(images))


def export_onnx(checkpoint, path):
    """Write the checkpoint's model as ONNX with a dynamic batch size. The input 'images' is a
    float32 batch (N, 3, size, size), normalised with the stored mean and std; the output
    'probabilities' is (N, tags). The tags, thresholds and preprocessing go in the metadata."""
    try:
        import onnx  # noqa: F401  (optional: only exporting needs it)
    except ImportError as error:
        raise UserError("--export-onnx needs the onnx package: pip install onnx (and onnxruntime to run the "
                        "result), or pip install -r requirements-dev.txt") from error
    model = ProbabilityModel(model_from_checkpoint(checkpoint, torch.device("cpu"))).eval()
    size = checkpoint["image_size"]
    example = torch.zeros(1, 3, size, size)
    with atomic_write(path, "wb") as file, warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of one that needs onnxscript;
        # it is still the one that works with nothing more than the onnx package installed.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), file, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images"], output_names=["probabilities"],
                          dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}})
    add_metadata(path, {"tags": checkpoint["tags"], "thresholds": checkpoint["thresholds"], "image_size": size,
                        "mean": checkpoint["mean"], "std": checkpoint["std"], "arch": checkpoint["arch"]})
    return Path(path)


def add_metadata(path, entries):
    """Store each entry as JSON text in the model's metadata_props, where runtimes can read it."""
    import onnx

    model = onnx.load(str(path))
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=json.dumps(value, ensure_ascii=False))
    with atomic_write(path, "wb") as file:
        file.write(model.SerializeToString())


def convert_or_export(checkpoint, args):
    """--save-as and --export-onnx: write the model in another form instead of tagging."""
    if args.save_as:
        if Path(args.save_as).exists():
            raise UserError(f"{args.save_as} already exists; remove it or choose another --save-as path")
        model = model_from_checkpoint(checkpoint, pick_device("cpu"))
        fields = {key: checkpoint[key] for key in ("arch", "tags", "thresholds", "image_size", "mean", "std",
                                                   "settings", "metrics", "epoch")}
        save_checkpoint(make_checkpoint(model, **fields), args.save_as)
        print(f"saved {args.model} as a multitag-trainer checkpoint ({checkpoint['arch']}, "
              f"{len(checkpoint['tags'])} tags, {checkpoint['image_size']} px) to {args.save_as}")
    if args.export_onnx:
        check_output_file(args.export_onnx, "ONNX file")
        export_onnx(checkpoint, args.export_onnx)
        print(f"exported {args.model} to {args.export_onnx}: input 'images' (N, 3, {checkpoint['image_size']}, "
              f"{checkpoint['image_size']}) normalised, output 'probabilities' (N, {len(checkpoint['tags'])}); "
              "0.5 is each tag's decision; tags and preprocessing are in the metadata")
