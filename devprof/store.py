"""Datasets on disk: a folder of immutable Parquet parts, append-safe and deduplicated.

Layout of a dataset folder::

    dataset.json            {"format": "devprof-dataset", "schema_version": N}
    parts/part-*.parquet    immutable; each written to a temporary name, fsynced, then renamed
    failures.jsonl          kernels that failed (wrong answer, crash), one JSON object a line
    .lock                   held (flock) by the one `devprof profile` writing to it
    quarantine/             parts found unreadable, set aside by `devprof dataset repair` (or
                            `profile --resume`), never deleted

A crash or SIGINT can only ever lose the part being written, never corrupt one already renamed,
so a dataset is always readable and holds every acknowledged record. Readers deduplicate on
`record_key` (kind, spec, model context, device fingerprint, runtime), keeping the first copy.

Merging the parts into one (`compact`, at the end of a run) never leaves `parts/` holding a record
twice or missing one, so the raw read ``pandas.read_parquet("DS/parts")`` is never wrong: the
merged part is written into a sibling folder ``parts.new/``, then ``parts`` -> ``parts.old`` and
``parts.new`` -> ``parts`` (two renames; a kill between them leaves no ``parts/``, which devprof's
readers take from ``parts.new/`` and the next writer restores), then ``parts.old/`` is removed.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Iterable

from .errors import DatasetError
from .records import SCHEMA_VERSION, Record, arrow_schema, conform, records_to_table, row_to_record

MANIFEST = "dataset.json"
FORMAT = "devprof-dataset"
QUARANTINE = "quarantine"
STALE = "parts.stale-"  # merged-away parts that could not be removed (an immutable file)
HINT = "`devprof dataset check {path}` lists unreadable parts; `devprof dataset repair {path}` sets them aside"


class MergePending(DatasetError):
    """Merging a dataset's parts failed after every record was saved: nothing is lost."""


class PartUnreadable(DatasetError):
    """One part of a dataset cannot be read (corrupt bytes, a foreign file, a schema it does not
    match). The rest of the dataset is fine: `Dataset.check` / `repair` deal with it."""

    def __init__(self, part: Path, why: str, dataset: Path) -> None:
        self.part, self.why = part, why
        super().__init__(f"unreadable dataset part {part}: {why}; " + HINT.format(path=dataset))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_error(e: OSError, path: Path, saved: int) -> DatasetError:
    # EFBIG: a file size limit (ulimit -f, RLIMIT_FSIZE) hit, which the user meets as a full disk
    what = "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else (e.strerror or str(e))
    return DatasetError(f"{what} while writing {path}; the {saved} records saved before are intact")


