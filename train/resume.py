"""What ``--resume`` may change: the checkpoint's saved config against the current one.

* Model options (the networks' shapes or the meaning of their outputs) must match: another
  ``num_layers`` or size would fail to load or train a different model under the old name, so it is
  refused with a message listing every difference.
* Data and batch options may change, with a warning, and the position in the interrupted epoch is
  translated: another ``batch_size`` continues after the same number of samples; another training
  set (other data options or sample count) restarts the interrupted epoch from its beginning, since
  a position in another dataset's order means nothing.
* Anything else (learning rate, epochs, logging...) is a legitimate change and only logged.
"""
from __future__ import annotations

import logging

from md2_ros.core.checkpoint import CheckpointError

__all__ = ["MODEL_KEYS", "check_resume_config", "resume_position"]

log = logging.getLogger("md2_ros.train")

MODEL_KEYS = ("num_layers", "pose_model_type", "pose_model_input", "height", "width", "frame_ids", "scales",
              "predictive_mask", "min_depth", "max_depth")
DATA_KEYS = ("batch_size", "seed")
IGNORED = ("data.num_workers", "progress", "device")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _changes(saved: dict, current: dict) -> dict:
    """{key: (saved, current)} for options present in both that differ."""
    a, b = _flat(saved), _flat(current)
    return {k: (a[k], b[k]) for k in a.keys() & b.keys() if a[k] != b[k] and k not in IGNORED}


def _data_changed(changes: dict) -> list[str]:
    return sorted(k for k in changes if k.startswith("data."))


def check_resume_config(saved: dict | None, cfg, path) -> None:
    """Refuse model changes (CheckpointError naming each); warn about data/batch changes; log the rest."""
    if not saved:
        log.warning("%s holds no config: cannot check that it matches this run", path)
        return
    changes = _changes(saved, cfg.to_dict())
    model = [k for k in MODEL_KEYS if k in changes]
    if model:
        diff = ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in model)
        raise CheckpointError(f"--resume {path}: the checkpoint was trained with another model ({diff}); "
                              "resume with its settings, or start a new run (weights_init) in another log_dir")
    warned = [k for k in changes if k in DATA_KEYS] + _data_changed(changes)
    for k in warned:
        log.warning("--resume: %s changed %r -> %r since the checkpoint", k, *changes[k])
    rest = sorted(set(changes) - set(warned))
    if rest:
        log.info("--resume: also changed: %s", ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}"
                                                        for k in rest))


def resume_position(state: dict, cfg, n_samples: int | None) -> int:
    """Batches already done in the interrupted epoch, in this run's batch size and data."""
    pos = int(state["pos_in_epoch"])
    saved = state.get("config") or {}
    changes = _changes(saved, cfg.to_dict()) if saved else {}
    saved_n = state.get("train_samples")
    if _data_changed(changes) or (saved_n is not None and n_samples is not None and saved_n != n_samples):
        if pos:
            log.warning("--resume: the training set changed (%s samples -> %s): epoch %d restarts from its "
                        "beginning", saved_n, n_samples, int(state["epoch"]))
        return 0
    old_bs = int(saved.get("batch_size", cfg.batch_size))
    if old_bs != cfg.batch_size and pos:
        done = pos * old_bs
        log.warning("--resume: batch_size %d -> %d: the epoch continues after sample %d", old_bs,
                    cfg.batch_size, done)
        return done // cfg.batch_size
    return pos
