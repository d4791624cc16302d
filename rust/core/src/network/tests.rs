use super::*;

fn network(n: usize, up: f64, down: f64, latency: f64, fifo: bool) -> Scheduler {
    Scheduler::new(vec![up; n], vec![down; n], Latency::Global(latency), fifo).unwrap()
}

#[test]
fn one_transfer_takes_bytes_over_rate_plus_latency() {
    let mut s = network(2, 100.0, 1000.0, 0.25, false);
    let id = s.submit(0, 1, 300.0, 1.0).unwrap();
    let d = s.run().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].id, d[0].start, d[0].last_byte, d[0].delivered),
        (id, 1.0, 4.0, 4.25)
    );
    assert_eq!(s.now(), 4.25);
}

#[test]
fn freed_uplink_speeds_up_the_other_transfer() {
    // Both at 50 B/s; the 100-byte one ends at 2 having left 200 bytes of the other,
    // which then goes at 100 B/s and ends at 4.
    let mut s = network(3, 100.0, 1000.0, 0.0, false);
    s.submit(0, 1, 100.0, 0.0).unwrap();
    s.submit(0, 2, 300.0, 0.0).unwrap();
    let d = s.run().unwrap();
    assert_eq!(d[0].last_byte, 2.0);
    assert_eq!(d[1].last_byte, 4.0);
}

#[test]
fn fifo_serialises_and_cancel_drops_queued() {
    let mut s = network(2, 10.0, 10.0, 0.5, true);
    for _ in 0..3 {
        s.submit(0, 1, 10.0, 0.0).unwrap();
    }
    let first = s.next_delivery(None).unwrap().unwrap();
    assert_eq!(
        (first.start, first.last_byte, first.delivered),
        (0.0, 1.0, 1.5)
    );
    // At t=1.5 transfer 1 is sending (started at 1), transfer 2 waits behind it.
    assert_eq!(s.cancel_queued(0).unwrap(), vec![2]);
    let rest = s.run().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        (rest[0].id, rest[0].start, rest[0].last_byte),
        (1, 1.0, 2.0)
    );
    assert_eq!((s.n_queued(), s.n_active(), s.n_in_flight()), (0, 0, 0));
}

#[test]
fn batch_matches_incremental() {
    let src = [0, 0, 1, 2, 2, 0];
    let dst = [1, 2, 2, 0, 1, 1];
    let bytes = [100.0, 300.0, 50.0, 0.0, 70.0, 20.0];
    let ready = [0.0, 0.0, 0.5, 1.0, 1.0, 3.0];
    for fifo in [false, true] {
        let latency = Latency::PerNode(vec![0.1, 0.2, 0.3]);
        let up = vec![100.0, 40.0, 60.0];
        let down = vec![80.0, 30.0, 90.0];
        let batch = Scheduler::new(up.clone(), down.clone(), latency.clone(), fifo)
            .unwrap()
            .schedule_batch(&src, &dst, &bytes, &ready)
            .unwrap();
        let mut s = Scheduler::new(up, down, latency, fifo).unwrap();
        s.submit_many(&src, &dst, &bytes, &ready).unwrap();
        let mut seen = 0;
        for d in s.run().unwrap() {
            let i = d.id as usize;
            assert_eq!(batch.start[i], d.start);
            assert_eq!(batch.last_byte[i], d.last_byte);
            assert_eq!(batch.delivered[i], d.delivered);
            seen += 1;
        }
        assert_eq!(seen, src.len());
    }
}

#[test]
fn stale_completion_entries_stay_bounded() {
    // 3000 concurrent transfers from one node: every start and end changes all their rates.
    let mut s = network(2, 1000.0, 1e12, 0.0, false);
    for i in 0..3000 {
        s.submit(0, 1, 10.0 + i as f64, i as f64 * 1e-3).unwrap();
    }
    let mut delivered = 0;
    while s.next_delivery(None).unwrap().is_some() {
        delivered += 1;
        assert!(s.completions.len() <= 5 * s.n_active() + 1024);
    }
    assert_eq!(delivered, 3000);
}

