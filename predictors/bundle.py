"""Bundles on disk: a directory per (device, runtime) holding everything search code needs.

    <root>/<device>/<runtime>/
        metadata.json    format + version, device fingerprint, runtime, dataset hash, held-out
                         metrics, and the sha256 + size of every other file
        lut.json         the lookup table, columnar JSON (predictors.lut documents the columns)
        predictor.json   the regressors as data (linear coefficients / tree node arrays)
        heldout.json     held-out predictions vs measurements (for plots and audits)

A published bundle (`install`, `devprof publish`, format 4) keeps the regressors' node arrays in
``predictor.npz`` (numpy arrays in a zip, smallest exact dtypes; predictor.json keeps the rest and
names them, see predictors.trees) and stores its larger JSON files gzip-compressed as
``NAME.gz`` (format 3); the hashes in metadata.json are those of the content.
Loading reads JSON and plain numeric arrays (``allow_pickle=False``, headers checked before
anything is allocated) and evaluates them with numpy: nothing in a bundle is ever executed
(no pickle, no joblib, no code). Before parsing anything, every file's size and sha256 are
checked against metadata.json; a missing, truncated, swapped or tampered file is refused with
one `BundleError` line. The layout is described by docs/bundle.schema.json (FORMAT_VERSION).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping

from .errors import UserError

FORMAT = "devprof-bundle"
FORMAT_VERSION = 4
"""Bump when a file or field changes meaning; loaders refuse bundles newer than they know.
2 (devprof 0.2): the lookup table's min_us column and predictor.json's statistic (a bundle may
serve fastest rounds, which a format-1 reader would silently mistake for medians).
3: a file may be stored gzip-compressed (``files[name]["stored"] == "gzip"``, on disk as
``name.gz``; sha256 and bytes stay those of the content). Bundles without a compressed file are
still written as format 2, which older readers load.
4: predictor.json's tree node arrays may live in predictor.npz (``"nodes": key`` in the JSON),
which is how `install` stores published bundles (about half the size of format 3)."""
#: How a listed file may be stored besides plain (`install` compresses published bundles: the
#: regressors' JSON shrinks about 2.7x, and the content hash is still checked after decompressing).
STORED = ("gzip",)
COMPRESS_MIN_BYTES = 64 * 1024
METADATA = "metadata.json"
REQUIRED = ("lut.json", "predictor.json")
NPZ = "predictor.npz"
MAX_FILE_BYTES = 512 * 1024 * 1024
DEFAULT_ROOT = "datasets_latency"


class BundleError(UserError):
    """A bundle cannot be read or written (missing, tampered, newer format...). One line."""

    exit_code = 4


def slug(text: str) -> str:
    """A directory-safe name: lowercase letters, digits, '-' and '.' only."""
    s = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.")
    return s[:80] or "unknown"


def runtime_slug(name: str, threads: int, options: Mapping[str, Any]) -> str:
    """``onnxruntime-t1``, ``litert-xnnpack-t4``: the name, options switched on, threads. (Other
    option values are in metadata.json; bundles of two configurations that differ only there need
    their own --out.)"""
    opts = "-".join(str(k) for k, v in sorted(options.items()) if v is True)
    return slug("-".join(x for x in (name, opts, f"t{threads}") if x))


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()


def write(dest: str | os.PathLike, files: Mapping[str, bytes], metadata: dict[str, Any],
          compress: bool = False) -> Path:
    """Write a bundle atomically: files + metadata (with their hashes) into a temporary sibling
    directory, then swap it into place. A crash leaves either the old bundle or the new one.
    `compress`: JSON files of `COMPRESS_MIN_BYTES` or more are stored gzip-compressed (format 3)."""
    import gzip

    dest = Path(dest)
    if compress:
        files = split_predictor(files)
    meta = dict(metadata)
    meta["format"] = FORMAT
    meta["files"] = {name: {"sha256": sha256_bytes(b), "bytes": len(b)} for name, b in sorted(files.items())}
    stored: dict[str, bytes] = {}
    for name, b in files.items():
        if compress and name.endswith(".json") and len(b) >= COMPRESS_MIN_BYTES:
            stored[name + ".gz"] = gzip.compress(b, compresslevel=9, mtime=0)  # mtime 0: same bytes each time
            meta["files"][name]["stored"] = "gzip"
        else:
            stored[name] = b
    meta["format_version"] = (4 if NPZ in stored else
                              3 if any(n.endswith(".gz") for n in stored) else 2)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        for name, b in stored.items():
            (tmp / name).write_bytes(b)
        (tmp / METADATA).write_bytes(dumps(meta))
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
        os.rename(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise BundleError(f"cannot write bundle {dest}: {e.strerror or e}") from None
    return dest


def _read_capped(p: Path, what: str) -> bytes:
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BundleError(f"bundle file {p} is too large ({size} bytes)")
        with open(p, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise BundleError(f"bundle {p.parent}: {what} {p.name} is missing") from None
    except OSError as e:
        raise BundleError(f"cannot read {p}: {e.strerror or e}") from None


def _gunzip(root: Path, name: str, size: int) -> bytes:
    """The content of `name` stored as ``name.gz``, decompressed to at most `size` + 1 bytes (so a
    crafted archive cannot expand without bound; the size and hash checks follow)."""
    import zlib

    raw = _read_capped(root / (name + ".gz"), "file")
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(raw, min(size, MAX_FILE_BYTES) + 1)
    except zlib.error as e:
        raise BundleError(f"bundle {root}: {name}.gz is not valid gzip ({e}); refusing to load") from None
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """metadata.json, checked for format and version (not the other files)."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"no bundle at {root} (not a directory)")
    raw = _read_capped(root / METADATA, "metadata file")
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"bundle {root}: {METADATA} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{root} is not a devprof bundle ({METADATA} has no format {FORMAT!r})")
    v = meta.get("format_version")
    if not isinstance(v, int) or v < 1:
        raise BundleError(f"bundle {root}: bad format_version {v!r}")
    if v > FORMAT_VERSION:
        raise BundleError(f"bundle {root} has format version {v}, newer than this devprof understands "
                          f"({FORMAT_VERSION}); upgrade devprof")
    files = meta.get("files")
    if not isinstance(files, dict) or any(r not in files for r in REQUIRED):
        raise BundleError(f"bundle {root}: {METADATA} does not list {', '.join(REQUIRED)}")
    for name, info in files.items():
        if (not isinstance(name, str) or "/" in name or "\\" in name or name.startswith(".")
                or not isinstance(info, dict) or not isinstance(info.get("sha256"), str)
                or not isinstance(info.get("bytes"), int) or info.get("stored", "plain") not in ("plain", *STORED)):
            raise BundleError(f"bundle {root}: bad file entry {name!r} in {METADATA}")
    return meta


