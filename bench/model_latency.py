#!/usr/bin/env python
"""Depth-model inference speed and accuracy of every backend against the reference-style pipeline.

Run from the repository root::

    python bench/model_latency.py --device cpu --threads 2 --json out.json

Rows (``variant``): ``reference-style`` — how the official Monodepth2 test script runs a model
(our own code from its description: one image at a time, PIL Lanczos resize on the CPU, eager
fp32, disparity upsampled, ``disp_to_depth``); then every backend of
:mod:`md2_ros.core.backends` this device supports (a skip reason where it cannot run); then
``auto``, the product's default, chosen exactly as the node and ``md2-depth`` choose it
(synthetic warm-up frames, the default time budget).

Columns: end-to-end ms (uint8 1242×375 host image(s) -> depth 1242×375 on the host; median and
p90), × reference (same run), network-only ms and GFLOP/s (the model's FLOP count / network
time) with % of this machine's measured matmul peak in the row's precision (bench/hw_peak.py),
``max_rel_err`` (max |d − d_eager| / max d_eager, end to end), and on the bundled KITTI frames
``abs_rel_vs_eager`` and the Eigen ``eigen_abs_rel`` vs velodyne. Weights are random unless
``--checkpoint`` is given: latency does not depend on them, accuracy vs velodyne does.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hw_peak import model_gflop, peaks  # noqa: E402
from kitti_accuracy import DEFAULT_DATA, accuracy, load_eval_set, predict_all  # noqa: E402
from md2_ros.core.backends import SPECS, BackendUnavailable, build_backend, max_rel_err, select_backend  # noqa: E402
from md2_ros.core.backends.torch_backends import example_input, private_disp_net  # noqa: E402
from md2_ros.core.geometry import disp_to_depth  # noqa: E402
from md2_ros.core.model import DepthModel, resolve_device  # noqa: E402

IMG_H, IMG_W = 375, 1242


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python bench/model_latency.py --device cpu --iters 5 --warmup 2")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    p.add_argument("--threads", type=int, default=0, help="torch / onnxruntime CPU threads (0: torch default)")
    p.add_argument("--iters", type=int, default=20, help="timed calls per row and batch size")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    p.add_argument("--num-layers", type=int, default=18, choices=(18, 34, 50))
    p.add_argument("--size", default="640x192", help="network WIDTHxHEIGHT (default 640x192, KITTI)")
    p.add_argument("--batch-sizes", default="1", help="comma-separated (default 1)")
    p.add_argument("--checkpoint", help="DepthModel checkpoint (default: random weights, seed 0)")
    p.add_argument("--no-compile", action="store_true", help="skip the compile row (minutes to build on small CPUs)")
    p.add_argument("--only", default="", help="comma-separated backend names to run (reference and eager always)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="KITTI raw folder with velodyne scans for accuracy")
    p.add_argument("--accuracy-frames", type=int, default=20, help="KITTI frames for the accuracy columns (0: none)")
    p.add_argument("--budget", type=float, default=60.0, help="auto's time budget, as the node's backend_budget_s")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True (CUDA)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes must be integers, got {args.batch_sizes!r}")
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    if args.iters < 1 or args.warmup < 0 or any(b < 1 for b in args.batch_sizes):
        p.error("--iters and batch sizes must be >= 1, --warmup >= 0")
    return args


def reference_style(model, device):
    """Monodepth2 test-script style (our own code): per image PIL Lanczos resize, eager fp32, no_grad."""
    from PIL import Image
    cfg = model.config

    def run(images):
        out = []
        with torch.no_grad():
            for img in images:
                small = np.asarray(Image.fromarray(img).resize((model.width, model.height), Image.LANCZOS))
                x = torch.from_numpy(small.copy()).permute(2, 0, 1).float().div(255.0)[None].to(device)
                disp = model.decoder(model.encoder(x))[("disp", 0)]
                disp = F.interpolate(disp, img.shape[:2], mode="bilinear", align_corners=False)
                out.append((disp_to_depth(disp, cfg.min_depth, cfg.max_depth)[1] * cfg.depth_scale)[0, 0].cpu().numpy())
        return out
    return run


def timed(fn, arg, warmup, iters, cuda) -> np.ndarray:
    for _ in range(warmup):
        fn(arg)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(arg)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


def build_rows(model, device, args) -> list[dict]:
    """[{variant, precision, predict, backend | None, skip}] in table order (auto last)."""
    rows = [{"variant": "reference-style", "precision": "fp32", "predict": reference_style(model, device)}]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    for name, spec in SPECS.items():
        if (only and name not in only and name != "eager") or (name == "compile" and args.no_compile):
            continue
        row = {"variant": name, "precision": spec.precision}
        t0 = time.monotonic()
        try:
            b = build_backend(name, model, device)
            row.update(predict=b.predict_batch, backend=b, detail=b.detail, build_s=time.monotonic() - t0)
        except BackendUnavailable as exc:
            row["skip"] = str(exc)
        print(f"  built {name}: {row.get('skip') or f'{time.monotonic() - t0:.1f} s'}", flush=True)
        rows.append(row)
    sel = select_backend(model, device, budget_s=args.budget)
    print(f"  {sel.summary()}", flush=True)
    rows.append({"variant": "auto", "precision": sel.backend.precision, "predict": sel.backend.predict_batch,
                 "backend": sel.backend, "chosen": sel.backend.name, "detail": sel.summary()})
    return rows


def measure_row(row, images, ref, gflop, peak, args, cuda) -> dict:
    """Timing, GFLOP/s and parity of one row at one batch size (``images``)."""
    out = {"variant": row["variant"], "batch": len(images), "precision": row["precision"]}
    if "skip" in row:
        return {**out, "skip": row["skip"]}
    depth = np.stack(row["predict"](images))
    t = timed(row["predict"], images, args.warmup, args.iters, cuda)
    out.update(end_to_end_ms=float(np.median(t)), p90_ms=float(np.percentile(t, 90)),
               max_rel_err=max_rel_err(depth, ref))
    b = row.get("backend")
    if b is not None:
        with torch.inference_mode():
            x = b.to_input(images)
            net_ms = float(np.median(timed(b.net, x, args.warmup, args.iters, cuda)))
        out.update(net_ms=net_ms, gflops=gflop * len(images) / net_ms * 1e3)
        if peak.get(row["precision"]):
            out["pct_of_peak"] = 100.0 * out["gflops"] / peak[row["precision"]]
    return out


def kitti_images(eval_set, batch):
    if eval_set:
        return [eval_set[i % len(eval_set)][0] for i in range(batch)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (IMG_H, IMG_W, 3), dtype=np.uint8) for _ in range(batch)]


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def print_table(results, desc):
    print(f"\n{desc}\n")
    print("| variant | B | e2e ms (median) | p90 ms | × reference | net ms | GFLOP/s | % peak | max rel err "
          "| abs_rel vs eager | Eigen abs_rel |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "skip" in r:
            print(f"| {r['variant']} | {r['batch']} | skipped: {r['skip']} | | | | | | | | |")
            continue
        name = f"auto → {r['chosen']}" if r["variant"] == "auto" else r["variant"]
        print(f"| {name} | {r['batch']} | {r['end_to_end_ms']:.1f} | {r['p90_ms']:.1f} | "
              f"{fmt(r.get('x_reference'), '.2f')} | {fmt(r.get('net_ms'), '.1f')} | {fmt(r.get('gflops'), '.0f')} | "
              f"{fmt(r.get('pct_of_peak'), '.0f')} | {r['max_rel_err']:.1e} | "
              f"{fmt(r.get('abs_rel_vs_eager'), '.1e')} | {fmt(r.get('eigen_abs_rel'), '.4f')} |")


def add_accuracy(rows, results, eval_set):
    """abs_rel vs eager and Eigen abs_rel per row (batch-1 predictions over the KITTI frames)."""
    eager = next(r for r in rows if r["variant"] == "eager")
    ref = predict_all(eager["predict"], eval_set)
    acc = {r["variant"]: accuracy(predict_all(r["predict"], eval_set), ref, eval_set)
           for r in rows if "skip" not in r}
    base = acc["eager"]["eigen_abs_rel"]
    for res in results:
        res.update(acc.get(res["variant"], {}))
        if "eigen_abs_rel" in res:
            res["eigen_abs_rel_change"] = res["eigen_abs_rel"] / base - 1.0


def print_auto_check(results):
    """auto's accuracy bound: its Eigen abs_rel within 1 % (relative) of eager fp32's."""
    for r in results:
        if r["variant"] == "auto" and "eigen_abs_rel_change" in r:
            ok = abs(r["eigen_abs_rel_change"]) <= 0.01
            print(f"B={r['batch']}: auto ({r['chosen']}) Eigen abs_rel {r['eigen_abs_rel']:.4f}, "
                  f"{100 * r['eigen_abs_rel_change']:+.3f} % vs eager fp32 (bound ±1 %: {'met' if ok else 'NOT met'});"
                  f" {fmt(r.get('x_reference'), '.2f')}× the reference-style pipeline end to end")


def describe(model, device, threads, pk, gflop):
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU {platform.processor() or platform.machine()}, {threads} torch threads"
    peak = ", ".join(f"{k} {v:.0f}" for k, v in pk.items() if v)
    return (f"{where}, torch {torch.__version__}, ResNet{model.config.num_layers} {model.width}×{model.height}, "
            f"{gflop:.2f} GFLOP per image; matmul peak GFLOP/s: {peak}; "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = (DepthModel.load(args.checkpoint, device) if args.checkpoint
             else DepthModel(args.num_layers, args.height, args.width).setup_inference(device))
    gflop = model_gflop(private_disp_net(model, device), example_input(model, device))
    pk = peaks(device)
    desc = describe(model, device, torch.get_num_threads(), pk, gflop)
    print(desc, flush=True)
    eval_set = load_eval_set(args.data, args.accuracy_frames) if args.accuracy_frames else []
    rows = build_rows(model, device, args)
    results = []
    for batch in args.batch_sizes:
        images = kitti_images(eval_set, batch)
        ref = np.stack(rows[1]["predict"](images))
        for row in rows:
            results.append(measure_row(row, images, ref, gflop, pk, args, device.type == "cuda"))
            res = results[-1]
            print(f"  B={batch} {row['variant']}: " + (f"{res['end_to_end_ms']:.1f} ms" if "end_to_end_ms" in res
                                                        else f"skipped ({res['skip']})"), flush=True)
        base = results[-len(rows)].get("end_to_end_ms")
        for r in results[-len(rows):]:
            if "end_to_end_ms" in r and base:
                r["x_reference"] = base / r["end_to_end_ms"]
    for r, row in zip(results, rows * len(args.batch_sizes)):
        if "chosen" in row:
            r["chosen"] = row["chosen"]
    if eval_set:
        add_accuracy(rows, results, eval_set)
    print_table(results, desc)
    print_auto_check(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": desc, "command": " ".join(sys.argv), "peak_gflops": pk,
                                               "gflop_per_image": gflop, "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
