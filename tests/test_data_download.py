"""Downloads (with a fake URL opener: no network) and safe archive extraction."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import tarfile
import zipfile
from urllib.error import URLError

import pytest
from data_helpers import SHARED_DATA, isolate, write_cifar10

from mosaic_fast.data import cifar, download, load_dataset, registry
from mosaic_fast.data.download import DownloadError, Remote, extract_archive, fetch
from mosaic_fast.errors import DataNotFoundError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


class _Response(io.BytesIO):
    def __init__(self, payload: bytes):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def _serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """Replace the URL opener: known URLs return their bytes, others fail like a network outage."""
    requested: list[str] = []

    def fake_urlopen(request, timeout=None):
        url = request.full_url
        requested.append(url)
        if url not in files:
            raise URLError("[Errno -3] Temporary failure in name resolution")
        return _Response(files[url])

    monkeypatch.setattr(download, "urlopen", fake_urlopen)
    return requested


def test_fetch_verifies_checksum_and_renames_atomically(tmp_path, monkeypatch):
    payload = b"x" * 3_000_000
    _serve(monkeypatch, {"https://a/f.bin": payload})
    good = Remote("https://a/f.bin", "f.bin", md5=hashlib.md5(payload).hexdigest())
    path = fetch(good, tmp_path / "dl")
    assert path.read_bytes() == payload and sorted(p.name for p in path.parent.iterdir()) == [
        "f.bin"
    ]
    bad = Remote("https://a/f.bin", "g.bin", sha256="0" * 64)
    with pytest.raises(
        DownloadError, match="sha256 [0-9a-f]{64} does not match the published 0000"
    ):
        fetch(bad, tmp_path / "dl")
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["f.bin"]  # no partial file left


def test_fetch_skips_a_verified_copy_and_tries_mirrors(tmp_path, monkeypatch):
    payload = b"published bytes"
    digest = hashlib.md5(payload).hexdigest()
    requested = _serve(monkeypatch, {"https://mirror2/f": payload})
    mirrors = [
        Remote("https://mirror1/f", "f", md5=digest),
        Remote("https://mirror2/f", "f", md5=digest),
    ]
    assert fetch(mirrors, tmp_path).read_bytes() == payload
    assert requested == ["https://mirror1/f", "https://mirror2/f"]
    fetch(mirrors, tmp_path)
    assert len(requested) == 2  # second call: the file on disk already matches
    (tmp_path / "f").write_bytes(b"corrupted")
    fetch(mirrors, tmp_path)
    assert (tmp_path / "f").read_bytes() == payload and len(requested) == 4


def test_fetch_network_error_names_url_and_reason(tmp_path, monkeypatch):
    _serve(monkeypatch, {})
    with pytest.raises(DownloadError, match="https://nowhere/f: .*name resolution"):
        fetch(Remote("https://nowhere/f", "f"), tmp_path)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info in entries:
            payload = data.get(info.name, b"")
            info.size = len(payload) if info.isfile() else 0
            tf.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return buf.getvalue()


def test_extract_archive_zip_and_tar(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_zip({"top/inner/file.txt": b"hello", "top/b.txt": b"b"}))
    assert [p.name for p in extract_archive(z, tmp_path / "out")] == ["top"]
    assert (tmp_path / "out" / "top" / "inner" / "file.txt").read_bytes() == b"hello"
    t = tmp_path / "a.tar.gz"
    t.write_bytes(_tar([tarfile.TarInfo("top/new.txt")], {"top/new.txt": b"new"}))
    extract_archive(t, tmp_path / "out")  # replaces the older top/
    assert sorted(p.name for p in (tmp_path / "out" / "top").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["top"]  # temp folder removed


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_extract_archive_rejects_path_traversal(tmp_path, name):
    z = tmp_path / "bad.zip"
    z.write_bytes(_zip({"fine.txt": b"ok", name: b"pwned"}))
    with pytest.raises(DownloadError, match="unsafe member path"):
        extract_archive(z, tmp_path / "out")
    t = tmp_path / "bad.tar"
    t.write_bytes(_tar([tarfile.TarInfo("fine.txt"), tarfile.TarInfo(name)], {name: b"pwned"}))
    with pytest.raises(DownloadError, match="unsafe member path"):
        extract_archive(t, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "fine.txt").exists()  # nothing extracted before the check


def test_extract_archive_rejects_links_and_junk(tmp_path):
    link = tarfile.TarInfo("data/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    t = tmp_path / "link.tar.gz"
    t.write_bytes(_tar([link], {}))
    with pytest.raises(DownloadError, match="link or special file 'data/passwd'"):
        extract_archive(t, tmp_path / "out")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        extract_archive(junk, tmp_path / "out")


def test_offline_load_raises_data_not_found_with_instructions(isolated, monkeypatch):
    _serve(monkeypatch, {})
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("movielens")
    msg = str(info.value)
    assert "\n" not in msg
    assert f"no local copy of movielens found in [{isolated / 'cache'}]" in msg
    assert (
        "download from https://files.grouplens.org/datasets/movielens/ml-latest-small.zip failed"
        in msg
    )
    assert "name resolution" in msg
    assert f"in {isolated / 'cache' / 'movielens'} or pass --data-dir" in msg


def test_cifar10_download_end_to_end(isolated, monkeypatch):
    write_cifar10(isolated / "src", n_per_batch=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(isolated / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = buf.getvalue()
    url = "https://example.org/cifar-10-python.tar.gz"
    variant = dataclasses.replace(
        cifar.CIFAR10,
        remote=Remote(url, "cifar-10-python.tar.gz", md5=hashlib.md5(archive).hexdigest()),
    )
    spec = dataclasses.replace(
        registry.SPECS["cifar10"], fetch_into=functools.partial(cifar.fetch_into, variant)
    )
    monkeypatch.setitem(registry.SPECS, "cifar10", spec)
    _serve(monkeypatch, {url: archive})
    d = load_dataset("cifar10")
    assert d.x_train.shape == (10, 3, 32, 32)
    assert sorted(p.name for p in (isolated / "cache" / "cifar10").iterdir()) == [
        "cifar-10-batches-py"
    ]


_RATINGS = SHARED_DATA / "ml-latest-small" / "ratings.csv"


@pytest.mark.skipif(not _RATINGS.is_file(), reason=f"shared MovieLens copy absent ({_RATINGS})")
def test_movielens_download_checks_ratings_sha256(isolated, monkeypatch):
    url = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    genuine = _RATINGS.read_bytes()
    _serve(
        monkeypatch,
        {url: _zip({"ml-latest-small/ratings.csv": genuine.replace(b"5.0", b"4.5", 1)})},
    )
    with pytest.raises(DataNotFoundError, match="unexpected content .*ratings.csv: sha256"):
        load_dataset("movielens")
    _serve(monkeypatch, {url: _zip({"ml-latest-small/ratings.csv": genuine})})
    d = load_dataset("movielens")
    assert d.n_users == 610 and d.n_train + d.n_test == 100_836
    assert (isolated / "cache" / "movielens" / "ml-latest-small" / "ratings.csv").is_file()
    assert not (isolated / "cache" / "movielens" / "ml-latest-small.zip").exists()
