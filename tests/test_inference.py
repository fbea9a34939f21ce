"""The Tagger: fast inference over images, in bf16 as in fp32."""


import torch

from common.checkpoint import load_checkpoint
from common.device import pick_device
from common.images import open_image
from common.inference import Tagger


def test_bf16_tags_agree_with_fp32_on_nearly_every_decision(trained):
    root, _ = trained
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    images = sorted((root / "shapes" / "train").glob("*.png")) + sorted((root / "shapes" / "infer").glob("*.png"))
    transform = Tagger(checkpoint, pick_device("cpu")).dataset(images).transform
    batch = torch.stack([transform(open_image(path)) for path in images])
    full = Tagger(checkpoint, pick_device("cpu"), "fp32").probabilities(batch).numpy()
    half = Tagger(checkpoint, pick_device("cpu"), "bf16").probabilities(batch).numpy()
    assert ((full > 0.1) & (full < 0.9)).sum() >= 20  # enough undecided probabilities to make the test bite
    agreement = ((full >= 0.5) == (half >= 0.5)).mean()
    assert agreement >= 0.99, f"bf16 and fp32 agree on only {agreement:.1%} of image-tag decisions"
