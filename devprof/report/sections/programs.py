"""Section: pruned models as one generated program — the answer a pruning search wants.

`devprof profile --model M --prune SCHEME:RATIO -r devprof-c [-r onnxruntime -r litert]` writes,
per setting (dense and pruned), the model's layers timed alone (`M|<setting>`, model record
``composed=sum-of-layers``), the same model as one generated program (`M|<setting>|program`,
``composed=program``, with ``in_model`` layer records from the same calls) and, with the other
runtimes, the dense model on them (`M`). This section sets them side by side per device: the
pruned program end to end against the dense model in ONNX Runtime and LiteRT, the layers that
still dominate inside the program, and what isolated-layer tables miss (Σ in-model vs Σ alone).
"""
from __future__ import annotations

import pandas as pd

from ..data import ReportData
from ..model import Section, Table

TITLE = "Pruned models as one program"
TOP_LAYERS = 8
SUFFIX = "|program"


def _ms(us: float) -> str:
    return "-" if us != us else f"{us / 1000:,.2f}"


def _x(a: float, b: float) -> str:
    return "-" if a != a or b != b or b <= 0 else f"{a / b:.2f}x"


def build(data: ReportData) -> Section:
    s = Section("programs", TITLE, lead=(
        "A pruned model timed as one generated program (devprof-c: every layer in sequence on planned buffers, "
        "checked against ONNX Runtime on the same pruned weights) against the dense model on the runtimes a phone "
        "ships, on the same device and threads. Σ in program is the layers timed inside the program's own calls; "
        "Σ alone is the same kernels timed one by one: their difference is what per-layer tables miss."))
    if data.empty:
        s.missing = "the datasets hold no records"
        return s
    models = data.kind("model")
    # the program computes fp32: its comparisons (layers alone, the dense model on other runtimes)
    # are the fp32 runs of the same names, never an int8 run of the model
    models = models[models["dtype"] == "fp32"] if len(models) else models
    progs = models[models["model_name"].str.endswith(SUFFIX)] if len(models) else models
    if not len(progs):
        s.missing = ("no whole-model program runs in the data (profile one with "
                     "`devprof profile --model mobilenetv2 --prune bcr:0.9 -r devprof-c -r onnxruntime -r litert`)")
        return s
    layers = data.kind("layer")
    layers = layers[layers["dtype"] == "fp32"] if len(layers) else layers
    rows, tops = [], []
    for (dev, name), g in progs.groupby(["device_label", "model_name"], sort=True):
        model, setting = name[:-len(SUFFIX)].split("|", 1)
        if setting == "dense":
            continue
        on_dev = models[models["device_label"] == dev]
        e2e = float(g["median_us"].min())
        dense_prog = on_dev[on_dev["model_name"] == f"{model}|dense{SUFFIX}"]["median_us"].min()
        alone = on_dev[on_dev["model_name"] == f"{model}|{setting}"]["median_us"].min()

        def dense_on(rt: str) -> float:
            m = on_dev[(on_dev["model_name"] == model) & (on_dev["runtime"] == rt)]
            return float(m["median_us"].min()) if len(m) else float("nan")

        ort, lite = dense_on("onnxruntime"), dense_on("litert")
        inside = layers[(layers["model_name"] == name) & (layers["device_label"] == dev)] if len(layers) else layers
        alone_l = layers[(layers["model_name"] == f"{model}|{setting}") & (layers["device_label"] == dev)] \
            if len(layers) else layers
        in_sum = float(inside.drop_duplicates("layer_index", keep="last")["median_us"].sum()) if len(inside) else float("nan")
        rows.append([f"{model} {setting} · {dev}", _ms(e2e), _ms(float(dense_prog)), _ms(ort), _ms(lite),
                     f"{_x(ort, e2e)} / {_x(lite, e2e)}", _ms(in_sum), _ms(float(alone))])
        if len(inside):
            by_idx = alone_l.drop_duplicates("layer_index", keep="last").set_index("layer_index")["median_us"] \
                if len(alone_l) else pd.Series(dtype=float)
            top = inside.drop_duplicates("layer_index", keep="last").nlargest(TOP_LAYERS, "median_us")
            for _, r in top.iterrows():
                a = float(by_idx.get(r["layer_index"], float("nan")))
                tops.append([f"{model} {setting}", str(r["layer_name"]), str(r["op"]),
                             f"{r['median_us']:,.1f}",
                             f"{r['median_us'] / in_sum:.1%}" if in_sum == in_sum and in_sum > 0 else "-",
                             "-" if a != a else f"{a:,.1f}"])
    if not rows:
        s.missing = "only dense programs in the data: profile with --prune SCHEME:RATIO"
        return s
    s.add(Table("Pruned program end to end vs the dense model (ms; speedup = dense time / pruned program time; "
                "Σ in program and Σ alone: the pruned layers timed inside the program and one by one)",
                ["model · device", "program", "dense prog.", "ORT dense", "LiteRT dense", "speedup ORT / LiteRT",
                 "Σ in program", "Σ alone"], rows, numeric=[False] + [True] * 7))
    if tops:
        s.add(Table(f"Layers that still dominate the pruned program (the {TOP_LAYERS} slowest per model; µs)",
                    ["model", "layer", "op", "in program", "share", "alone"], tops,
                    numeric=[False, False, False, True, True, True]))
    return s
