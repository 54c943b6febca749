"""Augmentation: paper ranges, identical across frames, flip mirrors K and swaps stereo sides."""
import colorsys

import numpy as np
import pytest
import torch

from train.datasets.augment import (ColorJitterParams, adjust_brightness, adjust_contrast, adjust_hue,
                                    adjust_saturation, apply_color_jitter, flip_intrinsics, hsv_to_rgb, rgb_to_hsv,
                                    sample_color_jitter, sample_flip)
from train.datasets.base import RawSample, SequenceDataset, build_sample, check_frame_ids

H, W = 16, 32


class _Toy(SequenceDataset):
    """Three different random frames plus a stereo partner, fixed K and baseline 0.5."""

    def __init__(self, **kw):
        super().__init__(frame_ids=(0, -1, 1, "s"), height=H, width=W, num_scales=2, **kw)
        rng = np.random.default_rng(0)
        self.images = {f: rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for f in self.frame_ids}
        self.K = np.array([[0.6, 0, 0.45, 0], [0, 1.9, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])

    def __len__(self):
        return 4

    def load(self, index):
        return RawSample(dict(self.images), self.K, "l", 0.5)


def test_sampling_ranges_and_probability():
    g = torch.Generator().manual_seed(0)
    draws = [sample_color_jitter(generator=g) for _ in range(2000)]
    applied = [d for d in draws if d is not None]
    assert 0.45 < len(applied) / len(draws) < 0.55
    for name, lo, hi in [("brightness", 0.8, 1.2), ("contrast", 0.8, 1.2), ("saturation", 0.8, 1.2),
                         ("hue", -0.1, 0.1)]:
        vals = np.array([getattr(d, name) for d in applied])
        assert vals.min() >= lo and vals.max() <= hi and vals.min() < lo + 0.02 and vals.max() > hi - 0.02
    assert len({d.order for d in applied}) == 24  # random order of the four ops
    flips = [sample_flip(generator=g) for _ in range(2000)]
    assert 0.45 < np.mean(flips) < 0.55


def test_ops_known_answers():
    img = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1).expand(3, 2, 2).clone()
    torch.testing.assert_close(adjust_brightness(img, 1.5), img * 1.5)
    gray = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6
    torch.testing.assert_close(adjust_saturation(img, 0.0), torch.full_like(img, gray))
    torch.testing.assert_close(adjust_contrast(img, 0.5), 0.5 * img + 0.5 * gray)
    hsv = rgb_to_hsv(img)
    torch.testing.assert_close(hsv[:, 0, 0], torch.tensor([7 / 12, 2 / 3, 0.6]))
    x = torch.rand(2, 3, 8, 8)
    x[0, :, 0, 0] = torch.tensor([0.5, 0.5, 0.2])  # ties and greys follow colorsys
    x[0, :, 0, 1] = 0.3
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5, rtol=0)
    ref = torch.tensor([colorsys.rgb_to_hsv(*p) for p in x[0].reshape(3, -1).T.tolist()]).T.reshape(3, 8, 8)
    torch.testing.assert_close(rgb_to_hsv(x)[0], ref, atol=1e-5, rtol=0)
    y = torch.rand(2, 3, 5, 7)  # the OpenCV fast path equals the torch HSV round trip
    slow = hsv_to_rgb(torch.stack([(rgb_to_hsv(y)[:, 0] + 0.07) % 1, rgb_to_hsv(y)[:, 1], rgb_to_hsv(y)[:, 2]], 1))
    torch.testing.assert_close(adjust_hue(y, 0.07), slow, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(y.double(), 0.07), slow.double(), atol=1e-5, rtol=0)
    red = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
    torch.testing.assert_close(adjust_hue(red, 1 / 3).view(3), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        apply_color_jitter(torch.rand(1, 4, 2, 2), ColorJitterParams())


def test_jitter_identical_across_frames_and_reproducible():
    ds = _Toy(is_train=True)
    seen_jitter = False
    for seed in range(12):
        torch.manual_seed(seed)
        s = ds[0]
        torch.manual_seed(seed)
        jitter, flip = sample_color_jitter(), sample_flip()
        for f in ds.frame_ids:
            img = ds.images[f][:, ::-1] if flip else ds.images[f]
            base = torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255
            assert torch.equal(s[("color", f, 0)], base)
            expect = apply_color_jitter(base, jitter) if jitter else base
            torch.testing.assert_close(s[("color_aug", f, 0)], expect, atol=1e-6, rtol=0)
        seen_jitter |= jitter is not None
    assert seen_jitter


def test_flip_mirrors_principal_point_and_swaps_stereo():
    ds = _Toy(is_train=False)
    raw = ds.load(0)
    plain = build_sample(raw.images, raw.K, 2, 0, side="l", baseline=0.5)
    flipped = build_sample(raw.images, raw.K, 2, 0, side="l", baseline=0.5, flip=True)
    right = build_sample(raw.images, raw.K, 2, 0, side="r", baseline=0.5)
    assert plain["stereo_T"][0, 3].item() == -0.5 and flipped["stereo_T"][0, 3].item() == 0.5
    assert right["stereo_T"][0, 3].item() == 0.5
    for s in range(2):
        w = W >> s
        assert torch.equal(flipped[("color", -1, s)], plain[("color", -1, s)].flip(-1))
        Kp, Kf = plain[("K", s)], flipped[("K", s)]
        assert Kf[0, 2].item() == pytest.approx(w - 1 - Kp[0, 2].item())
        assert torch.equal(Kf[[0, 1], [0, 1]], Kp[[0, 1], [0, 1]]) and Kf[1, 2] == Kp[1, 2]
    np.testing.assert_allclose(flip_intrinsics(flip_intrinsics(np.eye(3) * 5, 10), 10), np.eye(3) * 5)
    # through __getitem__: whenever the images come out mirrored, the stereo sign is flipped
    ds.is_train = True
    signs = set()
    for seed in range(16):
        torch.manual_seed(seed)
        s = ds[1]
        mirrored = torch.equal(s[("color", 0, 0)], plain[("color", 0, 0)].flip(-1))
        signs.add((mirrored, s["stereo_T"][0, 3].item()))
    assert signs == {(False, -0.5), (True, 0.5)}


def test_argument_validation():
    with pytest.raises(ValueError, match="start with 0"):
        check_frame_ids((-1, 0, 1))
    with pytest.raises(ValueError, match="neither"):
        check_frame_ids((0, "x"))
    with pytest.raises(ValueError, match="multiples of 8"):
        SequenceDataset(height=100, width=64, num_scales=4)
    with pytest.raises(IndexError):
        _Toy(is_train=False)[4]
