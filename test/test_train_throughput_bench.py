"""bench/train_throughput.py --baseline: the pre-round-10 step (avg_pool2d SSIM, unfused Adam) is timed in the
same run and the fast ops are back afterwards, also when a step fails."""
import pytest
import torch

from bench import train_throughput as B
from md2_ros.core import losses


def test_baseline_rows_and_ratio(capsys):
    fast = losses.box3
    assert B.main(["--device", "cpu", "--height", "64", "--width", "128", "--batch-size", "1", "--steps", "1",
                   "--warmup", "0", "--baseline", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "channels_last=off baseline" in out and "x)" in out
    assert losses.box3 is fast


def test_baseline_ops_swap_and_restore():
    class Cfg:
        learning_rate = 1e-4

    class T:
        cfg = Cfg()
        nets = torch.nn.Linear(2, 2)
        optimizer = "fast"

    fast, t = losses.box3, T()
    x = torch.rand(1, 1, 5, 5)
    with pytest.raises(RuntimeError), B.baseline_ops(t):
        assert losses.box3 is not fast and isinstance(t.optimizer, torch.optim.Adam)
        torch.testing.assert_close(losses.box3(x), torch.nn.functional.avg_pool2d(x, 3, 1))
        raise RuntimeError("a failing step")
    assert losses.box3 is fast and t.optimizer == "fast"
