"""`devprof export-table` and `devprof import-table`: tables in the search front ends' formats.

    devprof export-table -b BUNDLE -f csv -o table.csv              # flat (key, ms, spread, count)
    devprof export-table -b BUNDLE -f ofa-yaml --space S.toml -o t.yaml   # block latencies
    devprof export-table -b BUNDLE -f onnx -o predictor/             # regressors / layer table as ONNX
    devprof import-table mobile_lut.yaml -o DATASET --device "Pixel 1" --runtime tflite
    devprof import-table bench/mobilenetv2s.jsonl -o DATASET         # nn-Meter models
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError

EXPORT_FORMATS = ("csv", "json", "ofa-yaml", "onnx")
IMPORT_FORMATS = ("auto", "ofa-yaml", "csv", "json", "nnmeter")


def _guess(path: Path) -> str:
    suf = path.suffix.lower()
    if suf in (".yaml", ".yml"):
        return "ofa-yaml"
    if suf == ".csv":
        return "csv"
    if suf == ".jsonl":
        return "nnmeter"
    if suf == ".json":
        return "json"
    raise UsageError(f"cannot tell the format of {path}; pass --format ({', '.join(IMPORT_FORMATS[1:])})")


def export_table(bundle: Path, fmt: str, out: Path, space: Optional[Path] = None) -> dict:
    """Write `bundle` in format `fmt` to `out`; returns what was written (for --json)."""
    from ..formats import flat, ofa
    from ..formats.table import LatencyTable

    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (known: {', '.join(EXPORT_FORMATS)})")
    has_fm = (bundle / "from_models.json").is_file()
    if fmt == "onnx":
        from ..formats import onnx_predictor

        if has_fm:
            from ..from_models import load_model

            p = onnx_predictor.write_layer_model(load_model(bundle), out if out.suffix == ".onnx" else
                                                 out / "layer_table.onnx")
            return {"written": [str(p), str(p.with_suffix(".features.json"))], "kind": "layer-table"}
        files = onnx_predictor.export_bundle(bundle, out)
        return {"written": [str(f) for f in files] + [str(out / "index.json")], "kind": "kernel-regressors"}
    if fmt in ("csv", "json"):
        if has_fm:  # the learned per-(position, block) table under its layer ids
            from ..from_models import load_model

            lm = load_model(bundle)
            t = LatencyTable(stat="learned", spread="none", meta={"source": "devprof-from-models"})
            for k, v in zip(lm.keys, lm.latency_us):
                t.add(k, float(v) / 1000.0, 0.0, 0)
        else:
            t = flat.from_bundle(bundle)
        flat.write(t, out)
        return {"written": [str(out)], "rows": len(t)}
    # ofa-yaml: block latencies
    import predictors

    p = predictors.load(bundle)
    t = LatencyTable(stat=p.statistic, spread="iqr", meta={"format": "ofa-yaml"})
    served = f"{p.statistic}_us"
    if space is not None:
        from ..models.walk import walk
        from ..space import load_space

        sp = load_space(space)
        rt = str(p.metadata.get("runtime", {}).get("name", ""))
        fusion = rt if rt in ("onnxruntime", "litert") else "generic"
        block_rows = {}
        lut = p.lut
        for a, k, med, iqr, n in zip(lut["attrs"], lut["key"], lut[served], lut["iqr_us"], lut["repeats"]):
            try:
                blk = json.loads(a).get("block")
            except ValueError:
                blk = None
            if blk and "position" not in json.loads(a):
                block_rows[blk] = (float(med), float(iqr), int(n))
        for b in sp.blocks():
            if b.key in block_rows:  # measured as a whole block (profile --space data)
                med, iqr, n = block_rows[b.key]
                t.add(b.key, med / 1000.0, iqr / 1000.0, n)
                continue
            layers = walk(ofa.blocks_model([b], act=sp.act), fusion=fusion).specs
            r = p.predict(layers)
            t.add(b.key, float(r.latency_us.sum()) / 1000.0, 0.0, 0)  # predicted: count 0
    else:
        lut = p.lut
        for a, med, iqr, n in zip(lut["attrs"], lut[served], lut["iqr_us"], lut["repeats"]):
            try:
                d = json.loads(a)
            except ValueError:
                continue
            if d.get("block") and "position" not in d:
                t.add(str(d["block"]), float(med) / 1000.0, float(iqr) / 1000.0, int(n))
        if not len(t):
            raise UsageError(f"{bundle} holds no whole-block entries; give --space FILE to predict the space's "
                             "blocks from its kernels")
    ofa.write(t, out)
    return {"written": [str(out)], "rows": len(t)}


def import_table(src: Path, fmt: str, out: Path, device: str, runtime: str, version: str) -> dict:
    from ..formats import flat, nnmeter, ofa
    from ..formats.records import table_records
    from ..session import Session

    fmt = _guess(src) if fmt == "auto" else fmt
    if fmt not in IMPORT_FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (known: {', '.join(IMPORT_FORMATS)})")
    if fmt == "nnmeter":
        models = nnmeter.read(src)
        recs = nnmeter.to_records(models)
        extra = {"models": len(models), "devices": nnmeter.devices_of(models),
                 "unknown_ops": sorted({u for m in models for u in m.unknown})}
    else:
        t = ofa.read(src) if fmt == "ofa-yaml" else flat.read(src)
        recs = table_records(t, device, runtime, version, source=fmt)
        extra = {"entries": len(t)}
    with Session(out) as ses:  # the one writer of records, imported ones too
        added = ses.save(recs)
    return {"dataset": str(ses.path), "format": fmt, "records": len(recs), "added": added, **extra}


def register(app: typer.Typer) -> None:
    @app.command("export-table")
    def export_cmd(
        bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle folder (datasets_latency/<device>/<runtime>)."),
        fmt: str = typer.Option("csv", "--format", "-f", help="csv | json (flat key, ms, spread, count), ofa-yaml "
                                                              "(OFA/ProxylessNAS block table), onnx (predictor graph)."),
        out: Path = typer.Option(..., "--out", "-o", help="File to write (a folder for onnx kernel regressors)."),
        space: Optional[Path] = typer.Option(None, "--space", help="With ofa-yaml: the search space whose blocks to "
                                                                   "list (blocks not measured whole are predicted "
                                                                   "from their kernels)."),
        json_out: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
    ) -> None:
        """Export a bundle's lookup table or predictor in a search front end's format."""
        res = export_table(bundle, fmt.lower(), out, space)
        if json_out:
            print(json.dumps(res, indent=2))
        else:
            for w in res["written"]:
                print(w)

    @app.command("import-table")
    def import_cmd(
        src: Path = typer.Argument(..., help="A table (OFA .yaml, flat .csv/.json) or an nn-Meter .jsonl dataset."),
        out: Path = typer.Option(Path("devprof-data"), "--out", "-o", help="Dataset folder to add the records to."),
        fmt: str = typer.Option("auto", "--format", "-f", help="auto (by extension), ofa-yaml, csv, json, nnmeter."),
        device: str = typer.Option("imported", "--device", help="Device name to record (tables do not say)."),
        runtime: str = typer.Option("imported", "--runtime", help="Runtime name to record."),
        version: str = typer.Option("", "--runtime-version", help="Runtime version to record."),
        json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    ) -> None:
        """Import a front end's lookup table or nn-Meter's model dataset as devprof records."""
        res = import_table(src, fmt.lower(), out, device, runtime, version)
        if json_out:
            print(json.dumps(res, indent=2))
        else:
            print(f"{res['added']} of {res['records']} records added to {res['dataset']} ({res['format']})")
