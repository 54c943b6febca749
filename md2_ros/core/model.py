"""DepthModel: encoder + decoder + normalisation + size/depth-range/scale metadata,
with ``predict(image) -> depth`` for robots and tools."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, read_model_file, read_official_depth, write_model_file
from .depth_decoder import DepthDecoder
from .geometry import disp_to_depth
from .resnet import ResnetEncoder

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a DepthModel (stored in every checkpoint)."""

    num_layers: int = 18
    height: int = 192
    width: int = 640
    min_depth: float = 0.1
    max_depth: float = 100.0
    depth_scale: float = 1.0   # multiply network depth by this to get metres
    metric: bool = False       # True when depth_scale makes the output metric (stereo / known scale)
    scales: tuple = (0, 1, 2, 3)
    scale_source: str = ""     # how a metric model learnt metres: "stereo", "odometry", ... ("" = relative)

    def __post_init__(self):
        if self.num_layers not in (18, 34, 50):
            raise ValueError(f"num_layers must be 18, 34 or 50, got {self.num_layers}")
        if self.height % 32 or self.width % 32 or self.height <= 0 or self.width <= 0:
            raise ValueError(f"height and width must be positive multiples of 32, got {self.height}×{self.width}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if not self.depth_scale > 0:
            raise ValueError(f"depth_scale must be > 0, got {self.depth_scale}")
        self.scales = tuple(int(s) for s in self.scales)
        self.scale_source = str(self.scale_source or "")
        if self.scale_source and not self.metric:
            raise ValueError(f"scale_source {self.scale_source!r} given for a relative (metric=False) model")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cpu', 'cuda', 'cuda:N' are checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        idx = int(device[5:]) if ":" in device else 0
        if idx >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)


def check_images(images) -> None:
    """Raise ValueError naming the cause unless ``images`` is a non-empty list of same-size H×W×3 uint8 arrays."""
    if not isinstance(images, (list, tuple)) or not images:
        raise ValueError("images must be a non-empty list of H×W×3 uint8 RGB arrays")
    for img in images:
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError("images must be H×W×3 uint8 RGB arrays, got "
                             f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}")
        if img.shape[0] < 2 or img.shape[1] < 2:
            raise ValueError(f"image too small: {img.shape}")
    if len({img.shape for img in images}) != 1:
        raise ValueError("predict_batch needs images of one size")