/// A scheduler stopped mid-run with transfers queued, sending and in flight.
fn mid_run(fifo: bool, latency: Latency) -> Scheduler {
    let up = vec![100.0, 40.0, 60.0, 75.0, 20.0];
    let down = vec![80.0, 30.0, 90.0, 55.0, 20.0];
    let mut s = Scheduler::new(up, down, latency, fifo).unwrap();
    // Node 4 is idle until its one transfer is due: with FIFO, a head with its start due.
    s.submit(4, 0, 20.0, 3.0).unwrap();
    for i in 0..40_u32 {
        let (src, dst) = ((i % 4) as usize, ((i * 7 + 1) % 4) as usize);
        let bytes = if i % 9 == 0 {
            0.0
        } else {
            10.0 + f64::from(i * 13 % 50)
        };
        s.submit(src, dst, bytes, f64::from(i / 3) * 0.25).unwrap();
    }
    for _ in 0..8 {
        s.next_delivery(Some(2.0)).unwrap();
    }
    s
}

#[test]
fn a_restored_scheduler_continues_bit_identically() {
    let latencies = [
        Latency::Global(0.3),
        Latency::PerNode(vec![0.1, 0.2, 0.3, 0.05, 0.4]),
        Latency::PerLink((0..25).map(|i| f64::from(i) * 0.03).collect()),
    ];
    for fifo in [false, true] {
        for latency in latencies.clone() {
            let mut original = mid_run(fifo, latency);
            assert!(original.n_queued() > 0 && original.n_active() > 0);
            assert!(original.n_in_flight() > 0);
            let state = original.export_state();
            let mut restored = Scheduler::from_state(state.clone()).unwrap();
            // Debug text compares floats bit for bit, NaN (a queued start not due yet) included.
            assert_eq!(
                format!("{:?}", restored.export_state()),
                format!("{state:?}")
            );
            for s in [&mut original, &mut restored] {
                s.submit(1, 2, 33.0, 2.5).unwrap();
                s.cancel_queued(3).unwrap();
            }
            assert_eq!(original.run().unwrap(), restored.run().unwrap());
            assert_eq!(original.next_id(), restored.next_id());
        }
    }
}

#[test]
fn malformed_state_is_an_error_naming_the_entry() {
    let good = mid_run(true, Latency::Global(0.3)).export_state();
    type Corruption = fn(&mut SchedulerState);
    let cases: Vec<(Corruption, &str)> = vec![
        (
            |s| {
                s.queued.src.pop();
            },
            "'queued_src' has",
        ),
        (
            |s| s.active.src[0] = 9,
            "'active_src[0]' is 9, not a node id",
        ),
        (|s| s.active_rate[0] *= 2.0, "'active_rate[0]'"),
        (|s| s.in_flight.id[0] = s.active.id[0], "lists too"),
        (|s| s.queued.id[0] = s.next_id as i64, "'queued_id[0]'"),
        (
            |s| s.in_flight_delivered[0] += 1.0,
            "'in_flight_delivered[0]'",
        ),
        (|s| s.now = f64::NAN, "'now' is NaN"),
        (|s| s.next_id = u64::MAX, "'next_id'"),
        (|s| s.uplink[0] = 0.0, "network state: uplink[0]=0"),
    ];
    for (corrupt, expected) in cases {
        let mut state = good.clone();
        corrupt(&mut state);
        let err = Scheduler::from_state(state).unwrap_err();
        assert!(err.message.contains(expected), "{err}");
    }
    // The FIFO head of an idle sender must have its start due.
    let mut state = good.clone();
    let head = (0..state.queued.id.len())
        .find(|&i| !state.queued.start[i].is_nan())
        .unwrap();
    state.queued.start[head] = f64::NAN;
    let err = Scheduler::from_state(state).unwrap_err();
    assert!(err.message.contains("queued_start["), "{err}");
}

