"""Test support: the emulated phone (loopback_adbd) and the fixtures that drive it through a real adb server."""
