"""Transformer ops (matmul, softmax, layernorm, gelu, attention): specs, the numpy reference, and
single-op models that ONNX Runtime and LiteRT run and that are checked before they are timed."""
import json

import numpy as np
import pytest

from devprof.errors import UsageError
from devprof.records import OPS, KernelSpec
from devprof.runtimes.reference import make_tensors, reference
from devprof.suites import load_suite, parse_suite
from support.cli import run_cli

SMALL = """
[suite]
name = "tiny-transformer"
runtimes = ["onnxruntime", "litert"]
[[kernels]]
op = "matmul"
n = 2
h = 16
cin = 8
cout = 16
[[kernels]]
op = "softmax"
n = 2
h = 16
cin = 16
[[kernels]]
op = "layernorm"
h = 16
cin = 32
[[kernels]]
op = "gelu"
h = 16
cin = 64
[[kernels]]
op = "gelu"
h = 16
cin = 64
attrs = { approximate = "tanh" }
[[kernels]]
op = "attention"
n = 2
h = 16
cin = 32
attrs = { heads = 4 }
"""


def test_new_ops_keep_the_codes_of_the_old_ones():
    """Published bundles encode ops by position: the new ones come after every old one."""
    assert OPS.index("other") == 14 and OPS[15:] == ("matmul", "softmax", "layernorm", "gelu", "attention")


def test_attention_reference_is_per_head_scaled_dot_product():
    s = KernelSpec("attention", n=1, h=6, cin=8, cout=8, attrs={"heads": 2})
    t = make_tensors(s)
    x, w, b = (t[k].astype(np.float64) for k in ("x", "w", "b"))
    q, k, v = (x[0] @ w[i].T + b[i] for i in range(3))
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        a = q[:, sl] @ k[:, sl].T / 2.0
        p = np.exp(a - a.max(axis=1, keepdims=True))
        heads.append((p / p.sum(axis=1, keepdims=True)) @ v[:, sl])
    want = np.concatenate(heads, axis=1) @ w[3].T + b[3]
    np.testing.assert_allclose(reference(s, t)[0], want, rtol=1e-12)
    assert s.macs == 4 * 6 * 8 * 8 + 2 * 6 * 6 * 8 and s.params_count == 4 * 64 + 4 * 8


def test_every_new_op_runs_checked_in_onnxruntime_and_litert(tmp_path):
    suite = tmp_path / "t.toml"
    suite.write_text(SMALL)
    p = run_cli("profile", "--suite", str(suite), "--out", str(tmp_path / "d"), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["failed"] == 0 and summary["measured"] == 12, summary


@pytest.mark.parametrize("text, msg", [
    ("op='attention'\nh=16\ncin=30\nattrs={heads=4}", "heads (4) must divide the hidden size cin (30)"),
    ("op='attention'\nh=16\ncin=32", "attention needs attrs.heads"),
    ("op='softmax'\nh=0\ncin=16", "h must be a positive integer"),
    ("op='layernorm'\nh=16\ncin=16\ncout=8", "cout must equal cin"),
    ("op='gelu'\nh=4\ncin=8\nattrs={approximate='fast'}", "approximate must be"),
    ("op='matmul'\nh=4\nw=4\ncin=8\ncout=8", "w must be 1"),
])
def test_bad_transformer_specs_give_one_line_errors(text, msg):
    with pytest.raises(UsageError, match=msg.replace("(", r"\(").replace(")", r"\)")) as e:
        parse_suite(f"[suite]\nname='x'\n[[kernels]]\n{text}", source="t.toml")
    assert "\n" not in str(e.value)


def test_transformer_suite_covers_bert_layers():
    specs = load_suite("transformer").specs
    ops = {s.op for s in specs}
    assert {"fc", "matmul", "softmax", "layernorm", "gelu", "attention"} <= ops
    assert any(s.op == "fc" and (s.n, s.cin, s.cout) == (128, 768, 3072) for s in specs)
    assert all(s.bias for s in specs if s.op in ("layernorm", "attention"))


def test_transformer_train_has_200_shapes_of_every_op():
    from collections import Counter

    counts = Counter(s.op for s in load_suite("transformer-train").specs)
    assert set(counts) == {"fc", "matmul", "softmax", "layernorm", "gelu", "attention"}
    assert min(counts.values()) >= 200, counts