#[test]
fn unlimited_links() {
    let inf = f64::INFINITY;
    // Unlimited at both ends: the last byte leaves at the start.
    let mut s = Scheduler::new(vec![inf; 2], vec![inf; 2], Latency::Global(0.25), true).unwrap();
    s.submit(0, 1, 300.0, 1.0).unwrap();
    s.submit(0, 1, 500.0, 0.5).unwrap();
    let d = s.run().unwrap();
    assert_eq!(
        d.iter()
            .map(|d| (d.start, d.last_byte, d.delivered))
            .collect::<Vec<_>>(),
        vec![(1.0, 1.0, 1.25), (1.0, 1.0, 1.25)]
    );
    // Unlimited at one end: the other end's fair share rules (two senders into 100 B/s).
    let mut s = Scheduler::new(
        vec![inf; 3],
        vec![inf, inf, 100.0],
        Latency::Global(0.0),
        false,
    )
    .unwrap();
    s.submit(0, 2, 100.0, 0.0).unwrap();
    s.submit(1, 2, 300.0, 0.0).unwrap();
    s.submit(0, 1, 1e9, 0.5).unwrap();
    let last: Vec<(u64, f64)> = s
        .run()
        .unwrap()
        .iter()
        .map(|d| (d.id, d.last_byte))
        .collect();
    assert_eq!(last, vec![(2, 0.5), (0, 2.0), (1, 4.0)]);
}

fn max_min(up: Vec<f64>, down: Vec<f64>, queueing: Queueing) -> Scheduler {
    Scheduler::with_options(up, down, Latency::Global(0.0), queueing, Sharing::MaxMin).unwrap()
}

fn last_bytes(s: &mut Scheduler) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = s
        .run()
        .unwrap()
        .iter()
        .map(|d| (d.id, d.last_byte))
        .collect();
    out.sort_by_key(|&(id, _)| id);
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn max_min_shared_downlink_hands_the_slow_receivers_spare_uplink_on() {
    // Node 0 (uplink 100) sends 100 B to node 1 and 1000 B to node 2; node 3 (uplink 100)
    // sends 1000 B to node 2 too, whose downlink is 100: every transfer gets 50.
    let inf = f64::INFINITY;
    let mut s = max_min(
        vec![100.0, inf, inf, 100.0],
        vec![inf, inf, 100.0, inf],
        Queueing::Concurrent,
    );
    s.submit(0, 1, 100.0, 0.0).unwrap();
    s.submit(0, 2, 1000.0, 0.0).unwrap();
    s.submit(3, 2, 1000.0, 0.0).unwrap();
    // Until 2: rates 50, 50, 50. Then 0 -> 2 and 3 -> 2 keep 50 each (downlink 100) until
    // both end at 20.
    assert_eq!(last_bytes(&mut s), vec![(0, 2.0), (1, 20.0), (2, 20.0)]);

    // Three senders into a 100 B/s downlink; sender 0 also sends to a free receiver.
    // Max-min: the downlink gives 100/3 each; sender 0's other transfer gets the rest of its
    // uplink, 100 - 100/3 = 66.67, so its 100 B leave at 1.5 (min-share: 50, at 2.0).
    let mut s = max_min(
        vec![100.0, 100.0, 100.0, inf, inf],
        vec![inf, inf, inf, 100.0, inf],
        Queueing::Concurrent,
    );
    s.submit(0, 4, 100.0, 0.0).unwrap();
    for src in 0..3 {
        s.submit(src, 3, 1e6, 0.0).unwrap();
    }
    let d = s.next_delivery(None).unwrap().unwrap();
    assert_eq!(d.id, 0);
    assert!(close(d.last_byte, 1.5), "{}", d.last_byte);
}

#[test]
fn max_min_shared_uplink() {
    // Node 0 (uplink 90) sends to 1 (downlink 10), 2 and 3 (unlimited): 0 -> 1 is held at
    // 10 by its receiver; the other two share the remaining 80 (40 each), not 30 each.
    let inf = f64::INFINITY;
    let mut s = max_min(
        vec![90.0, inf, inf, inf],
        vec![inf, 10.0, inf, inf],
        Queueing::Concurrent,
    );
    s.submit(0, 1, 100.0, 0.0).unwrap();
    s.submit(0, 2, 80.0, 0.0).unwrap();
    s.submit(0, 3, 160.0, 0.0).unwrap();
    // 0 -> 2 ends at 2 (80 B at 40); then 0 -> 3 has 80 B left at 80 B/s: ends at 3;
    // 0 -> 1 stays at 10 and ends at 10.
    let got = last_bytes(&mut s);
    assert!(
        close(got[0].1, 10.0) && close(got[1].1, 2.0) && close(got[2].1, 3.0),
        "{got:?}"
    );
}

