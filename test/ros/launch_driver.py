"""Run a launch file with the real launch machinery, the way ``ros2 launch PKG FILE k:=v`` does
(``ros2launch`` is not installable here): ``python launch_driver.py FILE [k:=v ...]``.

``launch_ros.actions`` imports ``composition_interfaces`` at module level (for composable nodes
only); when that message package is missing, a minimal stand-in module is registered and the
driver says so on stderr. Nothing here loads composable nodes.
"""
import importlib
import sys
import types


def ensure_composition_interfaces() -> bool:
    """Register a stand-in for composition_interfaces if it is not installed; return True if stubbed."""
    try:
        importlib.import_module("composition_interfaces.srv")
        return False
    except ImportError:
        pkg, srv = types.ModuleType("composition_interfaces"), types.ModuleType("composition_interfaces.srv")
        for name in ("LoadNode", "UnloadNode", "ListNodes"):
            setattr(srv, name, type(name, (), {"Request": type("Request", (), {})}))
        pkg.srv = srv
        sys.modules.update({"composition_interfaces": pkg, "composition_interfaces.srv": srv})
        print("launch_driver: composition_interfaces not installed; using a stand-in (no composable nodes)",
              file=sys.stderr)
        return True


def main(argv) -> int:
    ensure_composition_interfaces()
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    path, launch_args = argv[0], [a.split(":=", 1) for a in argv[1:]]
    service = LaunchService(argv=argv[1:])
    service.include_launch_description(LaunchDescription([
        IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=launch_args)]))
    return service.run()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
