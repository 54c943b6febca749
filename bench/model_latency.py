#!/usr/bin/env python
"""Depth-model inference latency: eager vs channels_last vs TorchScript vs torch.compile vs AMP vs onnxruntime.

Run from the repository root::

    python bench/model_latency.py [--device auto|cpu|cuda] [--iters 50] [--warmup 10] [--num-layers 18|50]

Two measurements per variant and batch size (B = 1 and 4 by default), at the KITTI
setting: a 1242×375 uint8 RGB camera image and a 640×192 network.

* end-to-end: B uint8 H×W×3 host images -> upload, resize to 640×192, network,
  depth, resize back to 1242×375, download to host numpy (what the ROS node and
  the CLI pay per frame);
* network only: B×3×192×640 float already on the device -> depth B×1×192×640.

"reference-style" mimics how the official Monodepth2 test script runs a model
(our own code, written from its description): one image at a time, PIL Lanczos
resize on the CPU, ToTensor-style conversion, encoder, decoder, disparity
upsampled with ``F.interpolate(bilinear, align_corners=False)``, then
``disp_to_depth``. Ratios ("× eager") are speed-ups against eager fp32 measured
in the same run; "max rel err" compares each variant's end-to-end depth with
eager fp32 (max |d − d_eager| / max d_eager). Weights are random unless
``--checkpoint`` is given (latency does not depend on them).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from md2_ros.core.export import DepthExportWrapper, export_onnx, export_torchscript, load_torchscript  # noqa: E402
from md2_ros.core.geometry import disp_to_depth  # noqa: E402
from md2_ros.core.model import DepthModel, resolve_device  # noqa: E402

IMG_H, IMG_W = 375, 1242


@dataclass
class Variant:
    name: str
    e2e: Callable | None = None       # list of uint8 images -> depth (host)
    net: Callable | None = None       # B×3×h×w device tensor -> depth B×1×h×w
    net_dtype: torch.dtype = torch.float32
    channels_last: bool = False
    skip: str = ""                    # reason, when the variant cannot run here
    results: dict = field(default_factory=dict)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--num-layers", type=int, default=18, choices=(18, 50))
    p.add_argument("--batch-sizes", default="1,4", help="comma-separated (default 1,4)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch and onnxruntime (0: torch default)")
    p.add_argument("--checkpoint", help="optional DepthModel checkpoint (default: random weights)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on small CPUs)")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="torch.backends.cudnn.benchmark = True (autotune convolutions for the fixed input size)")
    p.add_argument("--only", default="", help="comma-separated substrings: run only matching variants (+ baselines)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes must be integers, got {args.batch_sizes!r}")
    if any(b < 1 for b in args.batch_sizes):
        p.error("batch sizes must be >= 1")
    return args


def kitti_like_images(batch: int, seed: int = 0) -> list[np.ndarray]:
    """B smooth-ish 375×1242×3 uint8 RGB images (content does not affect latency)."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, IMG_W, dtype=np.float32)[None, :, None]
    return [np.clip(base * 0.5 + rng.integers(0, 128, (IMG_H, IMG_W, 3)), 0, 255).astype(np.uint8)
            for _ in range(batch)]


# --- pipelines -------------------------------------------------------------------------------

