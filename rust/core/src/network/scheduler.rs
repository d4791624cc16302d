//! The scheduler's tables and queues: construction, what callers may read, and the bookkeeping
//! every step shares (the transfer table, the FIFOs, the links touched by an event).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::model::{check_rates, Latency, Queueing, Sharing};
use super::rates::MaxMin;
use super::transfer::{key, Counts, Key, Schedule, State, Transfer, NO_TRANSFER};
use crate::bail;
use crate::error::Result;

/// The scheduler: submit transfers, then advance its clock to collect deliveries in order.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub(super) uplink: Vec<f64>,
    pub(super) downlink: Vec<f64>,
    pub(super) latency: Latency,
    pub(super) queueing: Queueing,
    pub(super) sharing: Sharing,
    /// The caller's clock: every event up to it has been handled; submissions start no earlier.
    pub(super) now: f64,
    /// Transfers by id; ids below `first_id` are retired and their slots reclaimed.
    pub(super) transfers: VecDeque<Transfer>,
    pub(super) first_id: u64,
    pub(super) out_active: Vec<Vec<u64>>,
    pub(super) in_active: Vec<Vec<u64>>,
    /// Not-started transfers per sender: submission order with FIFO (the head may already have its
    /// start entry), any order without.
    pub(super) waiting: Vec<VecDeque<u64>>,
    /// With FIFO per sender: whether the head of `waiting[s]` has its entry in `starts`.
    pub(super) head_scheduled: Vec<bool>,
    /// With FIFO per pair: each pair's last transfer submitted.
    pub(super) pair_tail: PairTails,
    /// Max-min's copy of the sending transfers and its scratch (empty with min-share).
    pub(super) max_min: MaxMin,
    /// (start time, id) of transfers due to start.
    pub(super) starts: Starts,
    /// (last-byte time, id, version) of active transfers at their current rate.
    pub(super) completions: BinaryHeap<Reverse<(Key, u64, u64)>>,
    /// (delivery time, id) of transfers in flight.
    pub(super) deliveries: BinaryHeap<Reverse<(Key, u64)>>,
    /// Nodes whose up- (bit 0) or downlink (bit 1) share changed in the event being handled.
    pub(super) touched: Vec<u8>,
    pub(super) touched_up: Vec<u32>,
    pub(super) touched_down: Vec<u32>,
    /// Batch mode: times are written here when a last byte leaves instead of queueing a delivery.
    pub(super) sink: Option<Schedule>,
    pub(super) counts: Counts,
}

impl Scheduler {
    /// A scheduler over `uplink.len()` nodes with its clock at 0, sharing links by
    /// [`Sharing::MinShare`]; with `fifo_per_sender`, one FIFO per sender.
    pub fn new(
        uplink: Vec<f64>,
        downlink: Vec<f64>,
        latency: Latency,
        fifo_per_sender: bool,
    ) -> Result<Self> {
        let queueing = if fifo_per_sender {
            Queueing::PerSender
        } else {
            Queueing::Concurrent
        };
        Self::with_options(uplink, downlink, latency, queueing, Sharing::MinShare)
    }

