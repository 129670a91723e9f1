"""Each agent's receive rate on the server: the agent's own RecentRate over 30 s, sampled
only when bytes arrive or the rate is read, so a pause must count as a pause; and the
tapped bytes_received counter that feeds it while still counting for Prometheus."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from photonic.rates import RECENT_RATE_WINDOW_S, eta_s
from photonic.server.metrics import ServerMetrics
from photonic.server.receive_rates import ReceiveRates


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _steady(rates: ReceiveRates, clock: Clock, agent: str, bytes_per_s: int,
            seconds: float, step_s: float = 0.1) -> None:
    """bytes_per_s arriving in chunks every step_s for seconds."""
    for _ in range(round(seconds / step_s)):
        rates.received(agent, bytes_per_s * step_s)
        clock.now += step_s


def test_an_agent_never_heard_from_has_rate_zero() -> None:
    assert ReceiveRates().rate("laptop") == 0.0


def test_a_steady_stream_reads_its_rate() -> None:
    clock = Clock()
    rates = ReceiveRates(clock_s=clock)
    _steady(rates, clock, "laptop", 1_000_000, 60)
    assert abs(rates.rate("laptop") - 1_000_000) < 50_000


def test_the_rate_covers_the_last_window_only() -> None:
    """A minute at 2 MB/s then a minute at 500 kB/s reads 500 kB/s, not an average."""
    clock = Clock()
    rates = ReceiveRates(clock_s=clock)
    _steady(rates, clock, "laptop", 2_000_000, 60)
    _steady(rates, clock, "laptop", 500_000, 60)
    assert abs(rates.rate("laptop") - 500_000) < 50_000


def test_a_pause_falls_to_zero_and_a_restart_is_not_averaged_with_the_pause_start() -> None:
    """Nothing arrives for five minutes: the rate is 0. Then 10 s at 3 MB/s: the window's
    30 s hold 30 MB, so 1 MB/s; not 30 MB over the five minutes since the last sample."""
    clock = Clock()
    rates = ReceiveRates(clock_s=clock)
    _steady(rates, clock, "laptop", 1_000_000, 20)
    clock.now += 300
    assert rates.rate("laptop") == 0.0
    clock.now += 300  # not even read meanwhile
    _steady(rates, clock, "laptop", 3_000_000, 10)
    assert abs(rates.rate("laptop") - 1_000_000) < 120_000


def test_reading_often_does_not_add_samples_or_change_the_answer() -> None:
    clock = Clock()
    rates = ReceiveRates(clock_s=clock)
    _steady(rates, clock, "laptop", 1_000_000, 40)
    first = rates.rate("laptop")
    assert all(rates.rate("laptop") == first for _ in range(1000))


def test_agents_are_apart() -> None:
    clock = Clock()
    rates = ReceiveRates(clock_s=clock)
    for _ in range(400):
        rates.received("laptop", 100_000)
        rates.received("desktop", 10_000)
        clock.now += 0.1
    assert abs(rates.rate("laptop") - 1_000_000) < 50_000
    assert abs(rates.rate("desktop") - 100_000) < 5_000


def test_the_tapped_counter_still_counts_for_prometheus_and_feeds_the_rates() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry)
    clock = Clock()
    rates = ReceiveRates(clock_s=clock)
    metrics.bytes_received.tap(rates.received)
    for _ in range(20):
        metrics.bytes_received.labels("laptop").inc(50_000)
        clock.now += 0.5
    assert registry.get_sample_value("photonic_server_bytes_received_total",
                                     {"agent_id": "laptop"}) == 1_000_000
    assert abs(rates.rate("laptop") - 100_000) < 10_000


def test_time_left_is_unknown_without_a_rate_or_anything_pending() -> None:
    assert eta_s(1_000_000, 250_000.0) == 4.0
    assert eta_s(1_000_000, 0.0) is None
    assert eta_s(0, 250_000.0) is None
    assert RECENT_RATE_WINDOW_S == 30.0
