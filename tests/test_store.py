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
    with pytest.raises(DatasetError, match="corrupt dataset part"):
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
    with pytest.raises(DatasetError, match=f"part-bad.parquet does not match schema version {SCHEMA_VERSION}"):
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
