"""Datasets: append-safe parts, dedup, single writer, clear errors on bad folders."""
import json

import pytest

from devprof.errors import DatasetError
from devprof.records import KernelSpec, SCHEMA_VERSION
from devprof.store import Dataset
from test_records import _record


def test_append_dedups_and_reads_back(tmp_path):
    ds = Dataset(tmp_path / "d")
    with ds:
        assert ds.append([_record()]) == 1
        assert ds.append([_record(samples=(1.0, 2.0, 3.0))]) == 0  # same key: not written twice
        ds.append([_record(KernelSpec("fc", cin=8, cout=8))])
    df = Dataset(tmp_path / "d").read()
    assert len(df) == 2 and df["record_key"].is_unique
    assert len(ds.parts()) == 2
    with ds:
        ds.compact()
    assert len(ds.parts()) == 1 and len(Dataset(tmp_path / "d").read()) == 2


def test_duplicate_parts_are_deduplicated_on_read(tmp_path):
    ds = Dataset(tmp_path / "d")
    with ds:
        ds.append([_record()])
    part = ds.parts()[0]
    (part.parent / "part-99999999999999999999-copy.parquet").write_bytes(part.read_bytes())
    assert len(Dataset(tmp_path / "d").read()) == 1


def test_second_writer_is_refused(tmp_path):
    a, b = Dataset(tmp_path / "d"), Dataset(tmp_path / "d")
    with a:
        with pytest.raises(DatasetError, match="another devprof run"):
            b.lock()
    b.lock()
    b.unlock()


def test_newer_schema_and_foreign_folders_give_one_line_errors(tmp_path):
    d = tmp_path / "d"
    Dataset(d).create()
    (d / "dataset.json").write_text(json.dumps({"format": "devprof-dataset", "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(DatasetError, match="newer than this devprof"):
        Dataset(d).read()
    (tmp_path / "e").mkdir()
    with pytest.raises(DatasetError, match="not a devprof dataset"):
        Dataset(tmp_path / "e").read()
    with pytest.raises(DatasetError, match="no dataset"):
        Dataset(tmp_path / "missing").read()


def test_corrupt_part_is_reported(tmp_path):
    ds = Dataset(tmp_path / "d")
    with ds:
        ds.append([_record()])
    ds.parts()[0].write_bytes(b"PAR1garbage")
    with pytest.raises(DatasetError, match="unreadable dataset part .*devprof dataset check"):
        Dataset(tmp_path / "d").read()


def test_leftover_temporary_files_are_ignored(tmp_path):
    ds = Dataset(tmp_path / "d")
    with ds:
        ds.append([_record()])
    (tmp_path / "d" / "parts" / ".part-1.parquet.tmp").write_bytes(b"half a file")  # a crash mid-write
    assert len(Dataset(tmp_path / "d").read()) == 1


def test_parts_of_schema_1_read_with_the_columns_added_since(tmp_path):
    """A dataset written before version 2 reads in today's layout; a current part missing a column is refused."""
    import pyarrow.parquet as pq

    from devprof.records import ADDED_COLUMNS, records_to_table

    ds = Dataset(tmp_path / "ds")
    with ds:
        ds.append([_record()])
    (part,) = ds.parts()
    t = records_to_table([_record(spec=KernelSpec("fc", n=1, cin=8, cout=8))])
    old = t.drop_columns(list(ADDED_COLUMNS)).replace_schema_metadata({b"devprof.schema_version": b"1"})
    pq.write_table(old, part.with_name("part-old.parquet"))
    df = ds.read()
    assert len(df) == 2 and set(df["emulated"]) == {False} and set(df["kernel"]) == {""}
    assert not df["cooldown_timed_out"].any() and set(df["checked"]) == {""}
    bad = t.drop_columns(["kernel"])  # says the current version but lacks a version-2 column
    pq.write_table(bad, part.with_name("part-bad.parquet"))
    with pytest.raises(DatasetError, match=f"part-bad.parquet: does not match schema version {SCHEMA_VERSION}"):
        ds.read()


def test_lock_and_failure_log_never_write_through_links(tmp_path):
    """A `.lock` (or failures log) that is a symlink, a dangling symlink or a directory is refused
    with one line; nothing is written into what a link points to."""
    import os

    import pytest

    from devprof.errors import DatasetError
    from devprof.store import Dataset

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for make in (lambda p: os.symlink(victim, p), lambda p: os.symlink(tmp_path / "nowhere", p), os.mkdir):
        ds_path = tmp_path / f"ds{len(list(tmp_path.iterdir()))}"
        ds = Dataset(ds_path)
        ds.create()
        make(ds_path / ".lock")
        with pytest.raises(DatasetError) as e:
            ds.lock()
        assert "\n" not in str(e.value) and ".lock" in str(e.value)
    ds = Dataset(tmp_path / "dsf")
    ds.create()
    os.symlink(victim, ds.path / "failures.jsonl")
    with pytest.raises(DatasetError, match="symbolic link"):
        ds.log_failure({"error": "x"})
    assert victim.read_text() == "precious\n"


def _damage(part, n: int = 64) -> None:
    """Overwrite n bytes in the middle of a part (a bad sector, a copy cut short)."""
    raw = bytearray(part.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + n] = b"\xa5" * n
    part.write_bytes(bytes(raw))


def test_dataset_check_and_repair_set_an_unreadable_part_aside(tmp_path):
    """One damaged part made show/report/fit refuse the whole dataset: check names it, repair
    moves it into quarantine/ (kept), and everything else reads again."""
    from support.cli import run_cli

    d = tmp_path / "d"
    ds = Dataset(d)
    with ds:
        ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8)) for i in range(1, 6)])
        ds.append([_record(KernelSpec("fc", cin=8 * i, cout=16)) for i in range(1, 4)])
    bad = ds.parts()[1]
    _damage(bad)
    for cmd in (("show", str(d)), ("report", str(d), "-o", str(tmp_path / "r.html")),
                ("fit-predictor", str(d), "-o", str(tmp_path / "bundles"))):
        r = run_cli(*cmd)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 4 and len(errors) == 1, (cmd, r.stderr)
        assert bad.name in errors[0] and "devprof dataset check" in errors[0], (cmd, r.stderr)
    r = run_cli("dataset", "check", str(d), "--json")
    rep = json.loads(r.stdout)
    assert r.returncode == 4 and rep["readable_records"] == 5 and rep["unreadable_parts"] == 1
    assert rep["exit_code"] == 4 and "dataset repair" in rep["error"]
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")], r.stderr
    (entry,) = [p for p in rep["parts"] if not p["ok"]]
    assert entry["part"] == bad.name and entry["records"] in (3, None)
    assert bad.exists()  # check changes nothing
    r = run_cli("dataset", "repair", str(d))
    assert r.returncode == 0 and "set aside" in r.stdout, r.stderr
    assert not bad.exists() and (d / "quarantine" / bad.name).is_file()
    assert len(Dataset(d).read()) == 5
    r = run_cli("dataset", "check", str(d))
    assert r.returncode == 0 and "0 unreadable" in r.stdout
    r = run_cli("dataset", "repair", str(d))
    assert r.returncode == 0 and "nothing to repair" in r.stdout


