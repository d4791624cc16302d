"""Downloads through torchvision (with a fake URL opener: no network) and archive extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
import zipfile
from urllib.error import URLError

import numpy as np
import pytest
from data_helpers import (
    SHARED_DATA,
    accept_cifar,
    isolate,
    write_cifar10,
    write_fashion,
    write_tff_h5,
)

from mosaic_fast.data import load_dataset
from mosaic_fast.data import shakespeare as sh
from mosaic_fast.data.download import DownloadError, download, extract
from mosaic_fast.errors import DataNotFoundError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


class _Response(io.BytesIO):
    def __init__(self, url: str, payload: bytes):
        super().__init__(payload)
        self.url, self.length = url, len(payload)  # what torchvision reads besides the body


def _serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """Replace urllib's opener (torchvision calls it): known URLs return their bytes, others fail
    like a network outage. Returns the URLs fetched (torchvision's HEAD probes left out)."""
    requested: list[str] = []

    def fake_urlopen(request, *args, **kwargs):
        url = request.full_url
        if request.get_header("Method") != "HEAD":
            requested.append(url)
        if url not in files:
            raise URLError("[Errno -3] Temporary failure in name resolution")
        return _Response(url, files[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def test_download_checks_the_md5_and_keeps_no_corrupt_file(tmp_path, monkeypatch):
    payload = b"x" * 3_000_000
    _serve(monkeypatch, {"https://a/f.bin": payload})
    path = download(
        "https://a/f.bin", tmp_path / "dl", "f.bin", md5=hashlib.md5(payload).hexdigest()
    )
    assert path.read_bytes() == payload
    with pytest.raises(DownloadError, match="https://a/f.bin: File not found or corrupted"):
        download("https://a/f.bin", tmp_path / "dl", "g.bin", md5="0" * 32)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["f.bin"]


def test_download_checks_the_sha256_where_no_md5_is_published(tmp_path, monkeypatch):
    payload = b"published bytes"
    _serve(monkeypatch, {"https://a/f": payload})
    good = hashlib.sha256(payload).hexdigest()
    assert download("https://a/f", tmp_path, "f", sha256=good).read_bytes() == payload
    with pytest.raises(
        DownloadError, match="https://a/f: g: sha256 [0-9a-f]{64} does not match the published 0000"
    ):
        download("https://a/f", tmp_path, "g", sha256="0" * 64)
    assert not (tmp_path / "g").exists()


def test_download_skips_a_verified_copy(tmp_path, monkeypatch):
    payload = b"published bytes"
    md5 = hashlib.md5(payload).hexdigest()
    requested = _serve(monkeypatch, {"https://a/f": payload})
    download("https://a/f", tmp_path, "f", md5=md5)
    download("https://a/f", tmp_path, "f", md5=md5)
    assert requested == ["https://a/f"]  # second call: the file on disk already matches
    (tmp_path / "f").write_bytes(b"corrupted")
    download("https://a/f", tmp_path, "f", md5=md5)
    assert (tmp_path / "f").read_bytes() == payload and len(requested) == 2


def test_download_network_error_names_url_and_reason(tmp_path, monkeypatch):
    _serve(monkeypatch, {})
    with pytest.raises(DownloadError) as info:
        download("https://nowhere/f", tmp_path, "f")
    assert str(info.value) == "https://nowhere/f: [Errno -3] Temporary failure in name resolution"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for info in entries:
            payload = data.get(info.name, b"")
            info.size = len(payload) if info.isfile() else 0
            tf.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return buf.getvalue()


def test_extract_zip_and_tar(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_zip({"top/inner/file.txt": b"hello", "top/b.txt": b"b"}))
    assert [p.name for p in extract(z, tmp_path / "out")] == ["top"]
    assert (tmp_path / "out" / "top" / "inner" / "file.txt").read_bytes() == b"hello"
    t = tmp_path / "a.tar.gz"
    t.write_bytes(_tar([tarfile.TarInfo("top/new.txt")], {"top/new.txt": b"new"}))
    extract(t, tmp_path / "out")  # replaces the older top/
    assert sorted(p.name for p in (tmp_path / "out" / "top").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["top"]  # temp folder removed


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt"])
def test_extract_writes_nothing_outside_the_folder(tmp_path, name):
    out = tmp_path / "a" / "out"
    z = tmp_path / "bad.zip"
    z.write_bytes(_zip({"fine.txt": b"ok", name: b"pwned"}))
    extract(z, out)  # zipfile drops the ".." components
    inside = sorted(str(p.relative_to(out)) for p in out.rglob("*.txt"))
    assert inside == sorted(["fine.txt", name.replace("../", "")])
    t = tmp_path / "bad.tar"
    t.write_bytes(_tar([tarfile.TarInfo("fine.txt"), tarfile.TarInfo(name)], {name: b"pwned"}, "w"))
    with pytest.raises(DownloadError, match="bad.tar is corrupt or unsafe"):
        extract(t, out)  # the tar "data" filter refuses it
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "a" / "evil.txt").exists()
    assert not any(p.name.startswith(".extract-") for p in out.iterdir())


def test_extract_rejects_links_and_junk(tmp_path):
    link = tarfile.TarInfo("data/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    t = tmp_path / "link.tar.gz"
    t.write_bytes(_tar([link], {}))
    with pytest.raises(DownloadError, match="link.tar.gz is corrupt or unsafe .*passwd"):
        extract(t, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really")
    with pytest.raises(DownloadError, match="junk.tar.gz is corrupt or unsafe"):
        extract(junk, tmp_path / "out")


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


def test_offline_fashion_mnist_error_is_one_line(isolated, monkeypatch):
    _serve(monkeypatch, {})
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist")
    msg = str(info.value)
    assert "\n" not in msg
    assert "download from http://fashion-mnist.s3-website" in msg and "name resolution" in msg


def _tar_folder(folder, arcname: str, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        tf.add(folder, arcname=arcname)
    return buf.getvalue()


def test_cifar10_download_end_to_end(isolated, monkeypatch):
    import torchvision.datasets as tvd

    folder, batches = write_cifar10(isolated / "src", n_per_batch=2)
    accept_cifar(monkeypatch, folder)
    archive = _tar_folder(folder, "cifar-10-batches-py")
    url = "https://example.org/cifar-10-python.tar.gz"
    monkeypatch.setattr(tvd.CIFAR10, "url", url)
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", hashlib.md5(archive).hexdigest())
    _serve(monkeypatch, {url: archive[:-10]})
    with pytest.raises(DataNotFoundError, match=f"download from {url} failed .*corrupted"):
        load_dataset("cifar10")
    assert list((isolated / "cache" / "cifar10").iterdir()) == []  # no corrupt archive left
    _serve(monkeypatch, {url: archive})
    d = load_dataset("cifar10")
    assert d.x_train.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(d.y_test.numpy(), batches[5][1])
    assert [p.name for p in (isolated / "cache" / "cifar10").iterdir()] == ["cifar-10-batches-py"]


def test_fashion_mnist_download_end_to_end(isolated, monkeypatch):
    import torchvision.datasets as tvd

    arrays = write_fashion(isolated / "src", n_train=5, n_test=3)
    files = {
        f"https://example.org/fm/{p.name}": p.read_bytes() for p in (isolated / "src").iterdir()
    }
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", ["https://example.org/fm/"])
    resources = [(url.rsplit("/", 1)[1], hashlib.md5(b).hexdigest()) for url, b in files.items()]
    monkeypatch.setattr(tvd.FashionMNIST, "resources", resources)
    requested = _serve(monkeypatch, files)
    d = load_dataset("fashion-mnist")
    assert sorted(requested) == sorted(files)
    np.testing.assert_array_equal(d.y_train.numpy(), arrays[1])
    raw = isolated / "cache" / "fashion-mnist" / "FashionMNIST" / "raw"
    assert len(list(raw.glob("*-ubyte"))) == 4 and len(list(raw.glob("*.gz"))) == 4


def test_shakespeare_download_checks_both_sha256s(isolated, monkeypatch):
    src = isolated / "src"
    src.mkdir()
    write_tff_h5(src / "shakespeare_train.h5", {"A": ["To be, or not to be: " * 5]})
    write_tff_h5(src / "shakespeare_test.h5", {"A": ["that is the question."]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tf:
        for name in sh.TFF_SHA256:
            tf.add(src / name, arcname=name)
    archive = buf.getvalue()
    monkeypatch.setattr(sh, "TFF_URL", "https://example.org/shakespeare.tar.bz2")
    _serve(monkeypatch, {sh.TFF_URL: archive})
    with pytest.raises(DataNotFoundError, match="shakespeare.tar.bz2: sha256 .* does not match"):
        load_dataset("shakespeare")
    monkeypatch.setattr(sh, "TFF_ARCHIVE_SHA256", hashlib.sha256(archive).hexdigest())
    with pytest.raises(
        DataNotFoundError, match="unexpected content .*shakespeare_train.h5: sha256"
    ):
        load_dataset("shakespeare")
    assert list((isolated / "cache" / "shakespeare").iterdir()) == []  # nothing left to find
    for name in sh.TFF_SHA256:
        digest = hashlib.sha256((src / name).read_bytes()).hexdigest()
        monkeypatch.setitem(sh.TFF_SHA256, name, digest)
    d = load_dataset("shakespeare")
    assert d.sequence_targets and d.n_train == 2
    assert sorted(p.name for p in (isolated / "cache" / "shakespeare").iterdir()) == sorted(
        sh.TFF_SHA256
    )


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
    assert list((isolated / "cache" / "movielens").iterdir()) == []  # nothing left to find
    _serve(monkeypatch, {url: _zip({"ml-latest-small/ratings.csv": genuine})})
    d = load_dataset("movielens")
    assert d.n_users == 610 and d.n_train + d.n_test == 100_836
    assert (isolated / "cache" / "movielens" / "ml-latest-small" / "ratings.csv").is_file()
    assert not (isolated / "cache" / "movielens" / "ml-latest-small.zip").exists()
