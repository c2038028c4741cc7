"""`devprof predict -b BUNDLE (--model FILE | --spec JSON)`: answers from a bundle for shell users
and other languages."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError


def predict(
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle folder (datasets_latency/<device>/<runtime>)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Whole model (.onnx / .tflite): "
                                                                     "sum of layers + runtime overhead."),
    spec: Optional[str] = typer.Option(None, "--spec", help="Kernel spec(s) as JSON (an object or a list), "
                                                            "or a path to a .json file, or '-' for stdin."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    strict: bool = typer.Option(False, "--strict", help="Refuse (exit 2) any answer outside what the "
                                                        "bundle measured, instead of warning."),
) -> None:
    """Predict latency from a bundle: a model file layer by layer, or kernel specs given as JSON.

    Answers outside the bundle's training domain (an op, sparsity scheme or dtype it never
    measured, or a dimension beyond the measured range) are extrapolations: they are marked
    (in_domain false in --json, a warning on stderr) or, with --strict, refused."""
    import predictors
    from devprof.records import spec_from_user

    if (model is None) == (spec is None):
        raise UsageError("give exactly one of --model FILE or --spec JSON")
    p = predictors.load(bundle, strict=strict)
    for e in p.hand_sealed:
        print(f"warning: {bundle} was edited by hand and re-sealed ({e.get('at')}, by {e.get('by')}: "
              f"{e.get('note')})", file=sys.stderr)
    if model is not None:
        from devprof.models import walk  # noqa: F401  registers devprof's graph walk with predictors

        r = p.predict_model(model)
        _warn_outside(p, r.specs, r.in_domain)
        if json_out:
            print(json.dumps({"bundle": str(bundle), "statistic": p.statistic, "model": str(model), **r.to_dict()},
                             indent=2))
            return
        from ._console import out
        from rich.table import Table

        t = Table(title=f"{model}: {r.total_us / 1000:.3f} ms predicted ({len(r.layers_us)} layers, "
                        f"{p.statistic} latency)")
        for c, j in (("#", "right"), ("layer", "left"), ("µs", "right"), ("share", "right"), ("source", "left")):
            t.add_column(c, justify=j)
        # shares are of the layers' sum, so they add to 100% whatever the sign of the overhead term
        layers_sum = float(sum(r.layers_us)) or 1.0
        for i, (s, v, src) in enumerate(zip(r.specs, r.layers_us, r.source)):
            t.add_row(str(i), s.key, f"{v:,.1f}", f"{v / layers_sum:.1%}", str(src))
        t.caption = (f"shares: of the layers' sum {layers_sum / 1000:.3f} ms; runtime overhead (fitted) "
                     f"{r.overhead_us:+,.1f} µs ({r.overhead_us / layers_sum:+.1%})"
                     + (": negative where the runtime's layers run faster inside the model than profiled one by one"
                        if r.overhead_us < 0 else ""))
        out.print(t)
        if r.unknown:
            srcs = sorted({str(src) for s, src in zip(r.specs, r.source) if s.op == "other"}) or ["fallback"]
            print(f"{len(r.unknown)} layer(s) devprof could not map (op 'other') were predicted by: "
                  f"{', '.join(srcs)} (see the source column)")
        return
    text = sys.stdin.read() if spec == "-" else spec
    if spec != "-" and spec is not None and not spec.lstrip().startswith(("{", "[")):
        try:
            text = Path(spec).read_text()
        except OSError as e:
            raise UsageError(f"--spec: cannot read {spec}: {e.strerror or e}") from None
    try:
        obj = json.loads(text or "")
    except ValueError as e:
        raise UsageError(f"--spec is not valid JSON ({e})") from None
    items = obj if isinstance(obj, list) else [obj]
    try:
        specs = [spec_from_user(d) for d in items]
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"--spec: bad kernel spec ({e})") from None
    r = p.predict(specs)
    inside = r.in_domain
    rows = [{"key": s.key, "latency_us": float(v), "source": str(src), "in_domain": bool(d)}
            for s, v, src, d in zip(specs, r.latency_us, r.source, inside)]
    _warn_outside(p, specs, inside)
    if json_out:
        print(json.dumps({"bundle": str(bundle), "statistic": p.statistic, "predictions": rows}, indent=2))
    else:
        for row in rows:
            mark = "" if row["in_domain"] else "  (outside the training domain)"
            print(f"{row['latency_us']:12,.1f} µs  {row['source']:8}  {row['key']}{mark}")


def _warn_outside(p, specs: list, inside) -> None:
    """One warning line on stderr when answers extrapolate, naming the first and why."""
    if inside is None or inside.all():
        return
    from predictors import encode

    bad = [i for i, d in enumerate(inside) if not d]
    first = specs[bad[0]]
    why = p.domain.why_not(encode([first]).data[0]) if hasattr(first, "key") else "not a kernel spec"
    print(f"warning: {len(bad)} of {len(inside)} prediction(s) lie outside what the bundle measured "
          f"(first: {getattr(first, 'key', first)}: {why}); they are extrapolations (--strict refuses them)",
          file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
