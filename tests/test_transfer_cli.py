"""`devprof fit-predictor --transfer-from` and `profile --adaptive --transfer-from`, in process
through `devprof.cli.main` (the console script's entry point)."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import predictors
from devprof import from_models as fm
from devprof.records import Measurement, Record
from devprof.store import Dataset

from support import predictors_synth as synth

OPS = ("none", "skip", "conv1", "conv3", "pool")


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from devprof import cli as c

    monkeypatch.setattr(sys, "argv", ["devprof", *args])
    monkeypatch.setenv("COLUMNS", "400")
    code = 0
    try:
        c.main()
    except SystemExit as e:
        code = int(e.code or 0)
    o = capsys.readouterr()
    return code, o.out, o.err


def _table(seed: int, space: str = "e") -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"{space}{e}:{o}": float(rng.uniform(50, 900)) for e in range(6) for o in OPS}


def _timings(path: Path, name: str, table: dict[str, float], n: int, seed: int, scale: float = 1.0,
             space: str = "e") -> Path:
    rng = np.random.default_rng(seed)
    models = []
    for i in range(n):
        layers = [f"{space}{e}:{OPS[o]}" for e, o in enumerate(rng.integers(0, 5, 6))]
        models.append(fm.ModelTiming(f"{name}-{i}", layers, scale * (40.0 + sum(table[k] for k in layers))))
    return fm.write_timings(path, fm.TimingSet({"name": name}, {"name": "tflite", "threads": 1}, models))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transfer")
    src_a = _timings(tmp / "a.jsonl", "phone-a", _table(1), 60, 1)
    src_b = _timings(tmp / "b.jsonl", "phone-b", _table(2), 60, 2)
    target = _timings(tmp / "new.jsonl", "new-phone", _table(1), 40, 3, scale=2.5)  # phone A, 2.5x slower
    alien = _timings(tmp / "alien.jsonl", "alien", _table(3, "x"), 30, 4, space="x")
    return tmp, src_a, src_b, target, alien


def test_models_transfer_recovers_a_scaled_source_from_5(tables, monkeypatch, capsys):
    tmp, a, b, target, _ = tables
    code, out, err = cli(monkeypatch, capsys, "fit-predictor", "--from-models", str(a), "--out", str(tmp / "src"))
    assert code == 0, err
    bundle_a = next((tmp / "src").glob("*/*"))
    code, out, err = cli(monkeypatch, capsys, "fit-predictor", "--transfer-from", str(bundle_a), "--transfer-from",
                         str(b), str(target), "--samples", "5", "--out", str(tmp / "out"), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["samples"] == 5 and rep["held_out"] == 35
    assert rep["heldout"]["within_5"] == 1.0 and not rep["prior_shrunk_away"]
    p = predictors.load(rep["bundle"])
    tr = p.metrics["transfer"]
    assert tr["n_target_samples"] == 5 and len(tr["sources"]) == 2 and tr["loo"]["within_10"] == 1.0
    assert tr["prior_shrunk_away"] is False
    (ts,) = fm.read_timings(target)
    m = ts.models[-1]
    got = p.predict_model([fm.layer_spec(k, {}) for k in m.layers]).total_us
    assert got == pytest.approx(m.latency_us, rel=1e-6)
    # the human-readable report
    code, out, err = cli(monkeypatch, capsys, "fit-predictor", "--transfer-from", str(bundle_a), "--transfer-from",
                         str(b), str(target), "--samples", "5", "--out", str(tmp / "out2"))
    assert code == 0 and "leave-one-out" in out and "bundle written" in err


def test_models_transfer_contradicting_target_says_so(tables, monkeypatch, capsys):
    tmp, a, b, _, _ = tables
    rng = np.random.default_rng(9)
    unlike = {k: float(v) for k, v in zip(_table(1), rng.permutation(list(_table(1).values())) * 3)}
    target = _timings(tmp / "unlike.jsonl", "unlike-phone", unlike, 130, 7)
    code, out, err = cli(monkeypatch, capsys, "fit-predictor", "--transfer-from", str(a), "--transfer-from", str(b),
                         str(target), "--samples", "100", "--out", str(tmp / "unlike"))
    assert code == 0, err
    assert "contradict every source" in err
    p = predictors.load(next((tmp / "unlike").glob("*/*")))
    tr = p.metrics["transfer"]
    assert tr["prior_shrunk_away"] is True and tr["n_target_samples"] == 100
    assert tr["heldout"]["within_10"] >= 0.9  # it still fits (three timings per layer: 31 layers)


@pytest.mark.parametrize("args,words", [
    (["--transfer-from", "A"], "give the target"),
    (["--transfer-from", "A", "--transfer-from", "A", "T"], "duplicate source name"),
    (["--transfer-from", "A", "T", "--samples", "0"], "--samples must be at least 1"),
    (["--transfer-from", "ALIEN", "T", "--samples", "5"], "another search space"),
    (["--transfer-from", "/nonexistent", "T"], "not found"),
    (["T", "--samples", "5"], "--samples goes with --transfer-from"),
    (["--transfer-from", "A", "T", "--statistic", "mean"], "unknown --statistic"),
])
def test_transfer_bad_input_is_one_line(tables, args, words, monkeypatch, capsys):
    tmp, a, b, target, alien = tables
    args = [str(a) if x == "A" else str(target) if x == "T" else str(alien) if x == "ALIEN" else x for x in args]
    code, out, err = cli(monkeypatch, capsys, "fit-predictor", *args, "--out", str(tmp / "bad"))
    err = err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def _kernel_dataset(path: Path, name: str, specs, factor: float, seed: int) -> Path:
    dev = dataclasses.replace(synth.DEVICE, name=name, model=name)
    rng = np.random.default_rng(seed)
    recs = []
    for s in specs:
        t = factor * synth.true_latency_us(s)
        recs.append(Record(spec=s, device=dev, runtime=synth.RUNTIME,
                           measurement=Measurement(tuple(float(x) for x in t * np.exp(rng.normal(0, 0.005, 5))), 3, 10),
                           started_at=1.7e9, finished_at=1.7e9 + 1, devprof_version="0.1.0"))
    ds = Dataset(path)
    ds.create()
    ds.append(recs)
    return path


@pytest.fixture(scope="module")
def kernel_bundles(tmp_path_factory):
    from predictors.estimators import CANDIDATES
    from devprof.store import read_datasets
    from predictors.fit import fit_bundles

    tmp = tmp_path_factory.mktemp("kernels")
    specs = synth.random_specs(80, seed=3)
    bundles = []
    for name, f in (("phone-a", 1.0), ("phone-b", 0.4)):
        ds = _kernel_dataset(tmp / name, name, specs, f, 1)
        (b,) = fit_bundles(read_datasets([ds]), [str(ds)], candidates={"flops_linear": CANDIDATES["flops_linear"]})
        bundles.append(str(b.write(tmp / "src")))
    return specs, bundles


def test_kernel_transfer_and_adaptive_choice(kernel_bundles, tmp_path, monkeypatch, capsys):
    specs, bundles = kernel_bundles
    target = _kernel_dataset(tmp_path / "new", "new-phone", specs[:40], 3.0, 2)
    code, out, err = cli(monkeypatch, capsys, "fit-predictor", "--transfer-from", bundles[0], "--transfer-from",
                         bundles[1], str(target), "--samples", "5", "--out", str(tmp_path / "out"), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["mode"] == "kernels" and rep["samples"] == 5 and rep["heldout"]["within_10"] == 1.0
    p = predictors.load(rep["bundle"])
    assert p.metrics["transfer"]["n_target_samples"] == 5
    want = np.array([3.0 * synth.true_latency_us(s) for s in specs[40:]])  # never measured on the target
    got = p.predict(specs[40:]).latency_us
    assert np.mean(np.abs(got - want) / want <= 0.10) == 1.0
    # kernels no table holds: the top source's regressors, rescaled
    fresh = [s for s in synth.random_specs(60, seed=11) if s.key not in {x.key for x in specs}]
    src_a = predictors.load(bundles[0])
    r = p.predict(fresh)
    assert (r.source != "lut").all()
    np.testing.assert_allclose(r.latency_us, 3.0 * src_a.predict(fresh).latency_us, rtol=0.05)
    # which kernels to measure first on a new phone
    from devprof.transfer import choose_kernels, load_sources

    kind, srcs, _ = load_sources(bundles)
    picks = choose_kernels(srcs, specs, 7)
    assert kind == "kernel" and len({s.key for s in picks}) == 7


def test_profile_adaptive_transfer_measures_the_chosen_kernels(kernel_bundles, tiny_suite, tmp_path, monkeypatch,
                                                               capsys):
    _, bundles = kernel_bundles
    out_dir = tmp_path / "new"
    code, out, err = cli(monkeypatch, capsys, "profile", "--adaptive", "--transfer-from", bundles[0],
                         "--transfer-from", bundles[1], "--suite", str(tiny_suite), "-r", "onnxruntime",
                         "--budget", "2", "--quick", "--out", str(out_dir), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert len(rep["chosen"]) == 2
    df = Dataset(out_dir).read()
    assert sorted(df["spec_key"].unique()) == sorted(rep["chosen"])
    code, out, err = cli(monkeypatch, capsys, "profile", "--adaptive", "--transfer-from", bundles[0],
                         "--suite", str(tiny_suite), "--budget", "0", "--out", str(out_dir))
    assert code == 2 and "--budget must be at least 1" in err and len(err.strip().splitlines()) == 1
