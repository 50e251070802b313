"""A process's obstore store, built from that process's own environment and files.

Nothing here is ever sent to another process: a node builds its store from what
it has (environment variables, ``~/.aws`` profile files, or, through obstore's own
fallback, its instance role / web identity). ``StorageOptions`` only overrides
the endpoint, the region and anonymous access.

obstore reads ``AWS_*``, ``GOOGLE_*`` and ``AZURE_*`` variables itself; what it
does not read is the AWS profile files, so when the environment has no access key
we read ``[profile]`` from ``AWS_SHARED_CREDENTIALS_FILE`` (``~/.aws/credentials``)
and ``AWS_CONFIG_FILE`` (``~/.aws/config``) and hand the keys to obstore in-process.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import os
import socket
import urllib.parse
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._errors import StorageError
from ._options import StorageOptions
from ._translate import classify

if TYPE_CHECKING:
    from obstore.store import ObjectStore

logger = logging.getLogger(__name__)

# The variables that decide which credentials and endpoint a store gets: a
# store is rebuilt when one of them changes.
ENV_PREFIXES = ("AWS_", "GOOGLE_", "AZURE_")
INITIAL_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 15.0
# The store kind whose settings a scheme takes (abfs:// and abfss:// are Azure's).
_STORE_KINDS = {"abfs": "az", "abfss": "az", "https": "http"}
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
_REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
#: Where an S3 client with no key of its own asks for an instance role's (AWS's
#: instance metadata service), and how long a connection to it may take before we
#: say there are no credentials: AWS's SDKs wait 1 s. obstore would retry it for the
#: whole retry budget (``storage.retry_timeout_s``, 2 minutes) on a machine that has
#: no such service, before any error.
METADATA_ENDPOINT = "http://169.254.169.254"
METADATA_CONNECT_TIMEOUT_S = 1.0
# Other places an AWS client finds credentials without keys: web identity (EKS) and
# the container endpoint (ECS).
_KEYLESS_AWS_SOURCES = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_PROFILE_KEYS = {
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
}


def env_fingerprint() -> str:
    """A digest of the variables a store is built from (not the values: no secret in clear)."""
    items = sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES))
    return hashlib.sha256(repr(items).encode()).hexdigest()


def build_store(scheme: str, bucket: str, options: StorageOptions) -> ObjectStore:
    """The obstore store for ``scheme://bucket`` from this process's environment."""
    from obstore.store import from_url as _from_url

    from_url: Any = _from_url  # its overloads want literal TypedDicts per store kind
    config, client = store_settings(_STORE_KINDS.get(scheme, scheme), options, os.environ)
    if scheme == "http":
        client["allow_http"] = True
    retry: Any = {
        "max_retries": options.max_retries,
        "retry_timeout": timedelta(seconds=options.retry_timeout_s),
        "backoff": {
            "init_backoff": timedelta(seconds=INITIAL_BACKOFF_S),
            "max_backoff": timedelta(seconds=_MAX_BACKOFF_S),
            "base": 2,
        },
    }
    url = f"{scheme}://{bucket}"
    try:
        store: ObjectStore = from_url(
            url, config=config or None, client_options=client, retry_config=retry
        )
    except Exception as exc:  # obstore's config errors have no common base
        raise StorageError(f"{url}: cannot set up the store ({classify(exc).detail})") from exc
    return store


def store_settings(
    scheme: str, options: StorageOptions, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """obstore's ``(config, client_options)`` for a store of ``scheme`` in this process."""
    if scheme == "s3":
        return _s3_settings(options, environ)
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    if options.anonymous and scheme in ("gs", "az"):
        config["skip_signature"] = True
    if options.endpoint is not None:
        if scheme == "gs":
            config["base_url"] = options.endpoint
        elif scheme == "az":
            config["endpoint"] = options.endpoint
    if (options.endpoint or "").startswith("http://"):
        client["allow_http"] = True
    return config, client


def _s3_settings(
    options: StorageOptions, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    config: dict[str, Any] = {}
    profile = {} if environ.get("AWS_ACCESS_KEY_ID") else aws_profile(environ)
    if options.anonymous:
        config["skip_signature"] = True
    else:
        config.update({_PROFILE_KEYS[k]: v for k, v in profile.items() if k in _PROFILE_KEYS})
    endpoint = options.endpoint or _first(environ, _ENDPOINT_VARS) or profile.get("endpoint_url")
    if endpoint:
        config["endpoint"] = endpoint
    region = options.region or _first(environ, _REGION_VARS) or profile.get("region")
    if region:
        config["region"] = region
    client = {"allow_http": True} if endpoint and endpoint.startswith("http://") else {}
    return config, client


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if environ.get(name):
            return environ[name]
    return None


def aws_profile(environ: Mapping[str, str]) -> dict[str, str]:
    """The AWS profile's settings from the profile files; empty when there are none.

    ``AWS_PROFILE`` (else ``default``) names the section: ``[name]`` in the
    credentials file, ``[profile name]`` (``[default]``) in the config file; the
    credentials file wins. Only static keys, ``region`` and ``endpoint_url`` are
    used; SSO and role profiles are left to the AWS CLI (export their credentials).
    """
    name = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    home = environ.get("HOME") or os.path.expanduser("~")
    config_file = environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    credentials_file = environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(
        home, ".aws", "credentials"
    )
    values: dict[str, str] = {}
    config_section = name if name == "default" else f"profile {name}"
    values.update(_section(config_file, config_section))
    values.update(_section(credentials_file, name))
    return values


def _section(path: str, section: str) -> dict[str, str]:
    # No interpolation: a secret may hold a '%'.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        # The parser's message may quote a line of the file: a secret. Name the type only.
        logger.warning("ignoring AWS profile file %s: %s", path, type(exc).__name__)
        return {}
    if not parser.has_section(section):
        return {}
    return {k.lower(): v.strip() for k, v in parser.items(section) if v.strip()}


def instance_role_only(
    scheme: str, options: StorageOptions, environ: Mapping[str, str]
) -> str | None:
    """The instance metadata endpoint, when it is the only place a store of ``scheme``
    can get credentials from in this process (S3 only); else None."""
    if _STORE_KINDS.get(scheme, scheme) != "s3" or options.anonymous:
        return None
    config, _ = _s3_settings(options, environ)
    if environ.get("AWS_ACCESS_KEY_ID") or config.get("access_key_id"):
        return None
    if any(environ.get(name) for name in _KEYLESS_AWS_SOURCES):
        return None
    return environ.get("AWS_METADATA_ENDPOINT") or METADATA_ENDPOINT


def unreachable(endpoint: str, timeout_s: float) -> str | None:
    """Why a TCP connection to ``endpoint`` does not open within ``timeout_s``; None if it does."""
    parts = urllib.parse.urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no connection within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
