"""Validation during training: a held-out set evaluated every ``val_every`` steps, and the best model kept.

Where the validation samples come from (checked in this order):

* ``data.val_path``: a second dataset of the same kind (a bag, an image folder, or a KITTI root / drive
  read with every frame), never trained on;
* ``data.val_fraction``: the *tail* of each sequence (drive, bag, folder) is held out, a fraction of its
  samples ordered by time; training samples that read any frame a validation sample reads (the
  neighbours at the boundary) are dropped, so no image is in both sets. Deterministic: the same data and
  fraction always give the same split;
* KITTI with a named split: the split's ``val_files.txt``.

Each validation runs the depth and pose networks in eval mode without augmentation or gradients and
reports ``loss`` (the photometric objective without the smoothness term) and, for samples with ground
truth (``Dataset.ground_truth``: exact synthetic depth or KITTI velodyne), the Eigen metrics with
per-image median scaling (``abs_rel``, ``rmse``, ``a1`` ...). The model is judged by ``abs_rel`` when
ground truth exists, else by ``loss``; the best one so far is written to ``<log_dir>/best.safetensors``
with ``best.json`` (step and metrics) beside it.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from md2_ros.core.geometry import disp_to_depth

from .config import TrainConfig
from .objective import compute_losses

log = logging.getLogger("md2_ros.train")


# ----------------------------------------------------------------------------------- the split
def _leaves(dataset, pairs=None):
    """Yield (leaf dataset, [(index in ``dataset``, index in the leaf), ...]) through ConcatDataset and Subset."""
    pairs = [(i, i) for i in range(len(dataset))] if pairs is None else pairs
    if isinstance(dataset, torch.utils.data.Subset):
        yield from _leaves(dataset.dataset, [(g, int(dataset.indices[i])) for g, i in pairs])
    elif isinstance(dataset, torch.utils.data.ConcatDataset):
        starts = [0] + list(dataset.cumulative_sizes)
        for part, ds in enumerate(dataset.datasets):
            own = [(g, i - starts[part]) for g, i in pairs if starts[part] <= i < starts[part + 1]]
            if own:
                yield from _leaves(ds, own)
    else:
        yield dataset, pairs


def sequences(dataset) -> dict:
    """{sequence key: [(position, index, frame keys), ...] sorted by position} over every sample."""
    seqs: dict = {}
    for leaf, pairs in _leaves(dataset):
        for g, li in pairs:
            seq, pos, frames = leaf.sample_frames(li)
            key = (id(leaf), seq)
            seqs.setdefault(key, []).append((pos, g, frozenset((key, k) for k in frames)))
    return {k: sorted(v, key=lambda x: (x[0], x[1])) for k, v in seqs.items()}


def split_tail(dataset, fraction: float) -> tuple[list[int], list[int], int]:
    """Indices (train, val, dropped): the last ``round(fraction * n)`` samples of each sequence are
    validation, training samples sharing a frame with them are dropped. Raises ValueError if nothing is
    held out or nothing is left to train on."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    train, val, dropped = [], [], 0
    for samples in sequences(dataset).values():
        n_val = int(math.floor(fraction * len(samples) + 0.5))
        held = samples[len(samples) - n_val:] if n_val else []
        used = frozenset().union(*(frames for _, _, frames in held)) if held else frozenset()
        val += [i for _, i, _ in held]
        for _, i, frames in samples[:len(samples) - n_val]:
            if frames & used:
                dropped += 1
            else:
                train.append(i)
    if not val:
        raise ValueError(f"data.val_fraction={fraction} holds out no sample ({len(dataset)} samples, "
                         "the tail of each sequence is rounded to whole samples): raise it")
    if not train:
        raise ValueError(f"data.val_fraction={fraction} leaves no training sample ({len(val)} held out, "
                         f"{dropped} dropped at the boundaries): lower it")
    return sorted(train), sorted(val), dropped


