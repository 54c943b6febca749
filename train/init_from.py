"""``init_from``: start training from the weights of an earlier run or of a published depth model.

Unlike ``--resume`` (which continues a run: optimizer, schedule, position), this only copies weights
into freshly built networks, so a robot user can adapt a model to their own bags with a new schedule,
new data or other loss options. Accepted sources:

* a training checkpoint (``checkpoints/last.pt`` or an epoch file): depth and pose networks;
* a depth model (``depth.safetensors`` from ``export``/training, or an official Monodepth2 folder):
  the depth network only; the pose net keeps its initialisation.

The networks' shapes must match (same ``num_layers``, pose variant…); the input size may differ,
since the networks are fully convolutional. Anything that does not fit is refused with a message
naming the file and the tensors.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from md2_ros.core.checkpoint import CheckpointError, load_state
from md2_ros.core.model import load_model

__all__ = ["load_init_weights", "apply_init"]

log = logging.getLogger("md2_ros.train")


def load_init_weights(path) -> dict:
    """The ``Networks``-keyed tensors a source provides (see module doc); CheckpointError naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"init_from: no such file or folder {path}")
    if path.is_dir() or path.suffix == ".safetensors":
        return {f"depth.{k}": v for k, v in load_model(path).state_dict().items()}
    state = load_state(path)
    if not isinstance(state, dict) or not isinstance(state.get("nets"), dict):
        raise CheckpointError(f"init_from: {path} is neither a training checkpoint (no 'nets') "
                              "nor a depth model (.safetensors or an official folder)")
    return state["nets"]


def apply_init(nets: nn.Module, path) -> None:
    """Copy the source's weights into ``nets`` (shapes must match); log what was left at its initialisation."""
    source = load_init_weights(path)
    own = nets.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in source.items()
                  if k in own and v.shape != own[k].shape]
    for net in ("depth", "pose"):   # a network is copied whole or (pose only) not at all
        given = {k for k in source if k.startswith(net + ".")}
        if given or net == "depth":
            mismatched += [f"{k} missing" for k in own if k.startswith(net + ".") and k not in given]
    if mismatched:
        raise CheckpointError(f"init_from: {path} holds networks of another shape ({len(mismatched)} tensors, "
                              f"first: {', '.join(mismatched[:3])}); use the same num_layers and pose settings")
    used = {k: v for k, v in source.items() if k in own}
    with torch.no_grad():
        nets.load_state_dict(used, strict=False)
    kept = sorted({k.split(".")[0] for k in own if k not in used})
    ignored = sorted(k for k in source if k not in own)
    log.info("init_from %s: %d tensors copied%s%s", path, len(used),
             f"; left at initialisation: {', '.join(kept)}" if kept else "",
             f"; ignored (not in this model): {', '.join(ignored[:5])}" if ignored else "")
