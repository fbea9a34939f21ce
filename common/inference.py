"""Running a trained tagger over images as fast as the machine allows, shared by infer.py, its
--evaluate mode, the notebooks and the benchmarks."""

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from common.checkpoint import model_from_checkpoint, read_tag_list
from common.dataset import ImageTagDataset, collate_readable
from common.distributed import gather_rows
from common.errors import UserError
from common.folder_scan import multi_hot
from common.transforms import decode_transform, normalize_batch
from common.jpeg_decode import EncodedJpegs, decode_on_device
from common.metrics import evaluate, tag_report
from common.model import classifier_head_name, fold_batchnorm, set_submodule
from common.precision import autocast
from common.progress import Counter
from common.tagfiles import read_tag_file


class Tagger:
    """A checkpoint's model, ready for inference on one device at one precision.

    Each BatchNorm is folded into the convolution before it (one pass over memory instead of
    two); the weights and each batch are put in channels-last order, which oneDNN (CPU) and
    cuDNN (GPU) convolutions run faster; autocast runs the backbone in bf16 or fp16 when the
    precision asks for it. The last layer always runs in fp32: bf16 logits carry only about
    three significant digits, and the resulting ties cost ranking quality (mAP).
    """

    def __init__(self, checkpoint, device, precision="fp32", compile_model=False, model=None, decode="cpu"):
        """model: an in-memory network to use instead of the checkpoint's weights (a notebook's
        freshly trained one); it is not modified. decode: where JPEGs are decoded, "cpu" (by the
        loader's workers) or "gpu" (on the device, see common/jpeg_decode.py)."""
        self.checkpoint, self.device, self.precision, self.decode = checkpoint, device, precision, decode
        self.tags = checkpoint["tags"]
        model = model_from_checkpoint(checkpoint, device) if model is None else copy.deepcopy(model).to(device)
        head_name = classifier_head_name(model)
        self.head = model.get_submodule(head_name).float().eval()
        set_submodule(model, head_name, nn.Identity())
        backbone = fold_batchnorm(model.eval()).to(memory_format=torch.channels_last)
        self.backbone = torch.compile(backbone) if compile_model else backbone

    def dataset(self, images):
        """The images, decoded (JPEGs at reduced size) and resized to the model's input in workers,
        as uint8 pixels (see probabilities)."""
        size = self.checkpoint["image_size"]
        if self.decode == "gpu":
            return EncodedJpegs(images, size)
        return ImageTagDataset(images, decode_transform(size), decode_size=size)

    @torch.inference_mode()
    def probabilities(self, images):
        """Tag probabilities for a batch of images (uint8 pixels from dataset(), normalised here on the
        device, or already normalised floats), as a CPU float tensor."""
        images = normalize_batch(images.to(self.device, non_blocking=True), self.checkpoint["mean"],
                                 self.checkpoint["std"]).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            features = self.backbone(images)
        return torch.sigmoid(self.head(features.float())).cpu()

    def probabilities_of_files(self, paths):
        """Probabilities for a few image files, decoded here, one array per file (None for an
        unreadable one): for showing predictions in a notebook."""
        dataset = self.dataset(paths)
        samples = [dataset[position] for position in range(len(dataset))]
        readable = [sample[0] for sample in samples if sample[3] is None]
        rows = iter(self.probabilities(torch.stack(readable)).numpy()) if readable else iter(())
        return [next(rows) if sample[3] is None else None for sample in samples]

    def run(self, images, batch_size, workers, unreadable, description="tagging"):
        """Yield (positions, probabilities) batch by batch over a list of image paths, with a
        progress bar in images per second; unreadable images are reported and left out."""
        dataset = self.dataset(images)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False,
                            collate_fn=collate_readable, pin_memory=self.device.type == "cuda",
                            persistent_workers=False)
        progress = Counter(len(dataset), description, "image")
        try:
            for batch in loader:
                batch = decode_on_device(batch, dataset, self.device)
                unreadable.add(dataset, batch.unreadable)
                if batch.images is not None:
                    yield batch.indices.tolist(), self.probabilities(batch.images).numpy()
                progress.update(len(batch.indices) + len(batch.unreadable))
        finally:
            progress.close()


def make_tag_chooser(tags, thresholds, allowed, blocked, top_k):
    """A function from one image's probabilities to its tags: above threshold, allowed, most probable first."""
    usable = np.array([(allowed is None or tag in allowed) and not (blocked and tag in blocked) for tag in tags])

    def choose(probabilities):
        order = np.argsort(-probabilities, kind="stable")
        chosen = [i for i in order if usable[i] and probabilities[i] >= thresholds[i]]
        return chosen[:top_k] if top_k else chosen

    choose.usable, choose.thresholds = usable, thresholds  # for closest_call
    return choose


def closest_call(probabilities, thresholds, usable):
    """(tag position, its distance from its threshold) of the usable tag whose decision was the
    closest call for this image: where a person reviewing the tags should look first."""
    distance = np.where(usable, np.abs(probabilities - thresholds), np.inf)
    closest = int(np.argmin(distance))
    return closest, float(distance[closest])


def evaluate_tagger(tagger, images, truth, thresholds, batch_size, workers, unreadable):
    """Score a tagger on images whose true tags are known: (overall scores, per-tag report rows),
    or (None, None) when no image could be read. Tags unknown to the model are not scored. Under
    torchrun each process passes its share of the images and all get the scores over every share."""
    all_targets = multi_hot(truth, tagger.tags)
    targets, probabilities = [], []
    for positions, rows in tagger.run(images, batch_size, workers, unreadable, "evaluating"):
        targets.append(all_targets[positions])
        probabilities.append(rows)
    targets = gather_rows(np.concatenate(targets) if targets else None)
    probabilities = gather_rows(np.concatenate(probabilities) if probabilities else None)
    if targets is None:
        return None, None
    scores = evaluate(targets, probabilities, thresholds)
    scores["images"] = len(targets)
    scores["precision"] = scores["tp"] / max(scores["tp"] + scores["fp"], 1)
    scores["recall"] = scores["tp"] / max(scores["tp"] + scores["fn"], 1)
    return scores, tag_report(targets, probabilities, thresholds, tagger.tags)


def read_tag_filter(path_setting, known_tags, what, default_path=None):
    """The set of tags in a whitelist or blacklist file, or None when there is no such file."""
    path = Path(path_setting or default_path or "")
    if not path_setting and not (default_path and path.is_file()):
        return None
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist: fix --{what} / {what.upper()}, or remove the setting")
    listed = set(read_tag_file(path))
    unknown = sorted(listed - set(known_tags))
    if unknown:
        print(f"warning: {len(unknown)} tag(s) in {what} {path} are unknown to the model: "
              f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
    print(f"{what}: {len(listed & set(known_tags))} of the model's {len(known_tags)} tags, from {path}")
    return listed


def check_tag_list(tags_setting, checkpoint):
    """A checkpoint carries its tags; a separate TAGS file must agree with them."""
    tags = checkpoint["tags"]
    if not tags_setting or "converted_from" in checkpoint["settings"]:
        return
    path = Path(tags_setting)
    if not path.is_file():
        print(f"note: tag list {path} not found; using the {len(tags)} tags stored in the model")
        return
    listed = read_tag_list(path)
    if len(listed) != len(tags):
        raise UserError(f"tag list {path} has {len(listed)} tags but the model was trained on {len(tags)}: they "
                        "belong to different models. Point TAGS / --tag-list at the list saved with this model, or "
                        "leave it unset.")
    if listed != tags:
        print(f"warning: tag list {path} differs from the model's own list; using the model's")
