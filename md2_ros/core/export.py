"""Export a DepthModel to TorchScript or ONNX for deployment without this package.

Both formats hold one graph, ``image -> depth``:

* input ``image``: B×3×H×W float32 RGB in [0, 1] at the model's training size
  (``config.height`` × ``config.width``); normalisation happens inside the graph;
* output ``depth``: B×1×H×W float32, ``disp_to_depth(disp)[1] × depth_scale``
  (metres for a metric / stereo model, else relative depth).

Resizing the camera image to H×W (and the depth back) is the caller's job, as
in :meth:`DepthModel.predict`. The model config travels inside the file:
TorchScript as the extra file ``md2_ros_config.json``, ONNX as the
``metadata_props`` entry ``md2_ros_config``; read either with
:func:`read_export_config`.

Command line: ``md2-export`` (:mod:`md2_ros.export_cli`).

``onnx`` is imported only inside :func:`export_onnx` (torch's ONNX exporter
needs it: ``pip install onnx``; ``onnxruntime`` is needed only to verify).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write_bytes

EXPORT_FORMAT = "md2_ros/depth-export/1"
CONFIG_FILE = "md2_ros_config.json"     # TorchScript extra file name
ONNX_CONFIG_KEY = "md2_ros_config"      # ONNX metadata_props key
INPUT_NAME, OUTPUT_NAME = "image", "depth"
FORMATS = ("torchscript", "onnx")
VERIFY_ATOL = 1e-4                      # CLI check: max |export − eager| / max(1, max depth), random batch


class ExportError(RuntimeError):
    """Export failed or an exported file is unreadable; the message names the cause (and file)."""


class DepthExportWrapper(nn.Module):
    """``forward(image B×3×H×W in [0, 1]) -> depth B×1×H×W`` (× depth_scale) for one DepthModel."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if 0 not in model.config.scales:
            raise ValueError(f"model has no full-resolution output (scales {model.config.scales})")
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.to_depth(self.model(image)[("disp", 0)])


def export_metadata(model) -> dict:
    """The JSON document embedded in exported files: format tag, model config, I/O contract."""
    cfg = model.config.to_dict()
    return {
        "md2_ros_format": EXPORT_FORMAT,
        "config": cfg,
        "input": {"name": INPUT_NAME, "shape": ["B", 3, cfg["height"], cfg["width"]], "dtype": "float32",
                  "range": [0.0, 1.0], "channels": "RGB"},
        "output": {"name": OUTPUT_NAME, "shape": ["B", 1, cfg["height"], cfg["width"]], "dtype": "float32",
                   "meaning": "depth = disp_to_depth(disp, min_depth, max_depth)[1] * depth_scale",
                   "metric": bool(cfg["metric"])},
    }


@contextlib.contextmanager
def _quiet_jit_warnings():
    """Silence torch's own TorchScript deprecation notices and the tracer's warnings about the encoder's
    input-shape checks (they become constants; exports are checked against eager instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _check_model(model) -> None:
    from .model import DepthModel
    if not isinstance(model, DepthModel):
        raise TypeError(f"expected a DepthModel, got {type(model).__name__}")


def _check_out_path(path) -> Path:
    path = Path(path)
    if str(path) in ("", ".") or path.is_dir():
        raise ValueError(f"export path {path} is a directory; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"export path {path}: {parent} exists and is not a directory")
            break
    return path


def _cpu_fp32_copy(model) -> nn.Module:
    """Deep copy on CPU, float32, eval mode: exports never depend on (or change) the caller's device/dtype."""
    m = copy.deepcopy(model).to("cpu").float().eval()
    m.fp16 = False
    return m


def _example_input(model, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, model.height, model.width, generator=g)


