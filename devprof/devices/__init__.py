"""Device resolution: `--device` names -> a Device. `local` is embedded; phones come over adb."""
from __future__ import annotations

from ..errors import UsageError
from .base import Device, DeviceState, ExecResult
from .local import LocalDevice

LOCAL_NAMES = ("local", "host", "localhost")


def resolve_device(name: str = "local", adb_server: str | None = None) -> Device:
    """Find the device `name` names: `local`, or (when the adb backend is available) a phone by
    serial, model code, marketing name or alias. No match or several: a one-line UsageError."""
    if name.strip().lower() in LOCAL_NAMES:
        return LocalDevice()
    try:
        from . import adb  # noqa: F401  (the phone backend)
    except ImportError:
        raise UsageError(f"unknown device {name!r}; attached: local") from None
    return adb.resolve(name, adb_server=adb_server)


def list_devices(adb_server: str | None = None) -> list[Device]:
    """Every usable device: `local` first, then attached phones."""
    devices: list[Device] = [LocalDevice()]
    try:
        from . import adb
    except ImportError:
        return devices
    devices.extend(adb.list_phones(adb_server=adb_server))
    return devices


__all__ = ["Device", "DeviceState", "ExecResult", "LocalDevice", "resolve_device", "list_devices"]
