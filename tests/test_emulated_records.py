"""Records of emulated devices (an Android emulator, the emulated arm64 phone under qemu) are marked
and kept apart: `fit-predictor` refuses to mix them with real ones, `show` and the report say so."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from devprof.records import Record

from support import predictors_synth as synth
from support import report_synth as rs
from support.cli import run_cli


def _emulated(records: list[Record]) -> list[Record]:
    return [dataclasses.replace(r, device=dataclasses.replace(r.device, emulated=True)) for r in records]


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("emu")
    recs = synth.records(synth.random_specs(60, seed=3))
    return {"real": rs.write(root / "real", recs), "emulated": rs.write(root / "emulated", _emulated(recs))}


def test_the_emulated_flag_changes_the_device_id_only_when_true():
    d = synth.DEVICE
    assert dataclasses.replace(d, emulated=False).id == d.id != dataclasses.replace(d, emulated=True).id


def test_fit_predictor_refuses_to_mix_emulated_and_real_records(two, tmp_path):
    r = run_cli("fit-predictor", str(two["real"]), str(two["emulated"]), "--out", str(tmp_path / "b"),
                "--estimator", "flops_linear")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("error:") and "emulated" in r.stderr and "--drop-emulated" in r.stderr
    assert not (tmp_path / "b").exists()
    # --drop-emulated fits the real records; emulated ones alone fit into their own device folder
    r = run_cli("fit-predictor", str(two["real"]), str(two["emulated"]), "--out", str(tmp_path / "b"),
                "--estimator", "flops_linear", "--drop-emulated", "--json")
    assert r.returncode == 0, r.stderr
    real = json.loads(r.stdout)
    assert len(real) == 1 and real[0]["dataset"]["records"] == 60 and not real[0]["bundle"].count("emulated")
    r = run_cli("fit-predictor", str(two["emulated"]), "--out", str(tmp_path / "b"), "--estimator", "flops_linear",
                "--json")
    assert r.returncode == 0, r.stderr
    emu = json.loads(r.stdout)
    assert "emulated" in Path(emu[0]["bundle"]).parent.name and "warning" in r.stderr
    assert emu[0]["bundle"] != real[0]["bundle"]
    r = run_cli("fit-predictor", str(two["emulated"]), "--drop-emulated", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "from real devices" in r.stderr and r.stderr.strip().count("\n") == 0


def test_show_marks_emulated_records(two):
    r = run_cli("show", str(two["emulated"]), "--long", "--limit", "2")
    assert r.returncode == 0 and "(emulated)" in r.stdout and "say nothing about a phone" in r.stderr
    r = run_cli("show", str(two["real"]), "--limit", "2")
    assert r.returncode == 0 and "emulated" not in r.stdout + r.stderr
    rows = json.loads(run_cli("show", str(two["emulated"]), "--json", "--limit", "2").stdout)
    assert rows[0]["emulated"] is True and rows[0]["device_name"].endswith("(emulated)")


def test_report_labels_the_emulated_device(two):
    from devprof.report import build_document

    doc, _ = build_document([two["real"], two["emulated"]], figures=False, strict=True)
    assert "1 device emulated" in doc.subtitle
    dev = next(s for s in doc.sections if s.key == "devices")
    text = json.dumps([dataclasses.asdict(b) for b in dev.blocks], default=str)
    name = synth.DEVICE.name
    assert f"{name} (emulated)" in text and f"Emulated: {name} (emulated)." in text
