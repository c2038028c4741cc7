"""Published bundles are stored gzip-compressed (format 3): loading one gives exactly the
predictions of the same bundle stored plain, and a damaged archive is refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import predictors
from predictors import bundle as bmod
from predictors.spec import KernelSpec

PUBLISHED = sorted((Path(__file__).resolve().parents[1] / "datasets_latency" / "local").glob("*/metadata.json"))


def _plain_copy(src: Path, dest: Path) -> Path:
    meta, blobs = bmod.read_verified(src)
    return bmod.write(dest, blobs, {k: v for k, v in meta.items() if k not in ("files", "format_version")})


@pytest.mark.parametrize("meta_path", PUBLISHED, ids=lambda p: p.parent.name)
def test_compressed_bundle_predicts_exactly_as_plain(meta_path: Path, tmp_path: Path) -> None:
    src = meta_path.parent
    meta = json.loads(meta_path.read_text())
    assert meta["files"]["predictor.json"].get("stored") == "gzip" and not (src / "predictor.json").exists()
    plain = _plain_copy(src, tmp_path / "plain")
    assert (plain / "predictor.json").is_file() and json.loads((plain / "metadata.json").read_text())["format_version"] == 2
    a, b = predictors.load(src), predictors.load(plain)
    specs = [KernelSpec.from_dict(json.loads(j)) for j in a.lut["spec_json"][:200]]
    rng = np.random.default_rng(0)
    specs += [KernelSpec("conv2d", h=int(h), w=int(h), cin=int(c), cout=int(2 * c), kh=3, kw=3, padding=1)
              for h, c in zip(rng.integers(7, 120, 50), rng.integers(3, 200, 50))]  # misses: the regressors
    ra, rb = a.predict(specs), b.predict(specs)
    assert np.array_equal(ra.latency_us, rb.latency_us) and list(ra.source) == list(rb.source)
    assert a.predict_model(specs[:40]).total_us == b.predict_model(specs[:40]).total_us


def test_a_damaged_archive_is_refused(tmp_path: Path) -> None:
    src = PUBLISHED[0].parent
    dest = tmp_path / "b"
    meta, blobs = bmod.read_verified(src)
    bmod.write(dest, blobs, {k: v for k, v in meta.items() if k not in ("files", "format_version")}, compress=True)
    gz = dest / "predictor.json.gz"
    data = bytearray(gz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    gz.write_bytes(bytes(data))
    with pytest.raises(bmod.BundleError) as e:
        predictors.load(dest)
    assert "\n" not in str(e.value) and "predictor.json" in str(e.value)
