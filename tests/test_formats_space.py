"""Search-space files and `devprof profile --space` end to end on `local` (real ONNX Runtime)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devprof.errors import UsageError
from devprof.formats import ofa
from devprof.space import Space, load_space, mbconv_space

TINY = """
[space]
name = "tiny"
style = "ofa"
format = "ofa-yaml"

[[position]]
name = "first_conv"
blocks = [{ type = "Conv", input = [16, 16, 3], output = [8, 8, 8] }]

[[position]]
name = "b1"
input = [8, 8, 8]
output = [4, 4, 16]
stride = 2
expand = [3, 6]
kernel = [3, 5]

[[position]]
name = "b2"
input = [4, 4, 16]
output = [4, 4, 16]
expand = [3]
kernel = [3]
se = [0, 1]
hs = [1]
skip = true

[[position]]
name = "classifier"
blocks = [{ type = "Logits", input = [4, 4, 16], output = [10] }]
"""


def _devprof(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devprof", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_space_file_grid_and_explicit_blocks(tmp_path: Path) -> None:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    s = load_space(p)
    assert [len(x.choices) for x in s.positions] == [1, 4, 3, 1] and s.size == 12
    keys = [b.key for b in s.blocks()]
    assert len(keys) == 8 and keys[0] == "Conv-input:16x16x3-output:8x8x8"
    assert "expanded_conv-input:8x8x8-output:4x4x16-expand:48-kernel:5-stride:2-idskip:0-se:0-hs:0" in keys
    assert "expanded_conv-input:4x4x16-output:4x4x16-expand:48-kernel:3-stride:1-idskip:1-se:1-hs:1" in keys
    assert s.arch_keys((0, 1, 2, 0)) == [keys[0], s.positions[1].choices[1].key, keys[-1]]  # skip left out
    # JSON dump (every choice explicit) reads back to the same space
    again = load_space(s.dump(tmp_path / "tiny.json"))
    assert [b.key for b in again.blocks()] == keys and again.size == s.size


@pytest.mark.parametrize("text, msg", [
    ("[[position]]\nname='a'\ninput=[8,8,8]\noutput=[8,8,8]\nkernel=[3]\nwidth=[1]\n", "unknown field"),
    ("[[position]]\nname='a'\ninput=[8,8,8]\noutput=[4,4,8]\nstride=2\nskip=true\n", "skip is only possible"),
    ("[[position]]\nname='a'\ninput=[8,8,8]\noutput=[8,8,8]\n[[position]]\nname='b'\ninput=[4,4,8]\n"
     "output=[4,4,8]\n", "the position before gives"),
    ("[space]\nstyle='tf'\n[[position]]\nname='a'\ninput=[8,8,8]\noutput=[8,8,8]\n", "unknown style"),
    ("[[position]]\nname='a'\nblocks=[{type='Conv', input=[8,8,3], output=[4,4,8], kernel='x'}]\n", "integer"),
    ("not toml at all [", "malformed"),
])
def test_bad_space_files_are_one_line_errors(tmp_path: Path, text: str, msg: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(UsageError, match=msg) as e:
        load_space(p)
    assert "\n" not in str(e.value)


def test_every_block_builds_runs_and_walks() -> None:
    import onnxruntime as ort

    from devprof.models.walk import walk

    s = mbconv_space(res=32, stages=[(16, 2, 2)], expand=(1, 3), kernel=(3, 5), se=(0, 1), head=64, classes=10)
    for b in s.blocks():
        m = ofa.blocks_model([b])
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        h, w, c = b.input
        y = sess.run(None, {"input": np.ones((1, c, h, w), np.float32)})[0]
        assert y.shape[1] == b.output[-1]
        layers = walk(m)
        assert not layers.unknown, (b.key, [l.spec.key for l in layers.unknown])
    whole = s.model(s.sample(np.random.default_rng(0)))
    assert not walk(whole).unknown


def test_profile_space_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    r = _devprof("profile", "--space", "tiny.toml", "--quick", "-o", "data", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["measured"] == 8 and res["blocks"] == 8
    t = ofa.read(tmp_path / "data" / "tiny.yaml")
    space = load_space(tmp_path / "tiny.toml")
    assert list(t) == [b.key for b in space.blocks()]
    assert all(e.ms > 0 and e.count >= 3 for _, e in t.items())
    # the records are in the dataset, one per block, and the table is their medians
    from devprof.formats.records import records_table
    from devprof.store import Dataset

    back = records_table(Dataset(tmp_path / "data").read())
    assert sorted(back) == sorted(t) and all(back[k].ms == t[k].ms for k in t)
    # each block was checked against the numpy reference before timing, and has its conditions
    from support.conditions import assert_full_conditions

    df = Dataset(tmp_path / "data").read()
    assert len(df) == 8
    for _, row in df.iterrows():
        assert_full_conditions(row)
    # rerun: refused without --resume, nothing measured with it
    r = _devprof("profile", "--space", "tiny.toml", "--quick", "-o", "data", cwd=tmp_path)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = _devprof("profile", "--space", "tiny.toml", "--quick", "-o", "data", "--resume", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["measured"] == 0
    assert ofa.read(tmp_path / "data" / "tiny.yaml") == t
    # a bad space file: one line, exit 2
    (tmp_path / "bad.toml").write_text("[[position]]\nname = 'x'\n")
    r = _devprof("profile", "--space", "bad.toml", "-o", "data2", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_space_validation_rejects_mismatched_choices() -> None:
    with pytest.raises(UsageError, match="differ in input or output"):
        Space.from_dict({"position": [{"name": "a", "blocks": [
            {"type": "Conv", "input": [8, 8, 3], "output": [4, 4, 8]},
            {"type": "Conv", "input": [8, 8, 3], "output": [4, 4, 16]}]}]})
