"""Checkpoints: one self-describing, never-unpickling format, saved atomically.

* Depth models: a ``.safetensors`` file holding the DepthModel ``state_dict``
  (keys ``encoder.*`` / ``decoder.decoder.N.*``) and, in its metadata,
  ``md2_ros_format`` and the JSON model config (size, depth range, scale).
* Training state (optimizer, scheduler, RNG, step): ``torch.save`` of plain
  containers, read back with ``torch.load(weights_only=True)`` only.
* Official Monodepth2 folders (``encoder.pth``, ``depth.pth``, optionally
  ``pose_encoder.pth``, ``pose.pth``) are imported strictly.
"""
from __future__ import annotations

import glob
import io
import json
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT = "md2_ros/depth-model/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe or of the wrong layout; the message names the file."""


_TEMP_PID = re.compile(r"\.pid(\d+)\.[^.]*\.tmp$")


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder, name: str = "*") -> list[Path]:
    """Delete the temp files that :func:`atomic_write_bytes` of a killed process left in ``folder``
    (``.<name>.pid<PID>.<random>.tmp`` whose writer is gone); returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        m = _TEMP_PID.search(tmp.name)
        if m and pid_alive(int(m.group(1))):
            continue  # a live writer (maybe in another process) is still using it
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


def _write_temp(folder: Path, name: str, data: bytes) -> str:
    """``data`` in a fsynced temp file of ``folder`` readable like a normal file; returns its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.pid{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a node running as another user must read it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, rename, fsync the folder.

    A crash at any point leaves either the old file or the new one, never a torn file; the temp file a
    crash leaves (named after the writer's pid) is removed by the next write of the same path. A failed
    write (disk full...) raises OSError naming ``path`` and keeps the previous file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent, glob.escape(path.name))
        tmp = _write_temp(path.parent, path.name, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        kept = "the previous file is kept" if path.exists() else "nothing was written"
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc} ({kept})") from exc


def write_model_file(path, state: dict, config: dict) -> None:
    """Save a depth model's ``state_dict`` as safetensors with its config as metadata, atomically."""
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in state.items()}
    meta = {"md2_ros_format": FORMAT, "config": json.dumps(config)}
    atomic_write_bytes(path, st_save(state, metadata=meta))


def _read(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path.read_bytes()


def read_model_file(path) -> tuple[dict, dict]:
    """(config dict, state_dict) of a :func:`write_model_file` checkpoint; CheckpointError naming the file."""
    data = _read(path)
    try:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        meta = header.get("__metadata__") or {}
        state = st_load(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    if meta.get("md2_ros_format") != FORMAT:
        raise CheckpointError(f"{path}: not an md2_ros depth model (format {meta.get('md2_ros_format')!r})")
    try:
        config = json.loads(meta["config"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: config metadata missing or unreadable ({exc})") from exc
    check_finite(state, path)
    return config, state


def check_finite(state: dict, path) -> None:
    """CheckpointError naming the first tensors holding NaN/inf (such weights give NaN depth everywhere)."""
    bad = [k for k, v in state.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf (first: {', '.join(bad[:3])}); "
                              "the model would predict NaN depth - use an earlier checkpoint")


def save_state(path, state: dict) -> None:
    """Atomically save a training state made of tensors and plain Python containers."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path, map_location="cpu") -> dict:
    """Load a training state with ``weights_only=True``: arbitrary pickled objects are refused."""
    data = _read(path)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError… for unsafe/torn files
        raise CheckpointError(f"{path}: refused or corrupt checkpoint ({type(exc).__name__}: {exc})") from exc


# official Monodepth2 folders ----------------------------------------------------------

def _load_official_file(path: Path) -> dict:
    state = load_state(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state_dict")
    return state


def _encoder_state(state: dict, path: Path) -> dict:
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue  # height / width / use_stereo
        if not k.startswith("encoder."):
            raise CheckpointError(f"{path}: unexpected key {k!r} (official encoders use 'encoder.<resnet key>')")
        if not k.startswith("encoder.fc."):
            out[k[len("encoder."):]] = v
    return out


def _num_layers(enc_state: dict, path: Path) -> int:
    if "layer1.0.conv3.weight" in enc_state:
        return 50
    n_blocks = len({k.split(".")[1] for k in enc_state if k.startswith("layer3.")})
    if n_blocks in (2, 6):
        return 18 if n_blocks == 2 else 34
    raise CheckpointError(f"{path}: cannot tell the ResNet depth from its keys")


def read_official_depth(folder) -> tuple[dict, dict, dict]:
    """Official ``encoder.pth`` + ``depth.pth`` -> (spec {num_layers, height, width, use_stereo}, encoder
    state, decoder state); the DepthModel is built from them by ``md2_ros.core.model.import_official``."""
    folder = Path(folder)
    enc_path, dec_path = folder / "encoder.pth", folder / "depth.pth"
    enc_raw = _load_official_file(enc_path)
    dec_raw = _load_official_file(dec_path)
    enc = _encoder_state(enc_raw, enc_path)
    check_finite(enc, enc_path)
    check_finite(dec_raw, dec_path)
    spec = {"num_layers": _num_layers(enc, enc_path), "height": int(enc_raw.get("height", 192)),
            "width": int(enc_raw.get("width", 640)), "use_stereo": bool(enc_raw.get("use_stereo", False))}
    return spec, enc, dec_raw


def import_official_pose(folder):
    """Official ``pose_encoder.pth`` + ``pose.pth`` -> (ResnetEncoder(2 frames), PoseDecoder)."""
    from .pose_decoder import PoseDecoder
    from .resnet import ResnetEncoder

    folder = Path(folder)
    enc_path, dec_path = folder / "pose_encoder.pth", folder / "pose.pth"
    enc = _encoder_state(_load_official_file(enc_path), enc_path)
    n_frames = enc["conv1.weight"].shape[1] // 3
    encoder = ResnetEncoder(_num_layers(enc, enc_path), n_frames)
    dec_state = _load_official_file(dec_path)
    decoder = PoseDecoder(encoder.num_ch_enc, 1, dec_state["net.3.weight"].shape[0] // 6)
    try:
        encoder.load_state_dict(enc, strict=True)
        decoder.load_state_dict(dec_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{folder}: official pose files do not match ({exc})") from exc
    return encoder.eval(), decoder.eval()
