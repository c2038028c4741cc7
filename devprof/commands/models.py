"""`devprof models`: list the built-in model families, export one (or its variants) as .onnx/.tflite,
and show a model's layers as the graph walk sees them."""
from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Built-in model families: list, export (.onnx/.tflite), walk into layers.",
                             no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def list_(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """The families devprof builds (random weights, no downloads) and their reference input."""
        from ._console import out
        from rich.table import Table

        from ..models.builders import FAMILIES, reference_config

        rows = [{"family": n, "kind": f.kind, "res": reference_config(n)["res"]} for n, f in FAMILIES.items()]
        if json_out:
            print(json.dumps(rows, indent=2))
            return
        t = Table(title="built-in model families")
        for c in ("family", "kind", "reference input"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["family"], r["kind"], "x".join(map(str, r["res"])))
        out.print(t)

    @models_app.command("export")
    def export(
        family: str = typer.Argument(..., help="Family name, optionally @RES (mobilenetv2@160, fsrcnn@180x320)."),
        out: Path = typer.Option(..., "--out", "-o", help="File to write: .onnx or .tflite (or a folder with --variants)."),
        variants: int = typer.Option(0, "--variants", help="Write this many seeded variants into the --out folder."),
        seed: int = typer.Option(0, "--seed", help="Seed of the weights and of the variants."),
        fmt: str = typer.Option("onnx", "--format", help="onnx or tflite (for --variants)."),
    ) -> None:
        """Write a built-in model (or N seeded variants of its family) to disk."""
        from ..errors import UsageError
        from ..models.sources import resolve_model
        from ..models.tflite_export import onnx_to_tflite
        from ..models.variants import expand_entry

        if variants:
            if fmt not in ("onnx", "tflite"):
                raise UsageError("--format must be onnx or tflite")
            out.mkdir(parents=True, exist_ok=True)
            base, _, at = family.partition("@")
            entry = {"family": base, "variants": variants, "seed": seed}
            if at:
                r = [int(v) for v in at.split("x")]
                entry["res"] = r if len(r) == 2 else r[0]
            for name, m in expand_entry(entry):
                p = out / f"{name}.{fmt}"
                p.write_bytes(onnx_to_tflite(m) if fmt == "tflite" else m.SerializeToString())
                typer.echo(str(p))
            return
        src = resolve_model(family)
        if src.onnx is None:
            raise UsageError(f"{family} is not a built-in family")
        if out.suffix not in (".onnx", ".tflite"):
            raise UsageError("--out must end in .onnx or .tflite")
        try:
            out.write_bytes(onnx_to_tflite(src.onnx) if out.suffix == ".tflite" else src.onnx.SerializeToString())
        except OSError as e:
            raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
        typer.echo(str(out))

    @models_app.command("walk")
    def walk_(
        model: str = typer.Argument(..., help="FILE.onnx, FILE.tflite or a built-in family."),
        fusion: str = typer.Option("generic", "--fusion", help="generic, onnxruntime or litert."),
        json_out: bool = typer.Option(False, "--json", help="Print the layers' specs as JSON."),
    ) -> None:
        """Show a model's layers (KernelSpecs) as devprof maps them; unknown nodes are listed as `other`."""
        from ._console import out
        from rich.table import Table

        from ..models.sources import resolve_model
        from ..models.walk import walk

        src = resolve_model(model)
        ml = walk(src.onnx if src.onnx is not None else src.tflite, fusion=fusion, name=src.name)
        if json_out:
            print(json.dumps([{"index": l.index, "name": l.name, "nodes": l.nodes, "spec": l.spec.to_dict(),
                               "key": l.spec.key} for l in ml.layers], indent=2, default=str))
            return
        t = Table(title=f"{ml.name}: {len(ml)} layers ({ml.fusion} fusion), {len(ml.unknown)} unknown")
        for c in ("#", "layer", "op", "shape", "MFLOPs", "nodes"):
            t.add_column(c)
        for l in ml.layers:
            op = l.spec.op if l.known else f"other:{l.spec.a.get('onnx_op', l.spec.a.get('tflite_op'))}"
            t.add_row(str(l.index), l.name, op + (f"+{l.spec.activation}" if l.spec.activation != "none" else ""),
                      l.shape_str(), f"{l.spec.flops / 1e6:,.1f}", "+".join(l.ops))
        out.print(t)
