"""`devprof profile --retry-noisy DATASET...`: which of a suite's kernels to measure again."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ._console import err


def retry_plan(s, names: list[str], threads: int, campaigns: List[Path], out_dir: Path, min_steady: int,
               max_spread: Optional[float], max_records: Optional[int]) -> list[tuple[list, list[str]]]:
    """Per runtime, the kernels still lacking steady records (devprof.retry.noisy_plan); says so
    when there is nothing to retry."""
    from ..retry import noisy_plan

    plan = noisy_plan(s.specs, names, threads, campaigns, out_dir, min_steady, max_spread, max_records)
    if not plan:
        agree = f" agreeing within {max_spread:.0%}" if max_spread is not None else ""
        capped = f" (or {max_records} records)" if max_records is not None else ""
        err.print(f"nothing to retry: every kernel of {s.name} has {min_steady} steady record"
                  f"{'s' if min_steady > 1 else ''}{agree}{capped} in {', '.join(map(str, campaigns))}")
    return plan