def make_e2e(net, model, device, dtype=torch.float32, channels_last=False, amp=None):
    """uint8 images -> (upload, resize, ``net``, resize back, download) depth B×H×W numpy."""
    h, w = model.height, model.width

    def run(images):
        with torch.inference_mode(), (amp() if amp else contextlib.nullcontext()):
            x = torch.from_numpy(np.stack(images)).to(device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            x = F.interpolate(x, (h, w), mode="bilinear", align_corners=False, antialias=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            depth = net(x.to(dtype)).float()
            depth = F.interpolate(depth, images[0].shape[:2], mode="bilinear", align_corners=False)
            return depth[:, 0].cpu().numpy()
    return run


def make_reference_style(model, device):
    """Monodepth2 test-script style, our own implementation: per image, PIL resize on CPU, eager fp32."""
    try:
        from PIL import Image
        resample = Image.Resampling.LANCZOS

        def resize(img):
            return np.asarray(Image.fromarray(img).resize((model.width, model.height), resample))
    except ImportError:  # pillow is not a dependency of md2_ros; fall back to OpenCV's Lanczos
        import cv2

        def resize(img):
            return cv2.resize(img, (model.width, model.height), interpolation=cv2.INTER_LANCZOS4)
    cfg = model.config

    def run(images):
        out = []
        with torch.no_grad():
            for img in images:
                x = torch.from_numpy(resize(img).copy()).permute(2, 0, 1).float().div(255.0)[None].to(device)
                disp = model.decoder(model.encoder(x))[("disp", 0)]
                disp = F.interpolate(disp, img.shape[:2], mode="bilinear", align_corners=False)
                depth = disp_to_depth(disp, cfg.min_depth, cfg.max_depth)[1] * cfg.depth_scale
                out.append(depth[0, 0].cpu().numpy())
        return out
    return run


def _nograd(fn):
    def run(x):
        with torch.no_grad():
            return fn(x)
    return run


def _inference(fn, amp=None):
    def run(x):
        with torch.inference_mode(), (amp() if amp else contextlib.nullcontext()):
            return fn(x)
    return run


def build_variants(model: DepthModel, device: torch.device, args, tmp: Path) -> list[Variant]:
    cuda = device.type == "cuda"
    eager = DepthExportWrapper(model).eval()
    vs = [
        Variant("reference-style (PIL, per image)", make_reference_style(model, device)),
        Variant("eager fp32 (e2e: predict_batch)", model.predict_batch, _nograd(eager)),
    ]
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl = DepthExportWrapper(cl_model).eval()
    vs.append(Variant("inference_mode + channels_last", make_e2e(cl, model, device, channels_last=True),
                      _inference(cl), channels_last=True))

    ts_path = export_torchscript(model, tmp / "depth.pt")
    ts, _ = load_torchscript(ts_path, map_location=device)
    vs.append(Variant("TorchScript (exported file)", make_e2e(ts, model, device), _inference(ts)))
    try:
        ts_opt = torch.jit.optimize_for_inference(torch.jit.freeze(copy.deepcopy(ts).eval()))
        vs.append(Variant("TorchScript frozen + optimize_for_inference", make_e2e(ts_opt, model, device),
                          _inference(ts_opt)))
    except Exception as exc:  # noqa: BLE001 - report any failure as a skip
        vs.append(Variant("TorchScript frozen + optimize_for_inference", skip=f"{type(exc).__name__}: {exc}"))

    if args.no_compile:
        vs.append(Variant("torch.compile", skip="--no-compile"))
    else:
        try:
            comp = torch.compile(DepthExportWrapper(copy.deepcopy(model)).eval())
            vs.append(Variant("torch.compile (default mode)", make_e2e(comp, model, device), _inference(comp)))
            if cuda:  # CUDA graphs: removes the per-kernel launch cost that dominates at batch 1
                graphs = torch.compile(DepthExportWrapper(copy.deepcopy(model)).eval(), mode="reduce-overhead")
                vs.append(Variant("torch.compile reduce-overhead (CUDA graphs)", make_e2e(graphs, model, device),
                                  _inference(graphs)))
        except Exception as exc:  # noqa: BLE001
            vs.append(Variant("torch.compile", skip=f"{type(exc).__name__}: {exc}"))

    for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        if not cuda:
            vs.append(Variant(f"{name} autocast", skip="CUDA only"))
            continue
        amp = (lambda d=dt: torch.autocast("cuda", dtype=d))
        vs.append(Variant(f"{name} autocast", make_e2e(eager, model, device, amp=amp), _inference(eager, amp)))
        vs.append(Variant(f"{name} autocast + channels_last",
                          make_e2e(cl, model, device, channels_last=True, amp=amp), _inference(cl, amp),
                          channels_last=True))
    if cuda:
        half = copy.deepcopy(model).setup_inference(device, fp16=True)
        vs.append(Variant("fp16 weights (setup_inference fp16=True)", half.predict_batch,
                          _inference(DepthExportWrapper(half)), net_dtype=torch.float16))
    else:
        vs.append(Variant("fp16 weights (setup_inference fp16=True)", skip="CUDA only"))
    vs.append(onnxruntime_variant(model, device, args, tmp))

    if args.only:
        keys = [k.strip().lower() for k in args.only.split(",") if k.strip()]
        vs = [v for i, v in enumerate(vs) if i < 2 or any(k in v.name.lower() for k in keys)]
    return vs


def onnxruntime_variant(model, device, args, tmp) -> Variant:
    name = "onnxruntime"
    try:
        import onnxruntime as ort
    except ImportError:
        return Variant(name, skip="onnxruntime not installed")
    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        return Variant(name, skip=f"{provider} not available (have {ort.get_available_providers()})")
    try:
        path = export_onnx(model, tmp / "depth.onnx")
    except Exception as exc:  # noqa: BLE001
        return Variant(name, skip=f"ONNX export failed: {exc}")
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(path), opts, providers=[provider])

    def net(x):
        return torch.from_numpy(sess.run(["depth"], {"image": x.detach().cpu().numpy()})[0]).to(x.device)
    return Variant(f"{name} ({provider.replace('ExecutionProvider', '')} EP)", make_e2e(net, model, device),
                   net)


# --- timing --------------------------------------------------------------------------------------

def measure(fn, arg, warmup: int, iters: int, cuda: bool) -> np.ndarray:
    """Per-call wall-clock milliseconds (CUDA synchronised after each call)."""
    for _ in range(warmup):
        fn(arg)
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(arg)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


def summarise(times: np.ndarray, batch: int) -> dict:
    mean = float(times.mean())
    return {"mean": mean, "p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
            "fps": batch * 1e3 / mean}


def _as_array(out) -> np.ndarray:
    return np.stack(out) if isinstance(out, list) else np.asarray(out)


def run_variant(v: Variant, model, device, batch, args, ref_e2e):
    cuda = device.type == "cuda"
    images = kitti_like_images(batch)
    g = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, 3, model.height, model.width, generator=g).to(device, v.net_dtype)
    if v.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    res = {}
    try:
        depth = _as_array(v.e2e(images))             # first call: also compiles / checks correctness
        res["err"] = float(np.abs(depth - ref_e2e).max() / np.abs(ref_e2e).max()) if ref_e2e is not None else 0.0
        res["e2e"] = summarise(measure(v.e2e, images, args.warmup, args.iters, cuda), batch)
        if v.net is not None:
            res["net"] = summarise(measure(v.net, x, args.warmup, args.iters, cuda), batch)
    except Exception as exc:  # noqa: BLE001 - e.g. torch.compile without a working compiler
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        res = {"skip": f"failed: {type(exc).__name__}: {msg}"}
    return res, (depth if "skip" not in res else None)


