"""Published bundles are stored compactly (format 4: tree node arrays in predictor.npz, large
JSON gzip-compressed): they predict exactly what the format-3 bundles they replaced predicted,
exactly what the same content stored plain predicts, older formats still load, and a damaged or
crafted archive is refused in one line."""
from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support.bundle_queries import answers

import predictors
from predictors import bundle as bmod

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((ROOT / "datasets_latency" / "local").glob("*/metadata.json"))
EXPECTED = ROOT / "tests" / "data" / "bundle_predictions"


def _meta_in(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("files", "format_version")}


def _plain_copy(src: Path, dest: Path) -> Path:
    """The same bundle as format 2: node arrays back in predictor.json, nothing compressed."""
    meta, blobs = bmod.read_verified(src)
    blobs["predictor.json"] = bmod.dumps(bmod.read_predictor(src, meta, blobs, encoded=True))
    del blobs[bmod.NPZ]
    return bmod.write(dest, blobs, _meta_in(meta))


@pytest.mark.parametrize("meta_path", PUBLISHED, ids=lambda p: p.parent.name)
def test_published_bundle_predicts_exactly_as_before(meta_path: Path) -> None:
    """The answers were recorded from the format-3 bundles (predictor.json.gz) before they were
    re-stored as format 4; every source must be identical and every latency and model total equal
    to the last float64 bits the CPU's SIMD summation order allows."""
    src = meta_path.parent
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 4 and bmod.NPZ in meta["files"]
    assert sum(f.stat().st_size for f in src.iterdir()) <= 2 * 1024 * 1024
    expected = json.loads((EXPECTED / f"{src.name}.json").read_text())
    got = answers(predictors.load(src))
    assert got["source"] == expected["source"]
    # float64 to the last bits: numpy picks its SIMD sum kernels by CPU (AVX2 vs AVX-512), so the
    # recorded answers and a machine of another ISA may differ in the final ulp, never more
    want = np.array([float.fromhex(x) for x in expected["latency_us"]])
    have = np.array([float.fromhex(x) for x in got["latency_us"]])
    np.testing.assert_allclose(have, want, rtol=1e-13, atol=0)
    assert float.fromhex(got["model_total_us"]) == pytest.approx(float.fromhex(expected["model_total_us"]), rel=1e-13)


def test_compact_bundle_predicts_exactly_as_plain_and_older_formats_load(tmp_path: Path) -> None:
    src = min((p.parent for p in PUBLISHED), key=lambda d: (d / bmod.NPZ).stat().st_size)
    plain = _plain_copy(src, tmp_path / "plain")
    assert json.loads((plain / "metadata.json").read_text())["format_version"] == 2
    assert not (plain / bmod.NPZ).exists()
    # format 3 as `install` wrote it before: predictor.json gzip-compressed, arrays inside
    v3 = tmp_path / "v3"
    v3.mkdir()
    meta = json.loads((plain / "metadata.json").read_text())
    for f in plain.iterdir():
        if f.name == "predictor.json":
            (v3 / "predictor.json.gz").write_bytes(gzip.compress(f.read_bytes()))
            meta["files"]["predictor.json"]["stored"] = "gzip"
        elif f.name != "metadata.json":
            (v3 / f.name).write_bytes(f.read_bytes())
    meta["format_version"] = 3
    (v3 / "metadata.json").write_bytes(bmod.dumps(meta))
    want = answers(predictors.load(src))
    assert answers(predictors.load(plain)) == want and answers(predictors.load(v3)) == want
    # re-publishing the plain copy stores it compactly again, byte for byte the same arrays
    _, blobs = bmod.read_verified(plain)
    assert bmod.split_predictor(blobs)[bmod.NPZ] == (src / bmod.NPZ).read_bytes()


def _resealed(src: Path, dest: Path, npz: bytes) -> Path:
    """`src` with predictor.npz replaced and metadata re-hashed (as an author of a hostile bundle
    would): what loading refuses then is the archive itself."""
    meta, blobs = bmod.read_verified(src)
    blobs[bmod.NPZ] = npz
    return bmod.write(dest, blobs, _meta_in(meta), compress=True)


def test_damaged_or_crafted_archives_are_refused(tmp_path: Path) -> None:
    src = PUBLISHED[0].parent
    d = tmp_path / "flip"
    meta, blobs = bmod.read_verified(src)
    bmod.write(d, blobs, _meta_in(meta), compress=True)
    for name in (bmod.NPZ, "lut.json.gz"):
        f = d / name
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
        with pytest.raises(bmod.BundleError) as e:
            predictors.load(d)
        assert "\n" not in str(e.value) and name.split(".")[0] in str(e.value)
        f.write_bytes(((src / name).read_bytes()))
    arrays = bmod.read_npz(src, bmod.NPZ, blobs[bmod.NPZ])
    bio = io.BytesIO()
    np.savez(bio, **{**arrays, "n0.value": np.array([{"x": 1}], dtype=object)})  # a pickled object
    npy = io.BytesIO()
    np.lib.format.write_array(npy, np.zeros(3, dtype="<f8"))
    lying = io.BytesIO()  # a header claiming far more elements than the member holds
    with zipfile.ZipFile(lying, "w") as z:
        z.writestr("n0.value.npy", npy.getvalue().replace(b"(3,), }" + b" " * 9, b"(9999999999,), }"))
    for i, npz in enumerate((bio.getvalue(), lying.getvalue(), b"not a zip",
                             bmod.write_npz({k: v for k, v in arrays.items() if k != "n0.left"}))):
        with pytest.raises(bmod.BundleError) as e:
            predictors.load(_resealed(src, tmp_path / f"crafted{i}", npz))
        assert "\n" not in str(e.value) and ("predictor.npz" in str(e.value) or "predictor.json" in str(e.value))