def test_resume_measures_again_what_an_unreadable_part_held(tmp_path):
    """`profile --resume` used to count the records of a damaged part as present (their keys
    still read) and measure nothing; now it sets the part aside and measures them again."""
    from support.cli import run_cli

    d = tmp_path / "d"
    args = ("profile", "--device", "local", "--suite", "smoke", "--where", "op=fc", "-r", "onnxruntime",
            "--quick", "--out", str(d))
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    n = len(Dataset(d).read())
    for p in Dataset(d).parts():
        _damage(p)
    assert run_cli("show", str(d)).returncode == 4
    r = run_cli(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert "unreadable part(s)" in r.stderr and "measured again" in r.stderr
    assert len(Dataset(d).read()) == n and len(list((d / "quarantine").iterdir())) >= 1


# A child process that builds a dataset of three parts and merges them, killed for real (SIGKILL)
# at the n-th rename of the merge — the system call is where the kill lands, not our code.
_MERGE_CHILD = """
import os, signal, sys
sys.path.insert(0, sys.argv[3])
from test_records import _record
from devprof.records import KernelSpec
from devprof.store import Dataset
ds = Dataset(sys.argv[1])
with ds:
    for j in range(3):
        ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8 * (j + 1))) for i in range(1, 5)])
    kill_at, calls = int(sys.argv[2]), [0]
    real = os.rename
    def rename(a, b, *k, **kw):
        if "parts" in str(b) and ".tmp" not in str(a):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(a, b, *k, **kw)
    os.rename = rename
    ds.compact()
"""


@pytest.mark.parametrize("kill_at", [1, 2])
def test_a_merge_killed_between_renames_never_makes_the_raw_read_wrong(tmp_path, kill_at):
    """`pd.read_parquet("DS/parts")` counted merged and old parts both (1,603 rows for 1,530
    records) after a SIGKILL mid-merge. Now the raw read is exact or fails, never wrong; devprof
    reads every record at once, and the next writer finishes the merge."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    d = tmp_path / "d"
    tests = str(Path(__file__).parent)
    p = subprocess.run([sys.executable, "-c", _MERGE_CHILD, str(d), str(kill_at), tests], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == -9, p.stderr
    assert len(Dataset(d).read()) == 12  # devprof's reader: every record, no duplicate
    try:
        raw = len(pd.read_parquet(d / "parts"))
    except (OSError, ValueError):
        raw = None  # no parts/ folder between the two renames: an error, never a wrong count
    assert raw in (12, None)
    with Dataset(d):  # the next writer recovers
        pass
    assert len(pd.read_parquet(d / "parts")) == 12 and len(Dataset(d).read()) == 12
    assert not (d / "parts.new").exists() and not (d / "parts.old").exists()


def test_leftovers_of_killed_writers_are_cleaned_by_the_next_one(tmp_path):
    d = tmp_path / "d"
    ds = Dataset(d)
    with ds:
        ds.append([_record()])
    (d / "parts" / ".part-1.parquet.tmp").write_bytes(b"x" * 4096)  # a part killed mid-write
    (d / "parts.new").mkdir()
    (d / "parts.new" / ".part-2.parquet.tmp").write_bytes(b"x" * 4096)  # a merge killed mid-write
    with Dataset(d):
        pass
    assert not (d / "parts.new").exists() and not list((d / "parts").glob(".*.tmp"))
    assert len(Dataset(d).read()) == 1


def test_a_full_disk_during_the_final_merge_says_the_records_are_safe(tmp_path):
    """The run had saved everything, then exited 4 naming a part that never existed."""
    import subprocess
    import sys
    from pathlib import Path

    d = tmp_path / "d"
    ds = Dataset(d)
    with ds:
        for j in range(3):
            ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8 * (j + 1))) for i in range(1, 30)])
    biggest = max(p.stat().st_size for p in ds.parts())
    child = ("import sys; sys.path.insert(0, sys.argv[2]); from devprof.session import Session\n"
             "with Session(sys.argv[1]) as s: s.compact()\n")
    sys.path.insert(0, str(Path(__file__).parent))
    from support.faultkit import file_size_limit

    p = subprocess.run([sys.executable, "-c", child, str(d), str(Path(__file__).parents[1])], capture_output=True,
                       text=True, timeout=120, preexec_fn=file_size_limit(biggest + 512))
    assert p.returncode == 0, p.stderr
    assert "every record of" in p.stderr and "merge is pending" in p.stderr and "Traceback" not in p.stderr
    assert len(ds.parts()) == 3 and len(Dataset(d).read()) == 87
    assert not (d / "parts.new").exists()


def test_readers_during_merges_see_every_record_once(tmp_path):
    """`show` while a run merged its parts read "corrupt dataset part ...: No such file" one time
    in three: a part merged away after the listing is not corrupt, and the reader lists again."""
    import threading

    d = tmp_path / "d"
    ds = Dataset(d)
    with ds:
        ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8)) for i in range(1, 9)])
    counts, errors = [], []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                counts.append(len(Dataset(d).read()))
            except DatasetError as e:
                errors.append(str(e))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    with ds:
        for j in range(2, 12):
            ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8 * j)) for i in range(1, 9)])
            ds.compact()
    stop.set()
    for t in readers:
        t.join()
    assert not errors and counts and all(c % 8 == 0 and 8 <= c <= 88 for c in counts), sorted(set(counts))
    assert len(Dataset(d).read()) == 88


def test_damaged_datasets_give_one_line_errors_not_internal_ones(tmp_path):
    """Each of these was an internal error (exit 1) or a crash in `show`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from support.cli import run_cli

    def made(name):
        ds = Dataset(tmp_path / name)
        with ds:
            ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8)) for i in range(1, 4)])
        return ds

    def one_line(name, code, text):
        r = run_cli("show", str(tmp_path / name))
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == code and len(errors) == 1 and text in errors[0] and "internal" not in r.stderr, r.stderr

    ds = made("huge-version")
    (ds.path / "dataset.json").write_text('{"format": "devprof-dataset", "schema_version": 1e400}')
    one_line("huge-version", 4, "dataset.json is unreadable")
    ds = made("word-version")
    t = pq.read_table(ds.parts()[0])
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b"devprof.schema_version": b"one"}), ds.parts()[0])
    one_line("word-version", 4, "schema version b'one' is not a number")
    ds = made("no-column")
    pq.write_table(pq.read_table(ds.parts()[0]).drop_columns(["median_us"]), ds.parts()[0])
    one_line("no-column", 4, "does not match schema version")
    ds = made("text-median")  # median_us stored as strings: numbers in text are read, words refused
    t = pq.read_table(ds.parts()[0])
    i = t.schema.get_field_index("median_us")
    pq.write_table(t.set_column(i, "median_us", pa.array(["10.5", "11", "12"])), ds.parts()[0])
    assert Dataset(ds.path).read()["median_us"].tolist() == [10.5, 11.0, 12.0]
    pq.write_table(t.set_column(i, "median_us", pa.array(["fast"] * 3)), ds.parts()[0])
    one_line("text-median", 4, "Failed to parse string: 'fast'")
    ds = made("dir-part")
    (ds.path / "parts" / "part-99999999999999999999-dir.parquet").mkdir()  # a directory named like a part
    r = run_cli("show", str(ds.path))
    assert r.returncode == 0 and "internal" not in r.stderr, r.stderr
    assert len(Dataset(ds.path).read()) == 3


