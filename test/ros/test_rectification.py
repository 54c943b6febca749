"""A distorted camera: the node rectifies image_raw with the CameraInfo's D/K/R/P, and the cloud lands on
the known 3-D geometry of the synthetic scene within 1 % of range.

The camera sees the synthetic scene through a plumb_bob distortion (barrel, k1 < 0). Its "image" encodes
z-depth along each pixel's ray (log-depth, three dithered channels), and the network is an oracle that
decodes depth from whatever image it is handed: a perfect network. So the cloud is right only if the image
the network gets is correctly rectified and the cloud uses the rectified intrinsics (P).
"""
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from md2_ros import synthetic
from md2_ros.ros import conversions as cv
from md2_ros.ros.rectify import Rectifier, is_identity
from live_node import offline_node
from ros_helpers import header

W, H = 160, 64
K_RAW = np.array([[92.8, 0.0, 81.5], [0.0, 92.8, 31.0], [0.0, 0.0, 1.0]])
D = np.array([-0.28, 0.09, 0.0008, -0.0006, 0.0])
K_RECT = np.array([[92.8, 0.0, 80.0], [0.0, 92.8, 32.0], [0.0, 0.0, 1.0]])   # P[:, :3]; inside the raw view
Z_MIN, Z_MAX = 3.0, 60.0          # the scene spans ~4.5 m (ground at the bottom row) to ~43 m (back wall)
SCENE = synthetic.make_scene(seed=3)


def true_z(dirs: np.ndarray) -> np.ndarray:
    """z-depth of the scene along rays (x, y, 1) from the origin (camera = world frame); the scene's
    exact ray caster is the geometry oracle."""
    t, *_ = synthetic._cast(SCENE, np.zeros(3), dirs)
    return t


def encode(z: np.ndarray) -> np.ndarray:
    code = 255.0 * (np.log(z) - np.log(Z_MIN)) / (np.log(Z_MAX) - np.log(Z_MIN))
    return np.stack([np.clip(np.round(code + k / 3.0), 0, 255) for k in range(3)], -1).astype(np.uint8)


def decode(rgb: np.ndarray) -> np.ndarray:
    code = rgb.astype(np.float32).mean(-1) - 1.0 / 3.0
    return np.exp(np.log(Z_MIN) + code / 255.0 * (np.log(Z_MAX) - np.log(Z_MIN))).astype(np.float32)


class OracleModel:
    height, width, metric, device = H, W, True, "cpu"

    def __init__(self):
        self.images = []

    def predict_batch(self, images):
        self.images.extend(images)
        return [decode(img) for img in images]


def raw_image() -> np.ndarray:
    """What the distorted camera records: encoded depth along the ray of every raw pixel."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([u, v], -1).reshape(-1, 1, 2)
    xy = cv2.undistortPoints(pts, K_RAW, D).reshape(-1, 2)
    return encode(true_z(np.column_stack([xy, np.ones(len(xy))])).reshape(H, W))


def camera_info(frame_id="cam") -> CameraInfo:
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    info.header.frame_id = frame_id
    info.d, info.k, info.r = D.tolist(), K_RAW.reshape(-1), np.eye(3).reshape(-1)
    info.p = np.hstack([K_RECT, np.zeros((3, 1))]).reshape(-1)
    return info


@pytest.fixture(scope="module")
def node():
    yield from offline_node(OracleModel())


def smooth_mask(z: np.ndarray, tol=0.03) -> np.ndarray:
    """Pixels away from occlusion edges and the horizon: the second differences of log depth in their 5×5
    neighbourhood stay below ``tol`` (bilinear resampling of a log-depth code then errs < tol/8)."""
    log = np.log(z)
    curv = np.zeros_like(log)
    curv[:, 1:-1] = np.abs(log[:, 2:] + log[:, :-2] - 2 * log[:, 1:-1])
    curv[1:-1, :] = np.maximum(curv[1:-1, :], np.abs(log[2:, :] + log[:-2, :] - 2 * log[1:-1, :]))
    curv[[0, -1], :] = curv[:, [0, -1]] = np.inf          # image border: no neighbours to judge by
    return cv2.dilate(curv.astype(np.float32), np.ones((5, 5), np.uint8)) < tol


def cloud_errors(xyz: np.ndarray) -> np.ndarray:
    """|z - true z| / true z for every cloud point, true z along the point's own ray."""
    dirs = (xyz / xyz[..., 2:3]).reshape(-1, 3).astype(np.float64)
    return (np.abs(xyz[..., 2].reshape(-1) - true_z(dirs)) / true_z(dirs)).reshape(xyz.shape[:2])


