"""Ground-truth depth maps for KITTI raw frames, from velodyne scans.

    python -m train.export_gt_depth --data_path KITTI_ROOT --split eigen --out gt_depths.npz

The standard KITTI raw procedure (as in the KITTI devkit and the Eigen-split
evaluations of every self-supervised depth paper):

1. read the scan (float32 x, y, z, reflectance), keep the points in front of
   the car (velodyne x >= 0) and replace the reflectance by 1 (homogeneous w);
2. project with ``P_rect_0c · R_rect_00 · T_velo→cam`` (R_rect_00 padded to 4×4,
   ``c`` the camera: 2 = left colour, 3 = right colour);
3. divide by the third coordinate (the depth along the rectified optical axis);
4. pixel coordinates ``u = round(x) - 1``, ``v = round(y) - 1``: the devkit's
   convention, inherited from its 1-based MATLAB code; we keep it so that our GT
   is pixel-for-pixel the one behind the published numbers;
5. keep pixels inside the image with depth > 0; where several points hit one
   pixel keep the nearest (minimum depth). Pixels without a point are 0.

The image size comes from ``S_rect_0c`` in ``calib_cam_to_cam.txt`` (or the
image file when that key is missing).

For ``eigen_benchmark`` the ground truth is the KITTI depth benchmark's
improved maps (``<drive>/proj_depth/groundtruth/image_0c/<frame>.png``,
uint16 / 256 m), as in the published evaluations; ``--gt_source velodyne``
forces the raw projection instead.

Output (`.npz`, loads with ``np.load(path, allow_pickle=False)``):
``depth_0000``, ``depth_0001``, … float32 H×W metres (0 = no ground truth),
``files`` (str array, one ``"<date>/<drive> <frame:010d> <l|r>"`` per map, in
split order), ``cams`` (int array), ``split`` and ``source`` (0-d str).
Use `load_gt_depths` to read it back.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

from md2_ros.io.kitti import load_image_size, read_split_file, velo_to_image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE_SPLITS = pathlib.Path(__file__).resolve().parent / "datasets" / "splits"
SHARED_SPLITS = pathlib.Path(os.environ.get("MD2_SHARED", REPO_ROOT.parent / "shared")) / "data" / "kitti_splits"


# --------------------------------------------------------------------------- calibration
def velo_to_image_matrix(calib_dir, cam: int = 2) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The 3×4 matrix ``P_rect_0c · R_rect_00 · T_velo→cam`` for one drive date, and the image size.

    Args:
        calib_dir: folder with ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt``.
        cam: 2 (left colour) or 3 (right colour); 0/1 (grey) also work.

    Returns:
        (P 3×4 float64, (height, width) from ``S_rect_0c``, or None when that key is absent).
    """
    p = velo_to_image(calib_dir, cam)
    try:
        width, height = load_image_size(calib_dir, cam)
    except KeyError:
        return p, None
    return p, (height, width)


