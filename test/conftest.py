"""Shared fixtures: the sample data beside the clone, and quiet torch threads."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("MD2_SHARED", ROOT.parent / "shared"))


def _need(path: pathlib.Path) -> pathlib.Path:
    """Return `path` if it exists; skip (or fail under MD2_REQUIRE_SHARED=1) otherwise."""
    if path.exists():
        return path
    msg = f"needs {path} (the shared sample data beside the clone)"
    if os.environ.get("MD2_REQUIRE_SHARED") == "1":
        pytest.fail(msg + "; MD2_REQUIRE_SHARED=1 forbids skipping")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def kitti_mini() -> pathlib.Path:
    return _need(SHARED / "data" / "kitti_mini")


@pytest.fixture(scope="session")
def kitti_splits() -> pathlib.Path:
    return _need(SHARED / "data" / "kitti_splits")
