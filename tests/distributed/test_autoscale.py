"""Autoscaler requests: one node more while the actors cannot take all the work and
much of it is left; never past ``max_nodes``; withdrawn at the end."""

from __future__ import annotations

from distinfer.distributed._autoscale import MIN_ETA_S, SCALE_UP_AFTER_S, Demand, ScaleRequests

Bundles = list[dict[str, float]]


class Run:
    """A run's side of the requests on simulated time: ``rate`` items/s, ``left`` items."""

    def __init__(self, *, left: int | None, rate: float = 10.0, max_nodes: int | None = None):
        self.now = 0.0
        self.rate = rate
        self.total_left = left
        self.asked: list[Bundles] = []
        self.scale = ScaleRequests(
            self.asked.append,
            max_nodes=max_nodes,
            remaining=lambda done: None if left is None else left - done,
            clock=lambda: self.now,
        )

    def polls(self, seconds: float, *, nodes: int = 1, saturated: bool = True) -> None:
        """The dispatch loop's polls of the nodes, every 2 s for ``seconds``."""
        end = self.now + seconds
        while self.now < end:
            self.now += 2.0
            processed = int(self.rate * self.now)
            self.scale.update(nodes, 8.0, Demand(processed, saturated))


def test_a_node_more_is_asked_for_once_the_actors_stay_saturated() -> None:
    run = Run(left=100_000)
    run.polls(SCALE_UP_AFTER_S - 2)
    assert run.asked == []
    run.polls(4)
    assert run.asked == [[{"CPU": 8.0}] * 2]  # totals: the node in use and one more
    run.polls(30)
    assert len(run.asked) == 1  # the same request is not made again
    run.polls(SCALE_UP_AFTER_S + 2, nodes=2)  # it joined, and the backlog still grows
    assert run.asked[-1] == [{"CPU": 8.0}] * 3


def test_no_node_is_asked_for_while_credits_are_free() -> None:
    run = Run(left=100_000)
    run.polls(60, saturated=False)
    assert run.asked == []


def test_no_node_is_asked_for_when_the_rest_is_done_before_it_could_boot() -> None:
    run = Run(left=int(10.0 * MIN_ETA_S * 0.5))
    run.polls(20)
    assert run.asked == []


def test_an_uncounted_backlog_counts_as_large() -> None:
    run = Run(left=None)
    run.polls(20)
    assert len(run.asked) == 1


def test_max_nodes_is_never_exceeded() -> None:
    run = Run(left=100_000, max_nodes=2)
    run.polls(20)
    run.polls(20, nodes=2)
    assert run.asked == [[{"CPU": 8.0}] * 2]


def test_the_request_is_withdrawn_at_the_end_only_if_one_was_made() -> None:
    idle = Run(left=100_000)
    idle.scale.release()
    assert idle.asked == []
    busy = Run(left=100_000)
    busy.polls(20)
    busy.scale.release()
    assert busy.asked[-1] == []