#[test]
fn max_min_start_lowering_a_share_below_a_rate_kept_refills_the_whole_link() {
    // Node 4's downlink (10) receives from 0 (uplink 100) and 1 (uplink 3): 7 and 3; 1 -> 4 is
    // bottlenecked at its uplink, so a refill of the downlink keeps its rate. At 1, nodes 2 and
    // 3 start sending to 4 too: the share left beside the 3 kept, 7 / 3, falls below it, so
    // the whole downlink is refilled: 2.5 each (kept at 3, 0 -> 4 would end at 426.6).
    let inf = f64::INFINITY;
    let mut s = max_min(
        vec![100.0, 3.0, 100.0, 100.0, inf],
        vec![inf, inf, inf, inf, 10.0],
        Queueing::Concurrent,
    );
    s.submit(0, 4, 1000.0, 0.0).unwrap();
    s.submit(1, 4, 1000.0, 0.0).unwrap();
    s.submit(2, 4, 1000.0, 1.0).unwrap();
    s.submit(3, 4, 1000.0, 1.0).unwrap();
    // 0 -> 4: 993 B left at 1, at 2.5 until 398.2. Then 1 -> 4 (4 B left) is held at 3 by its
    // uplink and ends at 398.2 + 4 / 3.
    let first = s.next_delivery(None).unwrap().unwrap();
    assert_eq!(first.id, 0);
    assert!(close(first.last_byte, 398.2), "{}", first.last_byte);
    let second = s.next_delivery(None).unwrap().unwrap();
    assert_eq!(second.id, 1);
    assert!(
        close(second.last_byte, 398.2 + 4.0 / 3.0),
        "{}",
        second.last_byte
    );
}

#[test]
fn max_min_chain_frees_capacity_twice() {
    // A chain of three transfers: t0 = a -> b, t1 = c -> b, t2 = c -> d, with a's uplink 10,
    // b's downlink 40, c's uplink 100, d's downlink 80 (other ends unlimited). Progressive
    // filling: a's uplink is the tightest (t0 = 10); b's downlink has 30 left for t1 alone
    // (first freeing: b's share rises from 20 to 30); c's uplink then has 70 left for t2
    // (second freeing: from 50 to 70; d allows 80). Min-share: 10, min(50, 20) = 20 and
    // min(50, 80) = 50.
    let inf = f64::INFINITY;
    let (a, b, c, d) = (0, 1, 2, 3);
    let (up, down) = (vec![10.0, inf, 100.0, inf], vec![inf, 40.0, inf, 80.0]);
    let submit = |s: &mut Scheduler| {
        s.submit(a, b, 10.0, 0.0).unwrap(); // t0: ends at 1 either way
        s.submit(c, b, 300.0, 0.0).unwrap(); // t1
        s.submit(c, d, 700.0, 0.0).unwrap(); // t2
    };
    let mut s = max_min(up.clone(), down.clone(), Queueing::Concurrent);
    submit(&mut s);
    // Max-min from 1: b gives t1 40 (< c's 50), c has 60 left for t2. t1: 270 B left at
    // 40, ends at 7.75; t2: 630 left at 1, 630 - 6.75 * 60 = 225 at 7.75, then 80.
    let got = last_bytes(&mut s);
    assert!(close(got[0].1, 1.0), "{got:?}");
    assert!(close(got[1].1, 7.75), "{got:?}");
    assert!(close(got[2].1, 7.75 + 225.0 / 80.0), "{got:?}");
    let mut s = Scheduler::with_options(
        up,
        down,
        Latency::Global(0.0),
        Queueing::Concurrent,
        Sharing::MinShare,
    )
    .unwrap();
    submit(&mut s);
    // Min-share from 1: t1 = min(50, 40) = 40 with 280 B left (ends at 8); t2 = 50 with
    // 650 left, 650 - 7 * 50 = 300 at 8, then 80.
    let got = last_bytes(&mut s);
    assert!(close(got[0].1, 1.0), "{got:?}");
    assert!(close(got[1].1, 8.0), "{got:?}");
    assert!(close(got[2].1, 8.0 + 300.0 / 80.0), "{got:?}");
}

