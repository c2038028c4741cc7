"""Suites: built-ins load, generation is deterministic, malformed files give one-line errors."""
import pytest

from devprof.errors import UsageError
from devprof.suites import builtin_names, load_suite, parse_suite


def test_builtin_suites_load():
    names = builtin_names()
    for required in ("smoke", "mobilenetv2", "sr720p"):
        assert required in names
    smoke = load_suite("smoke")
    assert len(smoke.specs) >= 20 and len({s.op for s in smoke.specs}) >= 4
    mb2 = load_suite("mobilenetv2")
    assert any(s.key.startswith("conv2d-n1-224x224x3-o32-k3x3-s2") for s in mb2.specs)
    assert any(s.op == "fc" and s.cin == 1280 and s.cout == 1000 for s in mb2.specs)
    sr = load_suite("sr720p")
    assert all(s.h == 360 and s.w == 640 for s in sr.specs)


def test_random_sampling_is_seeded():
    text = """
[suite]
name = "r"
[[family]]
op = "conv2d"
sampling = "random"
count = 20
seed = 7
shape = { hw = { min = 7, max = 112, log = true }, cin = { min = 8, max = 256, multiple_of = 8 }, cout = [16, 32], k = [1, 3, 5], stride = [1, 2] }
"""
    a, b = parse_suite(text), parse_suite(text)
    assert [s.id for s in a.specs] == [s.id for s in b.specs]
    assert all(s.cin % 8 == 0 and 7 <= s.h <= 112 for s in a.specs)
    assert len(parse_suite(text.replace("seed = 7", "seed = 8")).specs) >= 1


def test_sparsity_variants_are_crossed():
    s = parse_suite("""
[suite]
name = "sp"
[[family]]
op = "fc"
shape = { cin = [64], cout = [32] }
sparsity = [ { scheme = "bcr", ratio = [0.5, 0.9], params = { block = [4, 16] } }, { scheme = "nm", ratio = 0.5, params = { n = 2, m = 4 } } ]
""")
    assert [(x.sparsity.scheme, x.sparsity.ratio) for x in s.specs] == [("bcr", 0.5), ("bcr", 0.9), ("nm", 0.5)]
    assert s.specs[0].sparsity.p["block"] == (4, 16)


@pytest.mark.parametrize("text,msg", [
    ("[suite\nname='x'", "malformed TOML"),
    ("[suite]\nname='x'\n", "no kernels"),
    ("[suite]\nname='x'\n[[kernels]]\nop='convolution'", "unknown op"),
    ("[suite]\nname='x'\n[[family]]\nop='conv2d'\nshape={ hw=[8], chans=[3] }", "unknown shape key"),
    ("[suite]\nname='x'\n[[family]]\nop='conv2d'\nsampling='sobol'\nshape={ hw=[8] }", "sampling must be"),
    ("[suite]\nname='x'\n[[kernels]]\nop='conv2d'\nh=2\nw=2\nkh=7\nkw=7\npadding=0", "kernel larger"),
    ("[suite]\nname='x'\n[[family]]\nop='fc'\nshape={cin=[8]}\nsparsity=[{scheme='bcr', ratio=1.5}]", "ratio"),
    ("[nosuite]\nname='x'", "unknown section"),
    ("[suite]\ndescription='no name'\n[[kernels]]\nop='fc'", "needs a [suite] table with a name"),
    # hostile or careless suites: each was an internal error or sampled outside its range
    ("[suite]\nname='x'\n[[kernels]]\nop='fc'\ncin=" + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("[suite]\nname='x'\n[[family]]\nop='pwconv'\nsampling='random'\ncount=3\nseed=-1\nshape={hw=[8]}",
     "seed must be an integer >= 0"),
    ("[suite]\nname='x'\n[[family]]\nop='pwconv'\nsampling='random'\ncount=3\n"
     "shape={hw={min=9, max=10, multiple_of=8}, cin=[8], cout=[8]}", "no multiple of 8 lies in 9..10"),
    ("[suite]\nname='x'\n[[family]]\nop='pwconv'\nsampling='random'\ncount=3\n"
     "shape={hw={min=9, max=10, multiple_of=0}, cin=[8], cout=[8]}", "multiple_of must be an integer >= 1"),
    ("[suite]\nname='x'\n" + "[[kernels]]\nop='fc'\ncin=8\ncout=8\n" * 100_001, "more than 100000"),
])
def test_malformed_suites_give_one_line_errors(text, msg):
    with pytest.raises(UsageError, match=msg.replace("[", r"\[").replace("]", r"\]")) as e:
        parse_suite(text, source="t.toml")
    assert "\n" not in str(e.value)


def test_unknown_suite_name_lists_builtins():
    with pytest.raises(UsageError, match="built-in: .*smoke"):
        load_suite("no-such-suite")


def test_random_ranges_sample_only_inside_them():
    s = parse_suite("[suite]\nname='x'\n[[family]]\nop='pwconv'\nsampling='random'\ncount=200\nseed=3\n"
                    "shape={hw={min=9, max=30, multiple_of=8}, cin=[8], cout=[8]}")
    assert {x.h for x in s.specs} <= {16, 24} and len({x.h for x in s.specs}) == 2  # 8 and 32 lie outside
