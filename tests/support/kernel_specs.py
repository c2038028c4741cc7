"""The op shapes and fast harness flags shared by the generated-kernel tests (fp32, fp16, int8,
threads): one `make_spec` so every dtype's tests build the same layers the same way."""
from __future__ import annotations

from devprof.records import KernelSpec, Sparsity

OPS = ["conv3x3s1", "conv3x3s2", "pw1x1", "fc"]
#: harness flags that time nothing worth keeping: one sample, so a test checks outputs quickly
FAST = ["--warmup-us=0", "--min-warmups=1", "--sample-us=0", "--rounds=1", "--round-samples=1", "--round-us=0",
        "--max-time-us=0"]


def make_spec(op: str, h: int, w: int, cin: int, cout: int, n: int, scheme: str, ratio: float, params: dict,
              act: str = "none", groups: int = 1, dtype: str = "fp32") -> KernelSpec:
    """One of OPS as a spec; pattern (3x3 only) becomes unstructured on pointwise and fc layers, and
    dense takes ratio 0 whatever is passed."""
    if scheme == "pattern" and op in ("pw1x1", "fc"):
        scheme, params = "unstructured", {}
    sp = Sparsity(scheme, ratio if scheme != "dense" else 0.0, params)
    if op == "fc":
        return KernelSpec("fc", n=n, cin=cin, cout=cout, sparsity=sp, activation=act, dtype=dtype)
    if op == "pw1x1":
        return KernelSpec("pwconv", n=n, h=h, w=w, cin=cin, cout=cout, sparsity=sp, activation=act, dtype=dtype)
    return KernelSpec("conv2d", n=n, h=h, w=w, cin=cin * groups, cout=cout * groups, kh=3, kw=3,
                      stride=2 if op == "conv3x3s2" else 1, padding=1, groups=groups, sparsity=sp, activation=act,
                      dtype=dtype)