def test_an_undeletable_part_at_merge_time_blocks_nothing(tmp_path, capsys):
    """An immutable old part (`chattr +i`) at merge time: the merge is kept and said in one
    warning, and the next runs work (they failed with "cannot recover ... from an interrupted
    run" for good, the warning having promised that they would remove the part)."""
    import pandas as pd

    from devprof.session import Session
    from support.faultkit import immutable

    d = tmp_path / "d"
    ds = Dataset(d)
    with ds:
        for j in range(3):
            ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8 * (j + 1))) for i in range(1, 5)])
    with immutable(ds.parts()[0]):
        with Session(d) as s:
            s.compact()
        err = capsys.readouterr().err
        assert "merged" in err and "could not be removed" in err and len(err.strip().splitlines()) == 1, err
        assert len(Dataset(d).read()) == 12 and len(pd.read_parquet(d / "parts")) == 12
        for k in range(2):  # the next runs write, merge and say where the old part is
            with Session(d) as s:
                s.ds.append([_record(KernelSpec("fc", cin=8, cout=100 + k))])
                s.compact()
            err = capsys.readouterr().err
            assert "could not be removed" in err and "Traceback" not in err, err
            assert len(Dataset(d).read()) == 13 + k and len(pd.read_parquet(d / "parts")) == 13 + k
            assert len(Dataset(d).parts()) == 1
    with Session(d):  # the flag removed: the next writer removes the old part
        pass
    assert sorted(p.name for p in d.iterdir() if p.name.startswith("parts")) == ["parts"]
    assert len(Dataset(d).read()) == 14


