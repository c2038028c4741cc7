"""`devprof profile --space FILE`: time every block of a search space, write the front end's table."""
from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from ._console import err, note, out, styled


def profile_space_command(space_file: Path, device: str, threads: int, out_dir: Path, resume: bool, quick: bool,
                      json_out: bool, table: Path | None = None, *, cooldown: float = 0.0,
                      max_temp: float | None = None, cooldown_timeout: float = 120.0,
                          oversubscribe: bool = False) -> None:
    """Measure the blocks of SPACE_FILE, print the table (or JSON) and where it was written."""
    from ..devices import resolve_device
    from ..measure import Protocol
    from ..space import load_space
    from ..space_profile import profile_space

    space = load_space(space_file)
    dev = resolve_device(device)
    dev.check_threads(threads, "", oversubscribe)
    proto = Protocol.quick() if quick else Protocol()
    if not json_out:
        err.print(styled("profiling space ", (space.name, "bold"), " on ", (dev.name, "bold"),
                         f": {len(space.blocks())} distinct blocks over {len(space.positions)} positions "
                         f"({space.size:,} architectures)"))
    res = profile_space(space, dev, out_dir, threads, proto, resume, table, cooldown_s=cooldown, max_temp_c=max_temp,
                        cooldown_timeout_s=cooldown_timeout, on_note=note)
    if json_out:
        print(json.dumps(res.to_dict(), indent=2))
        return
    t = Table(title=f"{space.name}: {len(res.table)} blocks on {dev.name}")
    for c, j in (("block", "left"), ("mean ms", "right"), ("std ms", "right"), ("count", "right")):
        t.add_column(c, justify=j)
    for k, ms, sd, n in res.rows:
        t.add_row(k, f"{ms:.4f}", f"{sd:.4f}", str(n))
    out.print(t)
    err.print(f"{res.measured} measured, {res.already} already there; table ({space.format}): {res.table_path}; "
              f"dataset: {res.dataset} ({res.seconds:.0f} s)")
