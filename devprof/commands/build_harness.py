"""`devprof build-harness`: cross-build the native harness for phones and check it on this machine."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("build-harness")
    def build_harness(
        abi: Optional[List[str]] = typer.Option(None, "--abi", help="arm64-v8a and/or x86_64 (repeatable; default both)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Copy each build to OUT/<abi>/ (binary + data)."),
        check: bool = typer.Option(True, "--check/--no-check",
                                   help="Run each build here (arm64 under qemu-aarch64-static) and compare ABIs."),
    ) -> None:
        """Build the harness for phones (static: Debian's aarch64-linux-gnu-gcc, or the NDK's clang when
        ANDROID_NDK_HOME is set) with a self-test batch of one kernel per sparsity scheme; check every
        kernel's output on this machine and that arm64 and x86_64 agree.

        Profiling does not need this step (batches are built for each phone's ABI on the fly); it tells
        you before plugging a phone in that the cross toolchain works.
        """
        from ..artifacts.android import build_all
        from ..artifacts.toolchains import ABIS
        from ..errors import UsageError

        bad = [a for a in abi or () if a not in ABIS]
        if bad:
            raise UsageError(f"unknown ABI {bad[0]!r} (known: {', '.join(ABIS)})")
        build_all(abi or ABIS, out, check, echo=typer.echo)