    /// A scheduler over `uplink.len()` nodes with its clock at 0.
    pub fn with_options(
        uplink: Vec<f64>,
        downlink: Vec<f64>,
        latency: Latency,
        queueing: Queueing,
        sharing: Sharing,
    ) -> Result<Self> {
        let n = uplink.len();
        if n == 0 {
            bail!("uplink is empty: the network needs at least one node");
        }
        if downlink.len() != n {
            bail!(
                "downlink has {} values but uplink has {n}: give one of each per node",
                downlink.len()
            );
        }
        if n > u32::MAX as usize {
            bail!("{n} nodes is too many (at most {})", u32::MAX);
        }
        check_rates("uplink", &uplink)?;
        check_rates("downlink", &downlink)?;
        latency.check(n)?;
        let max_min = if sharing == Sharing::MaxMin {
            MaxMin::new(&uplink, &downlink)
        } else {
            MaxMin::default()
        };
        Ok(Self {
            uplink,
            downlink,
            latency,
            queueing,
            sharing,
            now: 0.0,
            transfers: VecDeque::new(),
            first_id: 0,
            out_active: vec![Vec::new(); n],
            in_active: vec![Vec::new(); n],
            waiting: vec![VecDeque::new(); n],
            head_scheduled: vec![
                false;
                if queueing == Queueing::PerSender {
                    n
                } else {
                    0
                }
            ],
            pair_tail: PairTails::default(),
            max_min,
            starts: Starts::default(),
            completions: BinaryHeap::new(),
            deliveries: BinaryHeap::new(),
            touched: vec![0; n],
            touched_up: Vec::new(),
            touched_down: Vec::new(),
            sink: None,
            counts: Counts::default(),
        })
    }

    pub fn n_nodes(&self) -> usize {
        self.uplink.len()
    }

    pub fn fifo_per_sender(&self) -> bool {
        self.queueing == Queueing::PerSender
    }

    pub fn queueing(&self) -> Queueing {
        self.queueing
    }

    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// The clock: every event at or before it has been handled.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Transfers submitted and not started yet.
    pub fn n_queued(&self) -> usize {
        self.counts.queued
    }

    /// Transfers sending bytes.
    pub fn n_active(&self) -> usize {
        self.counts.active
    }

    /// Transfers whose last byte left but whose delivery has not been handed out.
    pub fn n_in_flight(&self) -> usize {
        self.counts.in_flight
    }

    /// Id the next submission will get (ids count submissions from 0).
    pub fn next_id(&self) -> u64 {
        self.first_id + self.transfers.len() as u64
    }

    /// Not-started transfers of `src`.
    pub fn queued_from(&self, src: usize) -> Result<usize> {
        self.check_node("src", src)?;
        Ok(self.waiting[src].len())
    }

    pub(super) fn check_node(&self, name: &str, node: usize) -> Result<()> {
        if node >= self.n_nodes() {
            bail!(
                "{name}={node} is not a node id (the network has nodes 0..{})",
                self.n_nodes()
            );
        }
        Ok(())
    }

    pub(super) fn index(&self, id: u64) -> usize {
        (id - self.first_id) as usize
    }

    pub(super) fn transfer(&self, id: u64) -> &Transfer {
        &self.transfers[self.index(id)]
    }

    pub(super) fn transfer_mut(&mut self, id: u64) -> &mut Transfer {
        let i = self.index(id);
        &mut self.transfers[i]
    }

    /// The state of `id`, `Retired` for reclaimed slots.
    pub(super) fn state(&self, id: u64) -> State {
        if id < self.first_id {
            State::Retired
        } else {
            self.transfer(id).state
        }
    }

    /// Drop retired transfers from the front of the table.
    pub(super) fn reclaim(&mut self) {
        while self
            .transfers
            .front()
            .is_some_and(|t| t.state == State::Retired)
        {
            self.transfers.pop_front();
            self.first_id += 1;
        }
    }

    /// With FIFO per pair: transfer `id` (from `src` to `dst`, startable at `ready`) joins its
    /// pair's FIFO: behind the pair's last transfer if that one is queued or sending, else it
    /// is due at once (at `ready`, or now if later).
    pub(super) fn join_pair(&mut self, id: u64, (src, dst): (usize, u32), ready: f64) {
        match self.pair_tail.insert(pair_key(src, dst), id) {
            Some(tail) if self.state(tail).holds_its_pair() => {
                self.transfer_mut(tail).next_in_pair = id;
            }
            _ => self.starts.push(Reverse((key(ready.max(self.now)), id))),
        }
    }

