"""``md2-export``: a depth checkpoint -> TorchScript or ONNX (``image -> depth``), verified against PyTorch.

Exit status: 0 written (and verified), 1 the checkpoint or export failed (the message names the file),
2 usage error.
"""
from __future__ import annotations

import argparse
import sys

from .core.export import FORMATS, VERIFY_ATOL, ExportError, export, verify_export

EXAMPLES = """examples:
  md2-export out/demo/train/depth.safetensors --format torchscript --out depth.pt
  md2-export mono_640x192/ --format onnx --out depth.onnx     # an official Monodepth2 folder; needs onnx
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="md2-export", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Export a depth checkpoint to TorchScript or ONNX (image -> depth).")
    p.add_argument("checkpoint", help="DepthModel.save() file (.safetensors) or an official Monodepth2 folder")
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt", help="torchscript or onnx")
    p.add_argument("--out", required=True, help="output file (.pt / .onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--static-batch", action="store_true", help="ONNX: fix the batch size to 1")
    p.add_argument("--no-verify", action="store_true", help="skip comparing the export with eager PyTorch")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .core.checkpoint import CheckpointError
    from .core.model import load_model
    try:
        model = load_model(args.checkpoint)
        kwargs = {"opset": args.opset, "dynamic_batch": not args.static_batch} if args.fmt == "onnx" else {}
        out = export(model, args.out, args.fmt, **kwargs)
        err = None if args.no_verify else verify_export(model, out, args.fmt)
    except (CheckpointError, ExportError, ValueError, TypeError, OSError) as exc:
        print(f"md2-export: error: {exc}", file=sys.stderr)
        return 1
    cfg = model.config
    print(f"wrote {out} ({args.fmt}, input image B×3×{cfg.height}×{cfg.width} in [0,1], output depth B×1×"
          f"{cfg.height}×{cfg.width}, depth_scale {cfg.depth_scale}, metric {cfg.metric})")
    if err is not None:
        print(f"verified: max |export − eager| / max(1, max depth) = {err:.3g}")
        if not err <= VERIFY_ATOL:
            print(f"md2-export: error: {out} differs from the eager model by more than {VERIFY_ATOL}", file=sys.stderr)
            return 1
    elif not args.no_verify:
        print("not verified: onnxruntime is not installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
