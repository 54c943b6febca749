"""One typed training config: dataclasses loaded from YAML, overridden by ``key=value`` arguments.

Nested fields use dots: ``data.path=/data/kitti``, ``batch_size=6``, ``frame_ids=[0,-1,1,s]``.
Values are parsed as YAML scalars/lists, then checked against the field types.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class DataConfig:
    kind: str = "kitti"            # kitti | rosbag | folder
    path: str = ""                 # KITTI root, bag file/folder, or image folder
    split: str = "eigen_zhou"      # kitti: split name (train/datasets/splits) or folder of split files; "all" = every frame
    image_ext: str = "auto"        # kitti: png | jpg | auto
    image_topic: str = ""          # rosbag: Image or CompressedImage topic ("" = the bag's only image topic)
    camera_info_topic: str = ""                     # rosbag: default <image ns>/camera_info
    right_image_topic: str = ""                     # rosbag stereo (optional)
    right_camera_info_topic: str = ""
    rectified: bool = False          # rosbag: the images are already rectified (image_rect): use P, ignore D
    undistort: bool = False          # rosbag: rectify each image with K, D, R -> P (like image_proc)
    stride: int = 1                # rosbag/folder: messages between frame ids (2 = frames t-2, t, t+2 for a slow camera)
    max_gap: float = 0.0           # rosbag: max seconds between consecutive frames (0 = 2.5 × median period)
    static_threshold: float = 0.005  # rosbag: drop triplets whose mean |Δ| (0..1 intensity) is below this; 0 keeps all
    target_motion: float = 0.0     # rosbag: > 0 moves each source out (up to max_stride) until its mean |Δ| reaches this
    max_stride: int = 8            # rosbag: with target_motion, the farthest a source of frame id ±1 may be
    intrinsics: str = ""           # folder: YAML with fx, fy, cx, cy (pixels) and width, height
    odometry_topic: str = ""       # rosbag: Odometry/TwistStamped topic for velocity supervision ("" = the only one)
    poses_file: str = ""           # kitti layout: poses file (KITTI odometry format, line = frame) or "auto" (<drive>/poses.txt)
    odometry_max_gap: float = 0.5  # seconds: a pair is supervised only where odometry samples are at most this far apart
    val_fraction: float = 0.0      # hold out this fraction of each sequence's samples (its tail) for validation
    val_path: str = ""             # a second dataset of the same kind for validation (KITTI: every frame under it)
    val_max_samples: int = 0       # validate on at most this many samples, evenly spaced (0 = all)
    num_workers: int = 4           # DataLoader workers per process (= per GPU)


@dataclass
class TrainConfig:
    # model
    num_layers: int = 18
    weights_init: str = "none"     # path to a torchvision-layout ResNet state_dict, or "none" (from scratch)
    init_from: str = ""            # start from an earlier run's checkpoint or a depth model (train/init_from.py)
    pose_model_type: str = "separate_resnet"  # separate_resnet | shared | posecnn
    pose_model_input: str = "pairs"           # pairs | all
    pose_input_scale: int = 0      # pose net input: 0 = full training size, 1 = half (4x cheaper), 2 = quarter
    # geometry / size
    height: int = 192
    width: int = 640
    frame_ids: list = field(default_factory=lambda: [0, -1, 1])
    scales: list = field(default_factory=lambda: [0, 1, 2, 3])
    min_depth: float = 0.1
    max_depth: float = 100.0
    # loss
    disparity_smoothness: float = 1e-3
    avg_reprojection: bool = False
    disable_automasking: bool = False
    automask_margin: float = 0.0   # keep a pixel only where warped error < (1 − margin)·identity error; 0 = paper
    ground_bound_weight: float = 0.0     # hinge on depth beyond the level ground along rays below the horizon; 0 = paper
    ground_bound_tolerance: float = 0.1  # depth may exceed that ground point by this fraction before it costs
    predictive_mask: bool = False
    no_ssim: bool = False
    v1_multiscale: bool = False
    # warp with each image's depth divided by its mean (monocular only): the loss then cannot move the
    # global depth scale, so it cannot drift into the sigmoid's saturated far end (all depth = max_depth,
    # zero gradient) — the collapse seen on small data; the pose net carries the scale instead
    depth_normalization: bool = False
    velocity_weight: float = 0.0   # > 0: |‖t_pred‖ − ‖v‖Δt| on the pose net (needs odometry; the model becomes metric)
    # the velocity term joins the loss at this optimizer step (the metres per unit is tracked from step 0):
    # under Adam any weight of it dominates the pose net's translation, so from step 0 it pins the translations
    # at their untrained length and the depth at the sigmoid's near end; later, at the scale the photometric
    # loss has found (docs/metric.md)
    velocity_start_step: int = 0
    # optimisation
    batch_size: int = 12
    learning_rate: float = 1e-4
    scheduler_step_size: int = 15
    num_epochs: int = 20
    max_steps: int = 0             # stop after this many optimizer steps (0 = run all epochs)
    warmup_steps: int = 0          # linear learning-rate warm-up over this many steps (0 = none)
    lr_decay_at: float = 0.0       # with max_steps: LR ×0.1 after this fraction of the steps (0 = off; paper 0.75)
    grad_clip: float = 0.0         # max grad norm (0 = off)
    ema_decay: float = 0.0         # > 0: validate and export an exponential moving average of the weights (0 = paper)
    amp: str = "none"              # none | bf16 | fp16 (CUDA only; fp16 uses a GradScaler)
    channels_last: bool = False
    device: str = "auto"           # auto | cpu | cuda | cuda:N (torchrun sets cuda:LOCAL_RANK)
    seed: int = 0
    # output
    log_dir: str = "runs/md2"
    log_every: int = 50            # steps between TensorBoard scalars
    image_every: int = 500         # steps between TensorBoard depth images
    save_every: int = 1000         # steps between resumable checkpoints (0 = none by step)
    val_every: int = 0             # steps between validations (0 = off); see docs/training.md
    epoch_checkpoints: bool = True  # also save the resumable state + a depth model at each epoch end
    progress: bool = True          # tqdm progress bar (rank 0)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        self.validate()

    @property
    def use_stereo(self) -> bool:
        return "s" in self.frame_ids

    @property
    def temporal_ids(self) -> list:
        return [f for f in self.frame_ids[1:] if f != "s"]

    def validate(self) -> None:
        def bad(msg):
            raise ValueError(f"config: {msg}")
        if self.num_layers not in (18, 34, 50):
            bad(f"num_layers must be 18, 34 or 50, got {self.num_layers}")
        if self.height % 32 or self.width % 32 or self.height < 64 or self.width < 64:
            # >= 64: the 1/32-scale feature map must be >= 2 pixels for the decoder's reflection padding
            bad(f"height/width must be multiples of 32 and at least 64, got {self.width}×{self.height}")
        def frame_id(f):
            if f == "s" or (isinstance(f, int) and not isinstance(f, bool)):
                return f
            if isinstance(f, str) and f.lstrip("-").isdigit():
                return int(f)
            bad(f"frame_ids must be integers or 's', got {f!r} in {self.frame_ids}")
        fids = [frame_id(f) for f in self.frame_ids]
        if not fids or fids[0] != 0 or len(set(fids)) != len(fids) or len(fids) < 2:
            bad(f"frame_ids must start with 0 and list at least one source, got {self.frame_ids}")
        self.frame_ids = fids
        if not self.scales or any(s not in (0, 1, 2, 3) for s in self.scales):
            bad(f"scales must be a subset of 0..3, got {self.scales}")
        if self.pose_model_type not in ("separate_resnet", "shared", "posecnn"):
            bad(f"pose_model_type must be separate_resnet, shared or posecnn, got {self.pose_model_type}")
        if self.pose_input_scale not in (0, 1, 2):
            bad(f"pose_input_scale must be 0, 1 or 2, got {self.pose_input_scale}")
        if self.pose_model_input not in ("pairs", "all"):
            bad(f"pose_model_input must be pairs or all, got {self.pose_model_input}")
        if self.amp not in ("none", "bf16", "fp16"):
            bad(f"amp must be none, bf16 or fp16, got {self.amp}")
        if self.data.kind not in ("kitti", "rosbag", "folder"):
            bad(f"data.kind must be kitti, rosbag or folder, got {self.data.kind}")
        if self.batch_size < 1 or self.learning_rate <= 0 or self.num_epochs < 1:
            bad("batch_size, learning_rate and num_epochs must be positive")
        for key, value in [(k, getattr(self, k)) for k in ("max_steps", "grad_clip", "log_every", "image_every",
                                                            "save_every", "val_every")] + \
                [("data.num_workers", self.data.num_workers), ("data.val_max_samples", self.data.val_max_samples)]:
            if value < 0:
                bad(f"{key} must be >= 0, got {value}")
        if not 0.0 <= self.lr_decay_at < 1.0:
            bad(f"lr_decay_at must be in [0, 1), got {self.lr_decay_at}")
        if not 0.0 <= self.ema_decay < 1.0:
            bad(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if not 0.0 <= self.automask_margin < 1.0:
            bad(f"automask_margin must be in [0, 1), got {self.automask_margin}")
        if self.warmup_steps < 0:
            bad(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.scheduler_step_size < 1:
            bad(f"scheduler_step_size must be >= 1 (epochs), got {self.scheduler_step_size}")
        if self.velocity_weight < 0 or self.data.odometry_max_gap <= 0:
            bad(f"velocity_weight must be >= 0 and data.odometry_max_gap > 0, got {self.velocity_weight}, "
                f"{self.data.odometry_max_gap}")
        if self.velocity_start_step < 0:
            bad(f"velocity_start_step must be >= 0, got {self.velocity_start_step}")
        if self.velocity_weight > 0 and not self.temporal_ids:
            bad("velocity_weight > 0 needs temporal source frames (frame_ids like [0, -1, 1])")
        if self.velocity_weight > 0 and self.depth_normalization:
            bad("velocity_weight > 0 needs depth_normalization=false: with depth-normalised warping the "
                "translation is in units of each image's mean depth, so odometry cannot give the depth one "
                "metric scale")
        if self.data.target_motion > 0 and self.data.kind != "rosbag":
            bad(f"data.target_motion spaces the sources of rosbag data only, not data.kind={self.data.kind}")
        if self.data.max_stride < 1:
            bad(f"data.max_stride must be >= 1, got {self.data.max_stride}")
        if not 0 < self.min_depth < self.max_depth:
            bad(f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        self._validate_validation(bad)
        _check_numbers(self)

    def _validate_validation(self, bad) -> None:
        d = self.data
        if not 0 <= d.val_fraction < 1:
            bad(f"data.val_fraction must be in [0, 1) (a fraction of each sequence), got {d.val_fraction}")
        if d.val_fraction > 0 and d.val_path:
            bad("set either data.val_fraction or data.val_path, not both")
        split_has_val = d.kind == "kitti" and d.split != "all"
        if self.val_every and not (d.val_fraction > 0 or d.val_path or split_has_val):
            bad(f"val_every={self.val_every} needs validation data: set data.val_fraction (e.g. 0.1) or "
                "data.val_path (or train KITTI on a split that has val_files.txt)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# float options that must be >= 0 (the others have their own rules above); NaN/inf is refused for every float
NON_NEGATIVE = ("disparity_smoothness", "ground_bound_weight", "ground_bound_tolerance", "grad_clip",
                "data.static_threshold", "data.max_gap", "data.target_motion")


def _float_options(obj, prefix: str = ""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _float_options(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            yield prefix + f.name, value


def _check_numbers(cfg) -> None:
    """Every float finite (``grad_clip=.nan`` would silently turn clipping off) and the non-negative ones >= 0."""
    values = dict(_float_options(cfg))
    for key, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"config: {key} must be a finite number, got {value}")
    for key in NON_NEGATIVE:
        if key in values and values[key] < 0:
            raise ValueError(f"config: {key} must be >= 0, got {values[key]}")


def _coerce(value, typ, name):
    origin = typing.get_origin(typ) or typ
    if typ in ("bool", bool):
        if isinstance(value, bool):
            return value
        raise ValueError(f"config: {name} must be true/false, got {value!r}")
    if typ in ("int", int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or int(value) != value:
            raise ValueError(f"config: {name} must be an integer, got {value!r}")
        return int(value)
    if typ in ("float", float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config: {name} must be a number, got {value!r}")
        return float(value)
    if typ in ("str", str):
        return "none" if value is None else str(value)
    if typ in ("list", list) or origin is list:
        if not isinstance(value, list):
            raise ValueError(f"config: {name} must be a list, got {value!r}")
        return value
    return value


def _apply(obj, values: dict, prefix: str = "") -> None:
    hints = {f.name: f.type for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in hints:
            raise ValueError(f"config: unknown option {prefix + key!r}; known: {', '.join(sorted(hints))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"config: {prefix}{key} must be a mapping")
            _apply(current, value, f"{prefix}{key}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], prefix + key))


def parse_overrides(overrides: list[str]) -> dict:
    """["a=1", "data.path=x"] -> {"a": 1, "data": {"path": "x"}} (values parsed as YAML)."""
    out: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"config override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        try:
            node[leaf] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"config override {item!r}: the value is not valid YAML ({_yaml_problem(exc)})") from None
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from a PyYAML error: the problem and where (1-based line:column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Defaults ← YAML file ← overrides; validated. Unknown keys are errors naming the key."""
    cfg = TrainConfig()
    if path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: YAML syntax error: {_yaml_problem(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the config ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping")
        try:
            _apply(cfg, values)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    _apply(cfg, parse_overrides(list(overrides)))
    cfg.validate()
    return cfg
