"""The values each setting may take, and the defaults more than one script shows. Imports nothing,
so that every parser, --help and settings check answers before torch is loaded; the modules that
act on a setting import its choices from here."""

DEFAULT_ARCH = "resnet50"
WEIGHT_CHOICES = "imagenet | none | PATH"
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
DECODE_CHOICES = ("auto", "cpu", "gpu")  # where JPEGs that are not kept in memory are decoded
LOSS_CHOICES = ("bce", "asl")
AUGMENT_CHOICES = ("on", "flip", "off")  # crops, flips and colour | mirroring alone | nothing
SMALL_INPUT_CHOICES = ("auto", "on", "last", "off")
GROUP_DUPLICATES_CHOICES = ("on", "off")
LR_SCALING_CHOICES = ("sqrt", "linear", "none")  # how --lr grows with the number of torchrun processes
RANKERS = ("context", "cleanlab", "confidence")  # how the audit ranks its suspects (common/suspects.py)
