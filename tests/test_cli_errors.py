"""Every failure of the command line is one line on stderr, printed as written, with the exit code
of its kind: usage errors (2), files that cannot be written (4), inputs too large for the machine
(2); only bugs say "internal" (1)."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest

from devprof.cli import run
from devprof.errors import DatasetError, UsageError, as_user_error, one_line
from support.cli import ROOT


def _one_line(capsys, code: int, argv: list[str], *texts: str) -> str:
    rc = run(argv)
    cap = capsys.readouterr()
    lines = [x for x in cap.err.splitlines() if x.strip()]
    assert rc == code, (rc, cap.out, cap.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), cap.err
    for t in texts:
        assert t in lines[0], cap.err
    assert "internal" not in lines[0] and "Traceback" not in cap.err
    return lines[0]


def test_brackets_in_messages_are_printed_as_written(capsys, tmp_path):
    # rich markup would read "[torch]" as a style tag and drop it (`pip install 'devprof'`)
    _one_line(capsys, 2, ["profile", "--model", "mypkg[torch]", "--out", str(tmp_path / "d")], "'mypkg[torch]'")


def test_usage_errors_are_one_line_not_a_box(capsys):
    line = _one_line(capsys, 2, ["profile", "--threadz", "2"], "--threadz", "devprof profile --help")
    assert "╭" not in line and "│" not in line
    _one_line(capsys, 2, ["profile", "--threads", "many"], "--threads")
    _one_line(capsys, 2, ["no-such-command"], "no-such-command")


@pytest.mark.parametrize("model, text", [("resnet18@0", "between 32 and 2048"),
                                         ("resnet18@99999", "between 32 and 2048"),
                                         ("resnet18@160x120", "one number"),
                                         ("bert_tiny@0", "sequence length")])
def test_model_resolution_is_checked_before_anything_is_built(capsys, tmp_path, model, text):
    _one_line(capsys, 2, ["profile", "--model", model, "--out", str(tmp_path / "d")], model.split("@")[0], text)


def test_messages_are_cut_at_a_word_not_mid_word():
    msg = "Got invalid dimensions for input: input for the following indices index: 2 Got: 0 Expected: 224"
    short = one_line(msg, 60)
    assert len(short) <= 60 and short.endswith("…")
    assert msg.startswith(short[:-1]) and msg[len(short) - 1] == " "  # the cut falls between words
    assert one_line("a\n  b", 60) == "a b"


def test_resource_errors_the_user_can_act_on_are_not_internal():
    import errno

    e = as_user_error(OSError(errno.EROFS, "Read-only file system", "/data/ds/.lock"))
    assert isinstance(e, DatasetError) and e.exit_code == 4 and "/data/ds/.lock" in str(e)
    assert isinstance(as_user_error(MemoryError()), UsageError)
    assert as_user_error(ValueError("a bug")) is None


def _read_only(folder, *argv: str) -> subprocess.CompletedProcess:
    """`devprof argv` with `folder` bind-mounted read-only (a user namespace: no root needed)."""
    f = shlex.quote(str(folder))
    cmd = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "devprof", *argv))
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"mount --bind {f} {f} && mount -o remount,ro,bind {f} {f} "
                           f"&& exec {cmd}"], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _can_mount_read_only(tmp_path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    f = shlex.quote(str(probe))
    p = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount --bind {f} {f} && mount -o remount,ro,bind {f} {f}"],
                       capture_output=True)
    return p.returncode == 0


def test_read_only_filesystem_is_one_line_exit_4(tmp_path, tiny_suite):
    if not _can_mount_read_only(tmp_path):
        pytest.skip("no user namespaces here to mount a read-only folder")
    from devprof.store import Dataset

    ds = tmp_path / "ds"
    Dataset(ds).create()
    for argv in (["profile", "--suite", str(tiny_suite), "--out", str(ds), "--resume", "--quick"],
                 ["report", str(ds), "-o", str(ds / "r.html")]):
        p = _read_only(ds, *argv)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert p.returncode == 4, (argv, p.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: cannot write") and "Read-only" in lines[0], p.stderr
        assert ".tmp" not in lines[0], lines[0]  # the file the user named