#[test]
fn fifo_per_pair_stays_busy_while_its_transfer_sends_after_cancel_queued() {
    // 0 -> 1 sends 100 B at 100 B/s with another queued behind it; cancelling 0's queued
    // transfers at 0.5 drops that one, and one submitted then to 1 still waits for the sending
    // one. A pair whose transfers are all gone (0 -> 2) is idle.
    let inf = f64::INFINITY;
    let mut s = max_min(vec![100.0, inf, inf], vec![inf; 3], Queueing::PerPair);
    s.submit(0, 1, 100.0, 0.0).unwrap();
    s.submit(0, 1, 100.0, 0.0).unwrap();
    s.submit(0, 2, 30.0, 5.0).unwrap();
    s.advance_until(0.5).unwrap();
    assert_eq!(s.cancel_queued(0).unwrap(), vec![1, 2]);
    s.submit(0, 1, 100.0, 0.5).unwrap(); // id 3
    s.submit(0, 2, 50.0, 0.5).unwrap(); // id 4: its pair is idle
    let got = last_bytes(&mut s);
    // From 0.5 ids 0 and 4 share the uplink (50 each): 0 has 50 B left, 4 has 50: both end at
    // 1.5; then id 3 alone, 100 B at 100: ends at 2.5.
    assert_eq!(got, vec![(0, 1.5), (3, 2.5), (4, 1.5)]);
}

#[test]
fn fifo_per_pair_sends_to_peers_at_once_and_in_order_per_peer() {
    let inf = f64::INFINITY;
    let mut s = max_min(vec![100.0, inf, inf], vec![inf; 3], Queueing::PerPair);
    s.submit(0, 1, 100.0, 0.0).unwrap(); // 0 -> 1 first
    s.submit(0, 1, 100.0, 0.0).unwrap(); // waits behind it
    s.submit(0, 2, 100.0, 0.0).unwrap(); // goes at once
                                         // 0..2: ids 0 and 2 share 100 (50 each): both end at 2; then id 1 alone: ends at 3.
    let got = last_bytes(&mut s);
    assert_eq!(got, vec![(0, 2.0), (1, 3.0), (2, 2.0)]);
}

#[test]
fn cancel_unsent_drops_a_transfer_in_progress_and_frees_its_links() {
    let inf = f64::INFINITY;
    let mut s = max_min(vec![100.0, 100.0, inf], vec![inf; 3], Queueing::PerPair);
    s.submit(0, 1, 300.0, 0.0).unwrap();
    s.submit(0, 1, 100.0, 0.0).unwrap();
    s.submit(1, 2, 500.0, 0.0).unwrap();
    assert!(s.next_delivery(Some(1.0)).unwrap().is_none());
    let (ids, sent) = s.cancel_unsent(0).unwrap();
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(sent, vec![100.0, 0.0]);
    assert_eq!((s.n_queued(), s.n_active()), (0, 1));
    let d = s.run().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].id, 2);
    // A restored scheduler of each mode continues bit-identically.
    for queueing in [Queueing::Concurrent, Queueing::PerSender, Queueing::PerPair] {
        for sharing in [Sharing::MaxMin, Sharing::MinShare] {
            let up = vec![100.0, 40.0, 60.0, 75.0, 20.0];
            let down = vec![80.0, 30.0, 90.0, 55.0, 20.0];
            let mut a =
                Scheduler::with_options(up, down, Latency::Global(0.1), queueing, sharing).unwrap();
            for i in 0..40_u32 {
                let (src, dst) = ((i % 4) as usize, ((i * 7 + 1) % 5) as usize);
                a.submit(
                    src,
                    dst,
                    10.0 + f64::from(i * 13 % 50),
                    f64::from(i / 3) * 0.25,
                )
                .unwrap();
            }
            for _ in 0..8 {
                a.next_delivery(Some(2.0)).unwrap();
            }
            let state = a.export_state();
            let mut b = Scheduler::from_state(state.clone()).unwrap();
            assert_eq!(format!("{:?}", b.export_state()), format!("{state:?}"));
            for x in [&mut a, &mut b] {
                x.cancel_unsent(3).unwrap();
                x.submit(1, 2, 33.0, 2.5).unwrap();
            }
            assert_eq!(a.run().unwrap(), b.run().unwrap());
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(Scheduler::new(vec![1.0], vec![0.0], Latency::Global(0.0), false).is_err());
    assert!(Scheduler::new(vec![f64::NAN], vec![1.0], Latency::Global(0.0), false).is_err());
    assert!(Scheduler::new(vec![1.0], vec![1.0], Latency::Global(-1.0), false).is_err());
    assert!(Scheduler::new(
        vec![1.0; 2],
        vec![1.0; 2],
        Latency::PerLink(vec![0.0; 3]),
        false
    )
    .is_err());
    let mut s = network(2, 1.0, 1.0, 0.0, false);
    assert!(s.submit(0, 2, 1.0, 0.0).is_err());
    assert!(s.submit(0, 1, -1.0, 0.0).is_err());
    s.advance_until(5.0).unwrap();
    let err = s.submit(0, 1, 1.0, 4.0).unwrap_err();
    assert!(
        err.message.contains("before the scheduler's clock"),
        "{err}"
    );
    assert!(s
        .submit_many(&[0, -1], &[1, 1], &[1.0, 1.0], &[5.0, 5.0])
        .is_err());
    assert_eq!(s.next_id(), 0);
}

/// A fixed pseudo-random workload: 40 nodes (some links unlimited) sending 6 rounds of 4
/// messages each (some empty): links (up, down) and transfers (src, dst, bytes, ready).
type Workload = (Vec<f64>, Vec<f64>, Vec<i64>, Vec<i64>, Vec<f64>, Vec<f64>);

fn recorded_workload() -> Workload {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1_u64 << 53) as f64
    };
    let (n, rounds, peers) = (40_i64, 6_i64, 4_i64);
    let inf = f64::INFINITY;
    let up: Vec<f64> = (0..n)
        .map(|i| {
            if i % 13 == 5 {
                inf
            } else {
                5.0 + 45.0 * uniform()
            }
        })
        .collect();
    let down: Vec<f64> = (0..n)
        .map(|i| {
            if i % 11 == 3 {
                inf
            } else {
                10.0 + 90.0 * uniform()
            }
        })
        .collect();
    let (mut src, mut dst, mut bytes, mut ready) = (vec![], vec![], vec![], vec![]);
    let jitter: Vec<f64> = (0..n).map(|_| 0.5 * uniform()).collect();
    for r in 0..rounds {
        for s in 0..n {
            for _ in 0..peers {
                src.push(s);
                dst.push((s + 1 + (uniform() * (n - 1) as f64) as i64) % n);
                bytes.push(if uniform() < 0.05 {
                    0.0
                } else {
                    (10.0 + 90.0 * uniform()).floor()
                });
                ready.push(r as f64 + jitter[s as usize]);
            }
        }
    }
    (up, down, src, dst, bytes, ready)
}

