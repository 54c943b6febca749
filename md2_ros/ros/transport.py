"""Fast DDS shared-memory segment size for large images and clouds.

Fast DDS's built-in shared-memory transport uses a 512 KiB segment per participant; a
larger message falls back to UDP fragments, which are lost wholesale under best-effort
QoS and stall reliable writers for a heartbeat period (seconds). A 640×192 depth image is
0.5 MB, its cloud 2 MB; a 1242×375 image 1.4 MB. Only the *publishing* participant needs
the larger segment, so the depth node gives itself one (its outputs reach any local
subscriber); a camera driver publishing big best-effort images needs it too:

    python -m md2_ros.ros.transport > fastdds_md2.xml
    export FASTDDS_DEFAULT_PROFILES_FILE=$PWD/fastdds_md2.xml   # for the camera driver

The profile file is deleted once the node exists (and at exit): nothing is left in /tmp.
Set MD2_FASTDDS_SHM_MB=0 to leave Fast DDS alone. Nothing is changed when a profiles file
is already configured or another RMW is selected.
"""
from __future__ import annotations

import atexit
import os
import sys
import tempfile

DEFAULT_SHM_MB = 32
_ENV_KEYS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def profile_xml(segment_mb: int = DEFAULT_SHM_MB) -> str:
    """Fast DDS profile: the default transports (SHM + UDPv4) with a ``segment_mb`` MiB SHM segment."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>md2_shm</transport_id>
        <type>SHM</type>
        <segment_size>{int(segment_mb) * 1024 * 1024}</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>md2_udp</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="md2_large_messages" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>md2_shm</transport_id>
          <transport_id>md2_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def configure_fastdds(env=os.environ) -> str | None:
    """Before ``rclpy.init``: point Fast DDS at a large-segment profile; return its path or None."""
    try:
        segment_mb = int(env.get("MD2_FASTDDS_SHM_MB", DEFAULT_SHM_MB))
    except ValueError:
        raise ValueError(f"MD2_FASTDDS_SHM_MB must be an integer, got {env.get('MD2_FASTDDS_SHM_MB')!r}") from None
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if segment_mb <= 0 or not rmw.startswith("rmw_fastrtps") or any(env.get(k) for k in _ENV_KEYS):
        return None
    fd, path = tempfile.mkstemp(prefix="md2_fastdds_", suffix=".xml")
    with os.fdopen(fd, "w") as f:
        f.write(profile_xml(segment_mb))
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    atexit.register(remove_profile, path)       # in-process users (demo, bench) leave nothing behind either
    return path


def remove_profile(path: str | None) -> None:
    """Delete a profile written by :func:`configure_fastdds` (Fast DDS reads it once, when the first
    participant is created, so the node removes it right after creating itself). Idempotent."""
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    sys.stdout.write(profile_xml(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SHM_MB))
