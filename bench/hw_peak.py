"""Compute bounds for bench/model_latency.py: the model's FLOP count and this machine's matmul peak.

``peak_gflops(dtype)`` times a large matrix product two ways — ``torch.mm`` (MKL on CPU, which
runs a slow generic path on AMD CPUs) and the same product as a 1×1 convolution in channels_last
(oneDNN, the library that runs the network's convolutions) — and returns the best GFLOP/s of a
few repetitions with the current torch thread count; int8 (GOP/s) through ``torch._int_mm``.
That is the practical ceiling a convolution network can reach in that precision here.
"""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def model_gflop(net, x: torch.Tensor) -> float:
    """GFLOP (2 × multiply-adds) of one forward pass of ``net`` on ``x`` (convolutions and matmuls)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    return counter.get_total_flops() / 1e9


def _best_seconds(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 3, device="cpu") -> float | None:
    """Best matmul GFLOP/s for an n×n×n product in ``dtype``; None where the dtype has no matmul here."""
    try:
        if dtype == torch.int8:
            a = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device)
            b = torch.randint(-64, 64, (n, n), dtype=torch.int8, device=device)
            fn = lambda: torch._int_mm(a, b)  # noqa: E731
        else:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            fn = lambda: torch.mm(a, b)  # noqa: E731
            conv = _conv_as_matmul(n, dtype, device)
        if torch.device(device).type == "cuda":
            inner = fn

            def fn():
                inner()
                torch.cuda.synchronize()
        best = _best_seconds(fn, reps)
        if dtype != torch.int8:
            best = min(best, _best_seconds(conv, reps))
        return 2 * n ** 3 / best / 1e9
    except (RuntimeError, NotImplementedError):
        return None


def _conv_as_matmul(n: int, dtype, device):
    """An n×n×n product as a 1×1 convolution (n input and output channels, n pixels), channels_last."""
    x = torch.randn(1, n, 1, n, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1, device=device).to(dtype).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            torch.nn.functional.conv2d(x, w)
    return run


def peaks(device="cpu") -> dict:
    """{precision: GFLOP/s or None} for fp32, bf16, fp16 (CUDA) and int8."""
    out = {"fp32": peak_gflops(torch.float32, device=device), "bf16": peak_gflops(torch.bfloat16, device=device),
           "int8": peak_gflops(torch.int8, device=device)}
    if torch.device(device).type == "cuda":
        out["fp16"] = peak_gflops(torch.float16, device=device)
    return out
