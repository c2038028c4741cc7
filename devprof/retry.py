"""Which kernels a retry campaign measures: those without enough steady records in earlier
campaigns, or whose campaigns disagree (`devprof profile --retry-noisy`)."""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def noisy_plan(specs: list, runtimes: list[str], threads: int, campaigns: list[Path], out_dir: Path,
               min_steady: int = 1, max_spread: float | None = None,
               max_records: int | None = None) -> list[tuple[list, list[str]]]:
    """Per runtime, the specs with fewer than `min_steady` steady records in `campaigns` (1: those
    whose records are all flagged noisy, or missing), and with `max_spread` those whose steady
    records' fastest rounds differ by more than that fraction; with `max_records`, none that has
    that many records (steady or noisy) already."""
    from collections import defaultdict

    from .store import Dataset

    steady: dict[tuple[str, str, str], float] = {}  # (runtime, spec, start) -> fastest round: a campaign
    # given twice counts once
    records: set[tuple[str, str, str]] = set()  # every (runtime, spec, start), noisy ones too
    for c in campaigns:
        ds = Dataset(c)
        if not ds.exists():
            raise UsageError(f"--retry-noisy: no dataset at {c}")
        if Path(c).resolve() == Path(out_dir).resolve():
            raise UsageError("--retry-noisy: write the retries to another folder (--out): a dataset holds one "
                             "record per kernel")
        df = ds.read()
        if not len(df):
            continue
        mine = df[(df["kind"] == "kernel") & (df["threads"] == threads)]
        records.update(zip(mine["runtime"].astype(str), mine["spec_key"].astype(str), mine["started_at"].astype(str)))
        k = mine[~mine["noisy"].astype(bool)]
        steady.update(zip(zip(k["runtime"].astype(str), k["spec_key"].astype(str), k["started_at"].astype(str)),
                          k["min_us"].astype(float)))
    fastest: dict[tuple[str, str], list[float]] = defaultdict(list)  # (runtime, spec) -> one per campaign
    for (rt, key, _), v in steady.items():
        fastest[(rt, key)].append(v)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for rt, key, _ in records:
        count[(rt, key)] += 1

    def wanted(rt: str, key: str) -> bool:
        v = fastest.get((rt, key), [])
        if max_records is not None and count[(rt, key)] >= max_records:
            return False
        return len(v) < min_steady or (max_spread is not None and bool(v) and max(v) > min(v) * (1.0 + max_spread))

    plan = []
    for rt in runtimes:
        todo = [sp for sp in specs if wanted(rt, sp.key)]
        if todo:
            plan.append((todo, [rt]))
    return plan
