"""The original flow network (SPEC section 11): VGG-16 on a stack of 10 (x, y) flow pairs.

Same layout and state-dict keys as torchvision's ``vgg16`` (``features.0.weight`` ... ``classifier.6.weight``)
except that the first convolution takes 20 channels, the classifier dropouts are 0.9 and 0.8 (the
two-stream recipe's heavy regularisation) and the output is the 101 UCF101 classes, so a UCF101 flow
model saved in that layout loads with ``--pretrained-weights`` before the AsyncTF head replaces
``classifier.6``.
"""
from __future__ import annotations

import argparse
import logging

import torch.nn as nn
from torchvision.models.vgg import VGG, cfgs, make_layers

log = logging.getLogger(__name__)

FLOW_CHANNELS = 20   # 10 consecutive flow pairs, x and y interleaved (datasets/charadesflow.py)
UCF101_CLASSES = 101


def vgg16flow(opts: argparse.Namespace) -> nn.Module:
    """VGG-16 with a 20-channel input and a 101-way classifier, randomly initialised.

    The UCF101 weights come from ``--pretrained-weights FILE`` (loaded by ``models.build_network``);
    there are no downloadable ImageNet weights for a 20-channel network, so ``--pretrained`` alone
    only warns."""
    features = make_layers(cfgs["D"], batch_norm=False)
    first = features[0]
    # replaced before VGG.__init__ so its kaiming initialisation covers the 20-channel conv too
    features[0] = nn.Conv2d(FLOW_CHANNELS, first.out_channels, first.kernel_size, first.stride, first.padding)
    model = VGG(features, num_classes=UCF101_CLASSES, init_weights=True)
    model.classifier[2].p, model.classifier[5].p = 0.9, 0.8
    if getattr(opts, "pretrained", False) and not getattr(opts, "pretrained_weights", ""):
        log.warning("vgg16flow: --pretrained has no effect (no ImageNet weights for 20-channel flow input); "
                    "pass --pretrained-weights FILE with the UCF101 flow VGG-16, else it trains from scratch")
    return model
