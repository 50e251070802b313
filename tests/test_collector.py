"""The ordered collector in-process: whole batches reordered by first index, duplicates
cut or dropped, out-of-range rows refused, and the reorder buffer counted in rows."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from distinfer import read_results
from distinfer.distributed._collector import OrderedCollector
from distinfer.distributed._rows import ResultBatch, error_row, result_row
from distinfer.distributed._work import CollectorStatus
from distinfer.engine._prediction import RESULT_SCHEMA, Prediction


def batch(first: int, count: int, node: str = "a") -> ResultBatch:
    """Rows ``first .. first + count - 1``; every fifth index is an error row."""
    rows = [
        error_row(i, f"img{i}.jpg", None, "broken", node)
        if i % 5 == 4
        else result_row(i, f"img{i}.jpg", None, Prediction.empty(4, 3), node)
        for i in range(first, first + count)
    ]
    return ResultBatch.from_rows(rows[::-1])  # any order in, index order out


def collector(tmp_path: Path, rows_per_part: int = 10) -> OrderedCollector:
    return OrderedCollector(
        str(tmp_path / "results"), "job", rows_per_part=rows_per_part, flush_interval_s=600
    )


def written(tmp_path: Path) -> list[tuple[int, str]]:
    table = read_results(tmp_path / "results")
    return list(zip(table["index"].to_pylist(), table["node"].to_pylist(), strict=True))


def test_batches_arriving_out_of_order_are_written_in_index_order(tmp_path: Path) -> None:
    c = collector(tmp_path)
    for k, first in enumerate((8, 16, 4, 12), start=1):
        c.add(batch(first, 4))
        assert (c.status().next_index, c.status().buffered) == (0, 4 * k)
    c.add(batch(0, 4))
    assert (c.status().next_index, c.status().buffered) == (20, 0)

    manifest = c.finish(20, {})

    assert [i for i, _ in written(tmp_path)] == list(range(20))
    assert [(p["first"], p["last"]) for p in manifest["parts"]] == [(0, 9), (10, 19)]
    assert manifest["errors"] == 4 and [p["errors"] for p in manifest["parts"]] == [2, 2]


def test_retried_rows_are_written_once_cut_dropped_or_ignored(tmp_path: Path) -> None:
    c = collector(tmp_path)
    c.add(batch(0, 8, node="a"))
    c.add(batch(12, 4, node="a"))
    c.add(batch(12, 4, node="b"))  # the same unit again: ignored while buffered
    c.add(batch(16, 1, node="b"))
    c.add(batch(16, 4, node="a"))  # longer than the batch buffered at 16: replaces it
    c.add(batch(4, 8, node="b"))  # overlaps what was written: rows 4..7 cut off
    c.add(batch(0, 8, node="b"))  # wholly written already: dropped

    assert c.status().duplicates == 4 + 1 + 4 + 8
    c.finish(20, {})
    nodes = ["a"] * 8 + ["b"] * 4 + ["a"] * 8
    assert written(tmp_path) == list(enumerate(nodes))


def test_items_split_off_a_unit_are_dropped_once_the_whole_unit_is_written(
    tmp_path: Path,
) -> None:
    c = collector(tmp_path)
    c.add(batch(0, 4))
    for index in (6, 5):  # a failing unit 4..7 split into single items...
        c.add(batch(index, 1, node="single"))
    c.add(batch(4, 4))  # ...after its rows had come in after all
    status = c.status()
    assert status == CollectorStatus(
        epoch=c.epoch, committed_until=0, next_index=8, buffered=0, max_buffered=6, duplicates=2
    )
    c.finish(8, {})
    assert written(tmp_path) == [(i, "a") for i in range(8)]


def test_the_reorder_buffer_is_bounded_in_rows_not_batches(tmp_path: Path) -> None:
    c = collector(tmp_path, rows_per_part=100)
    c.add(batch(8, 8))
    c.add(batch(16, 8))
    assert (c.status().buffered, c.status().max_buffered) == (16, 16)
    c.add(batch(0, 8))  # counted as it arrives, then drained with the others
    assert (c.status().buffered, c.status().max_buffered) == (0, 24)
    assert c.status().next_index == 24


def test_a_restarted_collector_resumes_after_the_committed_rows(tmp_path: Path) -> None:
    first = collector(tmp_path, rows_per_part=4)
    first.add(batch(0, 6))  # 0..3 committed, 4..5 pending: lost with the instance
    second = collector(tmp_path, rows_per_part=4)
    assert second.status().committed_until == 4 and second.epoch != first.epoch
    assert second.add(batch(0, 8)) == (second.epoch, 8)  # redelivered; 0..3 cut off
    second.finish(8, {})
    assert [i for i, _ in written(tmp_path)] == list(range(8))


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([0, 2], r"consecutive indices 0\.\.1, got \[0, 2\]"),
        ([3, 2], r"consecutive indices 3\.\.4, got \[3, 2\]"),
        ([1, 1], "consecutive"),
        ([], "at least one row"),
    ],
)
def test_rows_that_are_not_one_contiguous_range_are_refused(
    indices: list[int], message: str
) -> None:
    rows = [error_row(i, "x.jpg", None, "e", "n") for i in indices]
    records = pa.RecordBatch.from_pylist(rows, schema=RESULT_SCHEMA)
    with pytest.raises(ValueError, match=message):
        ResultBatch(records)


def test_rows_in_another_schema_are_refused() -> None:
    with pytest.raises(ValueError, match="expected RESULT_SCHEMA"):
        ResultBatch(pa.RecordBatch.from_pylist([{"index": 0}]))


def test_a_batch_travels_as_an_arrow_message_and_arrives_checked() -> None:
    sent = batch(40, 64)
    received = pickle.loads(pickle.dumps(sent, protocol=5))
    assert (received.first, received.end) == (40, 104)
    assert received.records.equals(sent.records)
    assert received.errors() == ["broken"] * len(range(44, 104, 5))


def test_the_sink_refuses_rows_that_do_not_continue_the_written_ones(tmp_path: Path) -> None:
    from distinfer import OutputError
    from distinfer.sinks import ParquetSink

    sink = ParquetSink(tmp_path / "out", fingerprint="job", rows_per_part=4)
    sink.write(batch(0, 3).records)
    with pytest.raises(OutputError, match=r"rows 4\.\.5 do not continue .* at 3"):
        sink.write(batch(4, 2).records)
    sink.write(batch(3, 7).records)  # parts of 4 cut across batches: 0..3, 4..7; 8..9 pending
    assert sink.committed_until == 8 and sink.pending_rows == 2


def test_warming_up_for_rows_leaves_pandas_out_until_something_needs_it() -> None:
    pytest.importorskip("pandas")  # installed with ray[data]: the dev and bench extras
    code = """
import json, sys
import pyarrow as pa
from distinfer.distributed._work import CollectorStatus
from distinfer.distributed._rows import ResultBatch, error_row
from distinfer.distributed._startup import warm_up
warm_up()
rows = ResultBatch.from_rows([error_row(i, "a.jpg", None, "bad", "n") for i in range(3)])
loaded = "pandas" in sys.modules
frame = rows.records.to_pandas()  # pyarrow still imports it when it is needed
print(json.dumps([loaded, len(frame), list(frame["index"])]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, 3, [0, 1, 2]]


def test_a_new_collector_takes_its_first_batch_without_importing_anything(
    tmp_path: Path,
) -> None:
    # pyarrow's first conversion costs 0.3 s (it looks for pandas); the collector
    # does it in its constructor, while the actors start, not when the first rows come.
    message = tmp_path / "batch.pickle"
    message.write_bytes(pickle.dumps(batch(0, 8)))
    code = f"""
import json, pickle, sys
from distinfer.distributed._collector import OrderedCollector
folder = {str(tmp_path / "results")!r}
sink = OrderedCollector(folder, "job", rows_per_part=10, flush_interval_s=600)
before = set(sys.modules)
sink.add(pickle.loads(open({str(message)!r}, "rb").read()))
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