def print_tables(variants, batches, device_desc):
    lines = [f"device: {device_desc}", ""]
    for kind, title in (("e2e", "end-to-end: uint8 1242×375 host images -> depth 1242×375 on host"),
                        ("net", "network only: B×3×192×640 on device -> depth B×1×192×640")):
        lines += [f"**{title}**", "",
                  "| variant | B | mean ms | p50 ms | p90 ms | images/s | × eager fp32 | max rel err |",
                  "|---|---|---|---|---|---|---|---|"]
        for b in batches:
            base = variants[1].results.get(b, {}).get(kind, {}).get("mean")
            for v in variants:
                r = v.results.get(b, {})
                if v.skip or "skip" in r:
                    if kind == "e2e" and (b == batches[0] or "skip" in r):
                        lines.append(f"| {v.name} | {b} | skipped: {v.skip or r['skip']} | | | | | |")
                    continue
                if kind not in r:
                    continue
                s = r[kind]
                ratio = f"{base / s['mean']:.2f}" if base else "—"
                err = f"{r['err']:.1e}" if kind == "e2e" else ""
                lines.append(f"| {v.name} | {b} | {s['mean']:.2f} | {s['p50']:.2f} | {s['p90']:.2f} | "
                             f"{s['fps']:.1f} | {ratio} | {err} |")
        lines.append("")
    for b in batches:
        ref = variants[0].results.get(b, {}).get("e2e", {}).get("mean")
        ours = variants[1].results.get(b, {}).get("e2e", {}).get("mean")
        ok = [(v.results[b]["e2e"]["mean"], v.name) for v in variants[1:]
              if not v.skip and "e2e" in v.results.get(b, {})]
        if ref and ours and ok:
            best = min(ok)
            lines.append(f"B={b}: ours (eager fp32 predict_batch) is {ref / ours:.2f}× the reference-style "
                         f"throughput end-to-end; fastest here: {best[1]} at {ref / best[0]:.2f}×")
    print("\n".join(lines))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    device = resolve_device(args.device)
    if args.checkpoint:
        model = DepthModel.load(args.checkpoint, device)
    else:
        torch.manual_seed(0)
        model = DepthModel(args.num_layers, 192, 640).setup_inference(device)
    if device.type == "cuda":
        desc = f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, " \
               f"cudnn.benchmark {torch.backends.cudnn.benchmark}"
    else:
        desc = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads, " \
               f"torch {torch.__version__}"
    desc += f", ResNet{model.config.num_layers} {model.width}×{model.height}, iters {args.iters}, warmup {args.warmup}"
    print(desc, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        variants = build_variants(model, device, args, Path(tmp))
        for b in args.batch_sizes:
            ref = _as_array(model.predict_batch(kitti_like_images(b)))
            for v in variants:
                if v.skip:
                    continue
                t0 = time.perf_counter()
                v.results[b], _ = run_variant(v, model, device, b, args, ref)
                print(f"  B={b} {v.name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print()
    print_tables(variants, args.batch_sizes, desc)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": desc, "results": {
            v.name: (v.skip or {str(b): r for b, r in v.results.items()}) for v in variants}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
