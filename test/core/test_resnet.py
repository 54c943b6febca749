"""ResNet encoders: torchvision-identical keys, shapes, multi-image weights, strict loading."""
import pytest
import torch

from md2_ros.core.resnet import ResnetEncoder

# torchvision resnet18 state_dict: conv1, bn1 (5 entries each bn), 8 basic blocks, 3 downsamples, fc
TV_R18_KEYS = 122


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def _torchvision_like_state(num_layers):
    """A synthetic torchvision-layout state_dict: our keys + the ImageNet fc head, random values."""
    enc = ResnetEncoder(num_layers)
    state = {k: 0.1 * torch.randn_like(v) if v.is_floating_point() else v for k, v in enc.state_dict().items()}
    for k in state:  # keep BN statistics valid (positive variances) so outputs stay finite
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 1.0
    feat = enc.num_ch_enc[-1]
    state["fc.weight"] = torch.randn(1000, feat)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_keys_match_torchvision_layout():
    keys = set(ResnetEncoder(18).state_dict())
    assert len(keys) + 2 == TV_R18_KEYS  # torchvision adds fc.weight / fc.bias
    for k in ["conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias"]:
        assert k in keys
    assert "layer1.0.downsample.0.weight" not in keys
    r50 = set(ResnetEncoder(50).state_dict())
    assert "layer1.0.downsample.0.weight" in r50 and "layer4.2.conv3.weight" in r50


@pytest.mark.parametrize("layers,chans,params", [(18, [64, 64, 128, 256, 512], 11.18e6),
                                                  (34, [64, 64, 128, 256, 512], 21.28e6),
                                                  (50, [64, 256, 512, 1024, 2048], 23.51e6)])
def test_shapes_and_parameter_counts(layers, chans, params):
    enc = ResnetEncoder(layers)
    assert enc.num_ch_enc == chans
    assert abs(_n_params(enc) - params) < 0.01e6  # torchvision counts minus the fc head
    feats = enc(torch.rand(2, 3, 64, 96))
    assert [f.shape[1] for f in feats] == chans
    assert [tuple(f.shape[2:]) for f in feats] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]


def test_loads_torchvision_state_and_drops_fc(tmp_path):
    state = _torchvision_like_state(18)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    enc = ResnetEncoder(18, weights_init=path)
    assert torch.equal(enc.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert torch.equal(enc.bn1.running_var, state["bn1.running_var"])


def test_multi_image_conv1_repeated_and_divided(tmp_path):
    state = _torchvision_like_state(18)
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    enc = ResnetEncoder(18, num_input_images=2, weights_init=path)
    w = enc.conv1.weight
    assert w.shape == (64, 6, 7, 7)
    torch.testing.assert_close(w[:, :3], state["conv1.weight"] / 2)
    torch.testing.assert_close(w[:, 3:], state["conv1.weight"] / 2)
    # two identical frames through the pose encoder == one frame through the single encoder
    single = ResnetEncoder(18, weights_init=path).eval()
    enc.eval()
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(enc(torch.cat([x, x], 1)), single(x)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_strict_loading_rejects_wrong_keys(tmp_path):
    state = _torchvision_like_state(18)
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="layer1.0.conv1.weight"):
        ResnetEncoder(18, weights_init=path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ResnetEncoder(18, weights_init=tmp_path / "nope.pth")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        ResnetEncoder(101)
    with pytest.raises(ValueError, match="6×H×W"):
        ResnetEncoder(18, 2)(torch.rand(1, 3, 32, 32))
