"""The network model's transfer scheduler: hand-computed cases, the incremental API, bad input, and
a comparison with a pure-Python reference that handles one event at a time.

Hand-computed cases use rates and sizes whose quotients are exact in binary, so their times are
compared with ``==``. The random comparison with the reference uses a relative tolerance of 1e-9 of
the case's time scale, not equality: the reference subtracts ``rate * dt`` from every active
transfer's remaining bytes at every event, while the Rust scheduler only accounts a transfer's bytes
when its rate changes, so the two round differently (about 1e-16 per operation); events that tie in
exact arithmetic may then be a few ulps apart and be handled in either order, which moves times by
as little (rates are continuous in the event times)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from mosaic_fast.errors import MosaicTypeError, MosaicValueError
from mosaic_fast.network.scheduler import (
    DEFAULT_HEADER_BYTES,
    Delivery,
    NetworkScheduler,
    message_bytes,
    schedule,
)
from mosaic_fast.network.scheduler_state import STATE_KEYS


def times(up, down, latency, src, dst, nbytes, ready=None, fifo=False, sharing="min-share"):
    """The batch schedule as a (start, last_byte, delivered) tuple of lists (min-share unless
    ``sharing`` says otherwise: most hand-computed cases below were written for it, and those
    without a share left unused give the same times under max-min)."""
    out = schedule(
        up, down, latency, src, dst, nbytes, ready, fifo_per_sender=fifo, bandwidth_sharing=sharing
    )
    return out.start.tolist(), out.last_byte.tolist(), out.delivered.tolist()


# --- hand-computed cases -------------------------------------------------------------------------


def test_one_transfer_takes_bytes_over_rate_plus_latency() -> None:
    start, last, delivered = times([100, 100], [1000, 1000], 0.25, [0], [1], [300], [1.0])
    assert (start, last, delivered) == ([1.0], [4.0], [4.25])


def test_two_transfers_sharing_an_uplink_take_twice_as_long() -> None:
    _, alone, _ = times([100] * 3, [1000] * 3, 0.0, [0], [1], [100])
    _, shared, _ = times([100] * 3, [1000] * 3, 0.0, [0, 0], [1, 2], [100, 100])
    assert alone == [1.0]
    assert shared == [2.0, 2.0]


def test_two_senders_share_a_downlink() -> None:
    _, last, _ = times([1000] * 3, [100] * 3, 0.0, [0, 1], [2, 2], [100, 100])
    assert last == [2.0, 2.0]


def test_max_min_hands_an_unused_share_on() -> None:
    # The case above under max-min: the slow receiver holds its transfer at 20, so the fast one
    # gets the other 80 of node 0's uplink: 100 / 80 = 1.25; the slow one still ends at 5.
    _, last, _ = times(
        [100] * 3, [1000, 20, 1000], 0.0, [0, 0], [1, 2], [100, 100], sharing="max-min"
    )
    assert last == [5.0, 1.25]


def test_max_min_a_message_into_a_shared_downlink() -> None:
    # Node 3's downlink (100 B/s) is shared by three senders (100 B/s uplinks); sender 0 also sends
    # 100 B to node 4. Min-share gives that message min(100 / 2, inf) = 50 B/s: 2.0 s. Max-min gives
    # each transfer into node 3 100 / 3 and the message the rest of sender 0's uplink, 200 / 3 B/s,
    # until its end at 1.5 s.
    args = ([100.0, 100.0, 100.0, 1e9, 1e9], [1e9, 1e9, 1e9, 100.0, 1e9], 0.0)
    flows = ([0, 0, 1, 2], [4, 3, 3, 3], [100.0, 1e4, 1e4, 1e4])
    assert times(*args, *flows)[1][0] == 2.0
    assert times(*args, *flows, sharing="max-min")[1][0] == pytest.approx(1.5, rel=1e-12)


def test_fifo_per_pair_sends_to_different_peers_at_once() -> None:
    out = schedule(
        [100.0, 1e9, 1e9],
        [1e9] * 3,
        0.0,
        [0, 0, 0],
        [1, 1, 2],
        [100.0, 100.0, 100.0],
        fifo_per_pair=True,
    )
    # 0 -> 1 and 0 -> 2 share the uplink (50 each) until 2; the second 0 -> 1 waits, then goes
    # alone at 100: ends at 3.
    assert out.last_byte.tolist() == [2.0, 3.0, 2.0]
    with pytest.raises(MosaicValueError, match="exclusive"):
        schedule(
            [1.0] * 2, [1.0] * 2, 0.0, [0], [1], [1.0], fifo_per_sender=True, fifo_per_pair=True
        )
    with pytest.raises(MosaicValueError, match="bandwidth_sharing='fair'"):
        schedule([1.0] * 2, [1.0] * 2, 0.0, [0], [1], [1.0], bandwidth_sharing="fair")


def test_cancel_unsent_drops_the_transfer_in_progress() -> None:
    net = NetworkScheduler([100.0, 100.0], [1e9, 1e9], 0.5, fifo_per_pair=True)
    net.submit_many([0, 0, 1], [1, 1, 0], [300.0, 100.0, 50.0])
    delivered = net.next_delivery(until=1.0)  # 1 -> 0 (50 B) left at 0.5, delivered at 1.0
    assert delivered is not None and delivered.id == 2
    assert net.next_delivery(until=1.0) is None
    ids, sent = net.cancel_unsent(0)
    assert ids.tolist() == [0, 1] and sent.tolist() == [100.0, 0.0]
    assert (net.n_queued, net.n_active, net.n_in_flight) == (0, 0, 0)


def test_a_slow_receiver_limits_a_fast_sender() -> None:
    _, last, _ = times([1000, 1000], [1000, 10], 0.0, [0], [1], [100])
    assert last == [10.0]


def test_a_finished_transfer_frees_bandwidth_for_the_other() -> None:
    # Both at 50 B/s until t=2, when the 100-byte one is done and the other has 200 bytes left,
    # which go at the full 100 B/s: done at 4.
    _, last, _ = times([100] * 3, [1000] * 3, 0.0, [0, 0], [1, 2], [100, 300])
    assert last == [2.0, 4.0]


def test_an_unused_share_is_not_handed_to_the_other_transfer() -> None:
    # Node 0 (100 B/s up) sends to a 20 B/s receiver and a fast one: min(50, 20) = 20 and
    # min(50, 1000) = 50 (not 80). The fast one ends at 2; the slow one stays at 20 B/s: 100/20 = 5.
    _, last, _ = times([100] * 3, [1000, 20, 1000], 0.0, [0, 0], [1, 2], [100, 100])
    assert last == [5.0, 2.0]


def test_a_later_transfer_slows_the_running_one() -> None:
    # 0 -> 1 runs alone at 100 B/s for 1 s (100 of 300 bytes); from t=1 both share at 50 B/s.
    # The 50-byte one ends at 2 (the first has 150 left), then the first goes at 100: ends at 3.5.
    _, last, _ = times([100] * 3, [1000] * 3, 0.0, [0, 0], [1, 2], [300, 50], [0.0, 1.0])
    assert last == [3.5, 2.0]


def test_fifo_per_sender_serialises_in_submission_order() -> None:
    args = ([100] * 4, [1000] * 4, 0.5, [0, 0, 0], [1, 2, 3], [100, 100, 100])
    start, last, delivered = times(*args, fifo=True)
    assert start == [0.0, 1.0, 2.0]
    assert last == [1.0, 2.0, 3.0]
    assert delivered == [1.5, 2.5, 3.5]
    _, concurrent, _ = times(*args, fifo=False)
    assert concurrent == [3.0, 3.0, 3.0]


def test_fifo_head_not_ready_holds_back_the_queue() -> None:
    # Submission order rules: transfer 0 is ready at 2, so transfer 1 (ready at 0) waits for it.
    start, last, _ = times([100] * 2, [1000] * 2, 0.0, [0, 0], [1, 1], [100, 100], [2.0, 0.0], True)
    assert start == [2.0, 3.0]
    assert last == [3.0, 4.0]


def test_zero_latency_delivers_with_the_last_byte() -> None:
    _, last, delivered = times([100] * 3, [100] * 3, 0.0, [0, 1, 2], [1, 2, 0], [100, 250, 30])
    assert delivered == last


def test_per_node_and_per_link_latency() -> None:
    per_node = [0.5, 0.25, 0.125]
    _, last, delivered = times([100] * 3, [1000] * 3, per_node, [0, 2], [1, 1], [100, 100])
    assert [d - t for d, t in zip(delivered, last, strict=True)] == [0.75, 0.375]
    matrix = np.arange(9, dtype=np.float64).reshape(3, 3)
    _, last, delivered = times([100] * 3, [1000] * 3, matrix, [0, 2], [1, 1], [100, 100])
    assert [d - t for d, t in zip(delivered, last, strict=True)] == [1.0, 7.0]


def test_zero_byte_transfers_take_no_bandwidth() -> None:
    start, last, _ = times([100] * 3, [1000] * 3, 0.0, [0, 0, 0], [1, 2, 1], [0, 100, 0], fifo=True)
    assert start == [0.0, 0.0, 1.0]
    assert last == [0.0, 1.0, 1.0]


def test_message_bytes_counts_float32_payload_and_header() -> None:
    assert message_bytes(1000) == 4000 + DEFAULT_HEADER_BYTES
    assert message_bytes(10, header_bytes=0) == 40
    assert message_bytes(np.array([1, 2])).tolist() == [4 + 64, 8 + 64]
    with pytest.raises(MosaicValueError, match="n_params=-1"):
        message_bytes(-1)


# --- the incremental API -------------------------------------------------------------------------


def test_ties_come_out_by_id() -> None:
    net = NetworkScheduler([100] * 3, [1000] * 3, 0.5)
    # Identical transfers from different senders: equal delivery times, handed out by id.
    ids = [net.submit(2, 0, 100.0), net.submit(0, 1, 100.0), net.submit(1, 2, 100.0)]
    assert ids == [0, 1, 2]
    order = [net.next_delivery().id for _ in range(3)]
    assert order == [0, 1, 2]
    assert net.next_delivery() is None
    assert net.now == 1.5


def test_next_delivery_moves_the_clock_to_each_delivery_or_to_until() -> None:
    net = NetworkScheduler([100, 100], [1000, 1000], 1.0)
    net.submit(0, 1, 100.0)
    net.submit(1, 0, 300.0, ready_time=0.5)
    assert net.next_delivery(until=1.5) is None
    assert net.now == 1.5
    first = net.next_delivery(until=10.0)
    assert (first.id, first.last_byte, first.delivered, net.now) == (0, 1.0, 2.0, 2.0)
    # What a delivery triggers can be submitted at its time, before later events are handled.
    reply = net.submit(1, 0, 100.0)
    rest = net.run()
    assert rest.id.tolist() == [reply, 1]
    # Transfer 1 sent 150 of its 300 bytes alone from 0.5 to 2; then both leave node 1 at 50 B/s:
    # the 100-byte reply ends at 4, when transfer 1 has 50 bytes left, sent at 100 B/s by 4.5.
    assert rest.last_byte.tolist() == [4.0, 4.5]
    assert rest.delivered.tolist() == [5.0, 5.5]
    assert (net.n_queued, net.n_active, net.n_in_flight) == (0, 0, 0)


def test_run_until_returns_deliveries_up_to_the_time() -> None:
    net = NetworkScheduler([100] * 3, [1000] * 3, 0.0)
    net.submit_many([0, 1, 2], [1, 2, 0], [100, 200, 300])
    got = net.run_until(2.0)
    assert got.id.tolist() == [0, 1]
    assert got.delivered.tolist() == [1.0, 2.0]
    assert net.now == 2.0
    assert net.run_until(2.5).id.tolist() == []
    assert net.run().delivered.tolist() == [3.0]


def test_cancel_queued_drops_only_unstarted_transfers() -> None:
    net = NetworkScheduler([100] * 3, [1000] * 3, 0.5, fifo_per_sender=True)
    net.submit_many([0, 0, 0, 1], [1, 2, 1, 2], 100.0)
    first = net.next_delivery()
    assert (first.id, first.delivered) == (0, 1.5)
    assert net.queued_from(0) == 1  # transfer 1 is sending, transfer 2 waits
    assert net.cancel_queued(0).tolist() == [2]
    assert net.cancel_queued(0).tolist() == []
    assert net.queued_from(0) == 0
    rest = net.run()
    assert rest.id.tolist() == [3, 1]
    assert rest.last_byte.tolist() == [1.0, 2.0]
    # The sender takes new transfers after a cancel.
    again = net.submit(0, 1, 100.0)
    assert net.run().id.tolist() == [again]


def test_cancel_queued_without_fifo_drops_future_transfers() -> None:
    net = NetworkScheduler([100] * 2, [1000] * 2, 0.0)
    net.submit_many([0, 0, 0], [1, 1, 1], 100.0, [0.0, 5.0, 6.0])
    assert net.next_delivery().id == 0
    assert net.cancel_queued(0).tolist() == [1, 2]
    assert net.run().id.tolist() == []


def test_submitting_just_in_time_matches_the_batch_exactly() -> None:
    rng = np.random.default_rng(7)
    n, m = 6, 60
    up, down = rng.uniform(10, 100, n), rng.uniform(10, 100, n)
    latency = rng.uniform(0, 0.5, n)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    nbytes = rng.uniform(0, 500, m)
    ready = np.sort(rng.choice(np.arange(20) * 0.5, m))
    for fifo in (False, True):
        batch = schedule(up, down, latency, src, dst, nbytes, ready, fifo_per_sender=fifo)
        net = NetworkScheduler(up, down, latency, fifo_per_sender=fifo)
        delivered = []
        for t in np.unique(ready):
            delivered.append(net.run_until(t))
            rows = np.flatnonzero(ready == t)
            assert net.submit_many(src[rows], dst[rows], nbytes[rows]).tolist() == rows.tolist()
        delivered.append(net.run())
        ids = np.concatenate([d.id for d in delivered])
        assert sorted(ids.tolist()) == list(range(m))
        for field in ("start", "last_byte", "delivered"):
            got = np.empty(m)
            got[ids] = np.concatenate([getattr(d, field) for d in delivered])
            assert np.array_equal(got, getattr(batch, field)), (fifo, field)


def test_identical_runs_are_bit_identical() -> None:
    rng = np.random.default_rng(3)
    args = (rng.uniform(1, 9, 50), rng.uniform(1, 9, 50), 0.01)
    src, dst = rng.integers(0, 50, 2000), rng.integers(0, 50, 2000)
    nbytes, ready = rng.uniform(0, 100, 2000), rng.uniform(0, 100, 2000)
    first = schedule(*args, src, dst, nbytes, ready)
    second = schedule(*args, src, dst, nbytes, ready)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert np.all(first.start >= ready) and np.all(first.last_byte >= first.start)


# --- bad input: one line, the bad value named ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"uplink": [1.0, 0.0]}, r"uplink\[1\]=0 must be a positive rate"),
        ({"uplink": [1.0, -float("inf")]}, r"uplink\[1\]=-inf"),
        ({"downlink": [1.0, -2.0]}, r"downlink\[1\]=-2"),
        ({"downlink": [1.0, float("nan")]}, r"downlink\[1\]=NaN"),
        ({"downlink": [1.0]}, "downlink has 1 values but uplink has 2"),
        ({"uplink": [], "downlink": []}, "uplink is empty"),
        ({"latency": -0.5}, "latency=-0.5 must be finite and non-negative"),
        ({"latency": [0.1, float("nan")]}, r"latency\[1\]=NaN"),
        ({"latency": [0.1, 0.2, 0.3]}, r"shape \(2,\) or \(2, 2\), got shape \[3\]"),
        ({"latency": [[0.0, -1.0], [0.0, 0.0]]}, r"latency\[0, 1\]=-1"),
    ],
)
def test_bad_network_is_a_one_line_value_error(kwargs: dict, match: str) -> None:
    args = {"uplink": [1.0, 1.0], "downlink": [1.0, 1.0], "latency": 0.0} | kwargs
    with pytest.raises(MosaicValueError, match=match) as info:
        NetworkScheduler(**args)
    assert "\n" not in str(info.value)


def test_bad_transfers_are_one_line_value_errors() -> None:
    net = NetworkScheduler([1.0, 1.0], [1.0, 1.0], 0.0)
    cases = [
        (lambda: net.submit(0, 2, 1.0), r"dst=2 is not a node id \(the network has nodes 0..2\)"),
        (lambda: net.submit(-1, 0, 1.0), "src=-1 is not a node id"),
        (lambda: net.submit(0, 1, -3.0), "bytes=-3 must be finite, non-negative"),
        (lambda: net.submit(0, 1, float("nan")), "bytes=NaN"),
        (lambda: net.submit(0, 1, 1.0, float("inf")), "ready_time=inf must be finite"),
        (lambda: net.submit_many([0, 1], [1, 5], 1.0), "transfer 1: dst=5 is not a node id"),
        (lambda: net.submit_many([0, 1], [1], 1.0), "dst has 1 values but src has 2"),
        (lambda: net.submit_many([0], [1], [1.0, 2.0]), "bytes has 2 values, expected 1"),
        (lambda: net.cancel_queued(3), "src=3 is not a node id"),
        (lambda: net.run_until(float("inf")), "until=inf must be a finite time"),
    ]
    for call, match in cases:
        with pytest.raises(MosaicValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert net.next_id == 0  # nothing was queued by the failed calls
    net.run_until(5.0)
    with pytest.raises(
        MosaicValueError, match="ready_time=4 is before the scheduler's clock now=5"
    ):
        net.submit(0, 1, 1.0, 4.0)
    with pytest.raises(MosaicValueError, match="transfer 0: ready_time=1"):
        net.submit_many([0], [1], 1.0, [1.0])
    with pytest.raises(MosaicValueError, match="until=4.5 is before the scheduler's clock"):
        net.next_delivery(until=4.5)
    with pytest.raises(MosaicValueError, match="ready_time=-1 is before"):
        schedule([1.0], [1.0], 0.0, [0], [0], [1.0], [-1.0])


def test_wrong_types_are_type_errors() -> None:
    net = NetworkScheduler([1.0, 1.0], [1.0, 1.0])
    with pytest.raises(MosaicTypeError, match="src=0.5 must be an integer"):
        net.submit(0.5, 1, 1.0)
    with pytest.raises(MosaicTypeError, match="src must be integers, got dtype float64"):
        net.submit_many([0.0], [1], 1.0)
    with pytest.raises(MosaicTypeError, match="bytes='a' must be a number"):
        net.submit(0, 1, "a")
    with pytest.raises(MosaicTypeError, match="uplink must be an array of numbers"):
        NetworkScheduler(["fast"], [1.0])
    with pytest.raises(MosaicTypeError, match="latency must be a number or an array"):
        NetworkScheduler([1.0], [1.0], latency="slow")


# --- unlimited links (rate inf) -------------------------------------------------------------------


def test_a_transfer_unlimited_at_both_ends_sends_its_last_byte_as_it_starts() -> None:
    inf = float("inf")
    start, last, delivered = times([inf] * 2, [inf] * 2, 0.25, [0, 0], [1, 1], [300, 0], [1.0, 2.0])
    assert (start, last, delivered) == ([1.0, 2.0], [1.0, 2.0], [1.25, 2.25])
    # With FIFO the sender's queue drains at once too.
    start, last, _ = times([inf] * 2, [inf] * 2, 0.0, [0, 0, 0], [1, 1, 1], 1e12, fifo=True)
    assert start == last == [0.0, 0.0, 0.0]


def test_an_unlimited_end_leaves_the_other_ends_share_in_charge() -> None:
    inf = float("inf")
    # Two unlimited senders into a 100 B/s downlink: 50 B/s each until the 100-byte one is done.
    _, last, _ = times([inf] * 3, [inf, inf, 100], 0.0, [0, 1], [2, 2], [100, 300])
    assert last == [2.0, 4.0]
    # An unlimited receiver: the sender's uplink (100 B/s) is shared by its two transfers.
    _, last, _ = times([100, inf, inf], [inf] * 3, 0.0, [0, 0], [1, 2], [100, 300])
    assert last == [2.0, 4.0]


def test_unlimited_links_match_the_reference_and_a_huge_finite_rate() -> None:
    rng = np.random.default_rng(99)
    for case_index in range(60):
        case = random_case(rng)
        for rates in (case["up"], case["down"]):
            rates[rng.random(len(rates)) < 0.4] = np.inf
        fifo = (False, True, "pair")[case_index % 3]
        sharing = ("min-share", "max-min")[(case_index // 3) % 2]
        columns = ("src", "dst", "nbytes", "ready")
        got = schedule(
            case["up"],
            case["down"],
            case["latency"],
            *(case[c] for c in columns),
            **queue_options(fifo, sharing),
        )
        expected = reference_schedule(
            case["up"],
            case["down"],
            latency_of(case["latency"]),
            *(case[c].tolist() for c in columns),
            fifo,
            sharing,
        )
        huge = schedule(
            np.minimum(case["up"], 1e300),
            np.minimum(case["down"], 1e300),
            case["latency"],
            *(case[c] for c in columns),
            **queue_options(fifo, sharing),
        )
        scale = max(expected[2])
        for name, a, b, c in zip(
            ("start", "last_byte", "delivered"), got, expected, huge, strict=True
        ):
            message = f"case {case_index}: {name}"
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * scale, err_msg=message)
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12 * scale, err_msg=message)


def test_unlimited_links_round_trip_through_a_checkpoint() -> None:
    inf = float("inf")
    net = NetworkScheduler([inf, 50.0, inf], [inf, inf, 40.0], 0.5, fifo_per_sender=True)
    net.submit_many([0, 0, 1, 1, 2], [1, 2, 0, 2, 0], [100.0, 80.0, 60.0, 0.0, 30.0])
    assert net.next_delivery().id == 0
    state = saved_and_loaded(net.state_dict())
    assert state["uplink"][0].item() == inf
    copy = NetworkScheduler.from_state_dict(state)
    assert np.array_equal(continuation(copy), continuation(net))


# --- the pure-Python reference, one event at a time ----------------------------------------------


def max_min_rates(up, down, src, dst, active):
    """Max-min fair rates of the ``active`` transfers by progressive filling, from scratch: raise
    every unfrozen rate together until a link is full, freeze its transfers, repeat."""
    rate: dict[int, float] = {}
    cap = {("up", s): float(up[s]) for s in set(src)} | {
        ("down", d): float(down[d]) for d in set(dst)
    }
    while len(rate) < len(active):
        free = [i for i in active if i not in rate]
        users: dict = {}
        for i in free:
            users.setdefault(("up", src[i]), []).append(i)
            users.setdefault(("down", dst[i]), []).append(i)
        level = min(cap[link] / len(ids) for link, ids in users.items())
        full = [link for link, ids in users.items() if cap[link] / len(ids) == level]
        for link in full:
            for i in users[link]:
                if i in rate:
                    continue
                rate[i] = level
                for end in (("up", src[i]), ("down", dst[i])):
                    if level < math.inf:
                        cap[end] = max(cap[end] - level, 0.0)
    return rate


def reference_schedule(  # noqa: C901, PLR0912 (the oracle: one obvious loop)
    up, down, latency, src, dst, nbytes, ready, fifo, sharing="min-share"
):
    """Start, last-byte and delivery times by the semantics of mosaic_fast.network.scheduler, advancing
    from one event to the next and recomputing every rate from scratch each time. ``fifo``: False,
    True (per sender) or ``"pair"``."""
    m = len(src)
    start, last = [math.nan] * m, [math.nan] * m
    remaining = [float(b) for b in nbytes]
    queued = list(range(m))  # submission order
    active: list[int] = []
    t = 0.0
    while queued or active:
        started = True
        while started:  # start what may start now (zero-byte transfers end at once)
            started = False
            for i in list(queued):
                if ready[i] > t:
                    continue
                if fifo == "pair":
                    same = [j for j in queued if (src[j], dst[j]) == (src[i], dst[i])]
                    busy = any((src[j], dst[j]) == (src[i], dst[i]) for j in active)
                    if min(same) != i or busy:
                        continue
                elif fifo:
                    head = min(j for j in queued if src[j] == src[i])
                    if head != i or any(src[j] == src[i] for j in active):
                        continue
                queued.remove(i)
                start[i] = t
                if remaining[i] == 0.0:
                    last[i] = t
                else:
                    active.append(i)
                started = True
        if not (queued or active):
            break
        out_count = {s: sum(src[j] == s for j in active) for s in set(src)}
        in_count = {d: sum(dst[j] == d for j in active) for d in set(dst)}
        if sharing == "max-min":
            rate = max_min_rates(up, down, src, dst, active)
        else:
            rate = {
                i: min(up[src[i]] / out_count[src[i]], down[dst[i]] / in_count[dst[i]])
                for i in active
            }
        to_finish = {i: remaining[i] / rate[i] for i in active}
        next_ready = min((ready[i] - t for i in queued if ready[i] > t), default=math.inf)
        step = min(min(to_finish.values(), default=math.inf), next_ready)
        assert step < math.inf
        for i in list(active):
            if to_finish[i] == step:
                remaining[i] = 0.0
                last[i] = t + step
                active.remove(i)
            else:
                remaining[i] -= rate[i] * step
        t += step
    delivered = [last[i] + latency(src[i], dst[i]) for i in range(m)]
    return start, last, delivered


def random_case(rng: np.random.Generator) -> dict:
    n = int(rng.integers(2, 6))
    m = int(rng.integers(1, 25))
    kind = rng.integers(3)
    if kind == 0:
        latency = float(rng.choice([0.0, 0.3]))
    elif kind == 1:
        latency = rng.uniform(0, 1, n)
    else:
        latency = rng.uniform(0, 1, (n, n))
    return {
        "up": rng.choice([10.0, 25.0, 40.0, 100.0], n) * rng.uniform(0.5, 2.0, n),
        "down": rng.choice([10.0, 25.0, 40.0, 100.0], n) * rng.uniform(0.5, 2.0, n),
        "latency": latency,
        "src": rng.integers(0, n, m),
        "dst": rng.integers(0, n, m),
        # Some zero-byte transfers and ready times that tie.
        "nbytes": np.where(rng.random(m) < 0.1, 0.0, rng.uniform(1, 500, m)),
        "ready": rng.choice(np.arange(12) * 0.5, m),
    }


def latency_of(latency):
    if np.ndim(latency) == 0:
        return lambda s, d: float(latency)
    if np.ndim(latency) == 1:
        return lambda s, d: float(latency[s] + latency[d])
    return lambda s, d: float(latency[s, d])


def queue_options(fifo, sharing):
    """``schedule``'s keyword arguments for the reference's ``fifo`` and ``sharing``."""
    return {
        "fifo_per_sender": fifo is True,
        "fifo_per_pair": fifo == "pair",
        "bandwidth_sharing": sharing,
    }


@pytest.mark.parametrize("sharing", ["min-share", "max-min"])
@pytest.mark.parametrize("fifo", [False, True, "pair"])
def test_matches_the_one_event_at_a_time_reference(fifo, sharing: str) -> None:
    rng = np.random.default_rng(2024 + (fifo is True) + 2 * (fifo == "pair"))
    for case_index in range(150):
        case = random_case(rng)
        got = schedule(
            case["up"],
            case["down"],
            case["latency"],
            case["src"],
            case["dst"],
            case["nbytes"],
            case["ready"],
            **queue_options(fifo, sharing),
        )
        expected = reference_schedule(
            case["up"],
            case["down"],
            latency_of(case["latency"]),
            case["src"].tolist(),
            case["dst"].tolist(),
            case["nbytes"].tolist(),
            case["ready"].tolist(),
            fifo,
            sharing,
        )
        scale = max(expected[2])
        for name, a, b in zip(("start", "last_byte", "delivered"), got, expected, strict=True):
            np.testing.assert_allclose(
                a, b, rtol=1e-9, atol=1e-9 * scale, err_msg=f"case {case_index}: {name}"
            )


@pytest.mark.parametrize("sharing", ["min-share", "max-min"])
def test_a_crowded_node_matches_the_reference(sharing: str) -> None:
    # 150 transfers from node 0 overlapping in time: each start and end changes every rate at the
    # node, leaving thousands of superseded completion times behind.
    rng = np.random.default_rng(11)
    m = 150
    src, dst = [0] * m, rng.integers(1, 4, m).tolist()
    nbytes, ready = rng.uniform(1, 100, m).tolist(), np.sort(rng.uniform(0, 5, m)).tolist()
    up, down = [100.0, 50.0, 50.0, 50.0], [100.0, 30.0, 2000.0, 45.0]
    got = schedule(up, down, 0.1, src, dst, nbytes, ready, bandwidth_sharing=sharing)
    expected = reference_schedule(
        up, down, latency_of(0.1), src, dst, nbytes, ready, False, sharing
    )
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(expected[2]))


# --- checkpoints: state_dict / from_state_dict ---------------------------------------------------

LATENCIES = {
    "scalar": 0.3,
    "per-node": np.array([0.1, 0.2, 0.05, 0.3, 0.15]),
    "per-pair": np.arange(25, dtype=np.float64).reshape(5, 5) * 0.02,
}


def mid_run(fifo: bool, latency) -> NetworkScheduler:
    """A scheduler stopped mid-run with transfers queued, sending and in flight; node 4 stays idle
    until its one transfer is due (with FIFO: a queue head whose start is due)."""
    rng = np.random.default_rng(5)
    up, down = [100.0, 40.0, 60.0, 75.0, 20.0], [80.0, 30.0, 90.0, 55.0, 20.0]
    net = NetworkScheduler(up, down, latency, fifo_per_sender=fifo)
    m = 60
    nbytes = np.where(rng.random(m) < 0.1, 0.0, rng.uniform(1, 300, m))
    ready = np.sort(rng.choice(np.arange(16) * 0.25, m))
    net.submit_many(rng.integers(0, 4, m), rng.integers(0, 5, m), nbytes, ready)
    net.submit(4, 0, 50.0, ready_time=3.5)
    until = 1.0
    for _ in range(200):  # hand out deliveries until all three kinds of transfer are there
        if net.n_queued and net.n_active and net.n_in_flight:
            return net
        if net.next_delivery(until=until) is None:
            until += 0.25
    raise AssertionError("no mid-run state with transfers queued, sending and in flight")


def continuation(net: NetworkScheduler) -> np.ndarray:
    """Every delivery from here on (as bit patterns), reacting to them as an event loop would:
    replies are submitted on delivery and node 0's queue is cancelled once."""
    out = []
    while (delivery := net.next_delivery()) is not None:
        out.append(delivery)
        if delivery.id % 3 == 0:
            net.submit(delivery.dst, delivery.src, 40.0)
        if len(out) == 5:
            net.cancel_queued(0)
    return np.array(out, dtype=np.float64).reshape(-1, len(Delivery._fields)).view(np.uint64)


