"""TorchScript / ONNX export: same depth as eager, config travels with the file, clear errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from md2_ros import export_cli
from md2_ros.core import export as E
from md2_ros.core.model import DepthModel

H, W = 64, 96
# the tests call torch.jit directly (as users would); torch 2.13 flags TorchScript as deprecated
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = DepthModel(18, H, W, min_depth=0.5, max_depth=80.0, depth_scale=2.5, metric=True).eval()
    # non-trivial BN statistics so that train/eval mix-ups would show
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m


def _images(batch, seed=1):
    return torch.rand(batch, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _eager_depth(model, x):
    """Known answer written out: depth = scale / (1/max + (1/min − 1/max)·disp)."""
    with torch.no_grad():
        disp = model(x)[("disp", 0)]
    lo, hi = 1 / model.config.max_depth, 1 / model.config.min_depth
    return model.config.depth_scale / (lo + (hi - lo) * disp)


@pytest.fixture(scope="module")
def ts_path(model, tmp_path_factory):
    return E.export_torchscript(model, tmp_path_factory.mktemp("ts") / "depth.pt")


def test_torchscript_matches_eager_any_batch(model, ts_path):
    module = torch.jit.load(str(ts_path), map_location="cpu")   # plain torch, no md2_ros helper
    for batch in (1, 3):
        x = _images(batch)
        with torch.no_grad():
            out = module(x)
        assert out.shape == (batch, 1, H, W) and out.dtype == torch.float32
        torch.testing.assert_close(out, _eager_depth(model, x), rtol=1e-5, atol=1e-5)
    # depth really is in the model's range × scale
    assert out.min() >= 0.5 * 2.5 - 1e-4 and out.max() <= 80.0 * 2.5 + 1e-3


def test_torchscript_agrees_with_predict(model, ts_path):
    """predict() on a uint8 image already at the model size == export(image / 255)."""
    img = (np.random.default_rng(3).random((H, W, 3)) * 255).astype(np.uint8)
    module, _ = E.load_torchscript(ts_path)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = module(x)[0, 0].numpy()
    np.testing.assert_allclose(out, model.predict(img), rtol=1e-5, atol=1e-5)


def test_torchscript_config_round_trip(model, ts_path):
    extra = {E.CONFIG_FILE: ""}
    torch.jit.load(str(ts_path), _extra_files=extra)
    meta = json.loads(extra[E.CONFIG_FILE])
    assert meta["md2_ros_format"] == E.EXPORT_FORMAT
    assert meta["input"]["name"] == "image" and meta["input"]["shape"] == ["B", 3, H, W]
    cfg = E.read_export_config(ts_path)
    assert cfg == model.config.to_dict()
    assert cfg["depth_scale"] == 2.5 and cfg["metric"] is True and cfg["min_depth"] == 0.5
    rebuilt = DepthModel.from_config(cfg)
    assert rebuilt.config == model.config


def test_export_leaves_model_untouched_and_handles_half(model, tmp_path):
    m = DepthModel(18, H, W).eval()
    m.half()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    path = E.export_torchscript(m, tmp_path / "sub" / "half.pt")     # parent folder is created
    assert all(v.dtype == torch.float16 for k, v in m.state_dict().items() if v.is_floating_point())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    module, _ = E.load_torchscript(path)
    x = _images(2)
    with torch.no_grad():
        out = module(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _eager_depth(m.float(), x), rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.joinpath("sub").glob(".*.tmp"))          # atomic write left no temp file


def test_onnx_config_and_onnxruntime_match(model, tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (pip install onnx)")
    path = E.export_onnx(model, tmp_path / "depth.onnx")
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["depth"]
    assert proto.opset_import[0].version == 17
    assert E.read_export_config(path) == model.config.to_dict()
    assert E.read_onnx_config(path)["output"]["metric"] is True
    ort = pytest.importorskip("onnxruntime", reason="comparing ONNX outputs needs onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        x = _images(batch, seed=batch)
        (out,) = sess.run(["depth"], {"image": x.numpy()})
        assert out.shape == (batch, 1, H, W)
        np.testing.assert_allclose(out, _eager_depth(model, x).numpy(), atol=1e-4, rtol=1e-5)


def test_onnx_static_batch(model, tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (pip install onnx)")
    path = E.export_onnx(model, tmp_path / "static.onnx", opset=13, dynamic_batch=False)
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, H, W]


def test_bad_paths_formats_and_files(model, tmp_path):
    with pytest.raises(ValueError, match="directory"):
        E.export_torchscript(model, tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        E.export_torchscript(model, blocker / "m.pt")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        E.export(model, tmp_path / "m.tflite", "tflite")
    with pytest.raises(ValueError, match="opset"):
        E.export_onnx(model, tmp_path / "m.onnx", opset=3)
    with pytest.raises(TypeError, match="DepthModel"):
        E.export_torchscript(torch.nn.Conv2d(3, 1, 3), tmp_path / "m.pt")
    with pytest.raises(E.ExportError, match="not found"):
        E.load_torchscript(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(E.ExportError, match="garbage.pt"):
        E.load_torchscript(garbage)
    foreign = tmp_path / "foreign.pt"          # TorchScript, but not ours: no config inside
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(foreign))
    with pytest.raises(E.ExportError, match="no md2_ros config"):
        E.read_export_config(foreign)
    with pytest.raises(E.ExportError, match="not found"):
        E.read_export_config(tmp_path / "missing.onnx")


def test_cli(model, tmp_path, capsys):
    ckpt = tmp_path / "m.safetensors"
    model.save(ckpt)
    out = tmp_path / "cli.pt"
    assert export_cli.main([str(ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "verified" in text
    assert E.read_export_config(out) == model.config.to_dict()
    assert export_cli.main([str(tmp_path / "nope.safetensors"), "--format", "torchscript", "--out", str(out)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        export_cli.main([str(ckpt), "--format", "tflite", "--out", str(out)])
    assert exc.value.code == 2


def test_module_import_does_not_import_onnx():
    code = "import sys, md2_ros.core.export; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
