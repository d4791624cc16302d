"""Downloads and archive extraction through ``torchvision.datasets.utils``, with one-line errors.

torchvision downloads (``download_url``: a file already present with the published md5 is not
fetched again, a fetched one must match it) and extracts (tar members through Python's
``"data"`` filter where Python has it, which refuses ``..`` and links leaving the folder; zip
members through :mod:`zipfile`, which strips them; the tar archives here, CIFAR's and
Shakespeare's, are checksummed before they are extracted). This module adds what torchvision
lacks: a sha256 check where only a sha256 is published, errors turned into one-line
:class:`DownloadError`, and extraction into a temporary folder renamed into place, so an
interrupted extraction never leaves a half-written copy that a later search would take.

torchvision is imported inside the functions: it takes about a second, and listing or
locating datasets does not need it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DataNotFoundError

_CHUNK = 1 << 20


class DownloadError(DataNotFoundError):
    """A download or extraction failed; the message is the reason, without the search context."""


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (torchvision's download errors span several)."""
    from urllib.error import HTTPError, URLError

    # A URLError's message wraps its reason in "<urlopen error ...>"; HTTPError's names the status.
    shown: object = exc
    if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
        shown = exc.reason
    text = " ".join(str(shown).split())
    return text or type(exc).__name__


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(path: Path, digest: str) -> None:
    """Raise DownloadError unless ``path`` exists and has the sha256 ``digest``."""
    if not path.is_file():
        raise DownloadError(f"{path.name} is missing")
    actual = sha256_of(path)
    if actual != digest.lower():
        raise DownloadError(f"{path.name}: sha256 {actual} does not match the published {digest}")


def download(
    url: str, folder: Path, filename: str, *, md5: str | None = None, sha256: str | None = None
) -> Path:
    """Download ``url`` into ``folder / filename`` with torchvision and return the path.

    torchvision checks ``md5`` (and skips the download if a copy with that md5 is there);
    ``sha256``, for files whose publisher gives no md5, is checked here afterwards. Any failure
    (network, HTTP status, checksum, unwritable folder) removes the file and raises
    DownloadError naming the URL and the reason.
    """
    from torchvision.datasets.utils import download_url

    path = folder / filename
    try:
        download_url(url, str(folder), filename, md5=md5)
        if sha256 is not None:
            check_sha256(path, sha256)
    except DownloadError as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {exc}") from None
    except (OSError, RuntimeError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {one_line(exc)}") from None
    return path


def extract(archive: Path, folder: Path) -> list[Path]:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``folder``; return its top-level entries.

    torchvision extracts into a temporary folder inside ``folder``; the top-level entries are
    then renamed into place, replacing older copies. A corrupt or unsafe archive raises
    DownloadError and leaves ``folder`` as it was.
    """
    import tarfile
    import zipfile

    from torchvision.datasets.utils import extract_archive

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder))
    try:
        extract_archive(str(archive), str(tmp))
        entries = []
        for entry in sorted(tmp.iterdir()):
            target = folder / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
            entries.append(target)
        return entries
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, RuntimeError, OSError) as exc:
        raise DownloadError(f"{archive.name} is corrupt or unsafe ({one_line(exc)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
