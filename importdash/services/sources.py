"""Where a schedule's file comes from: a path or glob under IMPORT_ROOT, an HTTP(S) URL on a public address, or
an S3 object. Each is fetched into the upload folder, as an upload is spooled there, and checked from there.

Every refusal is a SourceError whose message is written for people and shows no secret (no query string, no
credentials): it is kept on the schedule and its run.
"""

import glob
import ipaddress
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import httpx

from ..errors import ApiError
from ..models import SourceKind

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_COPY_BUFFER_BYTES = 1024 * 1024
GLOB_CHARACTERS = "*?["


class SourceError(ApiError):
    """A schedule's source could not be fetched, or is not one the settings allow."""

    code = "source_refused"


@dataclass(frozen=True)
class FetchedFile:
    path: str  # the copy in the upload folder; the caller removes it when done
    name: str  # the file's display name (its base name), as an upload's file name


# Checking a source when a schedule is saved.


def check_source(kind: SourceKind, source: str, *, import_root: str | None) -> str:
    """The source as it is saved, or a 400 saying what is wrong with it. A URL's address is checked when it is
    fetched (a name may resolve elsewhere by then), except a literal address, which is checked now too."""
    if kind is SourceKind.PATH:
        root = _import_root(import_root)
        _inside(root, _pattern(root, source))
        return source
    if kind is SourceKind.URL:
        try:
            url = httpx.URL(source)
        except (httpx.InvalidURL, UnicodeError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise SourceError("A URL source is an http:// or https:// URL with a host name.", code="invalid_parameter")
        return source
    bucket, key = split_s3_url(source)
    return f"s3://{bucket}/{key}"


def split_s3_url(source: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key; 400 otherwise."""
    parts = urlsplit(source)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key or parts.query or parts.fragment:
        raise SourceError("An S3 source is s3://bucket/key.", code="invalid_parameter")
    return parts.netloc, key


# Paths.


def _import_root(import_root):
    if not import_root:
        raise SourceError(
            "Path sources are off: set IMPORTDASH_IMPORT_ROOT to the folder schedules may read from.",
            code="path_sources_disabled",
        )
    return os.path.realpath(import_root)


def _pattern(root, source):
    if "\x00" in source or not source.strip():
        raise SourceError("A path source is a file name or a glob under the import root.", code="invalid_parameter")
    if ".." in PurePosixPath(source).parts:
        raise SourceError("A path source may not go up with '..'.", code="invalid_parameter")
    return os.path.join(root, source)  # an absolute source stays as it is, and must still be under the root


def _inside(root, path):
    """The path with symlinks resolved, if it is under root; a 400 otherwise."""
    # A glob's folder part is resolved (its file part is matched below): what the pattern can reach.
    folder = path
    while any(character in folder for character in GLOB_CHARACTERS):
        folder = os.path.dirname(folder)
    resolved = os.path.realpath(folder)
    if os.path.commonpath([root, resolved]) != root:
        raise SourceError("A path source must be under IMPORTDASH_IMPORT_ROOT.", code="invalid_parameter")
    return resolved


def fetch_path(source: str, *, import_root: str | None, upload_folder: str) -> FetchedFile:
    """Copy the file (or the newest file the glob matches) under the import root to the upload folder."""
    root = _import_root(import_root)
    pattern = _pattern(root, source)
    _inside(root, pattern)
    # Every match is resolved (a symlink may point anywhere) and must still be a file under the root.
    matches = [os.path.realpath(match) for match in glob.glob(pattern)]
    files = [match for match in matches if os.path.commonpath([root, match]) == root and os.path.isfile(match)]
    if not files:
        refused = len(matches) - len(files)
        raise SourceError(
            f"No file matches {source!r} under the import root"
            + (f" ({refused} match outside it or not a file, refused)." if refused else ".")
        )
    newest = max(files, key=os.path.getmtime)
    target = _spool_path(upload_folder)
    shutil.copyfile(newest, target)
    return FetchedFile(target, os.path.basename(newest))


def _spool_path(upload_folder):
    return os.path.join(upload_folder, f".incoming-{uuid.uuid4().hex}.csv")


# URLs.


def is_public_address(address: str) -> bool:
    """Whether an IP address is one anyone on the internet could reach: not private, loopback, link-local,
    multicast, reserved or unspecified (IPv4 mapped into IPv6 is judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id (fe80::1%eth0) names the interface only
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_host(host: str, port: int, *, resolve: Callable = socket.getaddrinfo) -> str:
    """Refuse a host any of whose addresses is not public (SourceError), and return the address to connect to:
    every address it resolves to is checked, since a client may connect to any of them."""
    try:
        addresses = list(dict.fromkeys(info[4][0] for info in resolve(host, port, proto=socket.IPPROTO_TCP)))
    except (OSError, UnicodeError):
        raise SourceError(f"The host {host!r} could not be resolved.") from None
    private = [address for address in addresses if not is_public_address(address)]
    if private or not addresses:
        raise SourceError(
            f"The URL's host {host!r} has a private, loopback, link-local or reserved address; it is refused "
            "(set IMPORTDASH_SCHEDULE_ALLOW_PRIVATE_URLS to allow such addresses)."
        )
    return addresses[0]


def fetch_url(
    url: str,
    *,
    upload_folder: str,
    max_bytes: int,
    allow_private: bool,
    timeout: float,
    max_redirects: int,
    transport: httpx.BaseTransport | None = None,
    resolve: Callable = socket.getaddrinfo,
) -> FetchedFile:
    """Stream an HTTP(S) URL to the upload folder, following up to max_redirects redirects, each one's host
    checked like the first's; refuse a body over max_bytes, and any answer but 200.

    The connection goes to the very address that was checked (the host name stays in the Host header, TLS's SNI
    and the certificate check), so a name that resolves elsewhere a moment later (DNS rebinding) gains nothing.
    """
    target = _spool_path(upload_folder)
    with httpx.Client(timeout=timeout, follow_redirects=False, transport=transport, trust_env=False) as client:
        for _ in range(max_redirects + 1):
            try:
                request = _pinned_request(client, httpx.URL(url), allow_private=allow_private, resolve=resolve)
                response = client.send(request, stream=True)
                try:
                    if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                        url = str(httpx.URL(url).join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise SourceError(f"The URL answered HTTP {response.status_code}; expected 200 and a file.")
                    _stream_to(response, target, max_bytes)
                    return FetchedFile(target, _url_file_name(url))
                finally:
                    response.close()
            except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as error:
                _remove(target)
                raise SourceError(f"The URL could not be fetched: {type(error).__name__}.") from None
            except BaseException:
                _remove(target)
                raise
    raise SourceError(f"The URL redirected more than {max_redirects} times.")


def _pinned_request(client, url, *, allow_private, resolve):
    """The GET request for url: to the checked address of its host unless private addresses are allowed."""
    if url.scheme not in ("http", "https") or not url.host:
        raise SourceError("The source is not an http(s) URL, or redirected to one that is not.")
    if allow_private:
        return client.build_request("GET", url)
    address = check_host(url.host, url.port or (443 if url.scheme == "https" else 80), resolve=resolve)
    host = url.netloc.decode("ascii").rpartition("@")[2]  # the host and any port, as the Host header gives them
    return client.build_request(
        "GET", url.copy_with(host=address), headers={"Host": host}, extensions={"sni_hostname": url.host}
    )


def _stream_to(response, target, max_bytes):
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    written = 0
    with open(target, "xb") as file:
        for chunk in response.iter_bytes(_COPY_BUFFER_BYTES):
            written += len(chunk)
            if written > max_bytes:
                raise _too_large(max_bytes)
            file.write(chunk)


def _too_large(max_bytes):
    return SourceError(f"The file is larger than the upload limit ({max_bytes // (1024 * 1024)} MB).")


def _url_file_name(url):
    name = PurePosixPath(urlsplit(url).path).name
    return name or urlsplit(url).hostname or "download"


def discard(fetched: FetchedFile) -> None:
    """Remove what is left of a fetched file (the local store may have taken it already)."""
    _remove(fetched.path)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# S3.


def fetch_s3(source: str, *, client, upload_folder: str, max_bytes: int) -> FetchedFile:
    """Copy an S3 object (s3://bucket/key) to the upload folder with the given boto3 client."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_url(source)
    target = _spool_path(upload_folder)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > max_bytes:
            raise _too_large(max_bytes)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            written = 0
            with open(target, "xb") as file:
                for chunk in body.iter_chunks(_COPY_BUFFER_BYTES):
                    written += len(chunk)
                    if written > max_bytes:
                        raise _too_large(max_bytes)
                    file.write(chunk)
        finally:
            body.close()
    except ClientError as error:
        _remove(target)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchBucket"):
            raise SourceError(f"No S3 object {source}.") from None
        raise SourceError(f"S3 refused to read {source} (HTTP {status}).") from None
    except BotoCoreError as error:
        _remove(target)
        raise SourceError(f"S3 could not be reached: {type(error).__name__}.") from None
    except BaseException:
        _remove(target)
        raise
    return FetchedFile(target, PurePosixPath(key).name)


def s3_client(*, endpoint_url: str | None):
    """A boto3 S3 client with the configured endpoint; credentials and region come from boto3's usual sources."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


class SourceFetcher:
    """Fetch a schedule's file from its source into the upload folder, with the configured limits."""

    def __init__(
        self,
        *,
        upload_folder: str,
        import_root: str | None,
        max_bytes: int,
        allow_private_urls: bool,
        timeout: float,
        max_redirects: int,
        s3_endpoint_url: str | None,
    ):
        self.upload_folder = upload_folder
        self.import_root = import_root
        self.max_bytes = max_bytes
        self.allow_private_urls = allow_private_urls
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.s3_endpoint_url = s3_endpoint_url
        self._s3_client = None

    def __call__(self, kind: str, source: str) -> FetchedFile:
        kind = SourceKind(kind)
        if kind is SourceKind.PATH:
            return fetch_path(source, import_root=self.import_root, upload_folder=self.upload_folder)
        if kind is SourceKind.URL:
            return fetch_url(
                source,
                upload_folder=self.upload_folder,
                max_bytes=self.max_bytes,
                allow_private=self.allow_private_urls,
                timeout=self.timeout,
                max_redirects=self.max_redirects,
            )
        if self._s3_client is None:  # boto3 is imported only by instances that read S3
            self._s3_client = s3_client(endpoint_url=self.s3_endpoint_url)
        return fetch_s3(source, client=self._s3_client, upload_folder=self.upload_folder, max_bytes=self.max_bytes)