class DepthModel(nn.Module):
    """Monodepth2 depth network with the metadata to use it.

    ``forward(x)``: B×3×H×W in [0, 1] (normalised inside the encoder) ->
    ``{("disp", s): B×1×H/2^s×W/2^s}`` sigmoid disparities.
    """

    def __init__(self, num_layers: int = 18, height: int = 192, width: int = 640, min_depth: float = 0.1,
                 max_depth: float = 100.0, depth_scale: float = 1.0, metric: bool = False, scales=(0, 1, 2, 3),
                 weights_init=None, scale_source: str = ""):
        super().__init__()
        self.config = ModelConfig(num_layers, height, width, min_depth, max_depth, depth_scale, metric, scales,
                                  scale_source)
        self.encoder = ResnetEncoder(num_layers, 1, weights_init=weights_init)
        self.decoder = DepthDecoder(self.encoder.num_ch_enc, self.config.scales)
        self.fp16 = False

    # metadata accessors -------------------------------------------------
    height = property(lambda self: self.config.height)
    width = property(lambda self: self.config.width)
    depth_scale = property(lambda self: self.config.depth_scale)
    metric = property(lambda self: self.config.metric)
    scale_source = property(lambda self: self.config.scale_source)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @classmethod
    def from_config(cls, config: ModelConfig | dict) -> "DepthModel":
        cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        return cls(**cfg.to_dict())

    def forward(self, x: torch.Tensor) -> dict:
        return self.decoder(self.encoder(x))

    def to_depth(self, disp: torch.Tensor) -> torch.Tensor:
        """Sigmoid disparity -> depth in metres-ish (× depth_scale)."""
        return disp_to_depth(disp, self.config.min_depth, self.config.max_depth)[1] * self.config.depth_scale

    # inference ------------------------------------------------------------
    def setup_inference(self, device: str | torch.device = "auto", fp16: bool = False) -> "DepthModel":
        """Move to ``device`` in eval mode; fp16 weights only on CUDA (ignored with a warning on CPU)."""
        dev = resolve_device(device)
        self.to(dev).eval()
        if fp16 and dev.type != "cuda":
            log.warning("fp16 requested on %s: ignored (fp16 inference is CUDA-only)", dev)
            fp16 = False
        self.fp16 = fp16
        self.half() if fp16 else self.float()
        return self

    def _to_input(self, images: list[np.ndarray]) -> torch.Tensor:
        check_images(images)
        x = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[2:] != (self.height, self.width):
            x = F.interpolate(x, (self.height, self.width), mode="bilinear", align_corners=False, antialias=True)
        return x.half() if self.fp16 else x

    @torch.inference_mode()
    def predict_disp_batch(self, images: list[np.ndarray], out_size: tuple | None = None) -> torch.Tensor:
        """Sigmoid disparity B×H×W (float32, on the model's device) at ``out_size`` (default: image size)."""
        x = self._to_input(images)
        disp = self(x)[("disp", 0)].float()
        size = out_size or images[0].shape[:2]
        if tuple(disp.shape[2:]) != tuple(size):
            disp = F.interpolate(disp, size, mode="bilinear", align_corners=False)
        return disp[:, 0]

    @torch.inference_mode()
    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Depth float32 H×W for each H×W×3 uint8 RGB image (same size), at the images' size."""
        depth = self.to_depth(self.predict_disp_batch(images))
        return list(depth.cpu().numpy().astype(np.float32, copy=False))

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Depth float32 H×W (metres when ``metric``, else relative) for one H×W×3 uint8 RGB image."""
        return self.predict_batch([image])[0]

    # persistence ------------------------------------------------------------
    def save(self, path) -> None:
        """Atomic safetensors checkpoint with the config (see :mod:`.checkpoint`)."""
        write_model_file(path, self.state_dict(), self.config.to_dict())

    @classmethod
    def load(cls, path, device: str | torch.device = "auto", fp16: bool = False) -> "DepthModel":
        """Load a checkpoint written by :meth:`save` (or an official Monodepth2 folder)."""
        return load_model(path).setup_inference(device, fp16)


def load_model(path) -> DepthModel:
    """Rebuild a DepthModel (on CPU, eval mode) from :meth:`DepthModel.save` output or an official folder."""
    path = Path(path)
    if path.is_dir():
        return import_official(path)
    config, state = read_model_file(path)
    try:
        model = DepthModel.from_config(config)
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: config or weights do not match ({exc})") from exc
    return model.eval()


def import_official(folder, min_depth: float = 0.1, max_depth: float = 100.0, stereo_scale: float = 5.4) -> DepthModel:
    """Official ``encoder.pth`` + ``depth.pth`` -> DepthModel (strict key/shape match).

    ``use_stereo`` checkpoints were trained with a 0.1 baseline, so they get
    ``depth_scale = stereo_scale`` (5.4 for KITTI) and ``metric = True``.
    """
    folder = Path(folder)
    spec, enc, dec = read_official_depth(folder)
    stereo = spec["use_stereo"]
    model = DepthModel(num_layers=spec["num_layers"], height=spec["height"], width=spec["width"],
                       min_depth=min_depth, max_depth=max_depth, depth_scale=stereo_scale if stereo else 1.0,
                       metric=stereo, scale_source="stereo" if stereo else "")
    for part, state, name in ((model.encoder, enc, "encoder.pth"), (model.decoder, dec, "depth.pth")):
        try:
            part.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{folder / name}: does not match the {'encoder' if part is model.encoder else 'depth decoder'} ({exc})") from exc
    return model.eval()
