"""Shared pieces of multitag-trainer: everything that more than one script or notebook uses.

Each concept lives in exactly one module:

    settings    flags, environment variables and .env, in that order of precedence
    dataset     finding images, reading sidecar tag files, the PyTorch dataset
    images      opening an image file as RGB, and the train / eval transforms
    model       building a torchvision backbone with a multi-label head
    checkpoint  the self-describing model file and the tag-list file
    device      picking CUDA, then MPS, then the CPU
    metrics     mAP, F1 and confusion counts for multi-label predictions
    files       atomic writes, so that an interrupted run never leaves half a file
    demo        the generated coloured-shapes dataset behind `train.py --demo`
    errors      the one exception type whose message is shown without a traceback
"""
