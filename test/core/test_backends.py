"""Inference backends: every CPU backend matches eager fp32 on the host path; auto picks the fastest that
passes, rejects or skips the others with a reason, respects its time budget, and falls back to eager."""
import numpy as np
import pytest
import torch

from md2_ros.core import backends as bk
from md2_ros.core.backends import auto, registry
from md2_ros.core.model import DepthModel

CPU = torch.device("cpu")
FAST_CPU = [n for n, s in bk.SPECS.items() if "cpu" in s.devices and n != "compile"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DepthModel(18, 64, 96).setup_inference("cpu")


@pytest.fixture(scope="module")
def frames(model):
    return bk.warmup_frames(model, (75, 124), count=2)


def build_or_skip(name, model, **kwargs):
    try:
        return bk.build_backend(name, model, CPU, **kwargs)
    except bk.BackendMissing as exc:       # a library or CPU feature this machine lacks: say which
        pytest.skip(f"{name}: {exc}")


def check_parity(backend, model, frames):
    ref = np.stack(model.predict_batch(frames))
    out = backend.predict_batch(frames)
    assert [d.shape for d in out] == [f.shape[:2] for f in frames]
    assert all(d.dtype == np.float32 for d in out)
    err = bk.max_rel_err(np.stack(out), ref)
    assert err <= bk.PRECISION_TOL[backend.precision], (backend.describe(), err)
    return err


@pytest.mark.parametrize("name", FAST_CPU)
def test_cpu_backend_matches_eager(name, model, frames):
    backend = build_or_skip(name, model)
    check_parity(backend, model, frames)
    assert backend.predict(frames[0]).shape == frames[0].shape[:2]


@pytest.mark.slow
def test_compile_backend_matches_eager(model, frames):
    check_parity(build_or_skip("compile", model), model, frames)


def test_depth_scale_set_after_building_applies(model, frames):
    backend = bk.build_backend("eager", model, CPU)
    before = backend.predict(frames[0])
    model.config.depth_scale = 3.0
    try:
        np.testing.assert_allclose(backend.predict(frames[0]), 3.0 * before, rtol=1e-6)
    finally:
        model.config.depth_scale = 1.0


def test_bad_images_are_refused_with_the_cause(model):
    backend = bk.build_backend("eager", model, CPU)
    with pytest.raises(ValueError, match="uint8"):
        backend.predict_batch([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="one size"):
        backend.predict_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="non-empty"):
        backend.predict_batch([])


def test_unknown_and_wrong_device_backends(model):
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        bk.build_backend("fast", model, CPU)
    with pytest.raises(bk.BackendMissing, match="cuda"):
        bk.build_backend("fp16", model, CPU)


def _spec(name, build, precision="fp32", build_s=0.0):
    return registry.BackendSpec(name, build, ("cpu",), precision, {"cpu": build_s}, name)


@pytest.fixture
def fake_specs(monkeypatch):
    """Three fake candidates next to eager: one off by 5 %, one that fails to build, one slow to build."""
    def off(model, device):
        b = registry.build_eager(model, device)
        net = b.net
        b.net, b.name = (lambda x: net(x) * 1.05), "off"
        return b

    def broken(model, device):
        raise RuntimeError("no such kernel")
    specs = {"eager": registry.SPECS["eager"], "off": _spec("off", off), "broken": _spec("broken", broken),
             "slow": _spec("slow", registry.build_eager, build_s=1e6)}
    monkeypatch.setattr(registry, "SPECS", specs)
    monkeypatch.setattr(auto, "SPECS", specs)
    return specs


def test_auto_rejects_falls_back_and_explains(fake_specs, model, frames):
    sel = bk.select_backend(model, CPU, frames=frames, budget_s=30)
    status = {t.name: t.status for t in sel.trials}
    assert status == {"eager": "chosen", "off": "rejected", "broken": "unavailable", "slow": "skipped"}
    assert sel.backend.name == "eager"
    text = sel.summary()
    assert "backend auto chose eager" in text and " ms" in text
    assert "differs from eager fp32" in text and "no such kernel" in text and "budget" in text


def test_auto_keeps_the_fastest_passing_candidate(monkeypatch, model, frames):
    def quick(model, device):
        b = registry.build_eager(model, device)
        b.name = "quick"
        return b
    specs = {"eager": registry.SPECS["eager"], "quick": _spec("quick", quick)}
    monkeypatch.setattr(registry, "SPECS", specs)
    monkeypatch.setattr(auto, "SPECS", specs)
    monkeypatch.setattr(bk.Backend, "time_ms", lambda self, images, iters=3: 1.0 if self.name == "quick" else 9.0)
    sel = bk.select_backend(model, CPU, frames=frames)
    assert sel.backend.name == "quick"
    assert [(t.name, t.status, t.ms) for t in sel.trials] == [("eager", "passed", 9.0), ("quick", "chosen", 1.0)]


def test_make_backend_logs_choice_and_falls_back(model, frames):
    infos, warns = [], []
    b = bk.make_backend("tensorrt", model, CPU, info=infos.append, warn=warns.append)
    assert b.name == "eager" and len(warns) == 1 and "tensorrt unavailable, falling back to eager" in warns[0]
    b = bk.make_backend("auto", model, CPU, info=infos.append, warn=warns.append, budget_s=0.0, frames=frames)
    assert b.name == "eager" and infos[-1].startswith("backend auto chose eager")


def test_fold_batchnorm_removes_every_bn_and_keeps_the_function(model):
    from md2_ros.core.backends.torch_backends import example_input, fold_batchnorm, private_disp_net
    net = private_disp_net(model, CPU)
    for m in net.modules():   # non-trivial statistics, so a wrong fold would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 1.5)
    x = example_input(model, CPU)
    with torch.no_grad():
        ref = net(x)
        folded = fold_batchnorm(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), ref, rtol=1e-4, atol=1e-5)
