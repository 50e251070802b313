"""Transient faults: throttling and dropped answers are retried with nothing lost or doubled;
a store that stays unreachable fails with StorageUnavailableError within the retry budget."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from _faults import FaultProxy
from _s3 import Bucket

from distinfer.storage import (
    FileSystem,
    Location,
    StorageOptions,
    StorageUnavailableError,
    resolve_location,
)

FAULTY = {"slow_down_every": 3, "drop_every": 5}


def _through(proxy: FaultProxy, bucket: Bucket, key: str, **options: float) -> Location:
    return resolve_location(
        bucket.uri(key),
        ".",
        StorageOptions(endpoint=proxy.endpoint, **options),  # type: ignore[arg-type]
    )


def test_writes_and_reads_survive_throttling_and_dropped_answers(s3_bucket: Bucket) -> None:
    keys = [f"out/part-{i:05d}.bin" for i in range(60)]
    with FaultProxy(s3_bucket.endpoint, **FAULTY) as proxy:
        out = _through(proxy, s3_bucket, "out/", retry_timeout_s=60)
        fs: FileSystem = out.fs
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: fs.write(k, k.encode() * 3), keys))
        for key in keys[::10]:
            assert fs.read(key, 1000) == key.encode() * 3
            assert fs.read_range(key, 4, 4) == key.encode()[4:8]
            with fs.open(key, block_size=8) as f:
                assert f.read() == key.encode() * 3
        assert [info.path for info in fs.list(out.path)] == keys  # none lost, none twice
    assert proxy.stats.slowed_down > 15 and proxy.stats.dropped > 10


def test_a_listing_resumes_the_page_that_failed(s3_bucket: Bucket) -> None:
    keys = [f"in/{i:05d}.jpg" for i in range(1050)]  # two pages; the second one fails once
    direct = resolve_location(s3_bucket.uri("in/"), ".")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: direct.fs.write(k, b"x"), keys))
    for fault in ({"slow_down_every": 2}, {"drop_every": 2}):
        with FaultProxy(s3_bucket.endpoint, **fault) as proxy:
            loc = _through(proxy, s3_bucket, "in/", retry_timeout_s=30)
            assert [info.path for info in loc.fs.list(loc.path)] == keys
        assert proxy.stats.slowed_down + proxy.stats.dropped == 1


def test_conditional_writes_recognise_their_own_retried_attempt(s3_bucket: Bucket) -> None:
    with FaultProxy(s3_bucket.endpoint, drop_every=2) as proxy:
        out = _through(proxy, s3_bucket, "locks/", retry_timeout_s=30)
        fs = out.fs
        for i in range(4):
            # Every other request's answer is lost after the server acted: the retry
            # finds the object there (412) and must see it is its own.
            tag = fs.create(f"locks/{i}", f'{{"token": "{i}"}}'.encode())
            for n in range(3):
                tag = fs.replace(
                    f"locks/{i}", f'{{"token": "{i}", "n": {n}}}'.encode(), if_match=tag
                )
            with pytest.raises(FileExistsError):
                fs.create(f"locks/{i}", b'{"token": "other"}')
        assert proxy.stats.dropped >= 8
    direct = resolve_location(s3_bucket.uri("locks/"), ".")
    assert [direct.fs.read(f"locks/{i}", 100) for i in range(4)] == [
        f'{{"token": "{i}", "n": 2}}'.encode() for i in range(4)
    ]


def test_an_unreachable_store_fails_within_the_retry_budget(s3_bucket: Bucket) -> None:
    proxy = FaultProxy(s3_bucket.endpoint).start()
    loc = _through(proxy, s3_bucket, "in/x.jpg", retry_timeout_s=1)
    loc.fs.write(loc.path, b"x")
    proxy.stop()  # connections refused from now on
    for call in (
        lambda: loc.fs.info(loc.path),
        lambda: next(loc.fs.list("in")),
        lambda: loc.fs.write(loc.path, b"y"),
        lambda: loc.fs.read(loc.path, 10),
    ):
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError, match=r"did not answer.*retries") as info:
            call()
        assert time.monotonic() - started < 5
        assert loc.uri in str(info.value) or "s3://" in str(info.value)
        assert "Debug source" not in str(info.value)


def test_an_instance_role_lost_mid_run_is_a_resumable_outage_not_a_bad_object() -> None:
    # obstore's message when refreshing an instance role's credentials fails: the URL
    # of the metadata service, never the object's.
    from obstore.exceptions import GenericError

    from distinfer.storage._translate import translate

    failure = GenericError(
        "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token "
        "in 1.2ms - Server returned non-2xx status code: 403 Forbidden: denied"
    )
    error = translate(failure, "s3://b/pages/1.jpg", "reading")
    assert isinstance(error, StorageUnavailableError)
    assert str(error) == (
        "s3://b/pages/1.jpg: no credentials while reading: the instance metadata service "
        "did not give any (HTTP 403 Forbidden)"
    )
