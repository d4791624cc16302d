"""Checksummed downloads into the cache and archive extraction that rejects unsafe members.

Downloads stream into a temporary file beside the destination, are hashed on the fly, and are
renamed into place only when the checksum matches, so an interrupted download never leaves a
file that later looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.request import Request, urlopen

from tqdm import tqdm

from ..errors import DataNotFoundError

_CHUNK = 1 << 20
_TIMEOUT_S = 60
_USER_AGENT = "mosaic-fast (dataset download)"


class DownloadError(DataNotFoundError):
    """A download or extraction failed; the message is the reason, without the search context."""


@dataclass(frozen=True)
class Remote:
    """One published file: its URL, the name to store it under, and its published checksum."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None

    @property
    def algorithm(self) -> str:
        return "sha256" if self.sha256 else "md5"

    @property
    def digest(self) -> str | None:
        return self.sha256 or self.md5


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, digest: str, algorithm: str = "sha256") -> None:
    """Raise DownloadError unless ``path`` has the expected digest."""
    actual = file_digest(path, algorithm)
    if actual != digest.lower():
        raise DownloadError(
            f"{path.name}: {algorithm} {actual} does not match the published {digest}"
        )


def _stream(remote: Remote, dest: Path) -> None:
    hasher = hashlib.new(remote.algorithm)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        request = Request(remote.url, headers={"User-Agent": _USER_AGENT})
        with os.fdopen(fd, "wb") as out, urlopen(request, timeout=_TIMEOUT_S) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None,
                unit="B",
                unit_scale=True,
                desc=remote.filename,
                disable=None,  # silent when stderr is not a terminal
                leave=False,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    hasher.update(chunk)
                    bar.update(len(chunk))
        if remote.digest is not None and hasher.hexdigest() != remote.digest.lower():
            raise DownloadError(
                f"{remote.url}: {remote.algorithm} {hasher.hexdigest()} does not match "
                f"the published {remote.digest}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(mirrors: Remote | Sequence[Remote], dest_dir: Path) -> Path:
    """Download one file into ``dest_dir`` (trying each mirror in turn) and return its path.

    A file already present with the published checksum is not downloaded again. Any failure
    (network, HTTP status, checksum) raises DownloadError naming the URL and the reason.
    """
    mirrors = [mirrors] if isinstance(mirrors, Remote) else list(mirrors)
    if not mirrors:
        raise DownloadError("no download URL is known")
    dest = dest_dir / mirrors[0].filename
    if dest.is_file() and mirrors[0].digest is not None:
        try:
            verify_file(dest, mirrors[0].digest, mirrors[0].algorithm)
            return dest
        except DownloadError:
            dest.unlink()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {str(dest_dir)!r} ({exc.strerror or exc})") from None
    reasons = []
    for remote in mirrors:
        try:
            _stream(remote, dest)
            return dest
        except DownloadError as exc:
            reasons.append(str(exc))
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad URLs
            reasons.append(f"{remote.url}: {getattr(exc, 'reason', None) or exc}")
    raise DownloadError("; ".join(reasons))


def _safe_member_name(name: str, archive: Path) -> str:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise DownloadError(f"{archive.name} contains an unsafe member path {name!r}")
    return name


def _tar_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        _safe_member_name(m.name, archive)
        if not (m.isfile() or m.isdir()):  # links and devices could point outside dest
            raise DownloadError(f"{archive.name} contains a link or special file {m.name!r}")
    return members


def extract_archive(archive: Path, dest_dir: Path) -> list[Path]:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir``; return its top-level entries.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    links and special files raise DownloadError. Extraction goes to a temporary folder first and
    top-level entries are then renamed into place, replacing older copies.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _safe_member_name(name, archive)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = _tar_members(tf, archive)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and patched 3.8+)
                    tf.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - members were vetted above
                    tf.extractall(tmp, members=members)
        else:
            raise DownloadError(f"{archive.name} is neither a zip nor a tar archive")
        entries = []
        for entry in sorted(tmp.iterdir()):
            target = dest_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
            entries.append(target)
        return entries
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive.name} is corrupt ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