def read_verified(path: str | os.PathLike, names: tuple[str, ...] | None = None
                  ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """metadata + the bytes of the named files (default: all listed), each checked against its
    recorded size and sha256 before anyone parses it."""
    root = Path(path)
    meta = read_metadata(root)
    out: dict[str, bytes] = {}
    for name in (names or tuple(meta["files"])):
        info = meta["files"].get(name)
        if info is None and name == NPZ and names:
            continue  # asked for "if present"
            raise BundleError(f"bundle {root}: {name} is not listed in {METADATA}")
        b = _read_capped(root / name, "file") if info.get("stored") is None else _gunzip(root, name, info["bytes"])
        if len(b) != info["bytes"]:
            raise BundleError(f"bundle {root}: {name} is {len(b)} bytes, metadata says {info['bytes']} "
                              "(truncated or replaced); refusing to load")
        if sha256_bytes(b) != info["sha256"]:
            raise BundleError(f"bundle {root}: {name} does not match its sha256 in {METADATA} "
                              "(tampered or swapped); refusing to load")
        out[name] = b
    return meta, out


def split_predictor(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """`files` with predictor.json's tree node arrays moved to predictor.npz (format 4); unchanged
    when there is no predictor.json, it names no packable ensemble, or an npz is already there."""
    from .trees import pack_predictor

    out = dict(files)
    if "predictor.json" not in out or NPZ in out:
        return out
    skeleton, arrays = pack_predictor(json.loads(out["predictor.json"]))
    if arrays:
        out["predictor.json"] = dumps(skeleton)
        out[NPZ] = write_npz(arrays)
    return out


def write_npz(arrays: Mapping[str, Any]) -> bytes:
    """An .npz (zip of .npy files, deflated) with fixed timestamps: the same arrays give the same
    bytes, so a republished bundle's hash only changes with its content."""
    import io
    import zipfile

    import numpy as np

    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as z:
        for key in sorted(arrays):
            a = np.ascontiguousarray(arrays[key])
            a = a.astype(a.dtype.newbyteorder("<"))
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            zi = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, buf.getvalue(), compresslevel=9)
    return bio.getvalue()


def read_npz(root: Path | str, name: str, b: bytes) -> dict[str, Any]:
    """The flat numeric arrays of an .npz, refusing anything else: object dtypes (pickle), arrays
    of more than one dimension, and headers that claim more data than the member holds (checked
    before allocating, so a crafted header cannot ask for memory it does not contain)."""
    import io
    import zipfile

    import numpy as np

    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(b)) as z:
            infos = z.infolist()
            if sum(i.file_size for i in infos) > MAX_FILE_BYTES:
                raise ValueError("content too large")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"unexpected member {info.filename!r}")
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0)):
                        raise ValueError(f"unsupported .npy version {version}")
                    shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                             else np.lib.format.read_array_header_2_0(f))
                    if dtype.kind not in "iuf" or len(shape) != 1:
                        raise ValueError(f"{info.filename}: only flat numeric arrays are allowed")
                    nbytes = shape[0] * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(f"{info.filename}: header claims more data than stored")
                    raw = f.read(nbytes)
                if len(raw) != nbytes:
                    raise ValueError(f"{info.filename}: truncated")
                out[info.filename[:-4]] = np.frombuffer(raw, dtype=dtype)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError) as e:
        raise BundleError(f"bundle {root}: {name} is not a valid array archive ({str(e)[:80]})") from None
    return out