def without_augmentation(dataset):
    """A shallow copy of ``dataset`` (through ConcatDataset/Subset) whose samples are not augmented."""
    if isinstance(dataset, torch.utils.data.Subset):
        return torch.utils.data.Subset(without_augmentation(dataset.dataset), dataset.indices)
    if isinstance(dataset, torch.utils.data.ConcatDataset):
        return torch.utils.data.ConcatDataset([without_augmentation(d) for d in dataset.datasets])
    view = copy.copy(dataset)
    if hasattr(view, "is_train"):
        view.is_train = False
    return view


def evenly_spaced(dataset, limit: int):
    """At most ``limit`` samples of ``dataset`` spread over all of it (0 = all)."""
    if not limit or len(dataset) <= limit:
        return dataset
    keep = np.unique(np.linspace(0, len(dataset) - 1, limit).round().astype(int))
    return torch.utils.data.Subset(dataset, keep.tolist())


def _named_split_val(cfg: TrainConfig):
    from .data import build_dataset

    path = Path(cfg.data.path).expanduser()
    if (path / "image_02").is_dir():
        raise ValueError(f"val_every: data.path {path} is a single drive (every frame is trained on), so the "
                         f"split {cfg.data.split!r} has no validation frames; set data.val_fraction")
    return build_dataset(cfg, is_train=False)


def setup_validation(cfg: TrainConfig, train_set, val_set=None, log_dir=None, device=None):
    """-> (training set, `Validator` or None). Splits ``train_set`` when ``data.val_fraction`` asks for it."""
    from .data import build_dataset

    d = cfg.data
    if val_set is None and d.val_fraction > 0 and train_set is not None:
        train_idx, val_idx, dropped = split_tail(train_set, d.val_fraction)
        log.info("validation: last %.0f%% of each sequence held out: %d samples; %d train, %d dropped at the "
                 "boundaries (they share frames with validation)", 100 * d.val_fraction, len(val_idx),
                 len(train_idx), dropped)
        val_set = torch.utils.data.Subset(without_augmentation(train_set), val_idx)
        train_set = torch.utils.data.Subset(train_set, train_idx)
    elif val_set is None and cfg.val_every and d.val_path:
        val_cfg = dataclasses.replace(cfg, data=dataclasses.replace(d, path=d.val_path, split="all"))
        val_set = build_dataset(val_cfg, is_train=False)
    elif val_set is None and cfg.val_every:
        val_set = _named_split_val(cfg)
    if val_set is None or not cfg.val_every:
        return train_set, None
    return train_set, Validator(cfg, evenly_spaced(val_set, d.val_max_samples), log_dir or cfg.log_dir,
                                device or torch.device("cpu"))


# ----------------------------------------------------------------------------------- evaluation
def _sparse(depth: np.ndarray) -> tuple:
    """GT depth kept as (shape, flat indices, values): velodyne maps are ~95 % empty."""
    flat = np.asarray(depth, dtype=np.float32).reshape(-1)
    idx = np.flatnonzero(flat > 0).astype(np.int32)
    return depth.shape, idx, flat[idx]


def _dense(sparse: tuple) -> np.ndarray:
    shape, idx, values = sparse
    out = np.zeros(int(np.prod(shape)), dtype=np.float32)
    out[idx] = values
    return out.reshape(shape)


def _ground_truth(dataset) -> list:
    """[(sparse depth, crop) or None] per sample of ``dataset`` (read once, at the first validation)."""
    out = [None] * len(dataset)
    for leaf, pairs in _leaves(dataset):
        for g, li in pairs:
            gt = leaf.ground_truth(li) if hasattr(leaf, "ground_truth") else None
            out[g] = None if gt is None else (_sparse(gt[0]), gt[1])
    return out