def test_distorted_camera_cloud_lands_on_the_scene_within_one_percent(node):
    raw = raw_image()
    info = camera_info()
    assert not is_identity(info)
    node.cameras[0].on_camera_info(info)
    cam = node.cameras[0]
    for sec in (1, 2, 3):
        for p in node._pubs[""].values():
            p.msgs.clear()
        cam.offer(cv.numpy_to_image(raw, "rgb8", header(sec, 0, "cam")))
        assert node.process_pending() == 1
    assert cam.rectifier.builds == 1                          # remap tables built once per calibration
    pubs = node._pubs[""]
    ci = pubs["depth_info"].msgs[0]
    np.testing.assert_allclose(np.reshape(ci.k, (3, 3)), K_RECT)           # describes the rectified image
    assert not np.any(ci.d) and len(ci.d) == 5 and np.allclose(np.reshape(ci.r, (3, 3)), np.eye(3))
    xyz, _ = cv.cloud_to_numpy(pubs["points"].msgs[0])
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    z_rect = true_z(np.column_stack([((u - K_RECT[0, 2]) / K_RECT[0, 0]).ravel(),
                                     ((v - K_RECT[1, 2]) / K_RECT[1, 1]).ravel(), np.ones(H * W)])).reshape(H, W)
    mask = smooth_mask(z_rect) & np.isfinite(xyz).all(-1)
    assert mask.mean() > 0.6, mask.mean()            # most of the image is judged
    errors = cloud_errors(xyz)[mask]
    print("cloud error percentiles 50/99/100:", np.percentile(errors, [50, 99, 100]))
    assert errors.max() < 0.01, (np.percentile(errors, [50, 99, 100]))

    # Sensitivity: the same perfect network fed the unrectified image puts the cloud far off the scene.
    unrect = cv.depth_to_points(decode(raw), K_RECT)
    bad = cloud_errors(unrect)[mask]
    assert np.percentile(bad, 90) > 0.05, np.percentile(bad, [50, 90])


def test_rectifier_rebuilds_tables_only_when_the_calibration_changes():
    rect, raw, info = Rectifier(), raw_image(), camera_info()
    first = rect.rectify(raw, info, 1.0, 1.0)
    assert rect.builds == 1 and np.array_equal(first, rect.rectify(raw, info, 1.0, 1.0)) and rect.builds == 1
    other = camera_info()
    other.d = [-0.1, 0.0, 0.0, 0.0, 0.0]
    rect.rectify(raw, other, 1.0, 1.0)
    assert rect.builds == 2
    half = cv2.resize(raw, (W // 2, H // 2), interpolation=cv2.INTER_AREA)     # a decimated stream
    assert rect.rectify(half, info, 0.5, 0.5).shape == half.shape and rect.builds == 3


def test_identity_calibrations_and_unsupported_models():
    plain = camera_info()
    plain.d, plain.k = [0.0] * 5, K_RECT.reshape(-1)
    assert is_identity(plain)
    img = raw_image()
    assert Rectifier().rectify(img, plain, 1.0, 1.0) is img            # no remap at all
    odd = camera_info()
    odd.distortion_model = "fancy_lens"
    with pytest.raises(cv.ConversionError, match="fancy_lens"):
        Rectifier().rectify(img, odd, 1.0, 1.0)
    nan = camera_info()
    nan.d = [float("nan")] * 5
    with pytest.raises(cv.ConversionError, match="non-finite"):
        Rectifier().rectify(img, nan, 1.0, 1.0)


def test_fisheye_equidistant_is_rectified():
    info = camera_info()
    info.distortion_model, info.d = "equidistant", [0.05, -0.01, 0.0, 0.0]
    img = raw_image()
    out = Rectifier().rectify(img, info, 1.0, 1.0)
    assert out.shape == img.shape and not np.array_equal(out, img)
