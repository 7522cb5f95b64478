"""Schedules' sources: paths only under the import root, URLs only on public addresses (redirects too), S3."""

import os
import socket

import httpx
import pytest

from importdash.errors import ApiError
from importdash.models import SourceKind
from importdash.services.sources import SourceError, check_host, check_source, fetch_path, fetch_url, is_public_address

pytestmark = pytest.mark.unit

PUBLIC = "93.184.215.14"


def resolver(table):
    """A getaddrinfo stand-in: host name -> its addresses."""

    def resolve(host, port, proto=0):
        if host not in table:
            raise socket.gaierror("unknown host")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, proto, "", (a, port))
            for a in table[host]
        ]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "198.18.0.1",
    ],
)
def test_private_loopback_link_local_and_reserved_addresses_are_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111"])
def test_internet_addresses_are_public(address):
    assert is_public_address(address)


def test_a_host_with_any_private_address_is_refused():
    resolve = resolver({"mixed.example": [PUBLIC, "10.0.0.5"], "public.example": [PUBLIC]})
    check_host("public.example", 443, resolve=resolve)
    with pytest.raises(SourceError, match="private, loopback"):
        check_host("mixed.example", 443, resolve=resolve)
    with pytest.raises(SourceError, match="could not be resolved"):
        check_host("nowhere.example", 443, resolve=resolve)


def fetch(url, handler, table, tmp_path, allow_private=False, max_bytes=1000):
    return fetch_url(
        url,
        upload_folder=str(tmp_path),
        max_bytes=max_bytes,
        allow_private=allow_private,
        timeout=5,
        max_redirects=3,
        transport=httpx.MockTransport(handler),
        resolve=resolver(table),
    )


def test_a_loopback_url_is_refused_before_any_request(tmp_path):
    requests = []
    with pytest.raises(SourceError, match="'localhost'"):
        fetch("http://localhost/x.csv", requests.append, {"localhost": ["127.0.0.1"]}, tmp_path)
    with pytest.raises(SourceError, match="private"):
        fetch("http://[::1]:8080/x.csv", requests.append, {"::1": ["::1"]}, tmp_path)
    with pytest.raises(SourceError, match="private"):
        fetch("http://intranet.example/x.csv", requests.append, {"intranet.example": ["192.168.0.10"]}, tmp_path)
    assert requests == [] and os.listdir(tmp_path) == []


def test_a_redirect_to_a_private_address_is_refused(tmp_path):
    asked = []

    def handler(request):
        asked.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        return httpx.Response(302, headers={"Location": "http://metadata.example/latest/meta-data"})

    table = {"feed.example": [PUBLIC], "metadata.example": ["169.254.169.254"]}
    with pytest.raises(SourceError, match="'metadata.example'"):
        fetch("https://feed.example/contacts.csv", handler, table, tmp_path)
    assert asked == [(PUBLIC, "feed.example", "feed.example")] and os.listdir(tmp_path) == []


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(tmp_path):
    """A name that resolves to a public address when checked and a private one when connecting (DNS rebinding)
    gets nowhere: the request is sent to the address checked, with the name in Host and in TLS's SNI."""
    seen = []

    def handler(request):
        seen.append((str(request.url), request.headers["host"], request.extensions.get("sni_hostname")))
        return httpx.Response(200, content=b"a")

    fetch("https://feed.example:8443/x.csv?k=1", handler, {"feed.example": [PUBLIC]}, tmp_path)
    fetch("http://v6.example/y.csv", handler, {"v6.example": ["2606:4700:4700::1111"]}, tmp_path)
    assert seen == [
        (f"https://{PUBLIC}:8443/x.csv?k=1", "feed.example:8443", "feed.example"),
        ("http://[2606:4700:4700::1111]/y.csv", "v6.example", "v6.example"),
    ]


def test_a_public_url_is_fetched_through_its_redirects(tmp_path):
    def handler(request):
        if request.url.path == "/old.csv":
            return httpx.Response(301, headers={"Location": "/files/new.csv"})
        return httpx.Response(200, content=b"name,email\nA,a@example.com\n")

    fetched = fetch("https://feed.example/old.csv", handler, {"feed.example": [PUBLIC]}, tmp_path)
    assert fetched.name == "new.csv"
    with open(fetched.path, "rb") as file:
        assert file.read() == b"name,email\nA,a@example.com\n"


