"""`devprof fit-predictor`, `publish`, `predict` through the real console script."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devprof.store import Dataset

from support import predictors_synth as synth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEVPROF = [sys.executable, "-m", "devprof"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*DEVPROF, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("cli")
    ds = Dataset(tmp / "ds")
    ds.create()
    ds.append(synth.records(synth.random_specs(120, seed=9)))
    ds.append(synth.model_records(6, seed=4))
    # the baseline estimator only: tree fitting is covered by test_predictors_bundle, this is the CLI
    r = run("fit-predictor", str(ds.path), "--out", str(tmp / "stage"), "--estimator", "flops_linear", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert len(report) == 1
    return tmp, Path(report[0]["bundle"]), report[0]


def test_fit_predictor_reports_and_writes_metrics(fitted) -> None:
    tmp, bundle, report = fitted
    assert bundle == tmp / "stage" / "local" / "onnxruntime-t1"
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["metrics"] == report["metrics"]
    k = meta["metrics"]["kernel"]
    assert k["overall"]["n"] > 0 and set(k["per_op"]) == {"conv2d", "dwconv2d", "pwconv", "fc"}
    assert 0 <= k["overall"]["within_10"] <= 1 and -1 <= k["overall"]["spearman"] <= 1
    assert meta["metrics"]["model"]["overall"]["n"] >= 1


def test_publish_check_and_install(fitted) -> None:
    tmp, bundle, _ = fitted
    r = run("publish", str(bundle), "--check", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["installed"] is None
    r = run("publish", str(bundle), "--to", str(tmp / "pub"))
    assert r.returncode == 0, r.stderr
    assert (tmp / "pub" / "local" / "onnxruntime-t1" / "metadata.json").is_file()
    # a tampered bundle: one line, exit code 4, nothing installed
    bad = tmp / "bad"
    bad.mkdir()
    for f in bundle.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "lut.json").write_bytes((bad / "lut.json").read_bytes()[:-10])
    r = run("publish", str(bad), "--to", str(tmp / "pub2"))
    assert r.returncode == 4
    assert "lut.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp / "pub2").exists()


def test_predict_specs_json(fitted) -> None:
    tmp, bundle, _ = fitted
    lut = json.loads((bundle / "lut.json").read_text())["columns"]
    hit = json.loads(lut["spec_json"][0])
    miss = {"op": "conv2d", "h": 33, "w": 33, "cin": 24, "cout": 40, "kh": 3, "kw": 3, "padding": 1}
    r = run("predict", "--bundle", str(bundle), "--spec", json.dumps([hit, miss]), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = out["predictions"]
    assert out["statistic"] == "median"
    assert rows[0]["source"] == "lut" and rows[0]["latency_us"] == lut["median_us"][0]
    assert rows[1]["source"] in ("model", "fallback") and rows[1]["latency_us"] > 0


def test_predict_model_file(fitted, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from devprof.models import builders

    _, bundle, _ = fitted
    path = tmp_path / "m.onnx"
    onnx.save(builders.build("mobilenetv1", builders.reference_config("mobilenetv1")), str(path))
    r = run("predict", "--bundle", str(bundle), "--model", str(path), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["total_us"] > 0 and len(out["layers"]) > 10
    # the table: shares of the layers' sum add to 100% whatever the fitted overhead's sign, which
    # is shown apart in the caption
    r = run("predict", "--bundle", str(bundle), "--model", str(path))
    assert r.returncode == 0, r.stderr
    shares = [float(x) for x in re.findall(r"│\s+([0-9.]+)%\s+│", r.stdout)]
    assert len(shares) > 10 and abs(sum(shares) - 100.0) < 1.0
    assert "runtime overhead (fitted)" in r.stdout


@pytest.mark.parametrize("args,words", [
    (["predict", "--bundle", "/nonexistent", "--spec", "{}"], "no bundle"),
    (["predict", "--bundle", "BUNDLE", "--spec", "{not json"], "not valid JSON"),
    (["predict", "--bundle", "BUNDLE", "--spec", '{"op": "conv9d"}'], "bad kernel spec"),
    (["predict", "--bundle", "BUNDLE"], "exactly one"),
    (["fit-predictor", "/nonexistent-dataset"], "no dataset"),
    (["fit-predictor", "DATASET", "--estimator", "magic"], "unknown estimator"),
    (["fit-predictor", "DATASET", "--statistic", "mean"], "unknown --statistic"),
])
def test_bad_input_is_one_line(fitted, args, words, monkeypatch, capsys) -> None:
    """In-process through `devprof.cli.main` (the console script's entry point): fast, same path."""
    from devprof import cli

    tmp, bundle, _ = fitted
    args = [str(bundle) if a == "BUNDLE" else str(tmp / "ds") if a == "DATASET" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["devprof", *args])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_fit_predictor_help_names_every_candidate(monkeypatch, capsys) -> None:
    from devprof import cli
    from predictors.estimators import CANDIDATES

    monkeypatch.setattr(sys, "argv", ["devprof", "fit-predictor", "--help"])
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code in (0, None)
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in CANDIDATES), text


def test_fit_predictor_never_replaces_a_bundle_without_force(tmp_path, monkeypatch):
    """The default output is ./bundles (not the published datasets_latency/), and an existing
    bundle there is refused with one line unless --force."""
    from support.cli import run_cli

    monkeypatch.chdir(tmp_path)
    ds = tmp_path / "ds"
    r = run_cli("profile", "--device", "local", "--suite", "smoke", "-r", "onnxruntime",
                "--quick", "--out", str(ds))
    assert r.returncode == 0, r.stderr
    r = run_cli("fit-predictor", str(ds), "--estimator", "flops_linear", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    written = list((tmp_path / "bundles").glob("*/*/metadata.json"))
    assert len(written) == 1
    before = written[0].read_bytes()
    r = run_cli("fit-predictor", str(ds), "--estimator", "flops_linear", cwd=tmp_path)
    assert r.returncode == 2 and "already holds a bundle" in r.stderr and "--force" in r.stderr
    errs = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errs) == 1 and written[0].read_bytes() == before
    r = run_cli("fit-predictor", str(ds), "--estimator", "flops_linear", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