def test_dataset_check_during_a_merge_counts_every_record(tmp_path):
    """`devprof dataset check` while a run merges: a part merged away after the listing was
    skipped, so the check reported fewer readable records than the dataset holds."""
    d = tmp_path / "d"
    with Dataset(d) as ds:
        for j in range(3):
            ds.append([_record(KernelSpec("fc", cin=8 * i, cout=8 * (j + 1))) for i in range(1, 5)])

    class MergedMidRead(Dataset):  # another process merges right after this reader listed the parts
        merged = False

        def read_part(self, p):
            if not self.merged:
                self.merged = True
                with Dataset(d) as writer:
                    writer.compact()
            return super().read_part(p)

    report = MergedMidRead(d).check()
    assert [r["ok"] for r in report] == [True] and sum(r["records"] for r in report) == 12, report


def test_repair_never_overwrites_what_quarantine_holds(tmp_path):
    """A part put back into parts/ by hand under the name of one already set aside, still
    unreadable: repair replaced the quarantined copy (rename overwrites); both are kept now."""
    d = tmp_path / "d"
    with Dataset(d) as ds:
        ds.append([_record(KernelSpec("fc", cin=8, cout=8))])
        ds.append([_record(KernelSpec("fc", cin=16, cout=8))])
    bad = ds.parts()[1]
    bad.write_bytes(b"PAR1first damaged copy")
    with ds:
        assert [r["part"] for r in ds.quarantine()] == [bad.name]
    bad.write_bytes(b"PAR1second damaged copy")  # someone tried to fix it and put it back
    with ds:
        assert len(ds.quarantine()) == 1
    kept = sorted(p.read_bytes() for p in (d / "quarantine").iterdir())
    assert kept == [b"PAR1first damaged copy", b"PAR1second damaged copy"]
    assert len(Dataset(d).read()) == 1