/// The workload under max-min and each queueing, scheduled in one batch and incrementally with
/// a checkpoint restored halfway: a hash of every time's bits.
fn max_min_workload_hash() -> u64 {
    let (up, down, src, dst, bytes, ready) = recorded_workload();
    let n = up.len();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: u64| hash = (hash ^ v).wrapping_mul(0x0100_0000_01b3);
    for queueing in [Queueing::Concurrent, Queueing::PerSender, Queueing::PerPair] {
        let network = || {
            let latency = Latency::PerNode((0..n).map(|i| 0.001 * i as f64).collect());
            Scheduler::with_options(up.clone(), down.clone(), latency, queueing, Sharing::MaxMin)
                .unwrap()
        };
        let batch = network()
            .schedule_batch(&src, &dst, &bytes, &ready)
            .unwrap();
        for v in batch
            .start
            .iter()
            .chain(&batch.last_byte)
            .chain(&batch.delivered)
        {
            mix(v.to_bits());
        }
        let mut a = network();
        a.submit_many(&src, &dst, &bytes, &ready).unwrap();
        let mut got = a.advance_until(3.0).unwrap();
        let mut b = Scheduler::from_state(a.export_state()).unwrap();
        got.extend(b.run().unwrap());
        for d in got {
            mix(d.id);
            for v in [d.start, d.last_byte, d.delivered] {
                mix(v.to_bits());
            }
        }
    }
    hash
}

#[test]
fn max_min_matches_recorded_results() {
    // Recorded when refills stopped reaching transfers bottlenecked elsewhere: the refill's
    // bookkeeping may change, its rates may not, to the last bit. (The refill before, which
    // took every transfer of a tight link, gave 0x1db1_e87f_e179_f617: its times on the 10^6
    // transfers of benches/bench_network.py agree with today's to 4e-16, relative.)
    assert_eq!(max_min_workload_hash(), 0x8405_9f37_0261_7c73);
}