def read_predictor(root: Path | str, meta: Mapping[str, Any], blobs: Mapping[str, bytes],
                   encoded: bool = False) -> Any:
    """predictor.json's content with its node arrays back in place (format 4 keeps them in
    predictor.npz; earlier formats have them in the JSON and pass through unchanged).
    `encoded`: the arrays as JSON-ready base64, for code that writes the content out again."""
    from .trees import ModelFormatError, unpack_predictor

    obj = parse_json(root, "predictor.json", blobs["predictor.json"])
    if NPZ not in meta.get("files", {}):
        return obj
    try:
        return unpack_predictor(obj, read_npz(root, NPZ, blobs[NPZ]), encoded)
    except ModelFormatError as e:
        raise BundleError(f"bundle {root}: predictor.json is malformed ({e})") from None


def parse_json(root: Path | str, name: str, b: bytes) -> Any:
    try:
        return json.loads(b)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BundleError(f"bundle {root}: {name} is not valid JSON ({str(e)[:80]})") from None


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Check every file of a bundle (hashes, sizes, JSON structure, regressors compile);
    return its metadata. Used by `devprof publish` before installing a bundle."""
    from .predictor import Predictor

    Predictor.load(path)
    meta, _ = read_verified(path)
    return meta


def _read_unverified(root: Path, name: str, info: Mapping[str, Any]) -> bytes:
    """A listed file's current content, whatever its recorded hash says (for `seal`)."""
    if info.get("stored") is None:
        return _read_capped(root / name, "file")
    out = _gunzip(root, name, MAX_FILE_BYTES)
    if len(out) > MAX_FILE_BYTES:
        raise BundleError(f"bundle {root}: {name} is too large")
    return out


def seal(path: str | os.PathLike, note: str, by: str = "", at: str = "") -> list[str]:
    """Re-seal a bundle edited by hand, on purpose: record the current content's hashes, and append
    to metadata's ``hand_sealed`` list who sealed it, when, why (`note`) and which files had
    changed, so that every later reader sees the bundle is no longer what `fit-predictor` wrote.
    The edited bundle must still load (JSON parses, regressors compile); otherwise nothing is
    written. Returns the names of the files whose content had changed."""
    import datetime as _dt

    root = Path(path)
    if not note or not note.strip():
        raise BundleError("sealing a hand-edited bundle needs a note saying what was changed and why")
    meta = read_metadata(root)
    files = {name: _read_unverified(root, name, info) for name, info in meta["files"].items()}
    changed = sorted(n for n, b in files.items() if sha256_bytes(b) != meta["files"][n]["sha256"])
    entry = {"at": at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "by": by or os.environ.get("USER", "") or "unknown", "note": " ".join(note.split()),
             "files_changed": changed}
    meta_in = {k: v for k, v in meta.items() if k not in ("files", "format_version")}
    meta_in["hand_sealed"] = list(meta.get("hand_sealed") or []) + [entry]
    compress = any(info.get("stored") for info in meta["files"].values())
    staging = root.parent / f".{root.name}.seal-{uuid.uuid4().hex[:8]}"
    try:
        write(staging, files, meta_in, compress=compress)
        from .predictor import Predictor

        try:
            Predictor.load(staging)  # the edit must leave a bundle that loads
        except BundleError as e:
            why = str(e).split(": ", 1)[-1]
            raise BundleError(f"bundle {root} as edited does not load ({why}); nothing sealed") from None
        write(root, files, meta_in, compress=compress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return changed


def install(src: str | os.PathLike, root: str | os.PathLike = DEFAULT_ROOT, force: bool = False) -> Path:
    """Verify a bundle and copy it to `<root>/<device>/<runtime>/` atomically.

    Refuses to replace a bundle of a different device fingerprint unless `force`."""
    meta, blobs = read_verified(src)
    verify(src)
    dev = meta.get("device", {})
    rt = meta.get("runtime", {})
    dest = Path(root) / str(meta.get("location", {}).get("device") or slug(dev.get("name", "device"))) / \
        str(meta.get("location", {}).get("runtime") or slug(rt.get("name", "runtime")))
    if dest.resolve() == Path(src).resolve():
        return dest
    if dest.exists() and not force:
        try:
            old = read_metadata(dest)
        except BundleError:
            old = None
        if old is not None and old.get("device", {}).get("id") != dev.get("id"):
            raise BundleError(f"{dest} holds a bundle of another device ({old.get('device', {}).get('id')}); "
                              "use --force to replace it")
    files = {n: b for n, b in blobs.items()}
    meta_in = {k: v for k, v in meta.items() if k not in ("files", "format_version")}
    return write(dest, files, meta_in, compress=True)
