"""ONNX export: the exported model gives torch's probabilities and carries its tags."""

import json

import numpy as np
import onnxruntime  # a development requirement: a missing one is an error, not a skip
import pytest
import torch
from conftest import run_main

from common.checkpoint import load_checkpoint
from common.device import pick_device
from common.images import open_image
from common.transforms import normalize_batch
from common.inference import Tagger


@pytest.mark.slow  # exporting and loading in onnxruntime take seconds: in the slow tier
def test_onnx_export_gives_torchs_probabilities(trained, tmp_path):
    root, _ = trained
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    result = run_main("infer.py", "--model", root / "models" / "m.pth", "--export-onnx", tmp_path / "m.onnx",
                      cwd=tmp_path)
    assert f"exported {root / 'models' / 'm.pth'} to {tmp_path / 'm.onnx'}" in result.stdout
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["tags"]) == checkpoint["tags"] and json.loads(metadata["image_size"]) == 32

    images = sorted((root / "shapes" / "train").glob("*.png"))[:5]  # a batch size the export never saw
    tagger = Tagger(checkpoint, pick_device("cpu"), "fp32")
    pixels = torch.stack([tagger.dataset(images).transform(open_image(path)) for path in images])
    batch = normalize_batch(pixels, checkpoint["mean"], checkpoint["std"])  # the export's input is normalised
    (exported,) = session.run(["probabilities"], {"images": batch.numpy()})
    assert exported.shape == (5, len(checkpoint["tags"]))
    np.testing.assert_allclose(exported, tagger.probabilities(batch).numpy(), atol=1e-4)
