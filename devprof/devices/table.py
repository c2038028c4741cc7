"""The device table: marketing names <-> model codes (and SoCs), plus user aliases.

Why one table: users say "S20", getprop says "SM-G981U", papers say "Galaxy S20 5G"; every
place that names a phone (`--device`, `devprof devices`, records, reports) goes through here so
they agree. Samsung codes carry a region suffix (SM-G981U: US, SM-G981B: Europe); the suffix also
decides the SoC for the generations sold with both Snapdragon and Exynos chips.

User aliases live in a TOML file (``$DEVPROF_CONFIG``, else ``~/.config/devprof/devices.toml``)::

    [aliases]
    lab-s20 = "R58N12345AB"      # a serial
    my-phone = "SM-G981U"        # or a model code / marketing name
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Model:
    """One row of the table: a model-code prefix and what it is."""

    prefix: str  # "SM-G981" (Samsung: region suffix follows) or an exact ro.product.model ("Pixel 7")
    name: str  # marketing name, e.g. "Galaxy S20 5G"
    family: str  # the short name users type, e.g. "S20"
    soc: str = ""  # default SoC
    soc_by_region: tuple[tuple[str, str], ...] = ()  # (suffix start, SoC) overrides, e.g. ("U", "Snapdragon 865")

    def soc_for(self, model_code: str) -> str:
        suffix = model_code[len(self.prefix):].upper()
        for start, soc in self.soc_by_region:
            if suffix.startswith(start):
                return soc
        return self.soc


def _samsung(prefixes: str, name: str, family: str, qcom: str = "", exynos: str = "", soc: str = "",
             qcom_regions: str = "U W 0 N V") -> list[Model]:
    """Rows for a Samsung model sold with Snapdragon in `qcom_regions` and Exynos elsewhere."""
    out = []
    for p in prefixes.split():
        regions = tuple((r, qcom) for r in qcom_regions.split()) if qcom and exynos else ()
        out.append(Model(p, name, family, soc or exynos or qcom, regions))
    return out


SD865, EX990 = "Snapdragon 865 (SM8250)", "Exynos 990"
SD888, EX2100 = "Snapdragon 888 (SM8350)", "Exynos 2100"
SD8G1, EX2200 = "Snapdragon 8 Gen 1 (SM8450)", "Exynos 2200"
SD8G2 = "Snapdragon 8 Gen 2 for Galaxy (SM8550)"
SD8G3, EX2400 = "Snapdragon 8 Gen 3 (SM8650)", "Exynos 2400"

MODELS: tuple[Model, ...] = tuple(
    _samsung("SM-G980", "Galaxy S20", "S20", soc=EX990)
    + _samsung("SM-G981", "Galaxy S20 5G", "S20", SD865, EX990)
    + _samsung("SM-G985", "Galaxy S20+", "S20+", soc=EX990)
    + _samsung("SM-G986", "Galaxy S20+ 5G", "S20+", SD865, EX990)
    + _samsung("SM-G988", "Galaxy S20 Ultra 5G", "S20 Ultra", SD865, EX990)
    + _samsung("SM-G780", "Galaxy S20 FE", "S20 FE", soc=EX990)
    + _samsung("SM-G781", "Galaxy S20 FE 5G", "S20 FE", soc=SD865)
    + _samsung("SM-N980", "Galaxy Note20", "Note20", soc=EX990)
    + _samsung("SM-N981", "Galaxy Note20 5G", "Note20", "Snapdragon 865+ (SM8250-AB)", EX990)
    + _samsung("SM-N985", "Galaxy Note20 Ultra", "Note20 Ultra", soc=EX990)
    + _samsung("SM-N986", "Galaxy Note20 Ultra 5G", "Note20 Ultra", "Snapdragon 865+ (SM8250-AB)", EX990)
    + _samsung("SM-G991", "Galaxy S21 5G", "S21", SD888, EX2100)
    + _samsung("SM-G996", "Galaxy S21+ 5G", "S21+", SD888, EX2100)
    + _samsung("SM-G998", "Galaxy S21 Ultra 5G", "S21 Ultra", SD888, EX2100)
    + _samsung("SM-G990", "Galaxy S21 FE 5G", "S21 FE", SD888, EX2100)
    + _samsung("SM-S901", "Galaxy S22", "S22", SD8G1, EX2200)
    + _samsung("SM-S906", "Galaxy S22+", "S22+", SD8G1, EX2200)
    + _samsung("SM-S908", "Galaxy S22 Ultra", "S22 Ultra", SD8G1, EX2200)
    + _samsung("SM-S911", "Galaxy S23", "S23", soc=SD8G2)
    + _samsung("SM-S916", "Galaxy S23+", "S23+", soc=SD8G2)
    + _samsung("SM-S918", "Galaxy S23 Ultra", "S23 Ultra", soc=SD8G2)
    + _samsung("SM-S711", "Galaxy S23 FE", "S23 FE", "Snapdragon 8 Gen 1 (SM8450)", "Exynos 2200")
    + _samsung("SM-S921", "Galaxy S24", "S24", SD8G3, EX2400, qcom_regions="U W 0 N V")
    + _samsung("SM-S926", "Galaxy S24+", "S24+", SD8G3, EX2400)
    + _samsung("SM-S928", "Galaxy S24 Ultra", "S24 Ultra", soc=SD8G3)
    + _samsung("SM-S721", "Galaxy S24 FE", "S24 FE", soc="Exynos 2400e")
    + _samsung("SM-A546", "Galaxy A54 5G", "A54", soc="Exynos 1380")
    + _samsung("SM-A536", "Galaxy A53 5G", "A53", soc="Exynos 1280")
    + _samsung("SM-A556", "Galaxy A55 5G", "A55", soc="Exynos 1480")
    + [
        Model("Pixel 6", "Pixel 6", "Pixel 6", "Google Tensor"),
        Model("Pixel 6 Pro", "Pixel 6 Pro", "Pixel 6 Pro", "Google Tensor"),
        Model("Pixel 6a", "Pixel 6a", "Pixel 6a", "Google Tensor"),
        Model("Pixel 7", "Pixel 7", "Pixel 7", "Google Tensor G2"),
        Model("Pixel 7 Pro", "Pixel 7 Pro", "Pixel 7 Pro", "Google Tensor G2"),
        Model("Pixel 7a", "Pixel 7a", "Pixel 7a", "Google Tensor G2"),
        Model("Pixel 8", "Pixel 8", "Pixel 8", "Google Tensor G3"),
        Model("Pixel 8 Pro", "Pixel 8 Pro", "Pixel 8 Pro", "Google Tensor G3"),
        Model("Pixel 8a", "Pixel 8a", "Pixel 8a", "Google Tensor G3"),
        Model("Pixel 9", "Pixel 9", "Pixel 9", "Google Tensor G4"),
        Model("Pixel 9 Pro", "Pixel 9 Pro", "Pixel 9 Pro", "Google Tensor G4"),
        Model("Pixel 9 Pro XL", "Pixel 9 Pro XL", "Pixel 9 Pro XL", "Google Tensor G4"),
    ]
)

_SAMSUNG_CODE = re.compile(r"^SM-[A-Z]\d{3}")


def norm(name: str) -> str:
    """Case-, space- and punctuation-insensitive form: "Galaxy S20 Ultra" -> "s20ultra"."""
    s = re.sub(r"[\s_\-]+", "", name.lower()).replace("plus", "+")
    for brand in ("samsung", "galaxy", "google"):
        if s.startswith(brand) and len(s) > len(brand):
            s = s[len(brand):]
    return s


def lookup(model_code: str) -> Model | None:
    """The table row of an ``ro.product.model`` value (longest prefix wins), or None."""
    code = model_code.strip()
    m = _SAMSUNG_CODE.match(code.upper())
    if m:
        for row in MODELS:
            if row.prefix == m.group(0):
                return row
        return None
    for row in MODELS:
        if norm(row.prefix) == norm(code):
            return row
    return None


def marketing_name(model_code: str) -> str:
    """"SM-G981U" -> "Galaxy S20 5G"; unknown codes are returned as they are."""
    row = lookup(model_code)
    return row.name if row else model_code


def names_for(model_code: str) -> set[str]:
    """Every normalised name that designates phones of this model code: the code itself, the
    marketing name and the family ("s20", "s205g", "smg981u", "smg981")."""
    out = {norm(model_code)}
    row = lookup(model_code)
    if row:
        out |= {norm(row.name), norm(row.family), norm(row.prefix)}
    return out


def known_families() -> list[str]:
    seen: dict[str, None] = {}
    for row in MODELS:
        seen.setdefault(row.family, None)
    return list(seen)


# ------------------------------------------------------------------------------ aliases
def config_path() -> Path:
    env = os.environ.get("DEVPROF_CONFIG")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "devprof" / "devices.toml"


def load_config(path: Path | None = None) -> dict:
    """The user's device config (aliases, tool paths); {} when there is none."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = path or config_path()
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read device config {p}: {e}") from None


def aliases(path: Path | None = None) -> dict[str, str]:
    """User aliases, normalised name -> what it stands for (serial, model code or name)."""
    table = load_config(path).get("aliases", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise UsageError(f"[aliases] in {path or config_path()} must map names to strings")
    return {norm(k): v for k, v in table.items()}
