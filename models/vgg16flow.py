"""The original flow network (SPEC section 11): VGG-16 on a stack of 10 (x, y) flow pairs.

The network is torchvision's ``vgg16`` layout (``features.0.weight`` ... ``classifier.6.weight``) with the
original's differences: a 20-channel first convolution, max-pooling with ``ceil_mode=True``, classifier
dropouts 0.9 and 0.8 (the two-stream recipe's heavy regularisation) and 101 UCF101 outputs.  Before the
classifier, torchvision's ``AdaptiveAvgPool2d((7, 7))`` is kept: at the original's 224-pixel input the
feature map is 7 x 7 already and it changes nothing; at other sizes the original could not run at all.

A UCF101 flow model loads with ``--pretrained-weights`` in either layout: torchvision's, or the original's
flat ``nn.Sequential`` (convolutions at keys ``0, 2, 5, ..., 28``, its three linear layers at ``32.1``,
``35.1``, ``38.1``), renamed by ``from_original_layout``.  The AsyncTF head then replaces ``classifier.6``.
"""
from __future__ import annotations

import argparse
import logging

import torch
import torch.nn as nn
from torchvision.models.vgg import VGG, cfgs, make_layers

log = logging.getLogger(__name__)

FLOW_CHANNELS = 20   # 10 consecutive flow pairs, x and y interleaved (datasets/charadesflow.py)
UCF101_CLASSES = 101
LAST_FEATURE = 30    # the original's Sequential: 0..30 are torchvision's features.0..30 (its last max-pool)
# then 31 a view, and each linear wrapped as Sequential(view, Linear) at 32, 35, 38 (with ReLU / Dropout
# between them, as in torchvision's classifier): the original's key N.1 is classifier.(N - 32)
ORIGINAL_LINEARS = (32, 35, 38)


def vgg16flow(opts: argparse.Namespace) -> nn.Module:
    """VGG-16 with a 20-channel input, ceil-mode pooling and a 101-way classifier, randomly initialised.

    The UCF101 weights come from ``--pretrained-weights FILE`` (loaded by ``models.build_network``);
    there are no downloadable ImageNet weights for a 20-channel network, so ``--pretrained`` alone
    only warns."""
    features = make_layers(cfgs["D"], batch_norm=False)
    first = features[0]
    # replaced before VGG.__init__ so its kaiming initialisation covers the 20-channel conv too
    features[0] = nn.Conv2d(FLOW_CHANNELS, first.out_channels, first.kernel_size, first.stride, first.padding)
    for m in features:
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True  # the original's pooling: odd sizes round up (floor would lose a row)
    model = VGG(features, num_classes=UCF101_CLASSES, init_weights=True)
    model.classifier[2].p, model.classifier[5].p = 0.9, 0.8
    if getattr(opts, "pretrained", False) and not getattr(opts, "pretrained_weights", ""):
        log.warning("vgg16flow: --pretrained has no effect (no ImageNet weights for 20-channel flow input); "
                    "pass --pretrained-weights FILE with the UCF101 flow VGG-16, else it trains from scratch")
    return model


def from_original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keys of the original's flat ``nn.Sequential`` renamed to this layout (``2.weight`` ->
    ``features.2.weight``, ``35.1.bias`` -> ``classifier.3.bias``); other keys unchanged."""
    out = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if index.isdigit() and int(index) <= LAST_FEATURE:
            key = f"features.{key}"
        elif index.isdigit() and int(index) in ORIGINAL_LINEARS and rest.startswith("1."):
            key = f"classifier.{int(index) - ORIGINAL_LINEARS[0]}.{rest[2:]}"
        out[key] = value
    return out
