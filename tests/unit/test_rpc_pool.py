"""The gateway's RPC proxies: kept between requests, one per request, dropped when broken.

The broker is outside the unit: ClusterRpcProxy is replaced by a stand-in that counts
the connections it would open and close.
"""

from __future__ import annotations

import threading

import pytest
from kombu.exceptions import OperationalError

from gateway import rpc
from overdracht.contracts import InvalidInput, Unavailable


class FakeCluster:
    started: list[FakeCluster] = []
    stopped: list[FakeCluster] = []

    def __init__(self, *args, **kwargs) -> None:
        self.proxy = object()

    def start(self):
        FakeCluster.started.append(self)
        return self.proxy

    def stop(self) -> None:
        FakeCluster.stopped.append(self)


@pytest.fixture
def pool(monkeypatch) -> rpc.RpcPool:
    FakeCluster.started, FakeCluster.stopped = [], []
    monkeypatch.setattr(rpc, "ClusterRpcProxy", FakeCluster)
    return rpc.RpcPool({}, size=2, timeout=5)


def test_a_call_made_inside_another_uses_the_proxy_the_request_holds(pool):
    with pool.cluster() as outer:
        with pool.cluster() as inner:  # principal() while working out the arguments
            assert inner is outer
        with pool.cluster() as again:
            assert again is outer
    assert len(FakeCluster.started) == 1
    assert FakeCluster.stopped == []


def test_the_next_request_reuses_the_proxy_instead_of_connecting_again(pool):
    with pool.cluster() as first:
        assert first is FakeCluster.started[0].proxy
    with pool.cluster() as second:
        assert second is first
    assert len(FakeCluster.started) == 1


def test_requests_on_other_threads_get_proxies_of_their_own(pool):
    inside, leave = threading.Barrier(2), threading.Event()
    seen: list[object] = []

    def request() -> None:
        with pool.cluster() as proxy:
            seen.append(proxy)
            inside.wait()
            leave.wait()

    other = threading.Thread(target=request)
    other.start()
    with pool.cluster() as mine:
        inside.wait()
        leave.set()
    other.join()
    assert seen[0] is not mine
    assert len(FakeCluster.started) == 2


def test_more_proxies_than_the_pool_keeps_are_closed_when_returned(pool):
    barrier = threading.Barrier(3)

    def request() -> None:
        with pool.cluster():
            barrier.wait()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    with pool.cluster():
        barrier.wait()
    for thread in threads:
        thread.join()
    assert len(FakeCluster.started) == 3
    assert len(FakeCluster.stopped) == 1  # the pool keeps 2


def test_a_transport_failure_in_an_inner_call_drops_the_proxy_even_if_it_is_caught(pool):
    """record_refusal swallows the inner call's failure and the request goes on: the
    broken connection must still not go back to the pool."""
    with pool.cluster() as broken:
        with pytest.raises(Unavailable):
            with pool.cluster():
                raise OperationalError("connection reset")
    assert FakeCluster.stopped == [FakeCluster.started[0]]
    with pool.cluster() as fresh:
        assert fresh is not broken
    assert len(FakeCluster.started) == 2


def test_an_error_the_service_answered_keeps_the_proxy(pool):
    with pytest.raises(InvalidInput):
        with pool.cluster():
            with pool.cluster():
                raise InvalidInput("Ongeldig BSN.", "invalid_bsn")
    with pool.cluster() as again:
        assert again is FakeCluster.started[0].proxy
    assert len(FakeCluster.started) == 1
    assert FakeCluster.stopped == []


def test_a_broker_that_is_away_when_connecting_is_unavailable_and_nothing_is_kept(
    pool, monkeypatch
):
    def refuse(self):
        raise OperationalError("connection refused")

    monkeypatch.setattr(FakeCluster, "start", refuse)
    with pytest.raises(Unavailable), pool.cluster():
        pytest.fail("a proxy was lent without a connection")
    assert len(FakeCluster.stopped) == 1
