"""The emulated phone's binfmt-free exec: which words of a shell line get qemu prefixed."""
from __future__ import annotations

import pytest

from support.loopback_adbd import PhoneProfile, Sandbox, command_position


@pytest.mark.parametrize("before,expected", [
    ("", True), ("$T ", True), ("timeout -s KILL 5 ", True), ("timeout -s KILL 5 taskset 70 ", True),
    ("$T taskset 70 ", True), ("X=1 exec ", True), ("taskset -c 4-6 ", True), ("nice -n 5 ", True),
    ("cat ", False), ("chmod 755 ", False), ("ls -l ", False), ("cd ", False), ("sh -c ", False),
    ("timeout ", False),  # the duration is missing: the path is the duration
])
def test_command_position(before, expected):
    assert command_position(before.split()) is expected


def test_run_foreign_prefixes_only_foreign_elves_in_command_position(tmp_path):
    sb = Sandbox(str(tmp_path / "sb"), PhoneProfile())
    d = tmp_path / "sb/data/local/tmp/x"
    d.mkdir(parents=True)
    arm = bytearray(64)
    arm[:4], arm[4], arm[5], arm[18] = b"\x7fELF", 2, 1, 183  # ELF64, little endian, EM_AARCH64
    (d / "arm").write_bytes(bytes(arm))
    x86 = bytearray(arm)
    x86[18] = 62
    (d / "x86").write_bytes(bytes(x86))
    (d / "text").write_text("#!/bin/sh\n")
    runners = {"arm64-v8a": ["qemu-aarch64-static"]}
    cmd = sb.rewrite("cd /data/local/tmp/x || exit 126\n$T taskset 70 /data/local/tmp/x/arm --rounds=1\n"
                     "cat /data/local/tmp/x/arm; /data/local/tmp/x/x86 && /data/local/tmp/x/text | "
                     "timeout -s KILL 3 '/data/local/tmp/x/arm'")
    out = sb.run_foreign(cmd, runners)
    root = sb.root
    assert f"$T taskset 70 qemu-aarch64-static {root}/data/local/tmp/x/arm --rounds=1" in out
    assert f"cat {root}/data/local/tmp/x/arm;" in out  # an argument, not a program
    assert f"; {root}/data/local/tmp/x/x86 &&" in out and f"&& {root}/data/local/tmp/x/text |" in out
    assert f"timeout -s KILL 3 qemu-aarch64-static '{root}/data/local/tmp/x/arm'" in out
    assert out.count("qemu-aarch64-static") == 2 and sb.run_foreign(cmd, {}) == cmd
