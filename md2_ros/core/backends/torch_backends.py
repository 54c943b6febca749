"""PyTorch-runtime backends: eager, frozen TorchScript, torch.compile, bf16/fp16 weights, int8 (FX static).

Every builder takes the DepthModel and a device and returns a :class:`Backend` whose
network is a private copy (the caller's model is never modified); builders that need
an example input compile/trace on a frame of the model's size.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from .base import Backend, BackendMissing, BackendUnavailable, DispNet


def private_disp_net(model, device: torch.device) -> DispNet:
    """A float32 eval-mode copy of ``model`` on ``device``, as a scale-0 disparity network."""
    m = copy.deepcopy(model).to(device).float().eval()
    m.fp16 = False
    return DispNet(m).eval()


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the convolution before it (``convN``/``bnN`` attribute pairs and
    ``Sequential(conv, bn)``), in place: one pass over memory less per layer, same function."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        for name, child in list(module.named_children()):
            conv = getattr(module, "conv" + name[2:], None) if name.startswith("bn") else None
            if isinstance(child, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d):
                setattr(module, "conv" + name[2:], fuse_conv_bn_eval(conv, child))
                setattr(module, name, nn.Identity())
    return net


def example_input(model, device, batch: int = 1, channels_last: bool = False, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, model.height, model.width, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(dtype)


def build_eager(model, device) -> Backend:
    """The reference: the network as written, float32, contiguous NCHW."""
    return Backend("eager", model, private_disp_net(model, device), device)


def build_torchscript(model, device) -> Backend:
    """Traced, frozen and ``optimize_for_inference`` (conv+bn folding, oneDNN layouts on CPU)."""
    net = private_disp_net(model, device)
    x = example_input(model, device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, (x,), check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        frozen(x)          # first calls run the profiling executor's optimisation passes
        frozen(x)
    return Backend("torchscript", model, frozen, device, detail="frozen + optimize_for_inference")


def build_compile(model, device) -> Backend:
    """``torch.compile``: inductor with weight freezing on CPU; CUDA graphs (reduce-overhead) on CUDA.

    Compiles now (on an example input), so the cost is paid at build time, never on a live frame.
    """
    net = private_disp_net(model, device)
    cuda = device.type == "cuda"
    mode = "reduce-overhead" if cuda else None
    try:
        import torch._inductor.config as inductor_config
    except ImportError as exc:
        raise BackendMissing(f"torch inductor not importable: {exc}") from exc
    compiled = torch.compile(net, mode=mode, dynamic=False)
    x = example_input(model, device)
    with inductor_config.patch(freezing=True), torch.inference_mode():
        for _ in range(3 if cuda else 1):  # CUDA graphs record on a later call
            compiled(x)
    detail = "inductor, CUDA graphs (reduce-overhead)" if cuda else "inductor, frozen weights"
    return Backend("compile", model, compiled, device, detail=detail)


class Fp32Head(nn.Module):
    """Runs a low-precision network's last conv in float32 (the disparity head decides depth's precision)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.float())


def _low_precision(model, device, dtype) -> DispNet:
    net = fold_batchnorm(private_disp_net(model, device))
    net = net.to(dtype).to(memory_format=torch.channels_last)
    net.decoder.decoder[10] = Fp32Head(net.decoder.decoder[10])
    return net.eval()


def bf16_supported(device: torch.device) -> str:
    """'' when bf16 convolutions run natively on ``device``, else the reason they do not."""
    if device.type == "cuda":
        return "" if torch.cuda.is_bf16_supported() else "this GPU has no bf16"
    if not torch.backends.mkldnn.is_available():
        return "PyTorch built without oneDNN"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "this CPU has no native bf16 (AVX512-BF16 / AMX) for oneDNN"
    return ""


def build_bf16(model, device) -> Backend:
    """bfloat16 weights and activations, channels_last (oneDNN bf16 kernels on CPU); fp32 head and depth."""
    reason = bf16_supported(device)
    if reason:
        raise BackendMissing(reason)
    net = _low_precision(model, device, torch.bfloat16)
    return Backend("bf16", model, net, device, precision="bf16", input_dtype=torch.bfloat16, channels_last=True,
                   detail="bf16 weights, channels_last, fp32 disparity head")


def build_fp16(model, device) -> Backend:
    """float16 weights and activations (CUDA only), channels_last; fp32 head and depth."""
    if device.type != "cuda":
        raise BackendMissing("fp16 convolutions are CUDA only")
    net = _low_precision(model, device, torch.float16)
    return Backend("fp16", model, net, device, precision="fp16", input_dtype=torch.float16, channels_last=True,
                   detail="fp16 weights, channels_last, fp32 disparity head")