    /// With FIFO per pair: `id`'s last byte left at `t`; the next transfer of its pair is due.
    pub(super) fn leave_pair(&mut self, id: u64, t: f64) {
        let next = self.transfer(id).next_in_pair;
        if next != NO_TRANSFER && self.state(next) == State::Queued {
            let at = self.transfer(next).ready.max(t);
            self.starts.push(Reverse((key(at), next)));
        }
        // Pairs whose last transfer is done are idle: forget them once they are most.
        if self.pair_tail.len() > 2 * (self.counts.queued + self.counts.active) + 1024 {
            let transfers = &self.transfers;
            let first_id = self.first_id;
            self.pair_tail.retain(|_, &mut tail| {
                tail >= first_id && transfers[(tail - first_id) as usize].state.holds_its_pair()
            });
        }
    }

    /// With FIFO per pair: `src`'s queued transfers were cancelled; each pair with a transfer
    /// sending stays busy until its last byte leaves.
    pub(super) fn hold_sending_pairs(&mut self, src: usize) {
        for j in 0..self.out_active[src].len() {
            let id = self.out_active[src][j];
            let dst = self.transfer(id).dst;
            self.transfer_mut(id).next_in_pair = NO_TRANSFER;
            self.pair_tail.insert(pair_key(src, dst), id);
        }
    }

    /// With FIFO: give the head of `src`'s queue its start entry if `src` is idle since `idle_at`.
    pub(super) fn schedule_head(&mut self, src: usize, idle_at: f64) {
        if self.head_scheduled[src] || !self.out_active[src].is_empty() {
            return;
        }
        if let Some(&head) = self.waiting[src].front() {
            let at = self.transfer(head).ready.max(idle_at);
            self.starts.push(Reverse((key(at), head)));
            self.head_scheduled[src] = true;
        }
    }

    pub(super) fn touch(&mut self, src: usize, dst: usize) {
        if self.touched[src] & 1 == 0 {
            self.touched[src] |= 1;
            self.touched_up.push(src as u32);
        }
        if self.touched[dst] & 2 == 0 {
            self.touched[dst] |= 2;
            self.touched_down.push(dst as u32);
        }
    }
}

/// A min-queue of (start time, id) entries: a sorted run (a batch's starts, smallest last) and a
/// heap of those pushed since. A batch's starts come off the run in order, without a heap's
/// scattered reads.
#[derive(Debug, Clone, Default)]
pub(super) struct Starts {
    run: Vec<Reverse<(Key, u64)>>,
    heap: BinaryHeap<Reverse<(Key, u64)>>,
}

impl Starts {
    pub(super) fn push(&mut self, entry: Reverse<(Key, u64)>) {
        self.heap.push(entry);
    }

    /// The smallest entry; the run's on a tie (equal entries are interchangeable).
    pub(super) fn peek(&self) -> Option<&Reverse<(Key, u64)>> {
        match (self.run.last(), self.heap.peek()) {
            (Some(a), Some(b)) => Some(if a >= b { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn pop(&mut self) -> Option<Reverse<(Key, u64)>> {
        match (self.run.last(), self.heap.peek()) {
            (Some(a), Some(b)) if a < b => self.heap.pop(),
            (Some(_), _) => self.run.pop(),
            (None, _) => self.heap.pop(),
        }
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Reverse<(Key, u64)>> {
        self.run.iter().chain(self.heap.iter())
    }

    /// Move every entry into the run, sorted (one sort instead of a heap pop each).
    pub(super) fn settle(&mut self) {
        let mut run = std::mem::take(&mut self.heap).into_vec();
        run.append(&mut self.run);
        run.sort_unstable();
        self.run = run;
    }
}

/// With FIFO per pair: each pair's last transfer submitted, by [`pair_key`].
pub(super) type PairTails = HashMap<u64, u64, BuildHasherDefault<PairHasher>>;

pub(super) fn pair_key(src: usize, dst: u32) -> u64 {
    ((src as u64) << 32) | u64::from(dst)
}

/// Hashes a pair key with one multiplication (the keys are not adversarial), folded so that
/// the table's low bits depend on every bit of the key.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}
