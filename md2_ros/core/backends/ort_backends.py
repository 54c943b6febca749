"""ONNX Runtime backends: fp32 (CPU / CUDA EPs), TensorRT (torch-tensorrt or the ORT TensorRT EP, fp16) and
int8 (ORT static QDQ quantisation, CPU; VNNI kernels where the CPU has them).

The graph is the scale-0 disparity network, exported in memory with torch's TorchScript-based
ONNX exporter (batch axis symbolic); nothing is written to disk.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import torch

from .base import Backend, BackendMissing, BackendUnavailable
from .torch_backends import example_input, private_disp_net

INPUT, OUTPUT = "image", "disp"


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendMissing("onnxruntime is not installed (pip install onnxruntime)") from exc
    return ort


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise BackendMissing("the onnx package is not installed (pip install onnx)") from exc
    return onnx


def disp_onnx_bytes(model, opset: int = 17) -> bytes:
    """The model's ``image -> disp`` graph as ONNX bytes (CPU float32 export)."""
    _onnx()
    net = private_disp_net(model, torch.device("cpu"))
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (example_input(model, "cpu"),), buf, input_names=[INPUT], output_names=[OUTPUT],
                              opset_version=opset, dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                              do_constant_folding=True, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - e.g. the onnx package missing
            raise BackendUnavailable(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def _session(ort, graph: bytes, providers: list):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(graph, opts, providers=providers)


def _runner(sess, device: torch.device):
    def run(x: torch.Tensor) -> torch.Tensor:
        out = sess.run([OUTPUT], {INPUT: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(device)
    return run


def _providers_for(ort, device: torch.device, want: str) -> list:
    have = ort.get_available_providers()
    if want not in have:
        raise BackendMissing(f"ONNX Runtime has no {want} here (available: {', '.join(have)})")
    if want == "CUDAExecutionProvider":
        return [(want, {"device_id": device.index or 0}), "CPUExecutionProvider"]
    if want == "TensorrtExecutionProvider":
        return [(want, {"device_id": device.index or 0, "trt_fp16_enable": True}), "CPUExecutionProvider"]
    return [want]


def build_onnxruntime(model, device) -> Backend:
    """ONNX Runtime fp32: the CPU EP on CPU, the CUDA EP on CUDA (host round trip for the network I/O)."""
    ort = _ort()
    want = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    sess = _session(ort, disp_onnx_bytes(model), _providers_for(ort, device, want))
    return Backend("onnxruntime", model, _runner(sess, device), device,
                   detail=f"{want.replace('ExecutionProvider', '')} EP")


def _torch_tensorrt_net(model, device):
    import torch_tensorrt  # noqa: PLC0415 - optional dependency
    net = private_disp_net(model, device)
    x = example_input(model, device)
    return torch_tensorrt.compile(net, inputs=[x], enabled_precisions={torch.float16, torch.float32})


def build_tensorrt(model, device) -> Backend:
    """TensorRT fp16 (CUDA only): torch-tensorrt when installed, else the ONNX Runtime TensorRT EP."""
    if device.type != "cuda":
        raise BackendMissing("TensorRT needs a CUDA device")
    try:
        net = _torch_tensorrt_net(model, device)
        return Backend("tensorrt", model, net, device, precision="fp16", detail="torch-tensorrt fp16")
    except ImportError:
        pass
    ort = _ort()
    sess = _session(ort, disp_onnx_bytes(model), _providers_for(ort, device, "TensorrtExecutionProvider"))
    return Backend("tensorrt", model, _runner(sess, device), device, precision="fp16",
                   detail="ONNX Runtime TensorRT EP fp16")


class _Calibration:
    """ORT CalibrationDataReader over a list of B×3×h×w float32 arrays."""

    def __init__(self, batches):
        self._it = iter([{INPUT: b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def build_int8(model, device, calibration=None) -> Backend:
    """ONNX Runtime int8 (static, QDQ, per-channel weights), CPU only.

    ``calibration``: network-size inputs (B×3×h×w float32 numpy in [0, 1]); default: the
    example input, which is a poor calibration — pass real frames for real accuracy.
    """
    if device.type != "cpu":
        raise BackendMissing("int8 quantisation is a CPU path")
    ort = _ort()
    try:
        from onnxruntime import quantization as q
    except ImportError as exc:
        raise BackendMissing(f"onnxruntime.quantization unavailable: {exc}") from exc
    onnx = _onnx()
    batches = calibration if calibration is not None else [example_input(model, "cpu").numpy()]
    fp32 = onnx.load_from_string(disp_onnx_bytes(model))
    src, dst = io.BytesIO(), io.BytesIO()
    onnx.save(fp32, src)
    with _quiet_root_logger():    # the quantiser logs advice through the root logger
        q.quantize_static(_as_model_input(src), dst, _Calibration([np.asarray(b, np.float32) for b in batches]),
                          quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    sess = _session(ort, dst.getvalue(), ["CPUExecutionProvider"])
    return Backend("int8", model, _runner(sess, device), device, precision="int8",
                   detail="ONNX Runtime static QDQ int8, per-channel")


def _as_model_input(buf: io.BytesIO):
    return _onnx().load_from_string(buf.getvalue())


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