def _open_no_link(path: Path, flags: int) -> int:
    """Open a dataset's own file (lock, failure log) refusing symbolic links and anything but a
    regular file: a planted `.lock -> ~/victim` must not get devprof's pid written into it."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise DatasetError(f"{path} is a symbolic link: refusing to write through it (remove it)") from None
        if e.errno == errno.EISDIR or path.is_dir():
            raise DatasetError(f"{path} is a directory, not devprof's file: remove it") from None
        raise DatasetError(f"cannot write {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DatasetError(f"{path} is not a regular file: remove it")
    return fd


class Dataset:
    """A dataset folder. `lock` makes this process its one writer; reading needs no lock."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._keys: set[str] | None = None
        self.saved = 0  # records appended through this object
        self.notes: list[str] = []  # warnings of the last lock (leftovers that could not be removed)

    # ---- reading ---------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def check_version(self) -> None:
        if not self.path.exists():
            raise DatasetError(f"no dataset at {self.path}")
        if not self.exists():
            raise DatasetError(f"{self.path} is not a devprof dataset (no {MANIFEST})")
        try:
            man = json.loads((self.path / MANIFEST).read_text())
            version = int(man["schema_version"])
        except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            raise DatasetError(f"{self.path / MANIFEST} is unreadable: {_first_line(e)}") from None
        if not isinstance(man, dict):
            raise DatasetError(f"{self.path / MANIFEST} is unreadable: not a JSON object")
        if man.get("format") != FORMAT:
            raise DatasetError(f"{self.path} is not a devprof dataset (format {man.get('format')!r})")
        if version > SCHEMA_VERSION:
            raise DatasetError(f"{self.path} has schema version {version}, newer than this devprof "
                               f"understands ({SCHEMA_VERSION}); upgrade devprof")

    def _parts_dir(self) -> Path:
        """``parts/``, or ``parts.new/`` while a merge is between its two renames (or was killed
        there): then ``parts.old/`` exists, and ``parts.new/`` holds the complete merged part."""
        new = self.path / "parts.new"
        if new.is_dir() and ((self.path / "parts.old").is_dir() or not (self.path / "parts").is_dir()):
            return new
        return self.path / "parts"

    def parts(self, where: Path | None = None) -> list[Path]:
        """The record parts: regular files named ``part-*.parquet`` (a directory of that name is not one)."""
        return sorted(p for p in (where or self._parts_dir()).glob("part-*.parquet")
                      if p.is_file() and not p.is_symlink())

    def read_part(self, p: Path):
        """One part as an Arrow table in today's schema; `PartUnreadable` when it cannot be read,
        FileNotFoundError when it vanished (a merge removed it after listing)."""
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(p)
        except FileNotFoundError:
            raise
        except Exception as e:  # a corrupt part (not written by devprof's rename protocol)
            raise PartUnreadable(p, _first_line(e), self.path) from None
        raw = (t.schema.metadata or {}).get(b"devprof.schema_version", b"0")
        try:
            v = int(raw)
        except ValueError:
            raise PartUnreadable(p, f"its schema version {raw[:20]!r} is not a number", self.path) from None
        if v > SCHEMA_VERSION:
            raise DatasetError(f"{p} has schema version {v}, newer than this devprof understands "
                               f"({SCHEMA_VERSION}); upgrade devprof")
        try:
            return conform(t, v)
        except (ValueError, KeyError, TypeError, NotImplementedError, OverflowError) as e:
            raise PartUnreadable(p, f"does not match schema version {v}: {_first_line(e)}", self.path) from None

    def _snapshot(self, read_one) -> list:
        """`read_one(part)` for every part of one listing of the parts folder that stayed the same
        folder throughout: a merge swapping the folder in, or a part vanishing (merged away,
        quarantined) after the listing, makes it list again, so a reader never sees half of a
        merge nor counts a vanished part as missing or corrupt."""
        for attempt in range(20):
            where = self._parts_dir()
            if not where.exists() and not any((self.path / n).exists() for n in ("parts", "parts.new", "parts.old")):
                return []  # no parts at all (a folder made by hand): no records
            try:  # `where` may have been renamed since it was chosen (parts.new -> parts): stat fails
                before = os.stat(where).st_ino
                out = [read_one(p) for p in self.parts(where)]
                if os.stat(where).st_ino == before:  # the same folder throughout: a consistent snapshot
                    return out
            except FileNotFoundError:  # merged away since the listing: list again, read the merged part
                pass
            time.sleep(0.01 * attempt)
        raise DatasetError(f"{self.path} kept changing while being read (a merge in progress?); try again")

    def read_table(self):
        """All records as one Arrow table (deduplicated on record_key)."""
        import pyarrow as pa

        self.check_version()
        tables = self._snapshot(self.read_part)
        if not tables:
            return arrow_schema().empty_table()
        t = pa.concat_tables(tables)
        keys = t.column("record_key").to_pylist()
        seen: set[str] = set()
        keep = [i for i, k in enumerate(keys) if not (k in seen or seen.add(k))]
        return t.take(keep) if len(keep) != len(keys) else t

    def read(self):
        """All records as a pandas DataFrame (one row per record, columns as in the schema)."""
        return self.read_table().to_pandas()

    def records(self) -> list[Record]:
        return [row_to_record(r) for r in self.read_table().to_pylist()]

    def keys(self) -> set[str]:
        if self._keys is None:
            if not self.exists():
                self._keys = set()
            else:
                import pyarrow.parquet as pq

                def one(p: Path) -> list:
                    try:
                        return pq.read_table(p, columns=["record_key"]).column(0).to_pylist()
                    except FileNotFoundError:
                        raise
                    except Exception as e:
                        raise PartUnreadable(p, _first_line(e), self.path) from None

                self._keys = {k for ks in self._snapshot(one) for k in ks}
        return self._keys

    def check(self) -> list[dict]:
        """Every part read in full: ``{"part", "ok", "records", "error"}`` per part (records of an
        unreadable part: from its footer when that survived, else None)."""
        import pyarrow.parquet as pq

        def one(p: Path) -> dict:
            try:
                t = self.read_part(p)
            except PartUnreadable as e:
                if not p.exists():
                    raise FileNotFoundError(p) from None  # vanished while read: not unreadable
                try:
                    n = pq.ParquetFile(p).metadata.num_rows
                except Exception:
                    n = None
                return {"part": p.name, "ok": False, "records": n, "error": e.why}
            return {"part": p.name, "ok": True, "records": t.num_rows, "error": ""}

        self.check_version()
        return self._snapshot(one)

    def quarantine(self, report: list[dict] | None = None) -> list[dict]:
        """Move the unreadable parts (of `report`, or of a fresh `check`) into ``quarantine/`` —
        never deleted: a part that a newer devprof or a manual fix can read is not lost. The caller
        holds the lock (`repair`, `profile --resume`). Returns the parts moved."""
        bad = [r for r in (self.check() if report is None else report) if not r["ok"]]
        if not bad:
            return []
        q = self.path / QUARANTINE
        try:
            q.mkdir(exist_ok=True)
            for r in bad:
                dest, n = q / r["part"], 1
                while dest.exists() or dest.is_symlink():  # never replace a part set aside before
                    dest, n = q / f"{r['part']}.{n}", n + 1
                os.rename(self.path / "parts" / r["part"], dest)
                r["quarantined_as"] = str(dest)
            _fsync_dir(self.path / "parts")
            _fsync_dir(q)
        except OSError as e:
            raise DatasetError(f"cannot move unreadable parts into {q}: {e.strerror or e}") from None
        self._keys = None
        return bad

    def failures(self) -> list[dict]:
        f = self.path / "failures.jsonl"
        if not f.exists():
            return []
        out = []
        for line in f.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
        return out

    # ---- writing ---------------------------------------------------------------------------
    def create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self._parts_dir() == self.path / "parts":  # not while a killed merge waits to be finished
                (self.path / "parts").mkdir(exist_ok=True)
            if not self.exists():
                tmp = self.path / f".{MANIFEST}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"  # racing writers
                tmp.write_text(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION}) + "\n")
                os.replace(tmp, self.path / MANIFEST)
        except OSError as e:
            raise DatasetError(f"cannot write dataset at {self.path}: {e.strerror or e}") from None
        self.check_version()

    def lock(self) -> None:
        """Take the single-writer lock, or fail at once naming the holder."""
        self.create()
        fd = _open_no_link(self.path / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DatasetError(f"dataset {self.path} is being written by another devprof run (pid {holder}); "
                               "wait for it or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        try:
            self._recover()
        except BaseException:
            self.unlock()  # a writer that cannot start must not keep the dataset locked
            raise

    def _recover(self) -> None:
        """Finish or undo what a writer killed mid-way left (we hold the lock, so it is dead): a
        merge between its renames, a merge not yet swapped in, the old parts of a swapped one,
        and temporary files of parts never renamed. Only the first can fail the run (without it
        `parts/` is not whole); leftovers that cannot be removed (an immutable file) are set aside
        under a name no reader looks at, and said in `notes`."""
        self.notes = []
        new, cur, old = self.path / "parts.new", self.path / "parts", self.path / "parts.old"
        try:
            if new.is_dir() and (old.is_dir() or not cur.exists()):
                # killed between the renames: the merged part is complete (fsynced before the swap)
                if cur.is_dir():  # parts/ made again since (by an older devprof): keep what it holds
                    for f in cur.iterdir():
                        os.rename(f, new / f.name)
                    cur.rmdir()
                os.rename(new, cur)
                _fsync_dir(self.path)
        except OSError as e:
            raise DatasetError(f"cannot recover {self.path} from an interrupted run: {e.strerror or e} "
                               f"({getattr(e, 'filename', '') or ''})") from None
        for leftover in (new, old):  # a merge killed before the swap (the old parts hold everything), or after
            if leftover.exists():
                self._remove_leftover(leftover)
        for stale in sorted(self.path.glob(STALE + "*")):
            self._remove_leftover(stale)
        for tmp in cur.glob(".part-*.parquet.tmp") if cur.is_dir() else ():
            try:
                tmp.unlink()
            except OSError:
                pass  # never read (not named part-*.parquet); the next writer tries again

    def _remove_leftover(self, folder: Path) -> Path | None:
        """Remove a folder of merged-away parts; where a file in it cannot be removed, rename the
        folder to ``parts.stale-*`` (readers and merges never look there) and say so in `notes`.
        Returns where what could not be removed is, or None."""
        try:
            shutil.rmtree(folder)
            return None
        except OSError as e:
            why = e.strerror or str(e)
        where = folder
        if not folder.name.startswith(STALE):
            where = self.path / f"{STALE}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(folder, where)
            except OSError:
                where = folder
        self.notes.append(f"old parts of {self.path} (already merged, never read) could not be removed from {where} "
                          f"({why}); remove that folder by hand (an immutable file: `chattr -i` first)")
        return where

    def unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> "Dataset":
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def append(self, records: Iterable[Record]) -> int:
        """Write new records (those whose key is not there yet) as one atomic part; return count."""
        keys = self.keys()
        fresh, seen = [], set()
        for r in records:
            k = r.key
            if k not in keys and k not in seen:
                seen.add(k)
                fresh.append(r)
        if not fresh:
            return 0
        self._write_part(records_to_table(fresh))
        keys.update(seen)
        self.saved += len(fresh)
        return len(fresh)

    def _write_part(self, table, parts: Path | None = None) -> None:
        """Write one immutable part: temporary name, fsync, rename, fsync the folder. On failure
        the temporary file is removed and the error names how many records are safe."""
        import pyarrow.parquet as pq

        parts = parts or self.path / "parts"
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = parts / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, parts / name)
            _fsync_dir(parts)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise _disk_error(e, parts / name, len(self.keys())) from None

    def log_failure(self, entry: dict) -> None:
        line = json.dumps(entry, sort_keys=True) + "\n"
        fd = _open_no_link(self.path / "failures.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            with os.fdopen(fd, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise _disk_error(e, self.path / "failures.jsonl", len(self.keys())) from None

    def compact(self) -> None:
        """Merge all parts into one, swapped in as a whole folder (see the module docstring).
        Every record is saved before this starts, so a failure here loses nothing: it raises
        `MergePending` saying so, and the next writer merges again."""
        old = self.parts()
        if len(old) <= 1:
            return
        new, cur, gone = self.path / "parts.new", self.path / "parts", self.path / "parts.old"
        if new.exists():
            self._remove_leftover(new)
        try:
            new.mkdir()
            self._write_part(self.read_table(), new)
            os.rename(cur, gone)
            os.rename(new, cur)
            _fsync_dir(self.path)
        except (OSError, DatasetError) as e:
            shutil.rmtree(new, ignore_errors=True)
            if not cur.exists() and gone.is_dir():
                try:
                    os.rename(gone, cur)
                except OSError:
                    pass
            why = e.strerror if isinstance(e, OSError) else str(e).split(" while ")[0]
            raise MergePending(f"every record of {self.path} is saved ({len(old)} parts), but merging them "
                               f"failed ({why or e}); the merge is pending and the next run does it") from None
        self._keys = None
        if gone.exists():
            self.notes.clear()
            if self._remove_leftover(gone) is not None:
                raise MergePending(f"the parts of {self.path} are merged (every record is in parts/); " + self.notes[-1])


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


REFERENCE_FORMAT = "devprof-reference"


def write_reference(folders: Iterable[str | Path], dest: str | Path) -> dict[str, int]:
    """Merge dataset folders (campaigns of one device) into one reference dataset: a single
    Parquet file, the store's schema plus a ``campaign`` column (the folder's name). Repeat
    measurements of a kernel from different campaigns are separate records and all kept (the
    lookup table takes the median over them); exact duplicates (same record key and start time:
    a folder given twice, or copied) are dropped. Written atomically. Returns counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables, names = [], []
    for f in folders:
        if is_reference(f):  # an earlier reference: its campaigns carry over
            t = _reference_table(f)
            here = sorted(set(t.column("campaign").to_pylist()))
        else:
            t = Dataset(f).read_table()
            here = [Path(f).name]
            t = t.append_column("campaign", pa.array(here * t.num_rows, type=pa.string()))
        clash = sorted(set(here) & set(names))
        if clash:
            raise DatasetError(f"campaign {clash[0]!r} is given twice; campaign names must differ")
        names += here
        tables.append(t)
    if not tables:
        raise DatasetError("no dataset folders to merge")
    t = pa.concat_tables(tables)
    seen: set[tuple] = set()
    keys = zip(t.column("record_key").to_pylist(), t.column("started_at").cast(pa.int64()).to_pylist())
    keep = [i for i, k in enumerate(keys) if not (k in seen or seen.add(k))]
    merged = t.take(keep)
    meta = {b"devprof.schema_version": str(SCHEMA_VERSION).encode(), b"devprof.format": REFERENCE_FORMAT.encode()}
    merged = merged.replace_schema_metadata(meta)
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(merged, tmp, compression="zstd", compression_level=19, row_group_size=1 << 16)
        os.replace(tmp, dest)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise DatasetError(f"cannot write {dest}: {e.strerror or e}") from None
    return {"campaigns": len(names), "records": merged.num_rows, "duplicates_dropped": t.num_rows - merged.num_rows}


def is_reference(path: str | Path) -> bool:
    p = Path(path)
    return p.suffix == ".parquet" and p.is_file()


def read_reference(path: str | Path, campaigns: Iterable[str] | None = None):
    """A reference dataset (`write_reference`) as the records' DataFrame, with its ``campaign``
    column; `campaigns`: only those campaigns' records."""
    df = _reference_table(path).to_pandas()
    if campaigns is not None:
        want = list(campaigns)
        missing = sorted(set(want) - set(df["campaign"]))
        if missing:
            raise DatasetError(f"{path} has no campaign {', '.join(missing)}")
        df = df[df["campaign"].isin(want)].reset_index(drop=True)
    return df


def _reference_table(path: str | Path):
    """A reference dataset's records as an Arrow table in today's schema, plus ``campaign``."""
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        t = pq.read_table(p)
    except FileNotFoundError:
        raise DatasetError(f"no reference dataset at {p}") from None
    except Exception as e:
        raise DatasetError(f"{p} is not a readable reference dataset: {_first_line(e)}") from None
    md = t.schema.metadata or {}
    if md.get(b"devprof.format") != REFERENCE_FORMAT.encode() or "campaign" not in t.column_names:
        raise DatasetError(f"{p} is not a devprof reference dataset (see `devprof dataset merge`)")
    try:
        v = int(md.get(b"devprof.schema_version", b"0"))
    except ValueError:
        v = -1
    if not 1 <= v <= SCHEMA_VERSION:
        raise DatasetError(f"{p} has schema version {v}, which this devprof does not understand")
    campaign = t.column("campaign")
    try:
        return conform(t.drop_columns(["campaign"]), v).append_column("campaign", campaign)
    except (ValueError, KeyError, TypeError, NotImplementedError, OverflowError) as e:
        raise DatasetError(f"{p} does not match schema version {v}: {_first_line(e)}") from None


def read_datasets(paths: Iterable[str | Path]):  # the frame `predictors.fit.fit_bundles` takes
    """All records of the given dataset folders as one DataFrame. A path may also be a reference
    dataset (`write_reference`: every campaign of a device in one Parquet file), whole or as
    ``FILE.parquet@campaign1,campaign2``; its records read exactly as the campaign folders did.

    The same spec measured in separate campaigns (e.g. ``predictor-train`` profiled twice, hours
    apart, into two folders) gives several records: all are kept, and the lookup table merges
    them (median of the steady records' medians, `lut.build`), which averages out the slow
    phases of the device's speed that a single campaign cannot. The same measurement read twice
    (a folder given twice, or copied) is one record: records are identical when their key and
    start time are."""
    import pandas as pd

    frames = [_read_one(p) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(["record_key", "started_at"], keep="first").reset_index(drop=True)


def read_records(path: str | Path):
    """The records of one dataset folder, reference dataset file, or ``FILE.parquet@c1,c2`` (those
    campaigns), as a DataFrame: what `show`, `report` and `fit-predictor` read."""
    return _read_one(path)


def _read_one(path: str | Path):
    """A dataset folder, a reference dataset file, or ``FILE.parquet@c1,c2`` (those campaigns)."""
    s = str(path)
    if "@" in s and s.split("@", 1)[0].endswith(".parquet"):
        f, sel = s.split("@", 1)
        return read_reference(f, [c for c in sel.split(",") if c]).drop(columns=["campaign"])
    if is_reference(path):
        return read_reference(path).drop(columns=["campaign"])
    return Dataset(path).read()
