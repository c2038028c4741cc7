"""The command line end to end on `local`: profile, show, resume, interrupt, bad input."""
import json
import os
import signal
import subprocess
import sys
import time


from support.cli import ROOT, run_cli
from devprof.store import Dataset


def _one_line_error(p: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], p.stderr


def test_profile_show_and_resume(tmp_path, tiny_suite):
    out = tmp_path / "d"
    p = run_cli("profile", "--suite", str(tiny_suite), "--out", str(out), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["measured"] == 18 and summary["failed"] == 0
    df = Dataset(out).read()
    assert len(df) == 18 and set(df["runtime"]) == {"onnxruntime", "litert"}
    assert df["device_kind"].eq("local").all() and df["median_us"].gt(0).all()
    assert df["runtime_version"].ne("").all() and df["devprof_version"].ne("").all()
    # rerunning without --resume is refused; with --resume nothing is added
    again = run_cli("profile", "--suite", str(tiny_suite), "--out", str(out), "--quick")
    _one_line_error(again, 2, "--resume")
    r = run_cli("profile", "--suite", str(tiny_suite), "--out", str(out), "--quick", "--resume", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["measured"] == 0 and json.loads(r.stdout)["already"] == 18
    assert len(Dataset(out).read()) == 18
    shown = run_cli("show", str(out))
    assert shown.returncode == 0 and "onnxruntime" in shown.stdout and "conv2d-n1-8x8x4-o8" in shown.stdout
    js = json.loads(run_cli("show", str(out), "--json", "--op", "fc").stdout)
    assert len(js) == 4 and {r["op"] for r in js} == {"fc"}


def test_sigint_keeps_every_finished_record_and_resume_completes(tmp_path):
    out = tmp_path / "d"
    env = {**os.environ, "COLUMNS": "200"}
    # the full protocol (~0.5 s a kernel, blocks of 16): the signal lands mid-run however fast the machine
    # (SIGINT reset to its default in the child: a suite run as a background job inherits it ignored)
    proc = subprocess.Popen([sys.executable, "-m", "devprof", "profile", "--suite", "smoke", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    parts = out / "parts"
    while time.monotonic() < deadline:
        if parts.exists() and len(list(parts.glob("part-*.parquet"))) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    n_parts = len(list(parts.glob("part-*.parquet")))
    df = Dataset(out).read()  # always readable
    assert len(df) == n_parts >= 5  # every acknowledged record is there
    r = run_cli("profile", "--suite", "smoke", "--out", str(out), "--quick", "--resume", "--json")
    assert r.returncode == 0, r.stderr
    full = Dataset(out).read()
    assert len(full) == 54 and full["record_key"].is_unique


def test_unknown_device(tmp_path):
    _one_line_error(run_cli("profile", "--device", "Galaxy Nonexistent 99", "--out", str(tmp_path / "d")), 2,
                    "Nonexistent")


def test_malformed_suite(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[suite]\nname = 'x'\n[[kernels]]\nop = 'conv2d'\nh = -3\n")
    _one_line_error(run_cli("profile", "--suite", str(bad), "--out", str(tmp_path / "d")), 2, "bad.toml")
    _one_line_error(run_cli("profile", "--suite", "nope", "--out", str(tmp_path / "d")), 2, "unknown suite")


def test_unwritable_output(tmp_path, tiny_suite):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "--out", str(blocker / "d"), "--quick"), 4,
                    "cannot write dataset")


def test_unknown_runtime_and_bad_cores(tmp_path, tiny_suite):
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "-r", "tensorflow", "--out", str(tmp_path / "d")),
                    2, "unknown runtime")
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "--cores", "0-999", "--out", str(tmp_path / "d")),
                    2, "--cores")


def test_show_missing_and_newer_dataset(tmp_path):
    _one_line_error(run_cli("show", str(tmp_path / "none")), 4, "no dataset")