# --------------------------------------------------------------------------- projection
def load_velodyne(path) -> np.ndarray:
    """Read a KITTI velodyne ``.bin`` scan -> (N, 4) float32 x, y, z, reflectance."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"velodyne scan not found: {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise ValueError(f"{path}: {raw.size} floats is not a multiple of 4 (x, y, z, r)")
    return raw.reshape(-1, 4)


def project_to_depth(points: np.ndarray, p_velo_to_im: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sparse depth map from velodyne points (steps 1 and 3–5 of the module docstring).

    Args:
        points: (N, 3 or 4) velodyne points (x forward, y left, z up).
        p_velo_to_im: 3×4 projection from velodyne to rectified image pixels.
        height, width: image size.

    Returns:
        float32 (height, width) depth in metres, 0 where no point projects.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, 3+), got {points.shape}")
    p = np.asarray(p_velo_to_im, dtype=np.float64)
    if p.shape != (3, 4):
        raise ValueError(f"projection matrix must be 3×4, got {p.shape}")
    front = points[points[:, 0] >= 0]
    homo = np.ones((front.shape[0], 4))
    homo[:, :3] = front[:, :3]
    im = homo @ p.T  # (N, 3)
    depth = im[:, 2]
    ok = depth > 0
    im, depth = im[ok], depth[ok]
    u = np.round(im[:, 0] / depth).astype(np.int64) - 1
    v = np.round(im[:, 1] / depth).astype(np.int64) - 1
    inside = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, depth = u[inside], v[inside], depth[inside]

    flat = np.full(height * width, np.inf)
    np.minimum.at(flat, v * width + u, depth)  # nearest point wins on collisions
    flat[np.isinf(flat)] = 0.0
    return flat.reshape(height, width).astype(np.float32)


def _image_shape(image_path: pathlib.Path) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"cannot read image {image_path} (needed for the image size)")
    return img.shape[:2]


def _find_image(drive_dir: pathlib.Path, cam: int, frame: int) -> pathlib.Path:
    for ext in (".png", ".jpg"):
        candidate = drive_dir / f"image_0{cam}" / "data" / f"{frame:010d}{ext}"
        if candidate.is_file():
            return candidate
    return drive_dir / f"image_0{cam}" / "data" / f"{frame:010d}.png"


def velodyne_depth(data_path, folder: str, frame: int, cam: int = 2) -> np.ndarray:
    """Depth map of one KITTI raw frame from its velodyne scan (H×W float32 metres)."""
    drive_dir = pathlib.Path(data_path) / folder
    calib_dir = drive_dir.parent
    p, shape = velo_to_image_matrix(calib_dir, cam)
    if shape is None:
        shape = _image_shape(_find_image(drive_dir, cam, frame))
    scan = load_velodyne(drive_dir / "velodyne_points" / "data" / f"{frame:010d}.bin")
    return project_to_depth(scan, p, *shape)


def benchmark_depth(data_path, folder: str, frame: int, cam: int = 2) -> np.ndarray:
    """Improved KITTI depth-benchmark GT (``proj_depth/groundtruth``) as H×W float32 metres."""
    import cv2

    path = pathlib.Path(data_path) / folder / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{frame:010d}.png"
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(
            f"benchmark depth map not found: {path} (unpack the KITTI depth benchmark's "
            "annotated maps into the raw drive folders, or use --gt_source velodyne)")
    if img.dtype != np.uint16:
        raise ValueError(f"{path}: expected a 16-bit PNG, got {img.dtype}")
    return img.astype(np.float32) / 256.0


# --------------------------------------------------------------------------- splits
def resolve_split_file(split: str) -> pathlib.Path:
    """A split name (``eigen``, ``eigen_benchmark``, …) or a path -> the split's test list.

    Names are looked up in ``train/datasets/splits/<name>/test_files.txt``, then
    in the shared ``kitti_splits/<name>/test_files.txt``; anything else is a path.
    """
    for root in (PACKAGE_SPLITS, SHARED_SPLITS):
        candidate = root / split / "test_files.txt"
        if candidate.is_file():
            return candidate
    path = pathlib.Path(split)
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"split {split!r} is neither a known split name (looked in {PACKAGE_SPLITS} and {SHARED_SPLITS}) "
        "nor an existing file")


def all_scanned_frames(data_path) -> list[tuple[str, int, str]]:
    """Every frame with a velodyne scan under ``<data_path>/<date>/<drive>/`` (side 'l')."""
    root = pathlib.Path(data_path)
    scans = sorted(root.glob("*/*/velodyne_points/data/*.bin"))
    if not scans:
        raise FileNotFoundError(f"no velodyne scans under {root}/<date>/<drive>/velodyne_points/data/")
    return [(scan.parents[2].relative_to(root).as_posix(), int(scan.stem), "l") for scan in scans]


def split_entries(split: str, data_path) -> list[tuple[str, int, str]]:
    """Entries of `split` ('all' = every scanned frame under `data_path`)."""
    return all_scanned_frames(data_path) if split == "all" else read_split_file(resolve_split_file(split))


def format_entry(folder: str, frame: int, side: str) -> str:
    return f"{folder} {frame:010d} {side}"


# --------------------------------------------------------------------------- npz I/O
def save_gt_depths(path, depths, files, cams, split: str, source: str) -> None:
    """Write GT maps in the pickle-free layout described in the module docstring."""
    if not (len(depths) == len(files) == len(cams)):
        raise ValueError("depths, files and cams must have the same length")
    arrays = {f"depth_{i:04d}": np.asarray(d, dtype=np.float32) for i, d in enumerate(depths)}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, files=np.array(files, dtype=str), cams=np.array(cams, dtype=np.int64),
                        split=np.array(split), source=np.array(source), **arrays)
    os.replace(tmp, path)


def load_gt_depths(path) -> tuple[list[np.ndarray], list[str], dict]:
    """Read a GT file written by this module -> (depth maps, file lines, meta).

    Also accepts a plain stacked ``data`` array (N×H×W); pickled object arrays
    (the official Monodepth2 ``gt_depths.npz``) are refused: re-export instead.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = sorted(k for k in z.files if k.startswith("depth_"))
            if keys:
                depths = [z[k] for k in keys]
            elif "data" in z.files:
                depths = list(z["data"])
            else:
                raise ValueError(f"{path} has neither depth_XXXX keys nor a 'data' array")
            files = [str(f) for f in z["files"]] if "files" in z.files else []
            meta = {k: z[k].item() for k in ("split", "source") if k in z.files}
            meta["cams"] = z["cams"].tolist() if "cams" in z.files else []
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{path} stores pickled objects (official Monodepth2 format?); "
                             "re-export it with `python -m train.export_gt_depth`") from err
        raise
    if files and len(files) != len(depths):
        raise ValueError(f"{path}: {len(depths)} depth maps but {len(files)} file names")
    return depths, files, meta