class Validator:
    """Evaluates the networks on ``dataset`` every ``cfg.val_every`` steps (rank 0) and keeps the best model.

    ``history`` lists ``{"step", "loss", "abs_rel", ...}`` per validation; ``best`` is
    ``{"metric", "value", "step"}``; both are part of the resumable state (`state_dict`).
    """

    def __init__(self, cfg: TrainConfig, dataset, log_dir, device: torch.device):
        if len(dataset) == 0:
            raise ValueError("validation set is empty")
        self.cfg, self.dataset, self.device = cfg, dataset, device
        self.log_dir = Path(log_dir)
        self.loss_cfg = dataclasses.replace(cfg, disparity_smoothness=0.0)  # val/loss: photometric only
        self.gt = None  # [(sparse depth, crop) or None] per sample, read at the first validation
        self.history: list[dict] = []
        self.best = {"metric": None, "value": math.inf, "step": None}

    def state_dict(self) -> dict:
        return {"history": list(self.history), "best": dict(self.best)}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.best = list(state["history"]), dict(state["best"])

    def maybe_run(self, nets, step: int, writer=None, final: bool = False) -> dict | None:
        """Validate at every ``val_every``-th step (and at the ``final`` step), once per step."""
        if self.history and self.history[-1]["step"] == step:
            return None
        if final or step % self.cfg.val_every == 0:
            return self.run(nets, step, writer)
        return None

    def run(self, nets, step: int, writer=None) -> dict:
        """Evaluate, log (TensorBoard ``val/*``) and keep ``best.safetensors`` if the model improved."""
        metrics = self.evaluate(nets)
        self._record(nets, step, metrics, writer)
        return metrics

    def _loader(self):
        nw = min(self.cfg.data.num_workers, 2)
        # its own generator: creating a loader iterator draws a seed, which must not shift the global RNG
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.cfg.batch_size, shuffle=False,
                                           num_workers=nw, drop_last=False, generator=torch.Generator())

    def evaluate(self, nets) -> dict:
        """{"loss", and with ground truth the Eigen metrics} of ``nets`` (eval mode, no grad); nothing recorded."""
        was_training = nets.training
        nets.eval()
        try:
            with torch.no_grad():
                return self._metrics(nets)
        finally:
            nets.train(was_training)

    def _metrics(self, nets) -> dict:
        from .evaluate_depth import evaluate
        from .metrics import mean_errors

        if self.gt is None:
            self.gt = _ground_truth(self.dataset)
        generator = torch.Generator(device=self.device).manual_seed(0)  # auto-mask tie-break noise
        loss_sum, seen, per_image = 0.0, 0, []
        for batch in self._loader():
            batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            outputs = nets(batch)
            n = batch[("color", 0, 0)].shape[0]
            loss_sum += compute_losses(self.loss_cfg, batch, outputs, generator)["loss"].item() * n
            gts = self.gt[seen:seen + n]
            seen += n
            if any(g is not None for g in gts):
                _, depth = disp_to_depth(outputs[("disp", 0)].float(), self.cfg.min_depth, self.cfg.max_depth)
                depth = depth[:, 0].cpu().numpy()
                for (sparse, crop), pred in [(g, p) for g, p in zip(gts, depth) if g is not None]:
                    try:
                        per_image += evaluate([_dense(sparse)], [pred], pred_type="depth", crop=crop)["per_image"]
                    except ValueError:  # no valid GT pixel in the crop: the image does not count
                        pass
        metrics = {"loss": loss_sum / seen}
        if per_image:
            metrics.update(mean_errors(per_image))
        return metrics

    def _record(self, nets, step: int, metrics: dict, writer) -> None:
        if self.best["metric"] is None:
            self.best["metric"] = "abs_rel" if "abs_rel" in metrics else "loss"
        name = self.best["metric"]
        value = metrics.get(name, math.nan)
        self.history.append({"step": step, **metrics})
        if writer is not None:
            for k, v in metrics.items():
                writer.add_scalar(f"val/{k}", v, step)
        improved = math.isfinite(value) and value < self.best["value"]
        log.info("validation at step %d: %s%s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
                 f" (best {name} so far: best.safetensors)" if improved else "")
        if improved:
            self.best.update(value=value, step=step)
            nets.depth.save(self.log_dir / "best.safetensors")
            doc = {"step": step, "metric": name, "value": value, "metrics": metrics}
            (self.log_dir / "best.json").write_text(json.dumps(doc, indent=2) + "\n")
