"""obstore's exceptions turned into short, secret-free errors a user can act on.

obstore raises a few typed errors (not found, already exists, precondition,
permission) and a ``GenericError`` for everything else, each with a message of a
first line and then a multi-line "Debug source" dump. We keep only what says what
happened: the HTTP status, S3's error code and message, the retry count, the
operating system's reason. We never copy a URL from the dump (a signed request's
query string may hold a token); the message names our own URI instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import (
    ObjectSizeError,
    PreconditionFailedError,
    StorageAccessError,
    StorageError,
    StorageUnavailableError,
)

_STATUS = re.compile(r"status code: (\d{3})((?: [A-Za-z]+)*)")
_S3_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]{0,200})</Message>")
_RETRIES = re.compile(r"after (\d+) retries")
_ELAPSED = re.compile(r" in ([\d.]+(?:ms|s|µs|ns))")
_OS_REASON = re.compile(r'message: "([^"]{1,120})"')
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
_INVALID_KEY = re.compile(r'path: "([^"]{0,300})"')
_URL = re.compile(r"\w+://\S+")
# Where a client with no key of its own asks for one: the instance metadata services of
# AWS (IMDSv2's token first), GCP and Azure, and ECS's container endpoint.
_METADATA = re.compile(
    r"169\.254\.169\.254|169\.254\.170\.2|metadata\.google\.internal|/latest/api/token"
    r"|/latest/meta-data/|/metadata/identity/"
)
# What to set, by scheme, when no credentials were found.
_AZURE_CREDENTIALS = "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or a SAS token)"
_CREDENTIAL_SOURCES = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "az": _AZURE_CREDENTIALS,
    "abfs": _AZURE_CREDENTIALS,
    "abfss": _AZURE_CREDENTIALS,
}

_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "InvalidClientTokenId",
        "TokenRefreshRequired",
        "AuthenticationFailed",  # Azure
        "NoAuthenticationInformation",  # Azure
    }
)
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "ContainerNotFound"})


@dataclass(frozen=True)
class Failure:
    """What one obstore exception means: a kind, and a one-line detail."""

    kind: str  # not_found, exists, precondition, denied, credentials, no_credentials, ...
    detail: str
    status: int | None = None
    code: str | None = None


def classify(exc: BaseException) -> Failure:
    """Read an obstore exception: its kind and a short detail without secrets."""
    from obstore import exceptions as obe

    text = str(exc)
    first = text.split("\n\nDebug source:", 1)[0]
    status_match = _STATUS.search(first)
    status = int(status_match.group(1)) if status_match else None
    code_match = _S3_CODE.search(text)
    code = code_match.group(1) if code_match else None
    detail = _detail(text, first, status_match, code)
    if _METADATA.search(first):  # no key of its own, and no instance role answered
        return Failure("no_credentials", detail, status, code)
    if isinstance(exc, obe.InvalidPathError):
        key = _INVALID_KEY.search(text)
        named = f"{key.group(1)!r}" if key else "an object"
        return Failure("invalid_key", f"{named} has a key obstore cannot represent", status, code)
    if code in _NO_BUCKET_CODES:
        return Failure("no_bucket", detail, status, code)
    if isinstance(exc, FileNotFoundError) or status == 404:
        return Failure("not_found", detail, status, code)
    if isinstance(exc, obe.AlreadyExistsError):
        return Failure("exists", detail, status, code)
    if isinstance(exc, obe.PreconditionError) or status == 412:
        return Failure("precondition", detail, status, code)
    if code in _CREDENTIAL_CODES or status == 401 or isinstance(exc, obe.UnauthenticatedError):
        return Failure("credentials", detail, status, code)
    if isinstance(exc, obe.PermissionDeniedError) or status == 403:
        return Failure("denied", detail, status, code)
    if status == 416:
        return Failure("range", detail, status, code)
    if status == 409:
        return Failure("conflict", detail, status, code)
    if (
        (status is not None and (status >= 500 or status == 429))
        or _RETRIES.search(first)
        or "error sending request" in first
        or "HTTP error" in first
    ):
        return Failure("unavailable", detail, status, code)
    if "credential" in first.lower():
        return Failure("credentials", detail, status, code)
    return Failure("other", detail, status, code)


def _detail(text: str, first: str, status: re.Match[str] | None, code: str | None) -> str:
    parts = []
    if status:
        parts.append(f"HTTP {status.group(1)}{status.group(2)}")
    if code:
        message = _S3_MESSAGE.search(text)
        parts.append(f"{code}: {message.group(1)}" if message else code)
    reason = _OS_REASON.search(text) or _HTTP_KIND.search(text)
    if reason and not status:
        parts.append(reason.group(1))
    retries = _RETRIES.search(first)
    if retries:
        elapsed = _ELAPSED.search(first)
        took = f" in {_seconds(elapsed.group(1)):.1f} s" if elapsed else ""
        parts.append(f"after {retries.group(1)} retries{took}")
    if not parts:
        # Nothing recognisable: the first line, without its URLs, cut short.
        parts.append(_URL.sub("<url>", first.splitlines()[0]) if first.strip() else "no detail")
    return ", ".join(parts)[:300]


def _seconds(duration: str) -> float:
    """``1.0151s``, ``71.08ms``, ``3µs`` (Rust's Debug of a Duration) in seconds."""
    for unit, scale in (("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0)):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * scale
    return float("nan")


def translate(exc: BaseException, uri: str, doing: str) -> BaseException:
    """The error to raise for ``exc`` raised while ``doing`` something to ``uri``.

    Per-object failures become the built-in ``FileNotFoundError``,
    ``FileExistsError`` and ``PermissionError``, as on a local disk; the rest are
    ``StorageError`` subclasses. Chain the result ``from exc``.
    """
    failure = classify(exc)
    detail = failure.detail
    kind = failure.kind
    if kind == "not_found":
        return FileNotFoundError(f"{uri}: not found ({detail})")
    if kind == "exists":
        return FileExistsError(f"{uri}: already exists")
    if kind == "precondition":
        return PreconditionFailedError(f"{uri}: changed while {doing} ({detail})")
    if kind == "denied":
        return PermissionError(f"{uri}: access denied while {doing} ({detail})")
    if kind == "credentials":
        return PermissionError(f"{uri}: credentials refused while {doing} ({detail})")
    if kind == "no_bucket":
        return StorageAccessError(
            f"{uri}: the bucket does not exist ({detail}); check its name, "
            "storage.region and storage.endpoint"
        )
    if kind == "range":
        return ObjectSizeError(f"{uri}: range beyond the end of the object ({detail})")
    if kind == "invalid_key":
        return StorageError(
            f"{uri}: {detail} (an empty, '.' or '..' path segment) while {doing}; "
            "rename that object or point at a prefix that does not include it"
        )
    if kind == "no_credentials":  # mid-run: the instance role's refresh failed
        return StorageUnavailableError(
            f"{uri}: no credentials while {doing}: the instance metadata service did not "
            f"give any ({detail})"
        )
    if kind == "unavailable":
        return StorageUnavailableError(
            f"{uri}: the store did not answer while {doing} ({detail}); "
            "check the network and storage.endpoint, or raise storage.retry_timeout_s"
        )
    return StorageError(f"{uri}: {doing} failed ({detail})")


def no_credentials_error(uri: str, detail: str) -> StorageAccessError:
    """No key in this process's environment or profile files, and no instance role."""
    scheme = uri.split("://", 1)[0]
    wanted = _CREDENTIAL_SOURCES.get(scheme, "the store's credential variables")
    return StorageAccessError(
        f"{uri}: no credentials found: none in this process's environment or profile files, "
        f"and no instance role answered ({detail}); set {wanted} on every node, use an "
        "instance role, or set storage.anonymous: true for a public bucket"
    )


def access_error(exc: BaseException, uri: str) -> BaseException:
    """The error for a failed :meth:`check_access` probe: what is wrong and what to do."""
    failure = classify(exc)
    if failure.kind == "no_credentials":
        return no_credentials_error(uri, failure.detail)
    if failure.kind == "credentials":
        return StorageAccessError(
            f"{uri}: the credentials were refused ({failure.detail}); set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) on every node, "
            "use an instance role, or set storage.anonymous: true for a public bucket"
        )
    if failure.kind == "denied":
        return StorageAccessError(
            f"{uri}: access denied ({failure.detail}); grant this node's credentials "
            "list and read (and write, for an output) on it, or set storage.anonymous: "
            "true for a public bucket"
        )
    if failure.kind == "unavailable":
        return StorageUnavailableError(
            f"{uri}: the store cannot be reached ({failure.detail}); check storage.endpoint "
            "(or AWS_ENDPOINT_URL) and the network"
        )
    translated = translate(exc, uri, "checking access")
    if isinstance(translated, StorageError):
        return translated
    return StorageAccessError(str(translated))
