"""`devprof profile`: one command, six modes, each in its own module.

This module holds the options and the checks that span modes; what each mode does lives in
`profile_suite` (a kernel suite, also --retry-noisy), `profile_model` (--model, a suite's models,
--prune), `profile_space` (--space), `profile_adaptive` (--adaptive) and `profile_farm` (several
devices).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError

# `devprof profile --help` groups its options: what to measure, where, how, and where it goes
WHAT, WHERE, HOW, OUTPUT = "What to measure", "Where", "How", "Output"


def profile(
    suite: str = typer.Option("smoke", "--suite", "-s",
                              help="Built-in suite name (see 'devprof suites') or a path to a suite .toml.", rich_help_panel=WHAT),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r",
                                                help="Runtime(s) to use (repeat the option); default: the suite's.", rich_help_panel=WHAT),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Profile a whole model layer by layer: FILE.onnx, "
                                        "FILE.tflite, a built-in family (mobilenetv2, resnet18@160...) or "
                                        "package.module:factory (torch extra). On a phone: through its "
                                        "onnxruntime_perf_test / benchmark_model (-r onnxruntime / litert / "
                                        "litert-builtin; docs/phones.md). See docs/models.md.", rich_help_panel=WHAT),
    prune: Optional[str] = typer.Option(None, "--prune", metavar="SCHEME:RATIO",
                                        help="With --model: prune conv/FC layers (e.g. bcr:0.9) and time them "
                                             "with generated sparse kernels.", rich_help_panel=WHAT),
    where: Optional[str] = typer.Option(
        None, "--where", metavar="CONDITIONS",
        help="Measure only the suite's kernels that meet every comma-separated condition, e.g. "
             "'op=pwconv,cout<=32' or 'scheme!=dense' (fields: shape fields, out_h, out_w, flops, params, ratio; "
             "op, scheme, activation, dtype with = or !=).", rich_help_panel=WHAT),
    draw: int = typer.Option(
        0, "--draw", min=0, metavar="N",
        help="Prune sparse kernels from weight draw N (another seeded random dense tensor; 0 = the usual one). "
             "Which weights survive moves a few-channel sparse layer's time by 10-30%: campaigns of several "
             "draws, into separate --out folders, give the lookup table the median over draws.", rich_help_panel=WHAT),
    dtype: Optional[str] = typer.Option(
        None, "--dtype", metavar="DTYPE",
        help="Measure every kernel of the suite in this data type, whatever the suite says: fp32, fp16 or "
             "int8. int8: quantized single-op models (ORT QDQ, full-integer LiteRT, XNNPACK QS8); fp16: "
             "LiteRT on CPUs with fp16 arithmetic (ARMv8.2) and devprof-c's generated fp16 kernels on arm64 "
             "devices (refused on x86). With --model: int8 quantizes the model "
             "statically (QDQ, calibrated on random inputs; a QDQ model is profiled as it is); with --prune: "
             "generated int8 kernels. See docs/suites.md, docs/models.md, docs/sparse.md.", rich_help_panel=WHAT),
    space: Optional[Path] = typer.Option(None, "--space", help="Profile every block of a search space (TOML/JSON) "
                                         "and write its table in the front end's format. See docs/formats.md.", rich_help_panel=WHAT),
    adaptive: bool = typer.Option(False, "--adaptive", help="Measure only where the predictor is least certain "
                                  "(refit after each batch) until --target-acc or --budget. See docs/predictors.md.", rich_help_panel=WHAT),
    target_acc: float = typer.Option(0.95, "--target-acc", metavar="SHARE", help="With --adaptive: stop when this share of new "
                                     "kernels was predicted within ±10% before being measured.", rich_help_panel=WHAT),
    budget: int = typer.Option(200, "--budget", metavar="N", help="With --adaptive: at most this many measurements.", rich_help_panel=WHAT),
    transfer_from: Optional[List[Path]] = typer.Option(
        None, "--transfer-from", metavar="BUNDLE",
        help="With --adaptive: on a new device, measure the --budget kernels these source devices' bundles "
             "disagree on most (repeatable), then fit with 'fit-predictor --transfer-from'.", rich_help_panel=WHAT),
    retry_noisy: Optional[List[Path]] = typer.Option(
        None, "--retry-noisy", metavar="DATASET",
        help="Measure only the suite's kernels that have no steady record in DATASET (repeatable: earlier "
             "campaigns), into another --out folder; fit-predictor merges the campaigns and prefers steady "
             "records.", rich_help_panel=WHAT),
    min_steady: int = typer.Option(1, "--min-steady", min=1, metavar="N",
                                   help="With --retry-noisy: measure the kernels that have fewer than N steady "
                                        "records across those campaigns (2 = a second campaign of every kernel "
                                        "measured only once: a single campaign's label carries its phase of "
                                        "the device's speed).", rich_help_panel=WHAT),
    max_spread: Optional[float] = typer.Option(
        None, "--max-spread", min=0.0, metavar="FRACTION",
        help="With --retry-noisy: also measure the kernels whose steady records' fastest rounds differ by "
             "more than this fraction (0.1: max/min > 1.1) — one more campaign settles which is typical "
             "(the table takes the median).", rich_help_panel=WHAT),
    max_records: Optional[int] = typer.Option(
        None, "--max-records", min=1, metavar="N",
        help="With --retry-noisy: leave out the kernels already measured N times across those campaigns "
             "(steady or noisy records), so a kernel whose campaigns never agree — a layer that straddles "
             "a shared cache — is not measured again and again.", rich_help_panel=WHAT),
    device: Optional[List[str]] = typer.Option(None, "--device", "-d",
                                               help="Device: 'local', or a phone's serial, model code (SM-G981U), "
                                                    "marketing name (S20) or alias; repeat for a farm (default: "
                                                    "$DEVPROF_DEVICE or local).", rich_help_panel=WHERE),
    all_matching: bool = typer.Option(False, "--all-matching", help="Use every attached phone each --device name "
                                                                    "matches (e.g. all S20s): a farm.", rich_help_panel=WHERE),
    adb_server: Optional[List[str]] = typer.Option(None, "--adb-server", metavar="HOST:PORT",
                                                   help="adb server for phones (repeatable: a farm across hosts).", rich_help_panel=WHERE),
    cores: str = typer.Option("", "--cores", help="Pin to CPUs: a list such as 0 or 0-3 (phones also: "
                                                  "little, mid, big, prime).", rich_help_panel=WHERE),
    threads: int = typer.Option(1, "--threads", "-t", min=1, metavar="N",
                                help="Threads per kernel: at most the CPUs available (or pinned with --cores).", rich_help_panel=HOW),
    oversubscribe: bool = typer.Option(False, "--oversubscribe",
                                       help="Allow more --threads than available CPUs (the timings then measure "
                                            "time-sharing).", rich_help_panel=HOW),
    quick: bool = typer.Option(False, "--quick", help="Shorter protocol (fewer, shorter samples): for checks, "
                                                      "not for data you publish.", rich_help_panel=HOW),
    cooldown: float = typer.Option(0.0, "--cooldown", min=0.0, metavar="SECONDS", help="Pause between batches.", rich_help_panel=HOW),
    max_temp: Optional[float] = typer.Option(None, "--max-temp", metavar="CELSIUS",
                                             help="Before each batch (the first too), wait until the device is "
                                                  "this cool.", rich_help_panel=HOW),
    cooldown_timeout: float = typer.Option(120.0, "--cooldown-timeout", metavar="SECONDS",
                                           help="With --max-temp: measure anyway after waiting this long (said "
                                                "on stderr; the records are flagged cooldown_timed_out).", rich_help_panel=HOW),
    out_dir: Path = typer.Option(Path("devprof-data"), "--out", "-o", metavar="DIR", help="Dataset folder (created if missing).", rich_help_panel=OUTPUT),
    resume: bool = typer.Option(False, "--resume", help="Measure only what the dataset does not hold yet.", rich_help_panel=OUTPUT),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables.", rich_help_panel=OUTPUT),
) -> None:
    """Measure a suite's kernels on a device and save them into a dataset (Parquet).

    Each kernel is built as a single-op model (ONNX Runtime, LiteRT) or generated C (devprof-c),
    checked once against a numpy reference (a wrong answer is reported, never recorded), then timed:
    warm-up, calibrated repetitions, median with IQR. Every finished kernel is saved at once, so
    Ctrl-C loses nothing measured; rerun with --resume to finish.

    Examples:

      devprof profile                      # the smoke suite on this machine
      devprof profile -s mobilenetv2 -r onnxruntime -t 2
      devprof profile -d S20 --cores big -s sparse-sweep
      devprof profile -s predictor-train --retry-noisy data/train \\
          --out data/train-retry
      devprof profile -s sparse-train -r devprof-c \\
          --where 'op=pwconv,cout<=32' --draw 1 --out data/st-d1
      devprof profile -s smoke --dtype int8 --out data/smoke-int8
      devprof profile --model mobilenetv2 --dtype int8
    """
    device_names = list(device) if device else [os.environ.get("DEVPROF_DEVICE") or "local"]
    if not cooldown_timeout > 0:
        raise UsageError("--cooldown-timeout must be > 0 seconds")
    cooling = {"cooldown": cooldown, "max_temp": max_temp, "cooldown_timeout": cooldown_timeout}
    servers = list(adb_server or [])
    several = len(device_names) > 1 or all_matching or len(servers) > 1
    if dtype is not None and (space is not None or adaptive or several):
        raise UsageError("--dtype applies to a kernel suite on one device: not with --space, --adaptive or a farm")
    if (where is not None or draw) and (space is not None or adaptive or model or several):
        raise UsageError("--where and --draw choose among a kernel suite's kernels on one device: not with "
                         "--space, --adaptive, --model or a farm")
    if space is not None:  # search-space blocks (docs/formats.md)
        from .profile_space import profile_space_command

        return profile_space_command(space, device_names[0], threads, out_dir, resume, quick, json_out,
                                     oversubscribe=oversubscribe, **cooling)
    if transfer_from and not adaptive:
        raise UsageError("--transfer-from goes with --adaptive (or with fit-predictor)")
    if adaptive and transfer_from:  # a new device: what the sources disagree on first
        from .profile_transfer import profile_transfer_command

        return profile_transfer_command(transfer_from, device_names[0], suite, runtime, threads, cores, out_dir,
                                        quick, json_out, budget, (servers or [None])[0],
                                        oversubscribe=oversubscribe)
    if adaptive:  # active sampling (docs/predictors.md)
        from .profile_adaptive import profile_adaptive_command

        return profile_adaptive_command(device_names[0], suite, runtime, threads, cores, out_dir, quick, json_out,
                                        target_acc, budget, (servers or [None])[0],
                                        oversubscribe=oversubscribe)
    dev = None
    if several:  # several devices: the farm; names that resolve to one phone run on it alone
        from .profile_farm import profile_farm_command

        dev = profile_farm_command(device_names, servers, all_matching, suite=suite, runtime=runtime,
                                   threads=threads, cores=cores, out_dir=out_dir, resume=resume, quick=quick,
                                   json_out=json_out, model=model, oversubscribe=oversubscribe, **cooling)
        if dev is None:
            return
    from .profile_suite import profile_suite_command

    profile_suite_command(dev, device_names[0], servers, suite=suite, runtime=runtime, threads=threads, cores=cores,
                          out_dir=out_dir, resume=resume, quick=quick, json_out=json_out, model=model, prune=prune,
                          retry_noisy=retry_noisy, min_steady=min_steady, max_spread=max_spread, max_records=max_records, where=where,
                          draw=draw, dtype=dtype, oversubscribe=oversubscribe, **cooling)


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