def same_state(a: dict, b: dict) -> bool:
    """Equal entries, floats compared bit for bit (NaN marks a start not due yet)."""

    def bits(value):
        if isinstance(value, torch.Tensor):
            return (value.dtype, value.shape, value.numpy().tobytes())
        return (type(value), value)

    return list(a) == list(b) and all(bits(a[k]) == bits(b[k]) for k in a)


def saved_and_loaded(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("latency", list(LATENCIES), ids=list(LATENCIES))
@pytest.mark.parametrize("fifo", [False, True], ids=["concurrent", "fifo"])
def test_a_restored_scheduler_continues_bit_identically(fifo: bool, latency: str) -> None:
    original = mid_run(fifo, LATENCIES[latency])
    state = original.state_dict()
    assert tuple(state) == STATE_KEYS
    restored = NetworkScheduler.from_state_dict(state)
    through_a_file = NetworkScheduler.from_state_dict(saved_and_loaded(state))
    reloaded = NetworkScheduler([1.0], [1.0])
    reloaded.load_state_dict(state)
    copies = (restored, through_a_file, reloaded)
    for copy in copies:
        assert same_state(copy.state_dict(), state)
        assert repr(copy) == repr(original)
    expected = continuation(original)
    assert len(expected) > 60
    for copy in copies:
        assert np.array_equal(continuation(copy), expected)
        assert copy.next_id == original.next_id and copy.now == original.now


@pytest.mark.parametrize("fifo", [False, True], ids=["concurrent", "fifo"])
def test_round_trips_at_the_edges(fifo: bool) -> None:
    def check(net: NetworkScheduler) -> None:
        copy = NetworkScheduler.from_state_dict(saved_and_loaded(net.state_dict()))
        assert np.array_equal(continuation(copy), continuation(net))

    net = NetworkScheduler([100.0] * 3, [50.0] * 3, 0.25, fifo_per_sender=fifo)
    check(net)  # fresh
    net.submit_many([0, 0, 1], [1, 2, 2], [100.0, 0.0, 30.0])
    net.run_until(1.0)
    check(net)
    net.run()
    check(net)  # drained: only the clock and the next id are left
    net.submit_many([0, 0, 2], [1, 1, 0], [10.0, 20.0, 0.0])  # starts due at now
    check(net)
    net.submit_many([1, 1, 1], [0, 2, 0], 10.0, net.now + 1.0)
    net.next_delivery()
    net.cancel_queued(1)
    check(net)


def test_load_state_dict_replaces_links_and_transfers() -> None:
    source = mid_run(True, LATENCIES["per-pair"])
    target = NetworkScheduler([5.0, 5.0], [5.0, 5.0], 1.0)
    target.submit(0, 1, 10.0)
    target.load_state_dict(source.state_dict())
    assert (target.n_nodes, target.fifo_per_sender) == (5, True)
    assert np.array_equal(continuation(target), continuation(source))


# A small mid-run state whose entries are known: with FIFO, node 0 sends transfer 0 while 1 waits
# behind it; 2 and 4 are sending, 3 (zero bytes) is in flight.
def small_state() -> dict:
    net = NetworkScheduler([100, 40, 60], [80, 30, 90], [0.1, 0.2, 0.3], fifo_per_sender=True)
    net.submit_many([0, 0, 1, 2, 2], [1, 2, 0, 1, 0], [100, 200, 50, 0, 70], [0, 0, 0.5, 1, 1])
    net.next_delivery(until=1.2)
    return net.state_dict()


def test_the_small_state_is_what_the_malformed_cases_assume() -> None:
    state = small_state()
    assert state["queued_id"].tolist() == [1] and math.isnan(state["queued_start"][0])
    assert state["active_id"].tolist() == [0, 2, 4]
    assert state["in_flight_id"].tolist() == [3]
    assert (state["now"], state["next_id"]) == (1.2, 5)


def _set(key: str, value) -> callable:
    def corrupt(state: dict) -> None:
        state[key] = value

    return corrupt


def _scale(key: str, index: int, factor: float) -> callable:
    def corrupt(state: dict) -> None:
        state[key] = state[key].clone()
        state[key][index] *= factor

    return corrupt


MALFORMED = [
    (lambda s: s.pop("now"), "network state lacks 'now'"),
    (_set("extra", 1), "network state has unexpected 'extra'"),
    (_set("active_src", torch.tensor([0, 1])), "'active_src' has 2 entries, expected 3"),
    (_set("active_src", torch.tensor([0.0, 1.0, 2.0])), "'active_src' must be a 1-D int64 tensor"),
    (_set("queued_bytes", [200.0]), "'queued_bytes' must be a 1-D float64 tensor, got list"),
    (_set("active_dst", torch.tensor([1, 7, 0])), r"'active_dst\[1\]' is 7, not a node id"),
    (_set("active_id", torch.tensor([0, 4, 2])), r"'active_id\[2\]' is 2, expected ids in incr"),
    (_set("next_id", 3), r"'active_id\[2\]' is 4, .* below next_id=3"),
    (_set("in_flight_id", torch.tensor([2])), r"'in_flight_id\[0\]' is 2, an id 'active_id' lists"),
    (_scale("active_rate", 1, 2.0), r"'active_rate\[1\]' is 80, expected 40, the max-min rate"),
    (_scale("active_updated", 1, 100.0), r"'active_updated\[1\]' is 50, expected a time from"),
    (_scale("active_bytes", 2, 0.0), r"'active_bytes\[2\]' is 0: a transfer of zero bytes never"),
    (_scale("in_flight_delivered", 0, 2.0), r"'in_flight_delivered\[0\]' is 3, expected last_byte"),
    (_set("queued_start", torch.tensor([5.0], dtype=torch.float64)), "node 0 is sending"),
    (_set("fifo_per_sender", False), r"'queued_start\[0\]' is NaN, expected its ready time 0"),
    (_set("fifo_per_sender", 1), "'fifo_per_sender' must be a bool"),
    (_set("now", float("nan")), "'now' is NaN, expected a finite non-negative time"),
    (_set("now", "1.2"), "'now' must be a number"),
    (_set("next_id", -1), r"'next_id' must be an integer in \[0, 2\^63\)"),
    (_set("latency", torch.zeros(2, dtype=torch.float64)), r"'latency' has shape \(2,\)"),
    (_scale("uplink", 0, 0.0), r"network state: uplink\[0\]=0 must be a positive rate"),
    (_scale("downlink", 2, float("nan")), r"network state: downlink\[2\]=NaN"),
]


@pytest.mark.parametrize(("corrupt", "match"), MALFORMED)
def test_a_malformed_state_is_a_one_line_value_error(corrupt, match: str) -> None:
    state = small_state()
    corrupt(state)
    with pytest.raises(MosaicValueError, match=match) as info:
        NetworkScheduler.from_state_dict(state)
    assert "\n" not in str(info.value)
    target = NetworkScheduler([1.0], [1.0])
    with pytest.raises(MosaicValueError):
        target.load_state_dict(state)
    assert target.n_nodes == 1  # unchanged


def test_a_state_that_is_not_a_dict_is_a_value_error() -> None:
    with pytest.raises(MosaicValueError, match="network state must be a dict, got list"):
        NetworkScheduler.from_state_dict([1, 2])


def test_corrupted_states_are_refused_or_run_never_panic() -> None:
    # Random single-entry corruptions: each state is either refused with a MosaicValueError or is
    # one the scheduler can run (never a MosaicInternalError from a Rust panic).
    rng = np.random.default_rng(17)
    good = mid_run(True, LATENCIES["per-node"]).state_dict()
    nasty = [0.0, -1.0, 1.0, 2.5, 1e300, float("inf"), float("nan"), -0.0, 7.0, 2.0**53]
    arrays = [k for k in STATE_KEYS if isinstance(good[k], torch.Tensor) and good[k].numel()]
    refused = 0
    for _ in range(300):
        state = dict(good)
        key = arrays[rng.integers(len(arrays))]
        column = state[key].clone().reshape(-1)
        value = nasty[rng.integers(len(nasty))]
        if column.dtype == torch.int64:
            value = int(rng.choice([-1, 0, 1, 4, 5, 60, 2**40])) if math.isfinite(value) else 3
        column[rng.integers(column.numel())] = value
        state[key] = column.reshape(good[key].shape)
        try:
            net = NetworkScheduler.from_state_dict(state)
        except MosaicValueError:
            refused += 1
            continue
        net.run()
    assert refused > 200
