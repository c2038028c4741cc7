"""DeepSparse as a peer of bench/sparse_vs_dense.py --peers, run in its own interpreter.

DeepSparse 1.8 pins an old onnx / numpy and cannot share devprof's environment, so the benchmark
starts this script with the interpreter of a separate environment (`--deepsparse-python`) and talks
to it over stdin/stdout, one JSON object per line:

    {"op": "info"}                                         -> {"deepsparse": version, "isa": ..., ...}
    {"op": "load", "key": K, "model": M, "x": X, "threads": T, "cpus": [C...]}
                                                           -> {"ok": true, "y": Y}  (output saved to Y.npy)
    {"op": "time", "keys": [K...], "protocol": {...}}      -> {"us": {K: median_us}}
    {"op": "drop"}                                         -> {"ok": true}  (frees the engines)

`cpus` (optional): the CPUs this process, and the engine threads it starts, may run on from then
on: the benchmark pins every contender at T threads to the same CPUs.
Timing uses devprof.measure (imported from this repository by path: it needs only the standard
library), so DeepSparse's engines are timed with the very protocol as every other contender.
Anything DeepSparse prints goes to stderr: stdout carries only the replies.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # the engine's banner and logs must not mix with the replies
    out = os.fdopen(reply_fd, "w", buffering=1)
    try:
        import numpy as np
        import deepsparse
        from deepsparse import compile_model
    except Exception as e:  # noqa: BLE001 - reported to the benchmark, which skips DeepSparse
        out.write(json.dumps({"error": f"cannot import deepsparse: {e}"}) + "\n")
        return 0
    from devprof.measure import Protocol, measure_callable

    engines: dict[str, tuple[object, list]] = {}
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "info":
                rep = {"deepsparse": deepsparse.__version__, "python": sys.version.split()[0]}
                try:
                    from deepsparse.cpu import cpu_architecture

                    arch = cpu_architecture()
                    rep.update(isa=arch.get("isa"), vnni=arch.get("vnni"), cores=arch.get("num_cores"))
                except Exception:  # noqa: BLE001 - the ISA is informative only
                    pass
            elif req["op"] == "load":
                if req.get("cpus"):
                    os.sched_setaffinity(0, [int(c) for c in req["cpus"]])
                eng = compile_model(req["model"], batch_size=1, num_cores=int(req["threads"]))
                x = [np.load(req["x"])]
                y = eng.run(x)[0]
                np.save(req["x"] + ".y.npy", y)
                engines[req["key"]] = (eng, x)
                rep = {"ok": True, "y": req["x"] + ".y.npy", "avx": str(getattr(eng, "cpu_avx_type", ""))}
            elif req["op"] == "time":
                proto = Protocol(**req["protocol"])
                us = {}
                for k in req["keys"]:
                    eng, x = engines[k]
                    us[k] = measure_callable(lambda e=eng, x=x: e.run(x), proto).median_us
                rep = {"us": us}
            elif req["op"] == "drop":
                engines.clear()
                rep = {"ok": True}
            else:
                rep = {"error": f"unknown op {req['op']!r}"}
        except Exception as e:  # noqa: BLE001 - one engine failing is one missing figure
            rep = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
