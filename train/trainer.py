"""The training loop: networks + objective + Adam/StepLR, AMP, DDP, checkpoints and resume.

Resumable state (``<log_dir>/checkpoints/last.pt``, written atomically every ``save_every``
steps and at each epoch end) holds weights, optimizer, scheduler, AMP scaler, step, epoch,
the position in the epoch and the RNG states, so a resumed run continues bit-for-bit on CPU.
The depth model is exported as ``<log_dir>/depth.safetensors`` (the node loads it directly).
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from md2_ros.core.checkpoint import load_state, save_state

from .config import TrainConfig
from .distributed import DistInfo, ResumableSampler, SeededDataset, init_distributed
from .init_from import apply_init
from .networks import Networks
from .objective import compute_losses
from .resume import check_resume_config, resume_position
from .validation import setup_validation
from .weight_average import WeightAverage
from .velocity import add_velocity_term

log = logging.getLogger("md2_ros.train")


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()),
                                                      int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy(), n[2], n[3], n[4]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """``Trainer(cfg, train_set).train()``; ``step(batch)`` is one optimisation step (used by tests/bench)."""

    def __init__(self, cfg: TrainConfig, train_set=None, dist_info: DistInfo | None = None,
                 device: torch.device | None = None, val_set=None):
        self.cfg = cfg
        if dist_info is None:
            dist_info, auto_device = init_distributed(cfg.device)
            device = device or auto_device
        self.dist, self.device = dist_info, device or torch.device("cpu")
        torch.manual_seed(cfg.seed + self.dist.rank)
        np.random.seed(cfg.seed + self.dist.rank)
        random.seed(cfg.seed + self.dist.rank)
        self.nets = Networks(cfg)
        if cfg.init_from:   # weights only (not the optimizer or position: that is --resume)
            apply_init(self.nets, cfg.init_from)
        self.nets = self.nets.to(self.device)
        if cfg.channels_last:
            self.nets = self.nets.to(memory_format=torch.channels_last)
        # ema_decay > 0: validation and export use a moving average of the weights (train/weight_average.py)
        self.average = WeightAverage(self.nets, cfg.ema_decay) if cfg.ema_decay > 0 else None
        # the decoders always predict 4 scales; with a subset in cfg.scales the other heads get no gradient,
        # which DDP must be told about or it fails at the second step
        self.model = DDP(self.nets, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                         find_unused_parameters=set(cfg.scales) != {0, 1, 2, 3}) \
            if self.dist.enabled else self.nets
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=cfg.learning_rate, fused=True)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, cfg.scheduler_step_size, 0.1)
        amp_ok = self.device.type == "cuda" and cfg.amp != "none"
        if cfg.amp != "none" and not amp_ok:
            log.warning("amp=%s ignored on %s (AMP is CUDA-only here)", cfg.amp, self.device)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if amp_ok else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step_count, self.epoch, self.pos_in_epoch = 0, 0, 0
        self.skipped_nonfinite = 0
        self.log_dir = Path(cfg.log_dir)
        # data.val_fraction splits train_set; validation (rank 0) every val_every steps: train/validation.py
        self.train_set, self.validator = setup_validation(cfg, train_set, val_set, self.log_dir, self.device)
        self.writer = None
        # called as ``hook(trainer, result)`` after every optimizer step (benchmarks, validation)
        self.step_hooks: list = []

    # ------------------------------------------------------------------ one step
    def forward(self, batch: dict) -> tuple[dict, dict]:
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        with autocast:
            outputs = self.model(batch)
        losses = compute_losses(self.cfg, batch, outputs)
        if self.cfg.velocity_weight > 0:
            add_velocity_term(self.cfg, batch, outputs, losses, self.nets,
                              active=self.step_count >= self.cfg.velocity_start_step)
        return outputs, losses

    def step(self, batch: dict) -> dict:
        """One optimizer step on a collated batch; a non-finite loss skips the update (counted)."""
        self.nets.train()
        batch = to_device(batch, self.device, self.cfg.channels_last)
        # BatchNorm updates its running statistics in the forward pass: keep a copy so a skipped
        # (non-finite) step cannot leave NaN in them (they would be saved and break the exported model)
        buffers = [b.detach().clone() for b in self.nets.buffers()]
        outputs, losses = self.forward(batch)
        loss = losses["loss"]
        finite = torch.isfinite(loss.detach()).float()
        if self.dist.enabled:  # every rank must agree to skip, or DDP would deadlock
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        self.optimizer.zero_grad(set_to_none=True)
        if finite.item() < 1:
            with torch.no_grad():
                for b, saved in zip(self.nets.buffers(), buffers):
                    b.copy_(saved)
            self.skipped_nonfinite += 1
            log.warning("non-finite loss at step %d: update skipped (%d so far)", self.step_count,
                        self.skipped_nonfinite)
            return {"loss": float("nan"), "skipped": True, "outputs": outputs, "losses": losses}
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.nets.parameters(), self.cfg.grad_clip)
        self._set_lr()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update(self.nets)
        self.step_count += 1
        return {"loss": loss.item(), "skipped": False, "outputs": outputs, "losses": losses, "batch": batch}

    def _set_lr(self) -> None:
        """Per-step learning rate: linear warm-up over ``warmup_steps``, then the paper's epoch StepLR (×0.1
        every ``scheduler_step_size`` epochs) — or, for a step-bounded run with ``lr_decay_at``, instead of
        it ×0.1 once ``lr_decay_at`` × ``max_steps`` steps are done (the paper's 15-of-20-epochs drop). On a
        small dataset an epoch is a few steps: with both, the epoch schedule had cut the rate ×0.01 after 30
        epochs (510 steps on the 67 triplets of the KITTI sample) and training stopped moving (measured).
        A function of the step and epoch alone, so resume reproduces it."""
        cfg, step = self.cfg, self.step_count
        by_steps = bool(cfg.max_steps and cfg.lr_decay_at)
        factor = 1.0 if by_steps else 0.1 ** (self.epoch // cfg.scheduler_step_size)
        if cfg.warmup_steps:
            factor *= min(1.0, (step + 1) / cfg.warmup_steps)
        if by_steps and step >= cfg.lr_decay_at * cfg.max_steps:
            factor *= 0.1
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.learning_rate * factor

    @property
    def nets_for_use(self):
        """The networks validation and export use: the weight average when ``ema_decay`` > 0, else the live ones."""
        return self.average.module if self.average is not None else self.nets

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"nets": self.nets.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step_count, "epoch": self.epoch, "pos_in_epoch": self.pos_in_epoch,
                "skipped_nonfinite": self.skipped_nonfinite, "rng": rng_state(), "config": self.cfg.to_dict(),
                "validation": self.validator.state_dict() if self.validator else None,
                "average": self.average.state_dict() if self.average else None,
                "train_samples": len(self.train_set) if self.train_set is not None else None}

    def save(self, path: str | Path | None = None) -> Path | None:
        """Atomically write the resumable state (rank 0 only). Returns the path."""
        if not self.dist.is_main:
            return None
        path = Path(path) if path else self.log_dir / "checkpoints" / "last.pt"
        save_state(path, self.state_dict())
        return path

    def load(self, path: str | Path) -> None:
        """Restore everything :meth:`save` wrote (weights, optimizer, scheduler, scaler, RNG, position)."""
        state = load_state(path, map_location=self.device)
        check_resume_config(state.get("config"), self.cfg, path)  # model changes refused, data changes warned
        self.nets.load_state_dict(state["nets"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step_count, self.epoch = state["step"], state["epoch"]
        self.skipped_nonfinite = state["skipped_nonfinite"]
        self.pos_in_epoch = resume_position(state, self.cfg, len(self.train_set) if self.train_set is not None else None)
        rng = state["rng"]
        rng["torch"] = rng["torch"].cpu()
        rng["numpy"][1] = rng["numpy"][1].cpu()
        rng["cuda"] = [s.cpu() for s in rng.get("cuda", [])]
        set_rng_state(rng)
        if self.validator is not None and state.get("validation"):
            self.validator.load_state_dict(state["validation"])
        if self.average is not None:   # a checkpoint saved without an average starts one from its weights
            if state.get("average"):
                self.average.load_state_dict(state["average"])
            else:
                self.average = WeightAverage(self.nets, self.cfg.ema_decay)

    def export(self, path: str | Path | None = None) -> Path | None:
        """Write the depth model alone as a node-loadable safetensors checkpoint (rank 0)."""
        if not self.dist.is_main:
            return None
        path = Path(path) if path else self.log_dir / "depth.safetensors"
        nets = self.nets_for_use
        nets.sync_depth_scale()
        nets.depth.save(path)
        return path

    # ------------------------------------------------------------------ loop
    def _loader(self, sampler):
        from .datasets import worker_init_fn

        nw = self.cfg.data.num_workers
        # the loader draws its workers' base seed from this generator at each iterator creation; from the
        # global RNG instead, a resumed run (which creates its iterator at a different step) would shift
        # the global RNG (auto-mask noise...) and no longer match the uninterrupted run
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.dist.rank)
        return torch.utils.data.DataLoader(self.seeded, batch_size=self.cfg.batch_size, sampler=sampler,
                                           num_workers=nw, pin_memory=self.device.type == "cuda",
                                           drop_last=True, persistent_workers=nw > 0, generator=generator,
                                           worker_init_fn=worker_init_fn if nw > 0 else None,
                                           prefetch_factor=4 if nw > 0 else None)

    def _log(self, result: dict) -> None:
        if not self.dist.is_main or self.writer is None:
            return
        s = self.step_count
        if s % max(self.cfg.log_every, 1) == 0:
            self.writer.add_scalar("loss/total", result["loss"], s)
            for k, v in result["losses"].items():
                if isinstance(k, tuple):
                    self.writer.add_scalar(f"loss/scale{k[1]}", float(v.detach()), s)
            self.writer.add_scalar("lr", self.optimizer.param_groups[0]["lr"], s)
            self.writer.add_scalar("skipped_nonfinite", self.skipped_nonfinite, s)
        if self.cfg.image_every and s % self.cfg.image_every == 0:
            disp = result["outputs"][("disp", 0)][:1].detach().float()
            self.writer.add_image("disp_0", (disp[0] / disp.max().clamp_min(1e-6)).cpu(), s)
            self.writer.add_image("color_0", result["batch"][("color", 0, 0)][0].cpu(), s)
            self.writer.add_image("automask_0", result["outputs"][("automask", 0)][0].float().cpu(), s)

    def _open_writer(self) -> None:
        if not self.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dev extra; training works without it
            log.info("tensorboard not installed: no event files")
            return
        self.writer = SummaryWriter(str(self.log_dir / "tb"))

    def check_train_set(self) -> None:
        """ValueError unless the training set fills at least one batch per rank."""
        if self.train_set is None or len(self.train_set) < self.cfg.batch_size * self.dist.world_size:
            n = 0 if self.train_set is None else len(self.train_set)
            raise ValueError(f"training set has {n} samples: fewer than one batch of {self.cfg.batch_size} per rank"
                             f"{'' if self.dist.world_size == 1 else f' ({self.dist.world_size} ranks)'}; "
                             "lower batch_size or add data")

    def train(self) -> dict:
        """Run epochs until ``num_epochs`` or ``max_steps``; returns a summary dict."""
        self.check_train_set()
        self.seeded = SeededDataset(self.train_set, self.cfg.seed)
        sampler = ResumableSampler(len(self.train_set), self.cfg.seed, self.dist.rank, self.dist.world_size)
        self._open_writer()
        cfg, losses_seen = self.cfg, []
        steps_per_epoch = len(sampler) // cfg.batch_size
        pbar = None
        if self.dist.is_main and cfg.progress:
            from tqdm import tqdm
            total = cfg.max_steps or cfg.num_epochs * steps_per_epoch
            pbar = tqdm(total=total, initial=self.step_count, desc="train", dynamic_ncols=True)
        done, loader = bool(cfg.max_steps and self.step_count >= cfg.max_steps), None  # a finished run resumed
        while self.epoch < cfg.num_epochs and not done:
            sampler.set_epoch(self.epoch, self.pos_in_epoch * cfg.batch_size)
            if loader is None:
                loader = self._loader(sampler)
            for batch in loader:
                result = self.step(batch)
                self.pos_in_epoch += 1
                if not result["skipped"]:
                    losses_seen.append(result["loss"])
                    self._log(result)
                    for hook in self.step_hooks:
                        hook(self, result)
                if pbar is not None:
                    pbar.update(1)
                    pbar.set_postfix(loss=f"{result['loss']:.4f}", epoch=self.epoch)
                if self.validator is not None and self.dist.is_main and not result["skipped"]:
                    self.validator.maybe_run(self.nets_for_use, self.step_count, self.writer)
                if cfg.save_every and self.step_count % cfg.save_every == 0:
                    self.save()
                if cfg.max_steps and self.step_count >= cfg.max_steps:
                    done = True
                    break
            if not done:
                self.epoch += 1
                self.pos_in_epoch = 0
                self.scheduler.step()
                if cfg.epoch_checkpoints:
                    self.save()
                if cfg.epoch_checkpoints and self.dist.is_main:
                    self.nets_for_use.depth.save(self.log_dir / "models" / f"depth_epoch{self.epoch:02d}.safetensors")
        if self.validator is not None and self.dist.is_main:
            self.validator.maybe_run(self.nets_for_use, self.step_count, self.writer, final=True)
        self.save()
        exported = self.export()
        if pbar is not None:
            pbar.close()
        if self.writer is not None:
            self.writer.close()
        return {"steps": self.step_count, "epoch": self.epoch, "skipped_nonfinite": self.skipped_nonfinite,
                "first_loss": losses_seen[0] if losses_seen else math.nan,
                "last_loss": losses_seen[-1] if losses_seen else math.nan,
                "losses": losses_seen, "exported": str(exported) if exported else None,
                "validation": self.validator.history if self.validator else []}
