"""The record model: stable ids, statistics, and a lossless Parquet round trip."""
import math

import pyarrow.parquet as pq
import pytest

from devprof.records import (SCHEMA_VERSION, Conditions, DeviceInfo, KernelSpec, Measurement, Record, RuntimeInfo,
                             Sparsity, arrow_schema, records_to_table, row_to_record)


def _record(spec=None, samples=(10.0, 11.0, 10.5, 10.2, 10.8), **kw):
    spec = spec or KernelSpec("conv2d", 1, 56, 56, 32, 64, 3, 3, 1, 1, activation="relu")
    dev = DeviceInfo("local", "local", model="cpu", cpu="cpu", cores=2, isa=("avx2",), os="Debian", kernel="6.1",
                     extra={"hostname": "h"})
    return Record(spec, dev, RuntimeInfo("onnxruntime", "1.0", 1, {"ep": "cpu"}), Measurement(samples, 3, 7),
                  conditions=Conditions("0", "performance", 2000, 1900, 40.0, 41.5, False),
                  started_at=1700000000.25, finished_at=1700000001.5, devprof_version="0.1.0", **kw)


def test_spec_id_is_stable_and_content_based():
    a = KernelSpec("conv2d", 1, 56, 56, 32, 64, 3, 3, 1, 1)
    b = KernelSpec.from_dict(a.to_dict())
    assert a == b and a.id == b.id
    assert a.id == "6e9ae9ce28d446b9"  # a published table's keys must never change silently
    assert a.replace(stride=2).id != a.id
    sp = a.replace(sparsity=Sparsity("bcr", 0.9, {"block": [4, 16]}))
    assert sp.id != a.id and "bcr(block=4x16)@0.9" in sp.key
    assert KernelSpec.from_dict(sp.to_dict()) == sp


def test_spec_shape_facts():
    s = KernelSpec("conv2d", 1, 56, 56, 32, 64, 3, 3, 2, 1)
    assert (s.out_h, s.out_w) == (28, 28)
    assert s.macs == 28 * 28 * 64 * 9 * 32 and s.flops == 2 * s.macs
    dw = KernelSpec("dwconv2d", 1, 14, 14, 96, 96, 3, 3, 1, 1, groups=96)
    assert dw.weight_shape == (96, 3, 3, 1) and dw.macs == 14 * 14 * 96 * 9
    fc = KernelSpec("fc", n=8, cin=512, cout=1000)
    assert fc.macs == 8 * 512 * 1000 and fc.weight_shape == (1000, 512)
    half = fc.replace(sparsity=Sparsity("nm", 0.5, {"n": 2, "m": 4}))
    assert half.effective_macs == fc.macs // 2


@pytest.mark.parametrize("bad", [dict(op="nope"), dict(op="conv2d", h=0), dict(op="dwconv2d", cin=4, cout=8, groups=4),
                                 dict(op="conv2d", h=2, w=2, kh=5, kw=5), dict(op="fc", activation="tanhh"),
                                 dict(op="fc", sparsity={"scheme": "bcr", "ratio": 1.0}),
                                 dict(op="fc", sparsity={"scheme": "magic", "ratio": 0.5})])
def test_invalid_specs_are_refused(bad):
    with pytest.raises(ValueError):
        KernelSpec(**bad)


def test_measurement_statistics_and_noise_flag():
    m = Measurement((10.0, 10.0, 10.0, 10.0, 10.0))
    assert m.median_us == 10 and m.iqr_us == 0 and m.cv == 0 and not m.noisy
    n = Measurement((10.0, 20.0, 10.0, 30.0, 10.0, 25.0))
    assert n.noisy and n.repeats == 6 and n.min_us == 10
    with pytest.raises(ValueError):
        Measurement(())
    with pytest.raises(ValueError):
        Measurement((1.0, float("nan")))


def test_parquet_round_trip_is_lossless(tmp_path):
    recs = [_record(), _record(KernelSpec("fc", n=2, cin=64, cout=10, sparsity=Sparsity("block", 0.75, {"block": [1, 4]})),
                               kind="layer", model_name="m", layer_index=3, layer_name="fc1", model_run_id="r")]
    t = records_to_table(recs)
    assert t.schema.equals(arrow_schema(), check_metadata=True)
    pq.write_table(t, tmp_path / "x.parquet")
    back = pq.read_table(tmp_path / "x.parquet")
    assert back.schema.metadata[b"devprof.schema_version"] == str(SCHEMA_VERSION).encode()
    for orig, row in zip(recs, back.to_pylist()):
        r = row_to_record(row)
        assert r.key == orig.key
        assert r.spec == orig.spec and r.device == orig.device and r.runtime == orig.runtime
        assert r.measurement == orig.measurement
        assert r.conditions == orig.conditions
        assert math.isclose(r.started_at, orig.started_at) and r.layer_name == orig.layer_name
    df = back.to_pandas()
    assert df.loc[0, "median_us"] == pytest.approx(10.5) and df.loc[1, "scheme"] == "block"


def test_dedup_key_ignores_measurement_but_not_context():
    a, b = _record(), _record(samples=(99.0, 98.0, 97.0))
    assert a.key == b.key
    assert _record(kind="layer", model_name="m", layer_index=1).key != _record(kind="layer", model_name="m",
                                                                                layer_index=2).key


def test_emulated_devices_have_their_own_id_and_real_ids_are_unchanged():
    dev = _record().device
    assert dev.id == "7a88050cc200a3c9"  # published fingerprints must never change
    emu = DeviceInfo(**{**dev.to_dict(), "emulated": True})
    assert emu.id != dev.id
    back = row_to_record(records_to_table([_record()]).to_pylist()[0])
    assert back.device == dev and not back.conditions.cooldown_timed_out and back.kernel == ""


def test_a_host_keeps_its_id_when_devprof_records_a_newer_cpu_feature():
    """`asimdhp` (fp16 arithmetic) is recorded since the fp16 kernels; an arm64 host fingerprinted
    before keeps its id, so its datasets still resume and merge."""
    arm = DeviceInfo(kind="local", name="h", model="m", abi="arm64-v8a", isa=("asimd", "asimddp"))
    newer = DeviceInfo(**{**arm.to_dict(), "isa": ("asimd", "asimddp", "asimdhp")})
    assert newer.id == arm.id and newer.isa != arm.isa
    assert DeviceInfo(**{**arm.to_dict(), "isa": ("asimd",)}).id != arm.id


def test_hand_written_specs_need_every_dimension_of_their_op():
    """`predict([{'op': 'conv2d', 'h': 56}])` once answered for conv2d-n1-56x1x1-o1-k1x1: a spec
    written by hand must say every dimension its op needs; a depthwise conv's cin is enough."""
    import pytest

    from devprof.records import spec_from_user

    with pytest.raises(ValueError, match=r"needs h, w, cin, cout, kh \(missing: w, cin, cout, kh\)"):
        spec_from_user({"op": "conv2d", "h": 56})
    with pytest.raises(ValueError, match="missing: cout"):
        spec_from_user({"op": "fc", "cin": 1280})
    dw = spec_from_user({"op": "dwconv2d", "hw": 56, "cin": 144, "k": 3, "stride": 2})
    assert (dw.cout, dw.groups, dw.kh, dw.kw, dw.padding, dw.w) == (144, 144, 3, 3, 1, 56)
    assert spec_from_user({"op": "fc", "cin": 1280, "cout": 1000}).cout == 1000