def test_devices_lists_local():
    p = run_cli("devices", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    local = rows[0]
    assert local["name"] == "local" and local["cores"] >= 1 and local["cpu"] and local["fingerprint"]


def test_retry_noisy_measures_only_kernels_without_a_steady_record(tmp_path, tiny_suite):
    import dataclasses

    from devprof.records import Measurement

    first = tmp_path / "first"
    assert run_cli("profile", "--suite", str(tiny_suite), "--out", str(first), "--quick", "--json").returncode == 0
    # the same campaign, with every record steady but one ONNX Runtime kernel caught in a noisy phase
    recs = Dataset(first).records()
    target = next(r for r in recs if r.runtime.name == "onnxruntime")
    steady = Measurement((10.0, 10.1, 9.9, 10.0, 10.05))
    noisy = Measurement((10.0, 15.0, 20.0, 9.0, 12.0))
    edited = Dataset(tmp_path / "campaign")
    edited.create()
    edited.append([dataclasses.replace(r, measurement=noisy if r is target else steady) for r in recs])
    out = tmp_path / "retry"
    p = run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(edited.path), "--out", str(out),
                "--quick", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["measured"] == 1
    df = Dataset(out).read()
    assert list(df["spec_key"]) == [target.spec.key] and list(df["runtime"]) == ["onnxruntime"]
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(edited.path),
                            "--out", str(edited.path), "--quick"), 2, "another folder")
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(tmp_path / "nope"),
                            "--out", str(out), "--quick"), 2, "no dataset")
    # --min-steady 2: every kernel with fewer than two steady records across the campaigns; the
    # same campaign given twice counts once (a record is its spec and start time)
    again = Dataset(tmp_path / "campaign2")
    again.create()
    again.append([dataclasses.replace(r, measurement=steady, started_at=r.started_at + 3600.0) for r in recs])
    p = run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(edited.path), "--retry-noisy",
                str(edited.path), "--min-steady", "2", "--out", str(tmp_path / "dry"), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["measured"] == len(recs)
    p = run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(edited.path), "--retry-noisy",
                str(again.path), "--min-steady", "2", "--out", str(tmp_path / "r2"), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["measured"] == 1
    assert list(Dataset(tmp_path / "r2").read()["spec_key"]) == [target.spec.key]
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "--min-steady", "2", "--out", str(out),
                            "--quick"), 2, "--retry-noisy")
    # --max-spread: kernels whose steady campaigns disagree (one is 50% slower in a third campaign)
    other = next(r for r in recs if r is not target)
    slow = Dataset(tmp_path / "campaign3")
    slow.create()
    slow.append([dataclasses.replace(r, measurement=Measurement(tuple(1.5 * x for x in steady.samples_us))
                                     if r is other else steady, started_at=r.started_at + 7200.0) for r in recs])
    p = run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(again.path), "--retry-noisy",
                str(slow.path), "--max-spread", "0.1", "--out", str(tmp_path / "spread"), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["measured"] == 1
    assert list(Dataset(tmp_path / "spread").read()["spec_key"]) == [other.spec.key]
    # --max-records: a kernel already measured that often is left out, however much its campaigns
    # disagree (two records here); below the cap it is measured as before
    capped = tmp_path / "capped"
    p = run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(again.path), "--retry-noisy",
                str(slow.path), "--max-spread", "0.1", "--max-records", "2", "--out", str(capped), "--quick")
    assert p.returncode == 0, p.stderr
    assert "nothing to retry" in p.stderr and "2 records" in p.stderr and not capped.exists()
    p = run_cli("profile", "--suite", str(tiny_suite), "--retry-noisy", str(again.path), "--retry-noisy",
                str(slow.path), "--max-spread", "0.1", "--max-records", "3", "--out", str(capped), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["measured"] == 1
    _one_line_error(run_cli("profile", "--suite", str(tiny_suite), "--max-records", "3", "--out", str(out),
                            "--quick"), 2, "--retry-noisy")