def test_allowing_private_urls_lets_loopback_through(tmp_path):
    fetched = fetch(
        "http://localhost/x.csv", lambda request: httpx.Response(200, content=b"a"), {}, tmp_path, allow_private=True
    )
    assert os.path.getsize(fetched.path) == 1


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(200, content=b"x" * 2000), "larger than the upload limit"),
        (httpx.Response(200, headers={"Content-Length": "5000"}, content=b"x" * 5000), "larger than the upload limit"),
    ],
)
def test_an_error_answer_or_a_file_over_the_cap_fails_and_leaves_nothing(tmp_path, response, message):
    with pytest.raises(SourceError, match=message):
        fetch("https://feed.example/x.csv", lambda request: response, {"feed.example": [PUBLIC]}, tmp_path)
    assert os.listdir(tmp_path) == []


def test_too_many_redirects_fail(tmp_path):
    loop = lambda request: httpx.Response(302, headers={"Location": "/again"})  # noqa: E731
    with pytest.raises(SourceError, match="more than 3 times"):
        fetch("https://feed.example/x", loop, {"feed.example": [PUBLIC]}, tmp_path)


def test_a_connection_error_is_a_readable_source_error(tmp_path):
    def handler(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(SourceError, match="could not be fetched: ConnectError"):
        fetch("https://feed.example/x", handler, {"feed.example": [PUBLIC]}, tmp_path)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    (root / "feeds").mkdir(parents=True)
    (tmp_path / "uploads").mkdir()
    return root


def test_path_sources_are_off_without_an_import_root(tmp_path):
    with pytest.raises(ApiError, match="IMPORTDASH_IMPORT_ROOT") as refused:
        check_source(SourceKind.PATH, "a.csv", import_root=None)
    assert refused.value.code == "path_sources_disabled"


@pytest.mark.parametrize("source", ["../secret.csv", "feeds/../../secret.csv", "/etc/passwd", "/etc/*.conf"])
def test_a_path_outside_the_root_is_refused(root, source):
    with pytest.raises(ApiError) as refused:
        check_source(SourceKind.PATH, source, import_root=str(root))
    assert refused.value.status_code == 400


def test_the_newest_file_a_glob_matches_is_copied(root, tmp_path):
    older, newer = root / "feeds" / "2026-01.csv", root / "feeds" / "2026-02.csv"
    older.write_text("old")
    newer.write_text("new")
    os.utime(older, (1_000, 1_000))
    assert check_source(SourceKind.PATH, "feeds/*.csv", import_root=str(root)) == "feeds/*.csv"
    fetched = fetch_path("feeds/*.csv", import_root=str(root), upload_folder=str(tmp_path / "uploads"))
    assert fetched.name == "2026-02.csv"
    with open(fetched.path) as file:
        assert file.read() == "new"
    assert newer.exists()  # the source file stays where it is


def test_a_symlink_out_of_the_root_is_refused_and_a_missing_file_is_a_readable_error(root, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("secret")
    (root / "feeds" / "link.csv").symlink_to(secret)
    (root / "escape").symlink_to(tmp_path)
    uploads = str(tmp_path / "uploads")
    with pytest.raises(SourceError, match="under IMPORTDASH_IMPORT_ROOT"):
        fetch_path("feeds/link.csv", import_root=str(root), upload_folder=uploads)
    with pytest.raises(SourceError, match="1 match outside it or not a file"):
        fetch_path("feeds/*.csv", import_root=str(root), upload_folder=uploads)
    with pytest.raises(SourceError, match="under IMPORTDASH_IMPORT_ROOT"):
        fetch_path("escape/secret.csv", import_root=str(root), upload_folder=uploads)
    with pytest.raises(SourceError, match="No file matches 'feeds/none.csv'"):
        fetch_path("feeds/none.csv", import_root=str(root), upload_folder=uploads)
    assert os.listdir(uploads) == []


@pytest.mark.parametrize("source", ["s3://bucket", "s3:///key", "https://bucket/key", "s3://bucket/key?versionId=1"])
def test_an_s3_source_is_s3_bucket_key(source):
    with pytest.raises(ApiError, match="s3://bucket/key"):
        check_source(SourceKind.S3, source, import_root=None)


@pytest.mark.parametrize("source", ["ftp://feed.example/x", "http://", "file:///etc/passwd", "https://[::1/x"])
def test_a_url_source_is_http_or_https_with_a_host(source):
    with pytest.raises(ApiError, match="http:// or https://"):
        check_source(SourceKind.URL, source, import_root=None)
