"""Hostile names: device names, aliases, serials, suite names and paths with shell metacharacters,
spaces, `..` and very long strings. Nothing may reach `adb shell` unquoted (a canary file would
appear), nothing may be written outside the chosen folders, every refusal is one line.
Uses the emulated phone and the real adb server (tests/support)."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.cli import run_cli
from devprof.devices import resolve_device
from devprof.errors import DevprofError, UsageError
from devprof.store import Dataset

from support import faultkit as fk

META = list(";|&$()`'\"\\<>*?!#~{}[]\n\t =%^") + [" .. ", "../", "$(", "${IFS}", "&&", "||"]


def hostile(canary: str) -> st.SearchStrategy[str]:
    """Strings mixing shell metacharacters, spaces, `..`, long runs and commands touching `canary`."""
    cmds = st.sampled_from([f"; touch {canary}", f"$(touch {canary})", f"`touch {canary}`", f"| touch {canary}",
                            f"' ; touch {canary} ; '", f"\"; touch {canary}; \"", f"\n touch {canary}\n",
                            f"&& touch {canary}", f"${{IFS}}touch${{IFS}}{canary}"])
    piece = st.one_of(cmds, st.sampled_from(META), st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                                                      blacklist_characters="\x00"),
                                                           max_size=12),
                      st.integers(200, 3000).map(lambda n: "x" * n))
    return st.lists(piece, min_size=1, max_size=6).map("".join)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_hostile_strings_never_reach_the_shell(data, phone, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    canary = tmp / "pwned"
    dev = resolve_device(phone.serial)
    s = data.draw(hostile(str(canary)))
    # as a device name / serial: refused in one line (or, improbably, the phone itself)
    try:
        d = resolve_device(s)
        assert d.serial == phone.serial
    except UsageError as e:
        assert "\n" not in str(e)
    # as an alias name and as an alias target, from the user's config
    cfg = tmp / "devices.toml"
    cfg.write_text(f"[aliases]\n{json.dumps(s)} = {json.dumps(phone.serial)}\nbad = {json.dumps(s)}\n")
    os.environ["DEVPROF_CONFIG"] = str(cfg)
    try:
        try:
            assert resolve_device(s).serial == phone.serial
        except UsageError as e:  # a string that normalises like a marketing name can be refused
            assert "\n" not in str(e)
        with pytest.raises(UsageError):
            resolve_device("bad")
    finally:
        os.environ["DEVPROF_CONFIG"] = str(tmp / "no-devprof-config.toml")
    # as a suite name or path
    from devprof.suites import load_suite

    with pytest.raises(DevprofError) as e:
        load_suite(s)
    assert "\n" not in str(e.value)
    # as arguments and working folder of a command on the phone: passed through verbatim
    r = dev.execute(["printf", "%s", s], "/data/local/tmp", 20)
    assert r.returncode == 0 and r.stdout == s
    r = dev.execute(["true"], "/data/local/tmp/" + s[:200], 20)
    assert r.returncode != 0  # no such folder: cd fails, nothing runs
    assert not canary.exists()


def _files(root):
    return {p for p in root.rglob("*")}


def test_hostile_paths_and_alias_end_to_end(phone, adb_server, tmp_path):
    """A profile run whose alias, suite path and --out path are all hostile: it works, nothing is
    injected, and every file it writes is inside --out (or devprof's own cache and the phone's
    /data/local/tmp/devprof)."""
    home = tmp_path / "home"  # the injected commands would touch $HOME/pwned (no '/' allowed in a name)
    home.mkdir()
    weird = "a b;$(cd;touch pwned)`cd;touch pwned`'\"&|*?"
    (tmp_path / weird).mkdir()
    suite = tmp_path / weird / f"suite {weird}.toml"
    suite.write_text(fk.TINY_SUITE.replace('runtimes = ["onnxruntime", "litert"]', 'runtimes = ["devprof-c"]'))
    alias = "lab; cd; touch pwned"
    cfg = tmp_path / "devices.toml"
    cfg.write_text(f"[aliases]\n{json.dumps(alias)} = {json.dumps(phone.serial)}\n")
    out = tmp_path / weird / ".." / f"ds {weird}"
    before = _files(tmp_path)
    sandbox_before = _files(phone.sandbox)
    env = {**adb_server.env, "DEVPROF_CONFIG": str(cfg), "HOME": str(home)}
    r = run_cli("profile", "--device", alias, "--suite", str(suite), "--quick", "--out", str(out), "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["measured"] >= 5
    for root in (tmp_path, phone.sandbox):
        assert not [p for p in root.rglob("pwned")], "a command was injected"
    real_out = (tmp_path / f"ds {weird}").resolve()
    new = {p for p in _files(tmp_path) - before if phone.sandbox not in p.parents and p != phone.sandbox}
    assert new and all(p == real_out or real_out in p.parents for p in new), sorted(map(str, new))[:5]
    assert len(Dataset(real_out).read()) == json.loads(r.stdout)["measured"]
    phone_new = _files(phone.sandbox) - sandbox_before
    tmpdir = phone.sandbox / "data/local/tmp/devprof"
    assert all(p == tmpdir or tmpdir in p.parents or p in tmpdir.parents for p in phone_new), sorted(map(str, phone_new))[:5]


@pytest.mark.parametrize("args,code,words", [
    (["--suite", "y" * 5000], 2, "cannot read suite"),
    (["--suite", "y" * 5000 + ".toml"], 2, "cannot read suite"),
    (["--suite", "../" * 40 + "etc/passwd"], 2, "suite"),
    (["--device", "y" * 5000], 2, "no attached device"),
    (["--out", "/tmp/" + "x" * 300], 4, "cannot write dataset"),
    (["--runtime", "; touch /tmp/pwned-devprof"], 2, "unknown runtime"),
    (["--model", "mobilenetv2; touch /tmp/pwned-devprof"], 2, "--model"),
    (["--model", "m" * 5000 + ".onnx"], 2, "--model"),
])
def test_hostile_cli_arguments_are_one_line_errors(args, code, words, tmp_path):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "d")]
    p = run_cli("profile", "--quick", *args)
    assert p.returncode == code, (p.returncode, p.stderr[-500:])
    lines = fk.error_lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0] and "Traceback" not in p.stderr
    assert not os.path.exists("/tmp/pwned-devprof")
