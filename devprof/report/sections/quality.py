"""Section 2: can the numbers be trusted? Spread of the repetitions, noisy and throttled records,
and what the frequency and temperature did while measuring."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...records import NOISY_REL_IQR
from .. import figures as F
from .. import fmt
from ..data import ReportData, finite
from ..model import Figure, Section, Table

TITLE = "Measurement quality"
FREQ_DRIFT = 0.05  # a frequency change above this between before/after reads is worth a note
MAX_GROUPS = 8
MAX_FLAGGED = 15
TEMP_RANGE_C = (0.0, 150.0)  # a CPU reading outside it (a VM's thermal zone reads 0) is no sensor at all


def _temps(col: pd.Series) -> pd.Series:
    """Temperatures in °C, NaN where the sensor was unreadable or read an impossible value."""
    t = col.astype(float)
    return t.where((t > TEMP_RANGE_C[0]) & (t < TEMP_RANGE_C[1]))


def build(data: ReportData) -> Section:
    s = Section("quality", TITLE, lead=(
        "Each record is the median of repeated samples after warm-up. The coefficient of variation (CV, "
        f"std/mean) and the relative interquartile range (IQR/median) show how stable the samples were; records "
        f"with IQR/median above {NOISY_REL_IQR:.0%} are flagged noisy (the threshold torch.utils.benchmark uses)."))
    if data.empty:
        s.missing = "the datasets hold no records, so there is no measurement to assess"
        failures = sum(len(src.failures) for src in data.sources)
        if failures:
            s.para(f"{fmt.plural(failures, 'kernel')} failed (see failures.jsonl) and none was recorded.", "warn")
        return s
    df = data.records.copy()
    df["group"] = df["device_label"] + " · " + df["runtime_label"]
    freq_b = df["freq_before_khz"].astype(float).where(lambda v: v > 0)
    freq_a = df["freq_after_khz"].astype(float).where(lambda v: v > 0)
    df["freq_drift"] = ((freq_a - freq_b).abs() / freq_b) > FREQ_DRIFT

    groups = list(df.groupby("group", sort=True))
    if sum(len(g) for _, g in groups) >= 2:
        s.add(_figure(groups))
    else:
        s.para("The distribution figure needs at least two records; this dataset has one.", "note")

    rows = []
    for name, g in groups:
        cv = finite(g["cv"])
        temps = finite(np.concatenate([_temps(g["temp_before_c"]).to_numpy(), _temps(g["temp_after_c"]).to_numpy()]))
        trange = f"{temps.min():.0f}–{temps.max():.0f} °C" if temps.size else "not readable"
        fr = finite(np.concatenate([freq_b[g.index].to_numpy(), freq_a[g.index].to_numpy()]))
        frange = (f"{fr.min() / 1e6:.2f}–{fr.max() / 1e6:.2f} GHz" if fr.size and fr.max() - fr.min() > 1e3
                  else (f"{fr.min() / 1e6:.2f} GHz" if fr.size else "not readable"))
        noisy = int(g["noisy"].sum())
        rows.append([name, fmt.num(len(g)), fmt.pct(np.median(cv)) if cv.size else "–",
                     fmt.pct(np.percentile(cv, 90)) if cv.size else "–",
                     f"{noisy} ({fmt.pct(noisy / len(g), 0)})", fmt.num(int(g["throttled"].sum())),
                     fmt.num(int(g["freq_drift"].sum())), frange, trange])
    s.add(Table("Spread of the samples per device and runtime. Freq. drift counts records whose CPU frequency "
                f"changed by more than {FREQ_DRIFT:.0%} between the reads before and after the measurement.",
                ["Device · runtime", "Records", "Median CV", "p90 CV", "Noisy", "Throttled", "Freq. drift",
                 "Frequency", "Temperature"], rows, numeric=[False, True, True, True, True, True, True, False, False]))

    flagged = df[df["noisy"] | df["throttled"] | df["freq_drift"]]
    if len(flagged):
        worst = flagged.sort_values("rel_iqr", ascending=False).head(MAX_FLAGGED)
        rows = []
        for r in worst.itertuples(index=False):
            flags = ", ".join(f for f, on in (("noisy", r.noisy), ("throttled", r.throttled),
                                              ("freq. drift", r.freq_drift)) if on)
            rows.append([r.group, r.spec_key, fmt.us(r.median_us), fmt.pct(r.rel_iqr), fmt.pct(r.cv), flags])
        more = len(flagged) - len(worst)
        s.add(Table(f"Flagged records ({len(flagged)} of {len(df)}), widest spread first"
                    + (f"; {more} more not shown" if more > 0 else "") + ". Re-measure these before relying on them.",
                    ["Device · runtime", "Kernel", "Median", "IQR/median", "CV", "Flags"], rows,
                    numeric=[False, False, True, True, True, False]))
    else:
        s.para(f"No record is flagged: none is noisy, throttled or measured across a frequency change "
               f"({len(df)} records).", "note")
    s.para(_conditions_note(df), "note")
    failures = sum(len(src.failures) for src in data.sources)
    if failures:
        s.para(f"{fmt.plural(failures, 'kernel')} failed while profiling (wrong answer, crash or timeout) and "
               "were not recorded; the datasets' failures.jsonl lists them.", "warn")
    return s


def _conditions_note(df: pd.DataFrame) -> str:
    parts = []
    govs = sorted({g for g in df["governor"] if g})
    parts.append("CPU governor: " + (", ".join(govs) if govs else "not readable (no cpufreq, e.g. in a VM)") + ".")
    pinned = sorted({c for c in df["cpus"] if c})
    parts.append("Pinned to CPUs " + ", ".join(pinned) + "." if pinned else "Threads were not pinned to CPUs.")
    # per device: one device's readable sensor says nothing about another's (a VM has none); a
    # reading outside TEMP_RANGE_C (a VM's zone reads 0) or one that never changes is no sensor
    unreadable, rises = [], []
    for dev, g in df.groupby("device_label", sort=True):
        before, after = _temps(g["temp_before_c"]), _temps(g["temp_after_c"])
        rise = finite(after - before)
        if not finite(before).size or not rise.size:
            unreadable.append(dev)
        elif np.ptp(np.concatenate([finite(before), finite(after)])) == 0.0:
            unreadable.append(f"{dev} (its sensor reads a constant {finite(before)[0]:.1f} °C)")
        else:
            rises.append(f"{dev}: {np.median(rise):+.1f} °C per measurement in the median (max {rise.max():+.1f} °C)")
    if rises:
        parts.append("Temperature change — " + "; ".join(rises) + ".")
    if unreadable:
        parts.append("No usable temperature sensor on " + ", ".join(unreadable) + ": thermal state is unknown "
                     "there and cool-down between batches cannot be verified.")
    nthr = int(df["throttled"].sum())
    parts.append(f"{nthr} record{'s were' if nthr != 1 else ' was'} taken while the device reported throttling.")
    return " ".join(parts)


def _figure(groups: list[tuple[str, pd.DataFrame]]) -> Figure:
    with F.style():
        fig, (ax1, ax2) = F.new(2, 1, height=2.3)
        for i, (name, g) in enumerate(groups[:MAX_GROUPS]):
            for ax, col in ((ax1, "cv"), (ax2, "rel_iqr")):
                v = np.sort(finite(g[col]))
                v = np.maximum(v, 1e-4)
                if not v.size:
                    continue
                y = np.arange(1, v.size + 1) / v.size
                ax.step(v, y, where="post", color=F.color(i), label=F.short(name, 46), lw=1.1)
        for ax, lab in ((ax1, "coefficient of variation (std/mean)"), (ax2, "IQR / median")):
            F.log_axis(ax, "x", finite(pd.concat([g[col] for _, g in groups])).clip(1e-4))
            ax.set_xlabel(lab)
            ax.set_ylim(0, 1.02)
            ax.xaxis.set_major_formatter(_pct_formatter())
        ax1.set_ylabel("share of records ≤ x")
        lo, hi = ax2.get_xlim()
        ax2.set_xlim(lo, max(hi, NOISY_REL_IQR * 2))
        ax2.axvline(NOISY_REL_IQR, color="#b00", ls="--", lw=0.8)
        ax2.text(NOISY_REL_IQR, 1.0, " noisy →", color="#b00", fontsize=6.5, ha="left", va="bottom")
        ax1.set_title("(a) CV of the samples", loc="left")
        ax2.set_title("(b) relative IQR", loc="left")
        F.legend_below(fig, *ax1.get_legend_handles_labels())
        uri = F.to_data_uri(fig)
    more = f" (first {MAX_GROUPS} of {len(groups)} groups)" if len(groups) > MAX_GROUPS else ""
    return Figure("Cumulative distribution of the per-record spread, one curve per device and runtime" + more
                  + ". Curves further left are more stable; the dashed line marks the noisy threshold.",
                  uri, alt="CDF of CV and relative IQR per device and runtime")


def _pct_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{100 * v:g}%")
