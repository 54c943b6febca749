"""An exponential moving average of the networks' weights, used for validation and export.

On small data (a robot's short bag, the 67 triplets of the KITTI sample) at batch 4, the weights after any
one step swing: one evaluation on the sample differs from the next by ±0.02–0.03 abs_rel (docs/learning.md).
The average of the last ~1/(1 − decay) steps' weights is a steadier model to export than the last step's.
``ema_decay: 0`` (the default, the paper) keeps none. Parameters and BatchNorm's running statistics are
averaged; other buffers (step counters, the metres per unit from odometry) are copied from the live nets.
"""
from __future__ import annotations

import copy

import torch

AVERAGED_BUFFERS = ("running_mean", "running_var")


class WeightAverage:
    """``avg = WeightAverage(nets, decay)``; ``avg.update(nets)`` after each optimizer step; ``avg.module``.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates (n = updates so far), so
    the average is not dominated by the untrained weights it starts from."""

    def __init__(self, module: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        for p_avg, p in zip(self.module.parameters(), module.parameters()):
            p_avg.lerp_(p, weight)
        for (name, b_avg), b in zip(self.module.named_buffers(), module.buffers()):
            if name.endswith(AVERAGED_BUFFERS) and b_avg.is_floating_point():
                b_avg.lerp_(b, weight)
            else:
                b_avg.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
