"""Point clouds out: depth -> points in the optical frame, the one PointCloud2 byte packing, PLY files.

Depth is H×W float32 metres along the optical z axis; non-finite or non-positive values are invalid.
Points are in the camera's optical frame (REP 103: x right, y down, z forward). A cloud is organized
h×w, little-endian float32 x, y, z, rgb at offsets 0/4/8/12 (``POINT_STEP`` 16, row_step 16·w), rgb holding
the bits 0x00RRGGBB (the PCL / rviz convention). The node's ``~/points``, the CLI's ``--bag-out`` and PLY
files all come from here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CLOUD_FIELDS", "POINT_STEP", "valid_mask", "depth_to_points", "pack_rgb_float", "pack_cloud",
           "unpack_cloud", "write_ply", "read_ply"]

CLOUD_FIELDS = (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))
POINT_STEP = 16


def valid_mask(depth: np.ndarray) -> np.ndarray:
    """H×W bool: finite and > 0."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


def depth_to_points(depth: np.ndarray, K: np.ndarray, stride: int = 1, min_range: float = 0.0,
                    max_range: float = float("inf"), out: np.ndarray | None = None) -> np.ndarray:
    """Back-project H×W depth through 3×3 pixel intrinsics ``K`` -> h×w×3 float32 (x, y, z).

    Pixel (u, v) (u = column, pixel centres at integers) sees z · K⁻¹ [u, v, 1]ᵀ in the optical frame
    (z forward, x right, y down). Sampled every ``stride`` pixels from (0, 0): h = ceil(H/stride).
    Points whose depth is non-finite, ≤ 0 or outside [min_range, max_range] are NaN.
    ``out``: optional h×w×C float32 array (C ≥ 3) whose first three channels receive x, y, z.
    The one implementation behind the node's clouds, the CLI's PLY files and ``--bag-out``.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be H×W, got shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape[0] < 2 or K.shape[1] < 3:
        raise ValueError(f"intrinsics must be 3×3, got {K.shape}")
    fx, skew, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    if not (np.isfinite([fx, fy, cx, cy, skew]).all() and fx > 0 and fy > 0):
        raise ValueError(f"invalid intrinsics: fx={fx}, fy={fy}, cx={cx}, cy={cy}")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    stride = int(stride)
    d = np.asarray(depth[::stride, ::stride], dtype=np.float32)
    u = np.arange(0, depth.shape[1], stride, dtype=np.float64)
    v = np.arange(0, depth.shape[0], stride, dtype=np.float64)
    yn = ((v - cy) / fy).astype(np.float32)[:, None]
    xn = ((u[None, :] - cx - skew * (v[:, None] - cy) / fy) / fx).astype(np.float32)
    with np.errstate(invalid="ignore"):
        valid = valid_mask(d) & (d >= min_range) & (d <= max_range)
    if out is None:
        out = np.empty(d.shape + (3,), np.float32)
    z = out[..., 2]
    np.copyto(z, d)
    z[~valid] = np.nan
    np.multiply(xn, z, out=out[..., 0])
    np.multiply(yn, z, out=out[..., 1])
    return out[..., :3]


def pack_rgb_float(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB -> H×W float32 whose bits are 0x00RRGGBB (PCL / rviz convention)."""
    c = rgb.astype(np.uint32)
    return ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(np.float32)


def pack_cloud(points: np.ndarray, rgb: np.ndarray | None = None) -> bytes:
    """THE cloud packing: h×w×3 float32 points (+ h×w×3 uint8 RGB, else black) -> PointCloud2 ``data``
    bytes: little-endian x, y, z, rgb float32 at offsets 0/4/8/12, point_step 16, row-major (row_step 16·w)."""
    h, w = points.shape[:2]
    if rgb is not None and (rgb.shape != (h, w, 3) or rgb.dtype != np.uint8):
        raise ValueError(f"rgb must be {(h, w, 3)} uint8, got {rgb.shape} {rgb.dtype}")
    out = np.empty((h, w, 4), "<f4")
    out[..., :3] = points
    out[..., 3] = pack_rgb_float(rgb) if rgb is not None else 0.0
    return out.tobytes()


def unpack_cloud(data, height: int, width: int, big_endian: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `pack_cloud`: bytes -> (h×w×3 float32 xyz, h×w×3 uint8 RGB); ValueError on a size mismatch."""
    buf = np.frombuffer(memoryview(data), np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    if buf.size != POINT_STEP * height * width:
        raise ValueError(f"cloud data length {buf.size} != point_step·width·height = {POINT_STEP * height * width}")
    raw = buf.view(">f4" if big_endian else "<f4").reshape(height, width, 4)
    bits = raw[..., 3].astype(np.float32).view(np.uint32)
    rgb = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)
    return raw[..., :3].astype(np.float32), rgb


def write_ply(path, points: np.ndarray, colors: np.ndarray | None = None, binary: bool = True) -> int:
    """Write the finite points (N×3 or H×W×3 float) with optional uint8 RGB colours as a PLY file.

    Vertex properties: float x, y, z and (with colours) uchar red, green, blue. Returns the number of
    points written (non-finite points are dropped).
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    keep = np.isfinite(pts).all(1)
    pts = pts[keep]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    props = ["property float x", "property float y", "property float z"]
    if colors is not None:
        cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)[keep]
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        props += ["property uchar red", "property uchar green", "property uchar blue"]
    rec = np.empty(len(pts), dtype=fields)
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        rec["red"], rec["green"], rec["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    fmt = "binary_little_endian" if binary else "ascii"
    header = "\n".join(["ply", f"format {fmt} 1.0", "comment md2_ros depth (optical frame: x right, y down, "
                        "z forward; metres)", f"element vertex {len(pts)}", *props, "end_header"]) + "\n"
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header.encode("ascii"))
        if binary:
            f.write(rec.tobytes())
        else:
            fmt_row = ["%.7g"] * 3 + (["%d"] * 3 if colors is not None else [])
            np.savetxt(f, np.column_stack([rec[n].astype(np.float64) for n, _ in fields]), fmt=fmt_row)
    tmp.replace(path)
    return len(pts)


def read_ply(path) -> tuple[dict, np.ndarray]:
    """Read a PLY written by :func:`write_ply`: (header info {format, count, properties}, structured array)."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a PLY file")
    lines = data[:end].decode("ascii").splitlines()
    fmt = next(l.split()[1] for l in lines if l.startswith("format"))
    count = next(int(l.split()[2]) for l in lines if l.startswith("element vertex"))
    props = [(l.split()[2], {"float": "<f4", "uchar": "u1"}[l.split()[1]]) for l in lines if l.startswith("property")]
    body = data[end + len(b"end_header\n"):]
    if fmt == "binary_little_endian":
        arr = np.frombuffer(body, dtype=props, count=count)
    else:
        table = np.loadtxt(body.decode("ascii").splitlines(), ndmin=2) if count else np.zeros((0, len(props)))
        arr = np.empty(count, dtype=props)
        for i, (name, _) in enumerate(props):
            arr[name] = table[:, i]
    return {"format": fmt, "count": count, "properties": [n for n, _ in props]}, arr
