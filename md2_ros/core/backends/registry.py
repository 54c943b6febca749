"""Which backends exist, on which devices, and how long they take to build (for auto's time budget)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .base import Backend, BackendMissing, BackendUnavailable
from .ort_backends import build_int8, build_onnxruntime, build_tensorrt
from .torch_backends import build_bf16, build_compile, build_eager, build_fp16, build_torchscript


@dataclass(frozen=True)
class BackendSpec:
    name: str
    build: Callable             # (model, device) -> Backend; raises BackendUnavailable / anything on failure
    devices: tuple              # device types it supports: "cpu", "cuda"
    precision: str
    build_s: dict               # rough build time per device type (s), to respect auto's time budget
    summary: str


SPECS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("eager", build_eager, ("cpu", "cuda"), "fp32", {"cpu": 0.1, "cuda": 0.1},
                "the network as written (reference for every parity check)"),
    BackendSpec("bf16", build_bf16, ("cpu", "cuda"), "bf16", {"cpu": 1.0, "cuda": 1.0},
                "bfloat16 weights/activations, channels_last (oneDNN AVX512-BF16/AMX on CPU)"),
    BackendSpec("fp16", build_fp16, ("cuda",), "fp16", {"cuda": 1.0}, "float16 weights/activations"),
    BackendSpec("onnxruntime", build_onnxruntime, ("cpu", "cuda"), "fp32", {"cpu": 8.0, "cuda": 10.0},
                "ONNX Runtime, CPU or CUDA execution provider"),
    BackendSpec("torchscript", build_torchscript, ("cpu", "cuda"), "fp32", {"cpu": 8.0, "cuda": 8.0},
                "traced, frozen, optimize_for_inference"),
    BackendSpec("int8", build_int8, ("cpu",), "int8", {"cpu": 25.0},
                "ONNX Runtime static int8 (QDQ, per-channel), calibrated on the warm-up frames"),
    BackendSpec("tensorrt", build_tensorrt, ("cuda",), "fp16", {"cuda": 120.0},
                "TensorRT fp16 (torch-tensorrt or the ONNX Runtime TensorRT EP)"),
    BackendSpec("compile", build_compile, ("cpu", "cuda"), "fp32", {"cpu": 90.0, "cuda": 60.0},
                "torch.compile: inductor (frozen weights) on CPU, CUDA graphs on CUDA"),
)}
NAMES = ("auto",) + tuple(SPECS)


def check_name(name: str) -> str:
    """The backend name, or ValueError listing the valid ones."""
    if name != "auto" and name not in SPECS:
        raise ValueError(f"unknown backend {name!r}; choose one of auto, {', '.join(SPECS)}")
    return name


def build_backend(name: str, model, device: torch.device | None = None, **kwargs) -> Backend:
    """Build one named backend (not 'auto') for ``model`` on ``device`` (default: the model's device).

    Raises BackendUnavailable with the reason when it cannot run on this device or fails to build.
    """
    spec = SPECS.get(check_name(name))
    if spec is None:
        raise ValueError("'auto' is chosen by select_backend(), not built directly")
    device = torch.device(device) if device is not None else model.device
    if device.type not in spec.devices:
        raise BackendMissing(f"{name} runs on {'/'.join(spec.devices)}, not {device.type}")
    try:
        return spec.build(model, device, **kwargs)
    except BackendUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a compile error, an exporter bug, ...: say which and why
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BackendUnavailable(f"{name} failed to build: {type(exc).__name__}: {first}") from exc