def export_torchscript(model, path) -> Path:
    """Trace ``image -> depth`` and save it atomically as TorchScript with the config embedded.

    The traced graph accepts any batch size; load it with ``torch.jit.load(path, map_location=...)``
    (no md2_ros needed) or :func:`load_torchscript` to also get the config.
    """
    _check_model(model)
    path = _check_out_path(path)
    wrapper = DepthExportWrapper(_cpu_fp32_copy(model)).eval()
    example = _example_input(model)
    with torch.no_grad(), _quiet_jit_warnings():
        try:
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
        except Exception as exc:
            raise ExportError(f"TorchScript tracing failed: {type(exc).__name__}: {exc}") from exc
        # a batch size other than the traced one must give the eager answer (nothing batch-specific baked in)
        x2 = _example_input(model, 2)
        ref = wrapper(x2)
        err = float((traced(x2) - ref).abs().max())
        if not err <= 1e-4 * max(1.0, float(ref.abs().max())):
            raise ExportError(f"traced graph differs from eager at batch 2 (max abs diff {err:.3g})")
    buf = io.BytesIO()
    with _quiet_jit_warnings():
        torch.jit.save(traced, buf, _extra_files={CONFIG_FILE: json.dumps(export_metadata(model))})
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_torchscript(path, map_location="cpu"):
    """-> (ScriptModule in eval mode, metadata dict as written by :func:`export_metadata`)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"TorchScript file not found: {path}")
    extra = {CONFIG_FILE: ""}
    try:
        with _quiet_jit_warnings():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError / ValueError for non-zip or foreign files
        raise ExportError(f"{path}: not a loadable TorchScript file ({type(exc).__name__}: {exc})") from exc
    return module.eval(), _parse_metadata(extra[CONFIG_FILE], path)


def _parse_metadata(text, path) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not text:
        raise ExportError(f"{path}: no md2_ros config embedded (not exported by md2-export)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: embedded md2_ros config is not valid JSON ({exc})") from exc
    fmt = meta.get("md2_ros_format") if isinstance(meta, dict) else None
    if fmt != EXPORT_FORMAT:
        raise ExportError(f"{path}: unknown export format {fmt!r} (expected {EXPORT_FORMAT!r})")
    return meta


def _import_onnx():
    try:
        import onnx
    except ImportError:
        return None
    return onnx


def export_onnx(model, path, opset: int = 17, dynamic_batch: bool = True) -> Path:
    """Export ``image -> depth`` to ONNX (legacy TorchScript-based exporter, ``dynamo=False``), atomically.

    Input ``image`` B×3×H×W, output ``depth`` B×1×H×W; the batch axis is symbolic (``"batch"``) when
    ``dynamic_batch``. The config is stored in ``metadata_props[md2_ros_config]`` (JSON).
    """
    _check_model(model)
    path = _check_out_path(path)
    if not isinstance(opset, int) or not 9 <= opset <= 25:
        raise ValueError(f"opset must be an int in 9..25, got {opset!r}")
    wrapper = DepthExportWrapper(_cpu_fp32_copy(model)).eval()
    example = _example_input(model)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    buf = io.BytesIO()
    with torch.no_grad(), _quiet_jit_warnings():
        # noise from the legacy exporter that does not concern us (nearest upsampling, slice folding)
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            torch.onnx.export(wrapper, (example,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamic_axes=axes, do_constant_folding=True, dynamo=False)
        except Exception as exc:
            hint = " (install it: pip install onnx)" if "onnx is not installed" in str(exc).lower() else ""
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}{hint}") from exc
    meta = json.dumps(export_metadata(model))
    onnx = _import_onnx()
    if onnx is None:
        raise ExportError("writing the ONNX config needs the onnx package: pip install onnx")
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_CONFIG_KEY, meta
    proto.producer_name = "md2_ros"
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def read_onnx_config(path) -> dict:
    """Metadata dict of an exported ONNX file (from ``metadata_props``)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path}")
    onnx = _import_onnx()
    if onnx is None:
        raise ExportError(f"{path}: reading the ONNX config needs the onnx package: pip install onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from exc
    for entry in proto.metadata_props:
        if entry.key == ONNX_CONFIG_KEY:
            return _parse_metadata(entry.value, path)
    raise ExportError(f"{path}: no md2_ros config in its metadata_props (not exported by md2-export)")


def read_export_config(path) -> dict:
    """The model config dict (``ModelConfig.to_dict()``) embedded in a TorchScript or ONNX export."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return read_onnx_config(path)["config"]
    return load_torchscript(path)[1]["config"]


def export(model, path, fmt: str, **kwargs) -> Path:
    """Dispatch to :func:`export_torchscript` or :func:`export_onnx` (``fmt`` in :data:`FORMATS`)."""
    if fmt == "torchscript":
        return export_torchscript(model, path, **kwargs)
    if fmt == "onnx":
        return export_onnx(model, path, **kwargs)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def verify_export(model, path, fmt: str, batch: int = 2) -> float | None:
    """Max |exported − eager| depth on a random batch (CPU fp32), divided by max(1, max |eager depth|).

    None when ``fmt`` is ``onnx`` and onnxruntime is not installed.
    """
    ref_model = _cpu_fp32_copy(model)
    x = _example_input(model, batch)
    with torch.no_grad():
        ref = DepthExportWrapper(ref_model)(x)
    if fmt == "torchscript":
        module, _ = load_torchscript(path)
        with torch.no_grad():
            out = module(x)
    elif fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = torch.from_numpy(sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    if out.shape != ref.shape:
        raise ExportError(f"{path}: output shape {tuple(out.shape)} != expected {tuple(ref.shape)}")
    return float((out - ref).abs().max()) / max(1.0, float(ref.abs().max()))
