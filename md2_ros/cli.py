"""``md2-depth``: offline depth inference on an image, a folder, a video or a ROS bag topic.

Writes, per frame, into ``--out-dir``::

    depth_npy/<name>.npy      float32 H×W depth in metres (relative units for a mono model without a scale)
    depth_png/<name>.png      uint16 H×W millimetres, 0 = invalid, clipped at 65.535 m
    depth_color/<name>.png    colorized inverse depth (BGR picture, near = bright)
    points_ply/<name>.ply     coloured point cloud in the optical frame (needs intrinsics)

and optionally a rosbag2 (``--bag-out``) with depth, camera_info, PointCloud2 and the input images.
Run ``md2-depth --help`` (or ``python -m md2_ros.cli --help``) for the options.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from .core.ground_scale import GroundParams
from .core.metric_scale import MetricScaler
from .io.clouds import depth_to_points, write_ply
from .io.depth import COLORMAPS, colorize_depth, depth_to_mm_png
from .io.frames import InputError, open_source
from .io.intrinsics import intrinsics_from_values, load_intrinsics_file, scale_intrinsics

log = logging.getLogger("md2_ros.cli")
FORMATS = ("npy", "png", "color", "ply")
SUBDIRS = {"npy": "depth_npy", "png": "depth_png", "color": "depth_color", "ply": "points_ply"}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, examples kept as written."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="md2-depth", formatter_class=_Formatter,
        description="Run a Monodepth2 depth model over an image, a folder of images, a video file or an image "
                    "topic of a ROS bag, and write depth as .npy, 16-bit PNG (mm), colorized PNG and .ply clouds.",
        epilog="Intrinsics for .ply/PointCloud2 come from --fx/--fy/--cx/--cy, else --intrinsics, else the bag's "
               "CameraInfo; without any, clouds are skipped. A mono checkpoint predicts relative depth: give "
               "--depth-scale to get metres.\n\nexamples:\n"
               "  md2-depth frame.png --checkpoint depth.safetensors -o out\n"
               "  md2-depth drive.mcap --checkpoint depth.safetensors --topic /cam/image_raw --bag-out depth.mcap\n\n"
               "exit status: 0 ok, 1 the input or checkpoint cannot be used (the message names it), 2 usage error.")
    p.add_argument("input", help="Image file, folder of images, video file (.avi, .mp4, ...), or bag "
                                 "(.mcap/.db3 file, rosbag2 folder, or ROS 1 .bag).")
    p.add_argument("--checkpoint", required=True,
                   help="Depth model: a DepthModel.save() safetensors file or an official Monodepth2 folder "
                        "(encoder.pth + depth.pth).")
    p.add_argument("-o", "--out-dir", default="md2_depth_out", help="Folder for the per-frame outputs (created).")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help="Comma-separated outputs to write per frame, from: npy, png, color, ply.")
    p.add_argument("--device", default="auto", help="Inference device: auto (CUDA if available), cpu, cuda or cuda:N.")
    p.add_argument("--fp16", action="store_true", help="Half-precision inference (CUDA only; ignored on CPU).")
    p.add_argument("--backend", default="auto",
                   help="Inference backend: auto (the fastest that matches eager fp32 on this device, chosen at "
                        "start-up and logged) or eager, bf16, fp16, onnxruntime, torchscript, int8, tensorrt, compile.")
    p.add_argument("--backend-budget", type=float, default=60.0,
                   help="Seconds auto may spend building and checking candidates (compile needs ~90 on a CPU).")
    p.add_argument("--batch-size", type=int, default=4, help="Frames per forward pass (same-size frames are batched).")
    p.add_argument("--depth-scale", type=positive_finite, default=None,
                   help="Factor on top of the checkpoint's own scale (the node's depth_scale means the same); "
                        "a mono model needs it to give metres.")
    p.add_argument("--camera-height", type=float, default=0.0,
                   help="Camera height above a flat ground in metres (KITTI 1.65): scale each frame so the ground "
                        "plane fitted in the lower image band lies at this height (any model; needs intrinsics; "
                        "replaces --depth-scale). 0 = off.")
    p.add_argument("--ground-band", type=float, default=0.6,
                   help="Top of the image band searched for the ground, as a fraction of the height.")
    p.add_argument("--scale-window", type=int, default=15,
                   help="Frames in the running median of the camera-height scale.")
    p.add_argument("--max-frames", type=int, default=None, help="Stop after this many processed frames.")
    p.add_argument("--every", type=int, default=1, help="Process every N-th frame of the input (1 = all).")
    p.add_argument("--topic", default=None,
                   help="Bag image topic (sensor_msgs/Image or CompressedImage); needed when the bag has several.")
    p.add_argument("--camera-info-topic", default=None,
                   help="Bag CameraInfo topic; default: the image topic's sibling camera_info, or the only one.")
    p.add_argument("--intrinsics", default=None,
                   help="YAML with fx, fy, cx, cy (optional width, height) or a ROS camera_info YAML.")
    for name in ("fx", "fy", "cx", "cy"):
        p.add_argument(f"--{name}", type=float, default=None,
                       help=f"Pinhole {name} in pixels of the input image (give all four together).")
    p.add_argument("--colormap", default="magma", choices=sorted(COLORMAPS),
                   help="OpenCV colormap for the colorized inverse-depth pictures.")
    p.add_argument("--ply-ascii", action="store_true", help="Write ASCII PLY instead of binary little-endian.")
    p.add_argument("--bag-out", default=None,
                   help="Also write a rosbag2 (MCAP) folder with depth, camera_info, PointCloud2 and the input "
                        "images; 'out.mcap' gives folder 'out' holding out.mcap + metadata.yaml.")
    p.add_argument("--bag-prefix", default="/md2",
                   help="Topic prefix in --bag-out: <prefix>/depth, <prefix>/depth/camera_info, <prefix>/points.")
    p.add_argument("--frame-id", default="camera_optical_frame",
                   help="frame_id for outputs of non-bag inputs (bag inputs keep the image header's frame_id).")
    p.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    return p


def positive_finite(text: str) -> float:
    """argparse type: a number > 0 and finite (inf or NaN would write all-inf/NaN depth)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _parse_formats(text: str) -> set[str]:
    chosen = {f.strip() for f in text.split(",") if f.strip()}
    unknown = chosen - set(FORMATS)
    if unknown or not chosen:
        raise ValueError(f"--formats: unknown or empty {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    return chosen


def _user_intrinsics(args) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    if any(v is not None for v in (args.fx, args.fy, args.cx, args.cy)):
        return intrinsics_from_values(args.fx, args.fy, args.cx, args.cy), None
    if args.intrinsics:
        return load_intrinsics_file(args.intrinsics)
    return None, None


def _check_args(args) -> None:
    for name, low in (("batch_size", 1), ("every", 1), ("max_frames", 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if not args.backend_budget >= 0:
        raise ValueError(f"--backend-budget must be >= 0, got {args.backend_budget}")
    if not (args.camera_height >= 0 and 0 <= args.ground_band < 1 and args.scale_window >= 1):
        raise ValueError("need --camera-height >= 0, 0 <= --ground-band < 1 and --scale-window >= 1, got "
                         f"{args.camera_height}, {args.ground_band}, {args.scale_window}")


def _write_outputs(out: Path, formats: set[str], name: str, depth: np.ndarray, rgb: np.ndarray,
                   K: np.ndarray | None, colormap: str, ply_binary: bool) -> None:
    def imwrite(path: Path, img: np.ndarray) -> None:
        if not cv2.imwrite(str(path), img):
            raise OSError(f"could not write {path}")

    if "npy" in formats:
        np.save(out / SUBDIRS["npy"] / f"{name}.npy", depth.astype(np.float32))
    if "png" in formats:
        imwrite(out / SUBDIRS["png"] / f"{name}.png", depth_to_mm_png(depth))
    if "color" in formats:
        imwrite(out / SUBDIRS["color"] / f"{name}.png", colorize_depth(depth, colormap))
    if "ply" in formats and K is not None:
        write_ply(out / SUBDIRS["ply"] / f"{name}.ply", depth_to_points(depth, K), rgb, binary=ply_binary)


def _load_backend(args):
    """(depth backend with ``predict_batch``, model): --depth-scale applied on top of the checkpoint's scale."""
    from .core.backends import check_name, make_backend  # torch is imported only when there is work to do
    from .core.model import DepthModel

    check_name(args.backend)
    model = DepthModel.load(args.checkpoint, device=args.device, fp16=args.fp16)
    if args.depth_scale is not None and not args.camera_height:
        # a factor on top of the checkpoint's own scale, as the node's depth_scale
        model.config.depth_scale = float(model.config.depth_scale) * float(args.depth_scale)
    elif not model.metric and not args.camera_height:
        log.warning("the checkpoint is a mono (relative-scale) model: depths are not metres; "
                    "pass --camera-height or --depth-scale to scale them")
    say = lambda text: print(f"md2-depth: {text}", file=sys.stderr)  # noqa: E731
    return make_backend(args.backend, model, info=say, warn=say, budget_s=args.backend_budget), model


class _Job:
    """One md2-depth run: frames in batches through the backend, each depth written in every format asked."""

    def __init__(self, args, source, backend, model, bag):
        self.args, self.source, self.backend, self.bag = args, source, backend, bag
        self.formats = _parse_formats(args.formats)
        self.user_K, self.user_size = _user_intrinsics(args)
        self.scaler = MetricScaler(args.camera_height, 1.0, model.metric, model.scale_source,
                                   GroundParams(band=(args.ground_band, 1.0)), args.scale_window)
        self.sources: dict = {}
        self.out = Path(args.out_dir)
        for f in self.formats:
            (self.out / SUBDIRS[f]).mkdir(parents=True, exist_ok=True)
        self.done, self.warned_no_K, self.batch = 0, False, []

    def intrinsics(self, frame, width: int, height: int):
        if self.user_K is not None:
            return scale_intrinsics(self.user_K, self.user_size, (width, height)) if self.user_size else self.user_K
        if frame.K is None and ("ply" in self.formats or self.bag is not None) and not self.warned_no_K:
            self.warned_no_K = True
            invalid = getattr(self.source, "invalid_info", None)
            why = (f"the input's CameraInfo is invalid ({invalid})" if invalid else
                   "no intrinsics (no CameraInfo in the input, no --intrinsics, no --fx/--fy/--cx/--cy)")
            print(f"md2-depth: {why}: skipping point clouds (.ply and PointCloud2)", file=sys.stderr)
        return frame.K

    def emit(self, frame, depth) -> None:
        args, bag = self.args, self.bag
        K = self.intrinsics(frame, depth.shape[1], depth.shape[0])
        if args.camera_height:
            depth, rep = self.scaler.apply(depth, K)
            self.sources[rep.source] = self.sources.get(rep.source, 0) + 1
            if rep.note and rep.source != "camera_height":
                log.warning("%s: %s", frame.name, rep.note)
        _write_outputs(self.out, self.formats, frame.name, depth, frame.rgb, K, args.colormap, not args.ply_ascii)
        if bag is not None:
            frame_id = frame.frame_id if frame.log_ns is not None else args.frame_id
            for topic, msgtype, t, data in frame.passthrough:
                bag.write_raw(topic, msgtype, t, data)
            if not frame.passthrough:
                bag.write_source_image(frame.rgb, K, frame.stamp_ns, frame_id)
            bag.write_depth(depth, frame.rgb, K, frame.stamp_ns, frame_id, frame.log_ns)
        self.done += 1

    def flush(self, bar) -> None:
        if self.batch:
            for frame, depth in zip(self.batch, self.backend.predict_batch([f.rgb for f in self.batch])):
                self.emit(frame, depth)
                bar.update(1)
            self.batch.clear()

    def process(self) -> int:
        from tqdm import tqdm

        args, total = self.args, self.source.total
        if args.max_frames is not None and total is not None:
            total = min(total, args.max_frames)
        with tqdm(total=total, unit="frame", disable=args.no_progress, desc="md2-depth") as bar:
            for frame in self.source:
                if args.max_frames is not None and self.done + len(self.batch) >= args.max_frames:
                    break
                if self.batch and self.batch[0].rgb.shape != frame.rgb.shape:
                    self.flush(bar)
                self.batch.append(frame)
                if len(self.batch) >= args.batch_size:
                    self.flush(bar)
            self.flush(bar)
        for topic, msgtype, t, data in getattr(self.source, "trailing", ()) if self.bag is not None else ():
            self.bag.write_raw(topic, msgtype, t, data)  # CameraInfo after the last image
        return self.done


def run(args) -> int:
    """Process the input described by parsed ``args``; returns the number of frames written."""
    _check_args(args)
    _parse_formats(args.formats)
    _user_intrinsics(args)
    source = open_source(args.input, args.topic, args.camera_info_topic, args.every)
    backend, model = _load_backend(args)
    bag = None
    if args.bag_out:
        from .io.bags import DepthBagWriter
        bag = DepthBagWriter(args.bag_out, prefix=args.bag_prefix).__enter__()
    try:
        job = _Job(args, source, backend, model, bag)
        done = job.process()
    finally:
        if bag is not None:
            bag.__exit__(*sys.exc_info())  # renamed from .partial only when no error is in flight
    if done == 0:
        raise InputError(f"{args.input}: no frames could be processed")
    skipped = f" ({source.bad} unreadable, skipped)" if getattr(source, "bad", 0) else ""
    print(f"md2-depth: {done} frame(s) from {args.input} ({source.kind}){skipped} -> "
          + ", ".join(str(job.out / SUBDIRS[f]) for f in FORMATS if f in job.formats))
    if job.sources:
        value = job.scaler.smoother.value
        print(f"md2-depth: scale per frame from {job.sources} (camera height {args.camera_height:g} m; last ground "
              f"scale {value if value is not None else 'unset'})")
    if bag is not None:
        topics = ", ".join(f"{t} ({n})" for t, n in sorted(bag.counts.items()))
        print(f"md2-depth: bag written to {bag.path} ({topics})")
    return done


def main(argv=None) -> int:
    """Console entry point; returns the process exit code (0 ok, 1 input/model error, 2 usage error)."""
    logging.basicConfig(level=logging.WARNING, format="md2-depth: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as exc:  # InputError, CheckpointError, bad YAML, unwritable output ...
        print(f"md2-depth: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("md2-depth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