# --------------------------------------------------------------------------- CLI
def export(data_path, entries, cam="auto", source="velodyne", progress=True):
    """Depth maps for `entries` -> (depths, file lines, cams)."""
    from tqdm import tqdm

    depths, files, cams = [], [], []
    for folder, frame, side in tqdm(entries, desc="export GT", unit="frame", disable=not progress):
        c = (2 if side == "l" else 3) if cam == "auto" else int(cam)
        fn = benchmark_depth if source == "benchmark" else velodyne_depth
        depths.append(fn(data_path, folder, frame, c))
        files.append(format_entry(folder, frame, side))
        cams.append(c)
    return depths, files, cams


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m train.export_gt_depth",
        description="Export KITTI ground-truth depth maps (velodyne projection, nearest point per pixel) to .npz.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m train.export_gt_depth --data-path /data/kitti_raw --split eigen --out gt_eigen.npz\n\nexit status: 0 ok, 1 an input cannot be used (the message names it), 2 usage error.")
    ap.add_argument("--data-path", "--data_path", required=True,
                    help="KITTI raw root holding <date>/calib_*.txt and <date>/<drive>_sync/ folders.")
    ap.add_argument("--split", default="eigen",
                    help="Split name (eigen, eigen_benchmark, ...), a path to a split .txt, or 'all' for every "
                         "frame with a velodyne scan under --data_path (default: eigen).")
    ap.add_argument("--cam", default="auto", choices=["auto", "0", "1", "2", "3"],
                    help="Camera to project into: 2 = left colour, 3 = right colour; 'auto' (default) takes "
                         "2 for split lines marked 'l' and 3 for 'r'.")
    ap.add_argument("--gt-source", "--gt_source", default="auto", choices=["auto", "velodyne", "benchmark"],
                    help="'velodyne' projects the raw scans; 'benchmark' reads the improved KITTI depth-benchmark "
                         "maps (proj_depth/groundtruth); 'auto' (default) uses benchmark for eigen_benchmark only.")
    ap.add_argument("--out", default=None,
                    help="Output .npz path (default: gt_depths_<split>.npz in the current folder).")
    ap.add_argument("--quiet", action="store_true", help="Hide the progress bar.")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    source = args.gt_source
    if source == "auto":
        source = "benchmark" if args.split == "eigen_benchmark" else "velodyne"
    try:
        entries = split_entries(args.split, args.data_path)
        depths, files, cams = export(args.data_path, entries, args.cam, source, progress=not args.quiet)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = args.out or f"gt_depths_{pathlib.Path(args.split).stem}.npz"
    save_gt_depths(out, depths, files, cams, split=args.split, source=source)
    valid = [int((d > 0).sum()) for d in depths]
    print(f"wrote {len(depths)} depth maps ({source}, {depths[0].shape[0]}x{depths[0].shape[1]}, "
          f"{np.mean(valid):.0f} valid pixels per frame on average) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
