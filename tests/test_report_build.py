"""`devprof report`: every section from realistic datasets, graceful gaps, Markdown, bad input.

Datasets are built with the record model (tests/support/report_synth.py) and written through the real
store; bundles are fitted and published by the real `predictors` code. Nothing of devprof is mocked.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import xml.etree.ElementTree as ET

import pytest

from support import report_synth as S
from support.cli import run_cli
from devprof.errors import DatasetError
from devprof.report import build_document, build_report

SECTIONS = ("devices", "quality", "roofline", "sparse", "accuracy", "layers", "programs", "compare")


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)]


def _sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-section="(\w+)" data-drawn="(true|false)"', html))


def test_full_report_draws_every_section_self_contained(report_full):
    res = report_full
    out = res.path
    assert out.is_file() and res.records > 400
    assert [s["key"] for s in res.sections] == list(SECTIONS)
    assert all(s["drawn"] for s in res.sections), [(s["key"], s["reason"]) for s in res.sections]
    html = out.read_text()
    assert _sections(html) == {k: "true" for k in SECTIONS}
    imgs = _images(html)
    assert len(imgs) == sum(s["figures"] for s in res.sections)
    assert all(s["figures"] >= 1 for s in res.sections if s["key"] not in ("devices", "programs"))  # tables only
    for svg in imgs:  # each figure is a complete, parseable SVG document
        assert ET.fromstring(svg).tag.endswith("svg")
    # nothing outside the file: no scripts, stylesheets, fonts or remote URLs
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert "@media print" in html
    # break-even ratios, held-out figures, overhead terms and model comparisons made it into the tables
    assert "Break-even" in html and "Held-out kernel accuracy" in html and "±10%" in html
    assert "Overhead term" in html and "(overhead)" not in html  # the term is a column, never a "layer"
    assert re.search(r"model 0\.[89]\d×", html)  # LiteRT vs ONNX Runtime end to end (synthetic: 0.93 / 1.06)


def test_sections_say_why_they_cannot_be_drawn_on_an_empty_dataset(report_data, tmp_path):
    res = build_report([report_data["empty"]], out=tmp_path / "e.html", strict=True)
    assert not any(s["drawn"] for s in res.sections)
    for s in res.sections:
        assert s["reason"] and "\n" not in s["reason"]
    html = (tmp_path / "e.html").read_text()
    assert html.count("Cannot be drawn") == len(SECTIONS)
    assert "no predictor bundle was given" in html and "hold no records" in html


def test_single_record_dataset(report_data, tmp_path):
    res = build_report([report_data["single"]], out=tmp_path / "one.html", strict=True)
    drawn = {s["key"]: s for s in res.sections}
    assert len(_images((tmp_path / "one.html").read_text())) == 2  # latency vs FLOPs and roofline
    assert drawn["devices"]["drawn"] and drawn["quality"]["drawn"] and drawn["roofline"]["drawn"]
    assert "no sparse kernel records" in drawn["sparse"]["reason"]
    assert "per-layer records" in drawn["layers"]["reason"]
    assert "one device and runtime" in drawn["compare"]["reason"]
    assert "needs at least two records" in (tmp_path / "one.html").read_text()


def test_mixed_device_dataset_compares_devices(report_data, tmp_path):
    doc, _ = build_document([report_data["mixed"]], strict=True, figures=False)
    sec = {s.key: s for s in doc.sections}
    assert sec["compare"].drawn and sec["compare"].figures
    table = sec["compare"].tables[0]
    assert table.rows[0][0] == "across devices" and int(table.rows[0][3]) == 15  # common kernels
    assert len(sec["devices"].tables[0].columns) == 3  # one column per device (transposed fingerprints)
    assert "no sparse kernel records" in sec["sparse"].missing


def test_sparse_section_has_one_curve_set_per_dtype(tmp_path):
    ds = S.write(tmp_path / "mixed", S.sparse(S.LOCAL, 1) + S.sparse(S.LOCAL, 5, dtype="int8"))
    doc, _ = build_document([ds], strict=True, figures=True)
    sec = {s.key: s for s in doc.sections}["sparse"]
    assert sec.figures
    table = sec.tables[0]
    assert table.columns[1] == "Dtype"
    by = {}
    for row in table.rows:
        by.setdefault(row[1], set()).add(row[3])
    assert set(by) == {"fp32", "int8"} and by["fp32"] == by["int8"]  # every scheme, once per dtype


def test_speedup_break_even_is_interpolated():
    from devprof.report.sections.sparse import break_even

    r = S.np.array([0.5, 0.75, 0.9])
    assert break_even(r, S.np.array([0.5, 2.0, 4.0])) == pytest.approx(0.625)
    assert break_even(r, S.np.array([1.2, 2.0, 4.0])) == -0.5  # faster from the first ratio on
    assert S.np.isnan(break_even(r, S.np.array([0.2, 0.5, 0.9])))


def test_markdown_writes_the_same_tables(report_data, tmp_path):
    out = tmp_path / "r.md"
    res = build_report([report_data["local"], report_data["s20"]], out=out, fmt="md", strict=True)
    md = out.read_text()
    assert md.startswith("# Latency report")
    for s in res.sections:
        assert f"## {s['number']}. {s['title']}" in md
    assert "Cannot be drawn because no predictor bundle was given" in md
    tables = re.findall(r"^\*\*Table \d+\.\*\*", md, flags=re.M)
    assert len(tables) == sum(s["tables"] for s in res.sections)
    # every table row has as many cells as its header
    blocks = re.findall(r"((?:^\|.*\n)+)", md, flags=re.M)
    assert blocks
    for block in blocks:
        widths = {len(re.split(r"(?<!\\)\|", line.strip())) for line in block.splitlines()}
        assert len(widths) == 1, block[:300]
    assert "<img" not in md and "(figure in the HTML report)" in md


def test_cli_prints_path_and_json(report_data, report_bundle, tmp_path):
    out = tmp_path / "cli.html"
    p = run_cli("report", str(report_data["single"]), "--bundle", str(report_bundle), "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(out) and out.is_file()
    p = run_cli("report", str(report_data["empty"]), "-o", str(tmp_path / "e.md"), "--format", "md", "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["path"] == str(tmp_path / "e.md") and info["records"] == 0 and len(info["sections"]) == 8


def _one_line_error(p, code: int, text: str) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], p.stderr


def test_newer_schema_is_a_one_line_error(report_data, tmp_path):
    import shutil

    ds = tmp_path / "future"
    shutil.copytree(report_data["single"], ds)
    (ds / "dataset.json").write_text(json.dumps({"format": "devprof-dataset", "schema_version": 99}))
    with pytest.raises(DatasetError, match="newer than this devprof"):
        build_report([ds], out=tmp_path / "x.html")
    p = run_cli("report", str(ds), "-o", str(tmp_path / "x.html"))
    _one_line_error(p, 4, "schema version 99")
    assert not (tmp_path / "x.html").exists()


def test_bad_inputs_are_one_line_errors(report_data, report_bundle, tmp_path):
    _one_line_error(run_cli("report", str(tmp_path / "missing")), 4, "no dataset at")
    _one_line_error(run_cli("report", str(report_data["single"]), "--format", "pdf"), 2, "unknown --format")
    _one_line_error(run_cli("report"), 2, "give at least one dataset")
    _one_line_error(run_cli("report", str(report_data["single"]), "-o", str(tmp_path / "no" / "r.html")), 2,
                    "does not exist")
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(report_bundle, bad)
    lut = bad / "lut.json"
    lut.write_bytes(lut.read_bytes().replace(b"conv2d", b"conv3d", 1))
    _one_line_error(run_cli("report", str(report_data["single"]), "--bundle", str(bad), "-o", str(tmp_path / "t.html")),
                    4, "refusing to load")


def test_compute_ceiling_from_fingerprints():
    from devprof.report.hardware import estimate_peak

    s20 = S.S20.to_dict()
    p = estimate_peak(s20, 1, cpus="4-6")  # pinned to the 2.42 GHz cluster: NEON, 16 FLOP/cycle
    assert p.gflops == pytest.approx(2.4192 * 16) and "pinned cluster (mid)" in p.how
    assert estimate_peak(s20, 1).freq_ghz == pytest.approx(2.8416)  # unpinned: the fastest cluster
    local = S.LOCAL.to_dict()
    assert estimate_peak(local, 1) is None  # no frequency anywhere: no ceiling, and the page says why
    p = estimate_peak(local, 4, observed_freq_khz=2_600_000)
    assert p.cores == 2 and p.flops_per_cycle == 32 and p.gflops == pytest.approx(2.6 * 32 * 2)  # Zen 4
    intel = {**local, "cpu": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"}
    assert estimate_peak(intel, 1).gflops == pytest.approx(2.9 * 64)


def _cells(doc, skip=None) -> list[str]:
    return [str(v) for s in doc.sections for t in s.tables if t is not skip for row in t.rows for v in row]


def test_runtime_labels_are_short_and_devices_compare_on_name_and_threads(report_data):
    doc, data = build_document([report_data["local"], report_data["s20"]], strict=True, figures=False)
    assert set(data.records["runtime_label"]) == {"onnxruntime/t1", "litert/t1", "devprof-c/t1"}
    sec = {s.key: s for s in doc.sections}
    # the full options (compiler string, ISA, vector width) are in one table, and only there
    full = [t for s in doc.sections for t in s.tables
            if any("cc (Debian 12.2.0-14+deb12u1)" in str(v) for row in t.rows for v in row)]
    assert len(full) == 1 and full[0] in sec["devices"].tables
    opts = " ".join(str(v) for row in full[0].rows for v in row)
    assert "vector_floats=16" in opts and "vector_floats=4" in opts and "isa=armv8.2-a+dotprod" in opts
    assert not any("cc=" in c or "vector_floats" in c for c in _cells(doc, skip=full[0]))
    # the comparison across devices finally compares devprof-c (local vs the phone)
    rows = sec["compare"].tables[0].rows
    across = {(r[1], r[2]) for r in rows if r[0] == "across devices"}
    assert ("Galaxy S20 5G · devprof-c/t1", "local · devprof-c/t1") in across, across


def test_runtime_labels_name_only_options_that_differ_on_one_device(tmp_path):
    rng = S.np.random.default_rng(0)
    spec = S.KernelSpec("conv2d", h=28, w=28, cin=32, cout=32, kh=3, kw=3, padding=1)
    on, off = S.LITERT, S.RuntimeInfo("litert", "2.3.0", 1, {"xnnpack": False})
    ds = S.write(tmp_path / "ds", [S.record(spec, S.LOCAL, on, 90.0, rng), S.record(spec, S.LOCAL, off, 300.0, rng),
                                   S.record(spec, S.S20, on, 400.0, rng),
                                   S.record(spec, S.S20, S.RuntimeInfo("litert", "2.3.0", 4, {"xnnpack": True}),
                                            150.0, rng)])
    doc, data = build_document([ds], strict=True, figures=False)
    assert sorted(set(data.records["runtime_label"])) == ["litert[xnnpack=off]/t1", "litert[xnnpack=on]/t1",
                                                          "litert[xnnpack=on]/t4"]
    rows = {s.key: s for s in doc.sections}["compare"].tables[0].rows
    assert rows[0][0] == "across devices"
    assert {rows[0][1], rows[0][2]} == {"Galaxy S20 5G · litert[xnnpack=on]/t1", "local · litert[xnnpack=on]/t1"}


def _conditions_text(doc) -> str:
    sec = {s.key: s for s in doc.sections}["quality"]
    return " ".join(b.text for b in sec.blocks if hasattr(b, "text"))


def test_unreadable_temperature_is_not_a_rise_of_zero(tmp_path):
    rng = S.np.random.default_rng(1)
    spec = S.KernelSpec("conv2d", h=28, w=28, cin=32, cout=32, kh=3, kw=3, padding=1)
    zero = S.Conditions(freq_before_khz=2_600_000, freq_after_khz=2_600_000, temp_before_c=0.0, temp_after_c=0.0)
    recs = [dataclasses.replace(S.record(spec, S.LOCAL, S.ORT, 90.0 + i, rng), conditions=zero) for i in range(3)]
    doc, _ = build_document([S.write(tmp_path / "vm", recs)], strict=True, figures=False)
    text = _conditions_text(doc)
    assert "rose by" not in text and "No usable temperature sensor on local:" in text, text
    table = {s.key: s for s in doc.sections}["quality"].tables[0]
    assert table.rows[0][-1] == "not readable"
    # a phone with a sensor next to a host without one: each device says what it knows
    recs += [S.record(spec, S.S20, S.ORT, 300.0 + i, rng) for i in range(3)]
    doc, _ = build_document([S.write(tmp_path / "both", recs)], strict=True, figures=False)
    text = _conditions_text(doc)
    assert "No usable temperature sensor on local:" in text and "Galaxy S20 5G: +0.4 °C" in text, text


def test_above_the_estimated_peak_is_marked_and_explained(tmp_path):
    rng = S.np.random.default_rng(2)
    spec = S.KernelSpec("conv2d", h=56, w=56, cin=64, cout=64, kh=3, kw=3, padding=1)
    # 2.6 GHz read by the VM x 32 FLOP/cycle x 1 core = 83 GFLOP/s; the kernel ran at 110
    recs = [S.record(spec, S.LOCAL, S.ORT, spec.flops / 110e3, rng)]
    doc, _ = build_document([S.write(tmp_path / "fast", recs)], strict=True, figures=False)
    sec = {s.key: s for s in doc.sections}["roofline"]
    cell = sec.tables[0].rows[0][-1]
    assert cell.startswith("132") and cell.endswith("†"), cell
    assert "†" in sec.tables[0].caption
    text = " ".join(b.text for b in sec.blocks if hasattr(b, "text"))
    assert "base clock" in text and "local · onnxruntime/t1" in text, text


def test_latency_vs_flops_has_iqr_error_bars(report_data):
    doc, _ = build_document([report_data["single"]], strict=True)
    fig = {s.key: s for s in doc.sections}["roofline"].figures[0]
    svg = base64.b64decode(fig.data_uri.split(",", 1)[1]).decode()
    assert 'id="iqr-errorbars' in svg and "interquartile" in fig.caption


def test_devprof_c_is_compared_across_devices_under_short_labels(tmp_path):
    """Generated kernels carry their compiler, ISA and vector width in the runtime options, which
    differ from device to device: the labels once held them all (`devprof-c[cc=cc (Debian 12.2.0…
    vector_floats=16]/t1`), so local and the phone were never compared and legends were cut."""
    from devprof.records import RuntimeInfo

    dc_local = RuntimeInfo("devprof-c", "0.1.0", 1, {"cc": "cc (Debian 12.2.0-14+deb12u1) 12.2.0", "isa": "avx512",
                                                     "vector_floats": 16, "vector_regs": 32})
    dc_s20 = RuntimeInfo("devprof-c", "0.1.0", 1, {"cc": "aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0",
                                                   "isa": "neon", "vector_floats": 4, "vector_regs": 32})
    ds = S.write(tmp_path / "dc", S.kernels(S.LOCAL, (dc_local,), 15, seed=7) + S.kernels(S.S20, (dc_s20,), 15, seed=7))
    doc, _ = build_document([ds], strict=True, figures=False)
    sec = {s.key: s for s in doc.sections}
    assert sec["compare"].drawn, sec["compare"].missing
    rows = sec["compare"].tables[0].rows
    assert rows[0][0] == "across devices" and rows[0][1:3] == ["local · devprof-c/t1", "Galaxy S20 5G · devprof-c/t1"]
    assert int(rows[0][3]) >= 5  # the common kernels are compared
    text = " ".join(" ".join(map(str, r)) for s in doc.sections for t in s.tables for r in t.rows
                    if t.columns[-1] != "Options")
    assert "cc=" not in text and "vector_floats" not in text  # short labels everywhere...
    opts = [t for t in sec["devices"].tables if t.columns == ["Device", "Runtime", "Version", "Options"]]
    assert opts and any("vector_floats=16" in r[3] for r in opts[0].rows)  # ...the full options in one table


def test_temperature_note_is_per_device_and_says_unreadable(tmp_path):
    import dataclasses

    import numpy as np

    rng = np.random.default_rng(2)
    spec = S.KernelSpec("conv2d", h=28, w=28, cin=32, cout=32, kh=3, kw=3, padding=1)
    local = S.record(spec, S.LOCAL, S.ORT, 800.0, rng)
    local = dataclasses.replace(local, conditions=dataclasses.replace(local.conditions, temp_before_c=float("nan"),
                                                                        temp_after_c=float("nan")))
    phone = S.record(spec, S.S20, S.ORT, 900.0, rng)
    phone = dataclasses.replace(phone, conditions=dataclasses.replace(phone.conditions, temp_before_c=35.0,
                                                                        temp_after_c=35.0))
    doc, _ = build_document([S.write(tmp_path / "t", [local, phone])], strict=True, figures=False)
    text = " ".join(p.text if hasattr(p, "text") else str(p) for s in doc.sections for p in getattr(s, "blocks", []))
    assert "Temperature rose by 0.0" not in text
    assert "No usable temperature sensor on" in text and "local" in text and "constant 35.0 °C" in text


def test_two_compilers_on_one_device_are_numbered_not_spelled(tmp_path):
    rng = S.np.random.default_rng(3)
    spec = S.KernelSpec("conv2d", h=28, w=28, cin=32, cout=32, kh=3, kw=3, padding=1)
    gcc = S.devc(S.LOCAL)
    clang = S.RuntimeInfo("devprof-c", "0.1.0", 1, {**S.DEVC_OPTIONS["local"], "cc": "Debian clang version 14.0.6"})
    ds = S.write(tmp_path / "cc", [S.record(spec, S.LOCAL, gcc, 90.0, rng), S.record(spec, S.LOCAL, clang, 80.0, rng)])
    doc, data = build_document([ds], strict=True, figures=False)
    assert sorted(set(data.records["runtime_label"])) == ["devprof-c#1/t1", "devprof-c#2/t1"]
    conf = {s.key: s for s in doc.sections}["devices"].tables[1]
    assert conf.columns == ["Device", "Runtime", "Version", "Options"]
    spelled = {r[1]: r[3] for r in conf.rows}
    assert "clang version 14.0.6" in spelled[data.records.loc[data.records["median_us"] < 85, "runtime_label"].iloc[0]]
