"""Model, criterion and optimiser from the options (SPEC section 3)."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Callable

import torch
import torch.nn as nn
import torchvision

from checkpoints import load_weights_file
from checkpoints.hub import safe_torchvision_weights
from models.asynctf import AsyncTFBase, AsyncTFCriterion
from models.flow_input import widen_first_conv
from models.vgg16flow import from_original_layout, vgg16flow
from utils.cli import Failure, InputError, UserError

log = logging.getLogger(__name__)


def _linear(opts: argparse.Namespace) -> nn.Module:
    """A bare linear layer on flattened inputs of ``inputsize`` values (with testdata1: the head alone)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(opts.inputsize, opts.nclass))


# name -> constructor(opts) for archs outside torchvision
EXTRA_ARCHS: dict = {"linear": _linear, "vgg16flow": vgg16flow}
# name -> renaming of the keys of another layout of that arch's weights files (applied before matching)
WEIGHTS_LAYOUTS: dict = {"vgg16flow": from_original_layout}
MIN_FITTING = 0.5  # a --pretrained-weights file of which fewer of its tensors fit is an error


class PretrainedWeightsError(UserError, RuntimeError):
    """torchvision's ImageNet weights could not be had (no network, a proxy, a truncated download)."""


def arch_choices() -> list[str]:
    """Every accepted ``--arch``."""
    return sorted(set(torchvision.models.list_models(module=torchvision.models)) | set(EXTRA_ARCHS))


def _torchvision_pretrained(arch: str, tag: str, trusted: bool = False) -> nn.Module:
    """torchvision's weights ``tag`` of ``arch`` (``IMAGENET1K_V1``: the original's ``pretrained=True``),
    built by torchvision from the torch hub cache (downloaded when missing), the file hash-checked and
    loaded safely (``checkpoints/hub.py``; ``trusted``: ``--trust-checkpoint``)."""
    enum = torchvision.models.get_model_weights(arch)
    tag = tag.upper()  # torchvision's tags are upper case
    if tag not in enum.__members__:
        tags = ", ".join(t for t in enum.__members__ if t != "DEFAULT")
        raise InputError(f"--pretrained {tag}: torchvision has no such weights for {arch}; available: {tags} "
                         f"(or DEFAULT, today {enum.DEFAULT.name}): pass one as --pretrained TAG")
    weights = enum[tag]
    try:
        with safe_torchvision_weights(trusted):
            return torchvision.models.get_model(arch, weights=weights)
    except (UserError, Failure):  # a file there that is wrong or unsafe: its message says what to do
        raise
    except Exception as err:  # no network, a proxy, a truncated download...
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]  # one line: the cause, not its trace
        raise PretrainedWeightsError(
            f"--pretrained {tag}: could not load torchvision's {weights.name} weights for {arch} ({why}). "
            f"Download {weights.url} and put it at {path} (or pass --pretrained-weights FILE).") from None


def _last_linear(model: nn.Module) -> str:
    """Dotted name of the network's last ``nn.Linear`` (``fc``, or the last of ``classifier``)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise InputError(f"{type(model).__name__} has no linear layer to replace with the AsyncTF head")
    return names[-1]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def load_pretrained_weights(model: nn.Module, path: str, rename: Callable[[dict], dict] | None = None,
                            trusted: bool = False) -> None:
    """Load a local state dict into the backbone; layers whose shape differs are skipped (and logged).

    ``rename`` maps another key layout of the same network onto the model's.  A file of which fewer than
    half of the tensors fit is an error (the wrong file or layout, not a checkpoint to start from).
    ``trusted`` (``--trust-checkpoint``) allows a file that a safe load refuses."""
    state = load_weights_file(path, trusted)
    if rename is not None:
        state = rename(state)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    missing = sorted(set(own) - set(usable))
    if not state or len(usable) < MIN_FITTING * len(state):
        why = [f"{k} {tuple(state[k].shape)}" + (f" (the model's is {tuple(own[k].shape)})" if k in own else
                                                  " (not in the model)") for k in skipped[:4]]
        raise InputError(f"--pretrained-weights {path}: only {len(usable)} of its {len(state)} tensors fit "
                         f"the {type(model).__name__} network; unmatched: {', '.join(why) or 'none'}; "
                         f"the network's keys look like {', '.join(list(own)[:3])}")
    model.load_state_dict(usable, strict=False)
    log.info("=> loaded %d tensors from %s (skipped %d: %s; left as initialised: %d: %s)", len(usable), path,
             len(skipped), skipped[:5], len(missing), missing[:5])


def build_network(opts: argparse.Namespace) -> nn.Module:
    """The frame network of ``opts.arch`` with the AsyncTF head in place of its last linear layer."""
    if opts.arch in EXTRA_ARCHS:
        model = EXTRA_ARCHS[opts.arch](opts)
    elif opts.arch in torchvision.models.list_models(module=torchvision.models):
        model = _torchvision_pretrained(opts.arch, opts.pretrained, opts.trust_checkpoint) if opts.pretrained else \
            torchvision.models.get_model(opts.arch, weights=None)
    else:
        raise InputError(f"unknown --arch {opts.arch!r}; choose one of: {', '.join(arch_choices())}")
    if opts.pretrained_weights:
        load_pretrained_weights(model, opts.pretrained_weights, WEIGHTS_LAYOUTS.get(opts.arch),
                                opts.trust_checkpoint)
    if opts.dataset == "charadesflow" and opts.arch not in EXTRA_ARCHS:  # after loading: average RGB weights
        widen_first_conv(model)
    name = _last_linear(model)
    dim = model.get_submodule(name).in_features
    _set_module(model, name, AsyncTFBase(dim, opts.nclass, opts.nhidden))
    return model


def create_model(opts: argparse.Namespace) -> tuple[nn.Module, AsyncTFCriterion, torch.optim.Optimizer]:
    """``(model, criterion, optimizer)`` on ``opts.device``: SGD over all parameters."""
    model = build_network(opts).to(opts.device)
    criterion = AsyncTFCriterion(opts).to(opts.device)
    optimizer = torch.optim.SGD(model.parameters(), opts.lr, momentum=opts.momentum,
                                weight_decay=opts.weight_decay)
    return model, criterion, optimizer
