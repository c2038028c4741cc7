"""BERT-style encoders: built by devprof or exported by a user from PyTorch, walked with every node
mapped to a spec (none left as `other`), profiled layer by layer in ONNX Runtime and end to end in
LiteRT (output checked against ONNX Runtime), and pruned linear layers timed as generated kernels."""
import json
import math
from collections import Counter

import pytest

from devprof.errors import UsageError
from devprof.models import bert
from devprof.models.builders import build
from devprof.models.walk import walk
from devprof.store import Dataset
from support.cli import run_cli


def test_bert_walk_maps_every_node():
    ml = walk(build("bert_tiny"), fusion="onnxruntime")
    ops = Counter(layer.spec.op for layer in ml.layers)
    assert "other" not in ops
    # per encoder layer: Q, K, V, output, FFN up and down; two matmuls; softmax; 2 LN; GELU; 2 adds
    assert ops == {"fc": 12, "matmul": 4, "softmax": 2, "layernorm": 4, "gelu": 2, "add": 4}
    qkv = [layer for layer in ml.layers if layer.spec.op == "fc"][0]
    assert (qkv.spec.n, qkv.spec.cin, qkv.spec.cout, qkv.spec.bias) == (128, 128, 128, True)
    assert qkv.ops == ["MatMul", "Add", "Reshape", "Transpose"]


def test_bert_profiles_on_onnxruntime_and_litert(tmp_path):
    out = tmp_path / "d"
    p = run_cli("profile", "--model", "bert_tiny", "-r", "onnxruntime", "-r", "litert", "--out", str(out),
                "--quick", "--json")
    assert p.returncode == 0, p.stderr
    runs = {r["runtime"]: r for r in json.loads(p.stdout)["runs"]}
    assert set(runs) == {"onnxruntime", "litert"} and not any(r.get("error") for r in runs.values())
    df = Dataset(out).read()
    layers = df[(df["kind"] == "layer") & (df["layer_index"] >= 0)]
    # layers ORT fuses into their neighbours (bias GELU, Add + LayerNorm) hold no time of their own
    assert {"fc", "matmul", "softmax"} <= set(layers["op"]) and "other" not in set(layers["op"])
    assert set(df[df["kind"] == "model"]["runtime"]) == {"onnxruntime", "litert"}
    assert math.isfinite(runs["onnxruntime"]["gap"])  # Σ layers vs end to end: recorded


def test_pruned_bert_times_every_linear_layer(tmp_path):
    out = tmp_path / "d"
    p = run_cli("profile", "--model", "bert_tiny", "--prune", "bcr:0.9", "--out", str(out), "--quick", "--json")
    assert p.returncode == 0, p.stderr
    df = Dataset(out).read()
    pruned = df[(df["kind"] == "layer") & (df["scheme"] == "bcr")]
    assert len(pruned) == 12 and set(pruned["op"]) == {"fc"}


@pytest.mark.parametrize("cfg, msg", [
    ({"layers": 2, "hidden": 130, "heads": 4, "ffn": 512, "seq": 128}, "heads (4) must divide hidden (130)"),
    ({"layers": 2, "hidden": 128, "heads": 2, "ffn": 512, "seq": 0}, "seq must be a positive integer"),
])
def test_bad_bert_configs_are_one_line_errors(cfg, msg):
    with pytest.raises(UsageError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        bert.check_config(cfg)


def test_user_exported_pytorch_encoder_walks_without_other(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Encoder(nn.Module):
        def __init__(self, h: int = 64, heads: int = 4, ffn: int = 128) -> None:
            super().__init__()
            self.heads = heads
            self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
            self.f1, self.f2, self.act = nn.Linear(h, ffn), nn.Linear(ffn, h), nn.GELU()

        def forward(self, x):
            b, n, h = x.shape
            d = h // self.heads
            q, k, v = (lin(x).reshape(b, n, self.heads, d).transpose(1, 2) for lin in (self.q, self.k, self.v))
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            x = self.ln1(x + self.o((p @ v).transpose(1, 2).reshape(b, n, h)))
            return self.ln2(x + self.f2(self.act(self.f1(x))))

    path = tmp_path / "enc.onnx"
    torch.onnx.export(nn.Sequential(Encoder(), Encoder()).eval(), (torch.randn(1, 32, 64),), str(path),
                      input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    ops = Counter(layer.spec.op for layer in walk(path, fusion="onnxruntime").layers)
    assert "other" not in ops and ops["fc"] == 12 and ops["matmul"] == 4 and ops["gelu"] == 2
