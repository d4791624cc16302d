//! The network model: an event-driven scheduler of message transfers over per-node links.
//!
//! Node `i` has an uplink of `uplink[i]` and a downlink of `downlink[i]` bytes per second. Rates
//! are recomputed whenever a transfer starts, sends its last byte or is cancelled, by one of two
//! rules ([`Sharing`]):
//! - `MaxMin` (progressive filling, the fluid model of TCP): every transfer's rate rises together
//!   until a link is full; the transfers on it keep that rate, the others go on rising. A transfer
//!   held back by a slow receiver leaves the rest of its sender's uplink to the others. Only the
//!   transfers linked (through shared links) to a link whose count changed are recomputed: the
//!   others' rates cannot change.
//! - `MinShare`: a transfer gets the smaller of its two equal shares,
//!   `uplink[src] / (transfers sending from src)` and `downlink[dst] / (transfers sending to dst)`;
//!   a share left unused at one end is not handed to the others.
//!
//! A rate of `inf` is an unlimited link: the other end rules, and a transfer unlimited at both ends
//! sends its last byte when it starts. Bytes flow at that rate; the message is *delivered*
//! `latency(src, dst)` seconds after its last byte left: latency is added once transmission is
//! complete and holds no bandwidth, so a sender's next message may start while the previous one is
//! still in flight.
//!
//! A transfer starts at its ready time ([`Queueing::Concurrent`]); with a FIFO a queue's transfers
//! go out one at a time in submission order (the next one starts when the previous one's last byte
//! left, or at its own ready time if later; a head not yet ready holds back the ones behind it).
//! The queue is the sender's ([`Queueing::PerSender`]) or the (sender, receiver) pair's
//! ([`Queueing::PerPair`]: one socket per peer, as DivShare; different peers' queues send at the
//! same time and share the uplink).
//!
//! Times are `f64` seconds. Everything is deterministic: transfer ids are submission indices,
//! events at equal times are handled together (every last byte first, then every start, then one
//! rate update of the transfers they touch), and deliveries at equal times come out by id. An
//! event costs O(transfers active at the nodes it touches + log(events queued)).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::bail;
use crate::error::Result;

/// Relative slack below which a link counts as full for max-min's local refill: a link this
/// close to full is refilled with its neighbours (more work, never a wrong rate).
const TIGHT: f64 = 1e-9;

/// Largest message size accepted: integers up to 2^53 bytes are exact in `f64`.
pub const MAX_BYTES: f64 = 9_007_199_254_740_992.0;

/// Delay between a message's last byte leaving its sender and its delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// The same delay for every message.
    Global(f64),
    /// Node `i`'s access-link delay; a message pays `seconds[src] + seconds[dst]`.
    PerNode(Vec<f64>),
    /// One delay per ordered pair: `seconds[src * n_nodes + dst]` (row = sender).
    PerLink(Vec<f64>),
}

impl Latency {
    fn between(&self, src: usize, dst: usize, n_nodes: usize) -> f64 {
        match self {
            Self::Global(s) => *s,
            Self::PerNode(s) => s[src] + s[dst],
            Self::PerLink(s) => s[src * n_nodes + dst],
        }
    }

    fn check(&self, n_nodes: usize) -> Result<()> {
        let (name, values, expected): (&str, &[f64], usize) = match self {
            Self::Global(s) => ("latency", std::slice::from_ref(s), 1),
            Self::PerNode(s) => ("latency", s.as_slice(), n_nodes),
            Self::PerLink(s) => ("latency", s.as_slice(), n_nodes.saturating_mul(n_nodes)),
        };
        if values.len() != expected {
            match self {
                Self::PerLink(_) => bail!(
                    "latency has {} values, expected n_nodes * n_nodes = {expected} (one per ordered pair)",
                    values.len()
                ),
                _ => bail!(
                    "latency has {} values, expected one per node ({n_nodes})",
                    values.len()
                ),
            }
        }
        for (i, &v) in values.iter().enumerate() {
            if !(v.is_finite() && v >= 0.0) {
                let at = match self {
                    Self::Global(_) => String::new(),
                    Self::PerNode(_) => format!("[{i}]"),
                    Self::PerLink(_) => format!("[{}, {}]", i / n_nodes, i % n_nodes),
                };
                bail!("{name}{at}={v} must be finite and non-negative (seconds)");
            }
        }
        Ok(())
    }
}

/// When transfers start: at their ready time, or one at a time per sender or per (sender, peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queueing {
    Concurrent,
    PerSender,
    PerPair,
}

/// How concurrent transfers share their links (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    MaxMin,
    MinShare,
}

impl Sharing {
    /// `"max-min"` or `"min-share"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxMin => "max-min",
            Self::MinShare => "min-share",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "max-min" => Ok(Self::MaxMin),
            "min-share" => Ok(Self::MinShare),
            _ => bail!("bandwidth_sharing={name:?} must be 'max-min' or 'min-share'"),
        }
    }
}

/// One delivered transfer: its id (submission index) and times in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivery {
    pub id: u64,
    pub src: usize,
    pub dst: usize,
    pub bytes: f64,
    pub ready: f64,
    /// When its first byte left (its ready time unless its sender's queue held it back).
    pub start: f64,
    /// When its last byte left the sender.
    pub last_byte: f64,
    /// `last_byte + latency(src, dst)`.
    pub delivered: f64,
}

/// Per-transfer times of a whole batch, indexed by transfer id (the row of the input).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    pub start: Vec<f64>,
    pub last_byte: Vec<f64>,
    pub delivered: Vec<f64>,
}

/// Transfers of one kind (queued, sending or in flight) as columns, one row per transfer in id
/// order. Ids, nodes and times are kept as given so that a checkpoint is checked before use.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransferRows {
    pub id: Vec<i64>,
    pub src: Vec<i64>,
    pub dst: Vec<i64>,
    pub bytes: Vec<f64>,
    pub ready: Vec<f64>,
    /// Queued: when its start is due (NaN while it waits behind its sender's FIFO); otherwise when
    /// its first byte left.
    pub start: Vec<f64>,
}

impl TransferRows {
    fn len(&self) -> usize {
        self.id.len()
    }

    fn push(&mut self, id: u64, x: &Transfer, start: f64) {
        self.id.push(id as i64);
        self.src.push(i64::from(x.src));
        self.dst.push(i64::from(x.dst));
        self.bytes.push(x.bytes);
        self.ready.push(x.ready);
        self.start.push(start);
    }
}

/// Everything that determines a scheduler's future between calls (its checkpoint): the network,
/// the clock, the next id and every transfer not delivered or cancelled yet. Pending events are
/// not stored: each follows from its transfer (a queued one's due start, a sending one's
/// `updated + remaining / rate`, an in-flight one's `delivered`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerState {
    pub uplink: Vec<f64>,
    pub downlink: Vec<f64>,
    pub latency: Latency,
    pub fifo_per_sender: bool,
    /// One FIFO per (sender, receiver) (exclusive with `fifo_per_sender`).
    pub fifo_per_pair: bool,
    pub sharing: Sharing,
    pub now: f64,
    pub next_id: u64,
    pub queued: TransferRows,
    pub active: TransferRows,
    /// Bytes a sending transfer had left at `active_updated`, sent at `active_rate` since then.
    pub active_remaining: Vec<f64>,
    pub active_rate: Vec<f64>,
    pub active_updated: Vec<f64>,
    pub in_flight: TransferRows,
    pub in_flight_last_byte: Vec<f64>,
    pub in_flight_delivered: Vec<f64>,
}

/// A checkpoint error naming its entry, as `network state '<entry>' <problem>`.
fn bad_state(entry: &str, problem: impl std::fmt::Display) -> crate::error::MosaicError {
    crate::error::MosaicError::value(format!("network state '{entry}' {problem}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Submitted, not started (cancellable).
    Queued,
    /// Sending bytes.
    Active,
    /// Last byte sent, waiting for its delivery to be handed out.
    InFlight,
    /// Delivered or cancelled: its slot may be reclaimed.
    Retired,
}

#[derive(Debug, Clone)]
struct Transfer {
    src: u32,
    dst: u32,
    state: State,
    /// Bumped on each rate change; completion entries of older versions are stale.
    version: u64,
    /// Index in `out_active[src]` / `in_active[dst]` while active; in `waiting[src]` while queued
    /// without FIFO.
    out_pos: u32,
    in_pos: u32,
    bytes: f64,
    ready: f64,
    start: f64,
    last_byte: f64,
    /// Bytes left as of `updated`, sent at `rate` since then.
    remaining: f64,
    rate: f64,
    updated: f64,
    /// Max-min scratch: the recomputation that last reached it, and the rate it assigned.
    mark: u64,
    fill: f64,
}

/// With a FIFO per pair: a sender's queue to one receiver. `busy`: its head has its start entry,
/// or one of its transfers is sending.
#[derive(Debug, Clone)]
struct PairQueue {
    dst: u32,
    queue: VecDeque<u64>,
    busy: bool,
}

/// A time as a key that orders like the time: the bits of a non-negative `f64` (+0.0, never -0.0).
type Key = u64;

fn key(t: f64) -> Key {
    (t + 0.0).to_bits()
}

fn time_of(k: Key) -> f64 {
    f64::from_bits(k)
}

/// The scheduler: submit transfers, then advance its clock to collect deliveries in order.
#[derive(Debug, Clone)]
pub struct Scheduler {
    uplink: Vec<f64>,
    downlink: Vec<f64>,
    latency: Latency,
    queueing: Queueing,
    sharing: Sharing,
    /// The caller's clock: every event up to it has been handled; submissions start no earlier.
    now: f64,
    /// Transfers by id; ids below `first_id` are retired and their slots reclaimed.
    transfers: VecDeque<Transfer>,
    first_id: u64,
    out_active: Vec<Vec<u64>>,
    in_active: Vec<Vec<u64>>,
    /// Not-started transfers per sender: submission order with FIFO (the head may already have its
    /// start entry), any order without.
    waiting: Vec<VecDeque<u64>>,
    /// With FIFO per sender: whether the head of `waiting[s]` has its entry in `starts`.
    head_scheduled: Vec<bool>,
    /// With FIFO per pair: each sender's non-empty or busy queues (few: linear search).
    pairs: Vec<Vec<PairQueue>>,
    /// Max-min scratch, per link (uplink `s` is `s`, downlink `d` is `n + d`).
    link_mark: Vec<u64>,
    link_frozen: Vec<u64>,
    link_cap: Vec<f64>,
    link_count: Vec<u32>,
    mark: u64,
    component_links: Vec<u32>,
    component_ids: Vec<u64>,
    fill_heap: BinaryHeap<Reverse<(Key, u32)>>,
    /// (start time, id) of transfers due to start.
    starts: BinaryHeap<Reverse<(Key, u64)>>,
    /// (last-byte time, id, version) of active transfers at their current rate.
    completions: BinaryHeap<Reverse<(Key, u64, u64)>>,
    /// (delivery time, id) of transfers in flight.
    deliveries: BinaryHeap<Reverse<(Key, u64)>>,
    /// Nodes whose up- (bit 0) or downlink (bit 1) share changed in the event being handled.
    touched: Vec<u8>,
    touched_up: Vec<u32>,
    touched_down: Vec<u32>,
    /// Batch mode: times are written here when a last byte leaves instead of queueing a delivery.
    sink: Option<Schedule>,
    counts: Counts,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    queued: usize,
    active: usize,
    in_flight: usize,
}

fn check_rates(name: &str, values: &[f64]) -> Result<()> {
    for (i, &v) in values.iter().enumerate() {
        // inf is an unlimited link.
        if v.is_nan() || v <= 0.0 {
            bail!("{name}[{i}]={v} must be a positive rate (bytes/s; inf for an unlimited link)");
        }
    }
    Ok(())
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
            pairs: vec![Vec::new(); if queueing == Queueing::PerPair { n } else { 0 }],
            link_mark: vec![0; if sharing == Sharing::MaxMin { 2 * n } else { 0 }],
            link_frozen: vec![0; if sharing == Sharing::MaxMin { 2 * n } else { 0 }],
            link_cap: vec![0.0; if sharing == Sharing::MaxMin { 2 * n } else { 0 }],
            link_count: vec![0; if sharing == Sharing::MaxMin { 2 * n } else { 0 }],
            mark: 0,
            component_links: Vec::new(),
            component_ids: Vec::new(),
            fill_heap: BinaryHeap::new(),
            starts: BinaryHeap::new(),
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

    fn check_node(&self, name: &str, node: usize) -> Result<()> {
        if node >= self.n_nodes() {
            bail!(
                "{name}={node} is not a node id (the network has nodes 0..{})",
                self.n_nodes()
            );
        }
        Ok(())
    }

    fn check_transfer(&self, src: usize, dst: usize, bytes: f64, ready: f64) -> Result<()> {
        self.check_node("src", src)?;
        self.check_node("dst", dst)?;
        if !(bytes.is_finite() && (0.0..=MAX_BYTES).contains(&bytes)) {
            bail!("bytes={bytes} must be finite, non-negative and at most 2^53");
        }
        if !ready.is_finite() {
            bail!("ready_time={ready} must be finite (seconds)");
        }
        if ready < self.now {
            bail!(
                "ready_time={ready} is before the scheduler's clock now={}",
                self.now
            );
        }
        Ok(())
    }

    /// Queue a transfer of `bytes` from `src` to `dst`, startable at `ready` (at or after the
    /// clock). Returns its id.
    pub fn submit(&mut self, src: usize, dst: usize, bytes: f64, ready: f64) -> Result<u64> {
        self.check_transfer(src, dst, bytes, ready)?;
        Ok(self.push_transfer(src, dst, bytes, ready))
    }

    /// Queue many transfers at once (all checked first: on an error none is queued). Returns the
    /// id of the first; the others follow consecutively.
    pub fn submit_many(
        &mut self,
        src: &[i64],
        dst: &[i64],
        bytes: &[f64],
        ready: &[f64],
    ) -> Result<u64> {
        let m = src.len();
        if dst.len() != m || bytes.len() != m || ready.len() != m {
            bail!(
                "src, dst, bytes and ready_time must have one value per transfer, got lengths {}, {}, {} and {}",
                m,
                dst.len(),
                bytes.len(),
                ready.len()
            );
        }
        for i in 0..m {
            let node = |name: &str, v: i64| -> Result<usize> {
                if v < 0 {
                    bail!(
                        "transfer {i}: {name}={v} is not a node id (the network has nodes 0..{})",
                        self.n_nodes()
                    );
                }
                Ok(v as usize)
            };
            let (s, d) = (node("src", src[i])?, node("dst", dst[i])?);
            self.check_transfer(s, d, bytes[i], ready[i])
                .map_err(|mut e| {
                    e.message = format!("transfer {i}: {}", e.message);
                    e
                })?;
        }
        let first = self.next_id();
        self.transfers.reserve(m);
        for i in 0..m {
            self.push_transfer(src[i] as usize, dst[i] as usize, bytes[i], ready[i]);
        }
        Ok(first)
    }

    fn push_transfer(&mut self, src: usize, dst: usize, bytes: f64, ready: f64) -> u64 {
        let id = self.next_id();
        let ready = ready + 0.0;
        let position = self.waiting[src].len() as u32;
        self.transfers.push_back(Transfer {
            src: src as u32,
            dst: dst as u32,
            state: State::Queued,
            version: 0,
            out_pos: position,
            in_pos: 0,
            bytes,
            ready,
            start: f64::NAN,
            last_byte: f64::NAN,
            remaining: bytes,
            rate: 0.0,
            updated: ready,
            mark: 0,
            fill: 0.0,
        });
        self.waiting[src].push_back(id);
        self.counts.queued += 1;
        match self.queueing {
            Queueing::PerSender => self.schedule_head(src, self.now),
            Queueing::Concurrent => self.starts.push(Reverse((key(ready), id))),
            Queueing::PerPair => {
                let at = self.now;
                let pair = self.pair_index(src, dst as u32);
                self.pairs[src][pair].queue.push_back(id);
                self.schedule_pair_head(src, pair, at);
            }
        }
        id
    }

    /// With FIFO per pair: the position of `src`'s queue to `dst`, created if absent.
    fn pair_index(&mut self, src: usize, dst: u32) -> usize {
        if let Some(i) = self.pairs[src].iter().position(|p| p.dst == dst) {
            return i;
        }
        self.pairs[src].push(PairQueue {
            dst,
            queue: VecDeque::new(),
            busy: false,
        });
        self.pairs[src].len() - 1
    }

    /// With FIFO per pair: give the head of a pair's queue its start entry if the pair is idle
    /// since `idle_at`; an idle pair with an empty queue is dropped.
    fn schedule_pair_head(&mut self, src: usize, pair: usize, idle_at: f64) {
        let p = &self.pairs[src][pair];
        if p.busy {
            return;
        }
        match p.queue.front() {
            Some(&head) => {
                let at = self.transfer(head).ready.max(idle_at);
                self.starts.push(Reverse((key(at), head)));
                self.pairs[src][pair].busy = true;
            }
            None => {
                self.pairs[src].swap_remove(pair);
            }
        }
    }

    /// Cancel every not-started transfer of `src` (those sending or in flight go on). Returns
    /// their ids, ascending.
    pub fn cancel_queued(&mut self, src: usize) -> Result<Vec<u64>> {
        self.check_node("src", src)?;
        let mut ids: Vec<u64> = self.waiting[src].drain(..).collect();
        ids.sort_unstable();
        for &id in &ids {
            self.transfer_mut(id).state = State::Retired;
        }
        self.counts.queued -= ids.len();
        match self.queueing {
            // Its start entry, if any, is now stale: the transfer is retired.
            Queueing::PerSender => self.head_scheduled[src] = false,
            Queueing::Concurrent => {}
            Queueing::PerPair => {
                // Only the pairs with a transfer sending stay busy.
                self.pairs[src].clear();
                for j in 0..self.out_active[src].len() {
                    let dst = self.transfer(self.out_active[src][j]).dst;
                    self.pairs[src].push(PairQueue {
                        dst,
                        queue: VecDeque::new(),
                        busy: true,
                    });
                }
            }
        }
        self.reclaim();
        Ok(ids)
    }

    /// Cancel every transfer of `src` whose last byte has not left: those not started and those
    /// sending (DivShare closing its sockets); transfers in flight go on. Acts at the clock: call
    /// it after the events up to now were handled. Returns their ids, ascending, and the bytes
    /// each had sent (0 for those not started).
    pub fn cancel_unsent(&mut self, src: usize) -> Result<(Vec<u64>, Vec<f64>)> {
        self.check_node("src", src)?;
        let t = self.now;
        let sending: Vec<u64> = self.out_active[src].clone();
        let mut cancelled: Vec<(u64, f64)> = Vec::with_capacity(sending.len());
        for &id in &sending {
            let x = self.transfer(id);
            let mut left = x.remaining;
            if x.rate > 0.0 && t > x.updated {
                left = (left - x.rate * (t - x.updated)).max(0.0);
            }
            let sent = (x.bytes - left).max(0.0);
            self.stop_sending(id);
            self.transfer_mut(id).state = State::Retired;
            self.counts.active -= 1;
            cancelled.push((id, sent));
        }
        let queued = self.cancel_queued(src)?;
        if self.queueing == Queueing::PerPair {
            self.pairs[src].clear();
        }
        cancelled.extend(queued.into_iter().map(|id| (id, 0.0)));
        cancelled.sort_unstable_by_key(|&(id, _)| id);
        if !sending.is_empty() {
            self.update_touched(t);
        }
        self.reclaim();
        Ok(cancelled.into_iter().unzip())
    }

    fn index(&self, id: u64) -> usize {
        (id - self.first_id) as usize
    }

    fn transfer(&self, id: u64) -> &Transfer {
        &self.transfers[self.index(id)]
    }

    fn transfer_mut(&mut self, id: u64) -> &mut Transfer {
        let i = self.index(id);
        &mut self.transfers[i]
    }

    /// The state of `id`, `Retired` for reclaimed slots.
    fn state(&self, id: u64) -> State {
        if id < self.first_id {
            State::Retired
        } else {
            self.transfer(id).state
        }
    }

    /// Drop retired transfers from the front of the table.
    fn reclaim(&mut self) {
        while self
            .transfers
            .front()
            .is_some_and(|t| t.state == State::Retired)
        {
            self.transfers.pop_front();
            self.first_id += 1;
        }
    }

    /// With FIFO: give the head of `src`'s queue its start entry if `src` is idle since `idle_at`.
    fn schedule_head(&mut self, src: usize, idle_at: f64) {
        if self.head_scheduled[src] || !self.out_active[src].is_empty() {
            return;
        }
        if let Some(&head) = self.waiting[src].front() {
            let at = self.transfer(head).ready.max(idle_at);
            self.starts.push(Reverse((key(at), head)));
            self.head_scheduled[src] = true;
        }
    }

    fn touch(&mut self, src: usize, dst: usize) {
        if self.touched[src] & 1 == 0 {
            self.touched[src] |= 1;
            self.touched_up.push(src as u32);
        }
        if self.touched[dst] & 2 == 0 {
            self.touched[dst] |= 2;
            self.touched_down.push(dst as u32);
        }
    }

    /// Drop stale entries from the tops of the start and completion queues.
    fn prune(&mut self) {
        while let Some(&Reverse((_, id))) = self.starts.peek() {
            if self.state(id) == State::Queued {
                break;
            }
            self.starts.pop();
        }
        while let Some(&Reverse((_, id, version))) = self.completions.peek() {
            if self.state(id) == State::Active && self.transfer(id).version == version {
                break;
            }
            self.completions.pop();
        }
    }

    /// Drop every stale completion entry (O(entries); done when most of them are stale).
    fn compact_completions(&mut self) {
        let mut entries = std::mem::take(&mut self.completions).into_vec();
        entries.retain(|&Reverse((_, id, version))| {
            self.state(id) == State::Active && self.transfer(id).version == version
        });
        self.completions = BinaryHeap::from(entries);
    }

    /// Time of the next start or last byte, if any.
    fn next_event(&mut self) -> Option<f64> {
        self.prune();
        let start = self.starts.peek().map(|Reverse((k, _))| *k);
        let done = self.completions.peek().map(|Reverse((k, _, _))| *k);
        match (start, done) {
            (Some(a), Some(b)) => Some(time_of(a.min(b))),
            (a, b) => a.or(b).map(time_of),
        }
    }

    /// Handle every event at time `t` (the next event's time): last bytes, then starts, then one
    /// rate update of every transfer sharing a link whose count changed.
    fn handle_events_at(&mut self, t: f64) {
        let at = key(t);
        loop {
            self.prune();
            match self.completions.peek() {
                Some(&Reverse((k, id, _))) if k == at => {
                    self.completions.pop();
                    self.stop_sending(id);
                    self.finish(id, t);
                }
                _ => break,
            }
        }
        loop {
            self.prune();
            match self.starts.peek() {
                Some(&Reverse((k, id))) if k == at => {
                    self.starts.pop();
                    self.start(id, t);
                }
                _ => break,
            }
        }
        self.update_touched(t);
    }

    /// Bring the rates of the transfers whose links changed (`touched_*`) up to date at `t`.
    fn update_touched(&mut self, t: f64) {
        match self.sharing {
            Sharing::MinShare => {
                for i in 0..self.touched_up.len() {
                    let s = self.touched_up[i] as usize;
                    for j in 0..self.out_active[s].len() {
                        let id = self.out_active[s][j];
                        let (src, dst) = (s, self.transfer(id).dst as usize);
                        let rate = self.fair_share(src, dst);
                        self.set_rate(id, rate, t);
                    }
                }
                for i in 0..self.touched_down.len() {
                    let d = self.touched_down[i] as usize;
                    for j in 0..self.in_active[d].len() {
                        let id = self.in_active[d][j];
                        let (src, dst) = (self.transfer(id).src as usize, d);
                        let rate = self.fair_share(src, dst);
                        self.set_rate(id, rate, t);
                    }
                }
            }
            Sharing::MaxMin => {
                let n = self.n_nodes();
                let mut seeds: Vec<u32> = std::mem::take(&mut self.component_links);
                seeds.clear();
                seeds.extend(self.touched_up.iter().copied());
                seeds.extend(self.touched_down.iter().map(|&d| d + n as u32));
                self.max_min_fill(&seeds);
                self.component_links = seeds;
                for k in 0..self.component_ids.len() {
                    let id = self.component_ids[k];
                    let rate = self.transfer(id).fill;
                    self.set_rate(id, rate, t);
                }
            }
        }
        // Rate changes leave stale completion entries behind; keep them a bounded share.
        if self.completions.len() > 4 * self.counts.active + 1024 {
            self.compact_completions();
        }
        for &s in &self.touched_up {
            self.touched[s as usize] = 0;
        }
        for &d in &self.touched_down {
            self.touched[d as usize] = 0;
        }
        self.touched_up.clear();
        self.touched_down.clear();
    }

    fn start(&mut self, id: u64, t: f64) {
        let i = self.index(id);
        let (src, dst, bytes) = {
            let x = &self.transfers[i];
            (x.src as usize, x.dst as usize, x.bytes)
        };
        if self.queueing == Queueing::PerSender {
            self.waiting[src].pop_front();
            self.head_scheduled[src] = false;
        } else {
            let position = self.transfers[i].out_pos as usize;
            self.waiting[src].swap_remove_back(position);
            if let Some(&moved) = self.waiting[src].get(position) {
                self.transfer_mut(moved).out_pos = position as u32;
            }
            if self.queueing == Queueing::PerPair {
                // It heads its pair's queue; the pair stays busy while it sends.
                let pair = self.pair_index(src, dst as u32);
                self.pairs[src][pair].queue.pop_front();
            }
        }
        self.counts.queued -= 1;
        let x = &mut self.transfers[i];
        x.start = t;
        x.updated = t;
        x.remaining = bytes;
        x.rate = 0.0;
        if bytes == 0.0 {
            // Nothing to send: it takes no bandwidth and its last byte leaves at once.
            x.state = State::Active;
            self.counts.active += 1;
            self.finish(id, t);
            return;
        }
        x.state = State::Active;
        x.out_pos = self.out_active[src].len() as u32;
        x.in_pos = self.in_active[dst].len() as u32;
        self.out_active[src].push(id);
        self.in_active[dst].push(id);
        self.counts.active += 1;
        self.touch(src, dst);
    }

    /// Take an active transfer off its links.
    fn stop_sending(&mut self, id: u64) {
        let (src, dst, out_pos, in_pos) = {
            let x = self.transfer(id);
            (
                x.src as usize,
                x.dst as usize,
                x.out_pos as usize,
                x.in_pos as usize,
            )
        };
        self.out_active[src].swap_remove(out_pos);
        if let Some(&moved) = self.out_active[src].get(out_pos) {
            self.transfer_mut(moved).out_pos = out_pos as u32;
        }
        self.in_active[dst].swap_remove(in_pos);
        if let Some(&moved) = self.in_active[dst].get(in_pos) {
            self.transfer_mut(moved).in_pos = in_pos as u32;
        }
        self.touch(src, dst);
    }

    /// The last byte of `id` left at `t`: queue its delivery (or record it in batch mode) and, with
    /// FIFO, let its sender's next transfer go.
    fn finish(&mut self, id: u64, t: f64) {
        let n = self.n_nodes();
        let i = self.index(id);
        let x = &mut self.transfers[i];
        let (src, dst) = (x.src as usize, x.dst as usize);
        x.last_byte = t;
        x.remaining = 0.0;
        let delivered = t + self.latency.between(src, dst, n);
        self.counts.active -= 1;
        if let Some(sink) = self.sink.as_mut() {
            let row = id as usize;
            sink.start[row] = x.start;
            sink.last_byte[row] = t;
            sink.delivered[row] = delivered;
            x.state = State::Retired;
        } else {
            x.state = State::InFlight;
            self.counts.in_flight += 1;
            self.deliveries.push(Reverse((key(delivered), id)));
        }
        match self.queueing {
            Queueing::PerSender => self.schedule_head(src, t),
            Queueing::Concurrent => {}
            Queueing::PerPair => {
                let pair = self.pair_index(src, dst as u32);
                self.pairs[src][pair].busy = false;
                self.schedule_pair_head(src, pair, t);
            }
        }
    }

    /// Give an active transfer `rate` from `t`; when it changed, account the bytes sent at the old
    /// rate and queue its new last-byte time.
    fn set_rate(&mut self, id: u64, rate: f64, t: f64) {
        let i = self.index(id);
        let x = &mut self.transfers[i];
        if rate == x.rate {
            return;
        }
        // No time passed, nothing sent (and an unlimited rate times 0 would be NaN).
        if x.rate > 0.0 && t > x.updated {
            x.remaining = (x.remaining - x.rate * (t - x.updated)).max(0.0);
        }
        x.updated = t;
        x.rate = rate;
        x.version += 1;
        let done = t + x.remaining / rate;
        self.completions.push(Reverse((key(done), id, x.version)));
    }

    /// Transfers sending over link `l` (uplink `s` is `s`, downlink `d` is `n + d`).
    fn link_transfers(&self, l: usize) -> &[u64] {
        let n = self.n_nodes();
        if l < n {
            &self.out_active[l]
        } else {
            &self.in_active[l - n]
        }
    }

    fn link_capacity(&self, l: usize) -> f64 {
        let n = self.n_nodes();
        if l < n {
            self.uplink[l]
        } else {
            self.downlink[l - n]
        }
    }

    /// The other end of transfer `x` as seen from link `l`.
    fn other_link(&self, x: &Transfer, l: usize) -> usize {
        let n = self.n_nodes();
        if l < n {
            n + x.dst as usize
        } else {
            x.src as usize
        }
    }

    /// Whether link `l` is (nearly) full at the transfers' current rates: a link with room left
    /// bounds none of its transfers, so a change elsewhere reaches them only if it fills it.
    fn is_tight(&self, l: usize) -> bool {
        let cap = self.link_capacity(l);
        if !cap.is_finite() {
            return false;
        }
        let load: f64 = self
            .link_transfers(l)
            .iter()
            .map(|&id| self.transfer(id).rate)
            .sum();
        load >= cap * (1.0 - TIGHT)
    }

    /// Max-min rates by progressive filling, written to each recomputed transfer's `fill`
    /// (`component_ids` lists them), after the links `seeds` changed (uplink `s` is `s`, downlink
    /// `d` is `n + d`).
    ///
    /// Only a region is refilled: the seeds and every full ("tight") link reached from them
    /// through transfers, with all their transfers; a link with room left that such a transfer
    /// also uses is a boundary: its capacity less its other transfers' (unchanged) rates bounds
    /// the region's transfers. No transfer outside the region can change: its own bottleneck is a
    /// full link outside the region, none of whose transfers changed. If the refill fills a
    /// boundary link, the outside transfers there may have to slow down: that link joins the
    /// region and the refill starts over. With every link among the seeds this is the whole
    /// progressive filling. Links are filled in increasing order of their equal share of what is
    /// left (ties by link index), so the result is deterministic.
    fn max_min_fill(&mut self, seeds: &[u32]) {
        let mut seeds: Vec<u32> = seeds.to_vec();
        loop {
            let grown = self.max_min_fill_once(&seeds);
            if grown.is_empty() {
                return;
            }
            seeds.extend(grown);
        }
    }

    /// One refill of the region grown from `seeds`; returns the boundary links it filled (empty:
    /// the rates in `fill` are max-min fair).
    fn max_min_fill_once(&mut self, seeds: &[u32]) -> Vec<u32> {
        // Marks only grow (u64: never wrap): a mark of an earlier recomputation is never current.
        self.mark += 1;
        let mark = self.mark;
        self.component_ids.clear();
        let mut stack: Vec<u32> = Vec::new();
        let mut links: Vec<u32> = Vec::new();
        let mut boundary: Vec<u32> = Vec::new();
        for &l in seeds {
            if self.link_mark[l as usize] != mark {
                self.link_mark[l as usize] = mark;
                stack.push(l);
            }
        }
        // Region links have link_mark == mark; boundary links link_frozen == mark + 1 (reset to
        // "not frozen" before the filling).
        while let Some(l) = stack.pop() {
            links.push(l);
            let l = l as usize;
            for j in 0..self.link_transfers(l).len() {
                let id = self.link_transfers(l)[j];
                let other = {
                    let x = self.transfer(id);
                    if x.mark == mark {
                        continue;
                    }
                    self.other_link(x, l)
                };
                self.transfer_mut(id).mark = mark;
                self.component_ids.push(id);
                if self.link_mark[other] == mark || self.link_frozen[other] == mark + 1 {
                    continue;
                }
                if self.is_tight(other) {
                    self.link_mark[other] = mark;
                    stack.push(other as u32);
                } else {
                    self.link_frozen[other] = mark + 1;
                    boundary.push(other as u32);
                }
            }
        }
        self.fill_heap.clear();
        for &l in links.iter().chain(boundary.iter()) {
            let l = l as usize;
            let mut cap = self.link_capacity(l);
            let mut count = 0_u32;
            for &id in self.link_transfers(l) {
                let x = self.transfer(id);
                if x.mark == mark {
                    count += 1;
                } else if cap.is_finite() {
                    cap -= x.rate; // a boundary link's outside transfer keeps its rate
                }
            }
            let cap = cap.max(0.0);
            self.link_cap[l] = cap;
            self.link_count[l] = count;
            self.link_frozen[l] = 0;
            if count > 0 {
                self.fill_heap
                    .push(Reverse((key(cap / f64::from(count)), l as u32)));
            }
        }
        // A transfer is assigned when its `mark` is bumped past the region's.
        let assigned = mark + 1;
        while let Some(Reverse((k, l))) = self.fill_heap.pop() {
            let l = l as usize;
            if self.link_frozen[l] == mark || self.link_count[l] == 0 {
                continue;
            }
            let share = self.link_cap[l] / f64::from(self.link_count[l]);
            if key(share) != k {
                continue; // stale: the link's share rose since
            }
            self.link_frozen[l] = mark;
            for j in 0..self.link_transfers(l).len() {
                let id = self.link_transfers(l)[j];
                let other = {
                    let x = self.transfer(id);
                    if x.mark != mark {
                        continue; // assigned already, or outside the region
                    }
                    self.other_link(x, l)
                };
                let x = self.transfer_mut(id);
                x.mark = assigned;
                x.fill = share;
                if self.link_frozen[other] == mark {
                    continue;
                }
                self.link_count[other] -= 1;
                if share.is_finite() {
                    self.link_cap[other] = (self.link_cap[other] - share).max(0.0);
                }
                if self.link_count[other] > 0 {
                    let next = self.link_cap[other] / f64::from(self.link_count[other]);
                    self.fill_heap.push(Reverse((key(next), other as u32)));
                }
            }
        }
        // The next recomputation uses mark + 2 so that `assigned` never equals a fresh mark.
        self.mark = assigned;
        // A boundary link the refill filled: its outside transfers may have to slow down.
        let mut grown = Vec::new();
        for &b in &boundary {
            let b = b as usize;
            let cap = self.link_capacity(b);
            let load: f64 = self
                .link_transfers(b)
                .iter()
                .map(|&id| {
                    let x = self.transfer(id);
                    if x.mark == assigned {
                        x.fill
                    } else {
                        x.rate
                    }
                })
                .sum();
            if load >= cap * (1.0 - TIGHT) {
                grown.push(b as u32);
            }
        }
        grown
    }

    /// The rate of a transfer sending from `src` to `dst`: the smaller of its two fair shares.
    fn fair_share(&self, src: usize, dst: usize) -> f64 {
        let up = self.uplink[src] / self.out_active[src].len() as f64;
        let down = self.downlink[dst] / self.in_active[dst].len() as f64;
        up.min(down)
    }

    /// Hand out the next delivery at or before `until` (no limit: `None`) and move the clock to
    /// it; without one, move the clock to `until` (if given) and return `None`.
    pub fn next_delivery(&mut self, until: Option<f64>) -> Result<Option<Delivery>> {
        if let Some(limit) = until {
            if limit.is_nan() {
                bail!("until=NaN must be a time (seconds)");
            }
            if limit < self.now {
                bail!(
                    "until={limit} is before the scheduler's clock now={}",
                    self.now
                );
            }
        }
        let limit = until.unwrap_or(f64::INFINITY);
        loop {
            let delivery = self.deliveries.peek().map(|Reverse((k, _))| time_of(*k));
            let horizon = delivery.map_or(limit, |d| d.min(limit));
            match self.next_event() {
                // A last byte at or before the next delivery may lead to an earlier (or tied) one.
                Some(t) if t <= horizon => self.handle_events_at(t),
                _ => break,
            }
        }
        if let Some(&Reverse((k, id))) = self.deliveries.peek() {
            let delivered = time_of(k);
            if delivered <= limit {
                self.deliveries.pop();
                self.now = self.now.max(delivered);
                let x = self.transfer_mut(id);
                x.state = State::Retired;
                let out = Delivery {
                    id,
                    src: x.src as usize,
                    dst: x.dst as usize,
                    bytes: x.bytes,
                    ready: x.ready,
                    start: x.start,
                    last_byte: x.last_byte,
                    delivered,
                };
                self.counts.in_flight -= 1;
                self.reclaim();
                return Ok(Some(out));
            }
        }
        if until.is_some() && limit.is_finite() {
            self.now = self.now.max(limit);
        }
        Ok(None)
    }

    /// Every delivery at or before `t`, in (delivery time, id) order; the clock moves to `t`.
    pub fn advance_until(&mut self, t: f64) -> Result<Vec<Delivery>> {
        if !t.is_finite() {
            bail!("until={t} must be a finite time (seconds); run() delivers everything");
        }
        let mut out = Vec::new();
        while let Some(d) = self.next_delivery(Some(t))? {
            out.push(d);
        }
        Ok(out)
    }

    /// Every remaining delivery, in (delivery time, id) order; the clock moves to the last one.
    pub fn run(&mut self) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        while let Some(d) = self.next_delivery(None)? {
            out.push(d);
        }
        Ok(out)
    }
}

impl Scheduler {
    /// Schedule a whole batch on a fresh scheduler: transfer `i` goes from `src[i]` to `dst[i]`
    /// with `bytes[i]`, startable at `ready[i]` (>= 0); with FIFO a sender's transfers go out in
    /// row order. Returns each transfer's start, last-byte and delivery times, by row.
    pub fn schedule_batch(
        mut self,
        src: &[i64],
        dst: &[i64],
        bytes: &[f64],
        ready: &[f64],
    ) -> Result<Schedule> {
        if self.next_id() != 0 {
            bail!("schedule_batch needs a fresh scheduler; this one has had transfers submitted");
        }
        let m = src.len();
        self.submit_many(src, dst, bytes, ready)?;
        self.sink = Some(Schedule {
            start: vec![f64::NAN; m],
            last_byte: vec![f64::NAN; m],
            delivered: vec![f64::NAN; m],
        });
        while let Some(t) = self.next_event() {
            self.handle_events_at(t);
        }
        Ok(self.sink.take().unwrap_or_default())
    }
}

impl Scheduler {
    /// The scheduler's checkpoint. [`Scheduler::from_state`] turns it back into a scheduler whose
    /// future (deliveries, cancellations, ids) is bit-identical to this one's.
    pub fn export_state(&self) -> SchedulerState {
        let n = self.n_nodes();
        // A queued transfer's due start lives only in the start queue: with FIFO it depends on
        // when its sender went idle.
        let mut due = vec![f64::NAN; self.transfers.len()];
        for &Reverse((k, id)) in self.starts.iter() {
            if self.state(id) == State::Queued {
                due[self.index(id)] = time_of(k);
            }
        }
        let mut out = SchedulerState {
            uplink: self.uplink.clone(),
            downlink: self.downlink.clone(),
            latency: self.latency.clone(),
            fifo_per_sender: self.queueing == Queueing::PerSender,
            fifo_per_pair: self.queueing == Queueing::PerPair,
            sharing: self.sharing,
            now: self.now,
            next_id: self.next_id(),
            queued: TransferRows::default(),
            active: TransferRows::default(),
            active_remaining: Vec::new(),
            active_rate: Vec::new(),
            active_updated: Vec::new(),
            in_flight: TransferRows::default(),
            in_flight_last_byte: Vec::new(),
            in_flight_delivered: Vec::new(),
        };
        for (i, x) in self.transfers.iter().enumerate() {
            let id = self.first_id + i as u64;
            match x.state {
                State::Queued => out.queued.push(id, x, due[i]),
                State::Active => {
                    out.active.push(id, x, x.start);
                    out.active_remaining.push(x.remaining);
                    out.active_rate.push(x.rate);
                    out.active_updated.push(x.updated);
                }
                State::InFlight => {
                    out.in_flight.push(id, x, x.start);
                    out.in_flight_last_byte.push(x.last_byte);
                    // The same sum `finish` queued the delivery at.
                    let latency = self.latency.between(x.src as usize, x.dst as usize, n);
                    out.in_flight_delivered.push(x.last_byte + latency);
                }
                State::Retired => {}
            }
        }
        out
    }

    /// A scheduler in the state `export_state` returned. Every entry is checked first, against
    /// the invariants the scheduler keeps between calls: a malformed one is an error naming it.
    pub fn from_state(state: SchedulerState) -> Result<Self> {
        let SchedulerState {
            uplink,
            downlink,
            latency,
            fifo_per_sender,
            fifo_per_pair,
            sharing,
            now,
            next_id,
            queued,
            active,
            active_remaining,
            active_rate,
            active_updated,
            in_flight,
            in_flight_last_byte,
            in_flight_delivered,
        } = state;
        let queueing =
            match (fifo_per_sender, fifo_per_pair) {
                (false, false) => Queueing::Concurrent,
                (true, false) => Queueing::PerSender,
                (false, true) => Queueing::PerPair,
                (true, true) => return Err(bad_state(
                    "fifo_per_pair",
                    "is true, and so is 'fifo_per_sender': choose one queue per sender or per pair",
                )),
            };
        let mut s =
            Self::with_options(uplink, downlink, latency, queueing, sharing).map_err(|e| {
                crate::error::MosaicError::value(format!("network state: {}", e.message))
            })?;
        if !(now.is_finite() && now >= 0.0) {
            return Err(bad_state(
                "now",
                format!("is {now}, expected a finite non-negative time (seconds)"),
            ));
        }
        if next_id > i64::MAX as u64 {
            return Err(bad_state(
                "next_id",
                format!("is {next_id}, more than 2^63 - 1"),
            ));
        }
        let now = now + 0.0;
        check_columns("queued", &queued, &[])?;
        check_columns(
            "active",
            &active,
            &[
                ("remaining", &active_remaining),
                ("rate", &active_rate),
                ("updated", &active_updated),
            ],
        )?;
        check_columns(
            "in_flight",
            &in_flight,
            &[
                ("last_byte", &in_flight_last_byte),
                ("delivered", &in_flight_delivered),
            ],
        )?;
        let n = s.n_nodes();
        for (group, rows) in [
            ("queued", &queued),
            ("active", &active),
            ("in_flight", &in_flight),
        ] {
            check_rows(group, rows, n, next_id)?;
        }

        // The table spans the oldest live id to next_id; the ids between are retired.
        let first_id = [&queued, &active, &in_flight]
            .iter()
            .filter_map(|rows| rows.id.first().map(|&id| id as u64))
            .min()
            .unwrap_or(next_id);
        let span = usize::try_from(next_id - first_id).ok();
        let placeholder = Transfer {
            src: 0,
            dst: 0,
            state: State::Retired,
            version: 0,
            out_pos: 0,
            in_pos: 0,
            bytes: 0.0,
            ready: 0.0,
            start: f64::NAN,
            last_byte: f64::NAN,
            remaining: 0.0,
            rate: 0.0,
            updated: 0.0,
            mark: 0,
            fill: 0.0,
        };
        match span {
            Some(span) if s.transfers.try_reserve_exact(span).is_ok() => {
                s.transfers.resize(span, placeholder);
            }
            _ => {
                return Err(bad_state(
                    "next_id",
                    format!(
                        "is {next_id}: the ids {first_id}..{next_id} the scheduler would track do not fit in memory"
                    ),
                ))
            }
        }
        s.first_id = first_id;
        s.now = now;
        for (i, &id) in queued.id.iter().enumerate() {
            let (src, ready) = (queued.src[i] as usize, queued.ready[i] + 0.0);
            let x = Transfer {
                src: src as u32,
                dst: queued.dst[i] as u32,
                state: State::Queued,
                version: 0,
                out_pos: s.waiting[src].len() as u32,
                in_pos: 0,
                bytes: queued.bytes[i],
                ready,
                start: f64::NAN,
                last_byte: f64::NAN,
                remaining: queued.bytes[i],
                rate: 0.0,
                updated: ready,
                mark: 0,
                fill: 0.0,
            };
            s.place("queued", i, id as u64, x)?;
            s.waiting[src].push_back(id as u64);
            if queueing == Queueing::PerPair {
                let pair = s.pair_index(src, queued.dst[i] as u32);
                s.pairs[src][pair].queue.push_back(id as u64);
            }
        }
        for (i, &id) in active.id.iter().enumerate() {
            let (src, dst) = (active.src[i] as usize, active.dst[i] as usize);
            let (bytes, ready, start) = (active.bytes[i], active.ready[i] + 0.0, active.start[i]);
            let (remaining, updated) = (active_remaining[i], active_updated[i]);
            let at = |column: &str| format!("active_{column}[{i}]");
            if bytes == 0.0 {
                return Err(bad_state(
                    &at("bytes"),
                    "is 0: a transfer of zero bytes never sends",
                ));
            }
            if !(start.is_finite() && ready <= start && start <= now) {
                return Err(bad_state(
                    &at("start"),
                    format!("is {start}, expected a time from its ready time {ready} to now={now}"),
                ));
            }
            if !(updated.is_finite() && start <= updated && updated <= now) {
                return Err(bad_state(
                    &at("updated"),
                    format!("is {updated}, expected a time from its start {start} to now={now}"),
                ));
            }
            if !(remaining.is_finite() && (0.0..=bytes).contains(&remaining)) {
                return Err(bad_state(
                    &at("remaining"),
                    format!("is {remaining}, expected 0 to its {bytes} bytes"),
                ));
            }
            if fifo_per_sender {
                if let Some(&other) = s.out_active[src].first() {
                    return Err(bad_state(
                        &at("src"),
                        format!("is {src}, whose FIFO already has transfer {other} sending"),
                    ));
                }
            }
            if fifo_per_pair {
                let pair = s.pair_index(src, dst as u32);
                if s.pairs[src][pair].busy {
                    return Err(bad_state(
                        &at("dst"),
                        format!(
                            "is {dst}: the FIFO from {src} to {dst} already has a transfer sending"
                        ),
                    ));
                }
                s.pairs[src][pair].busy = true;
            }
            let x = Transfer {
                src: src as u32,
                dst: dst as u32,
                state: State::Active,
                version: 1,
                out_pos: s.out_active[src].len() as u32,
                in_pos: s.in_active[dst].len() as u32,
                bytes,
                ready,
                start: start + 0.0,
                last_byte: f64::NAN,
                remaining,
                rate: active_rate[i],
                updated: updated + 0.0,
                mark: 0,
                fill: 0.0,
            };
            s.place("active", i, id as u64, x)?;
            s.out_active[src].push(id as u64);
            s.in_active[dst].push(id as u64);
        }
        for (i, &id) in in_flight.id.iter().enumerate() {
            let (src, dst) = (in_flight.src[i] as usize, in_flight.dst[i] as usize);
            let (ready, start) = (in_flight.ready[i] + 0.0, in_flight.start[i]);
            let (last_byte, delivered) = (in_flight_last_byte[i], in_flight_delivered[i]);
            let at = |column: &str| format!("in_flight_{column}[{i}]");
            if !(start.is_finite() && ready <= start && start <= now) {
                return Err(bad_state(
                    &at("start"),
                    format!("is {start}, expected a time from its ready time {ready} to now={now}"),
                ));
            }
            if !(last_byte.is_finite() && start <= last_byte && last_byte <= now) {
                return Err(bad_state(
                    &at("last_byte"),
                    format!("is {last_byte}, expected a time from its start {start} to now={now}"),
                ));
            }
            let expected = last_byte + s.latency.between(src, dst, n);
            if delivered != expected || delivered < now {
                return Err(bad_state(
                    &at("delivered"),
                    format!(
                        "is {delivered}, expected last_byte + latency = {expected}, not before now={now}"
                    ),
                ));
            }
            let x = Transfer {
                src: src as u32,
                dst: dst as u32,
                state: State::InFlight,
                version: 0,
                out_pos: 0,
                in_pos: 0,
                bytes: in_flight.bytes[i],
                ready,
                start: start + 0.0,
                last_byte: last_byte + 0.0,
                remaining: 0.0,
                rate: 0.0,
                updated: last_byte + 0.0,
                mark: 0,
                fill: 0.0,
            };
            s.place("in_flight", i, id as u64, x)?;
            s.deliveries.push(Reverse((key(delivered), id as u64)));
        }

        // Pending events: each sending transfer's last byte at its current rate, which must be the
        // rate the links give it now (every rate is brought up to date within an event).
        if sharing == Sharing::MaxMin {
            let seeds: Vec<u32> = (0..n as u32)
                .filter(|&l| !s.out_active[l as usize].is_empty())
                .collect();
            s.max_min_fill(&seeds);
        }
        for (i, &id) in active.id.iter().enumerate() {
            let (src, dst) = (active.src[i] as usize, active.dst[i] as usize);
            let share = match sharing {
                Sharing::MinShare => s.fair_share(src, dst),
                Sharing::MaxMin => s.transfer(id as u64).fill,
            };
            let x = s.transfer(id as u64);
            // Max-min rates come from local refills, which may round differently from one
            // filling of everything: equal to 1e-9.
            let off = match sharing {
                Sharing::MinShare => x.rate != share,
                Sharing::MaxMin => {
                    let within = (x.rate - share).abs() <= 1e-9 * share.abs();
                    x.rate != share && !within
                }
            };
            if off {
                return Err(bad_state(
                    &format!("active_rate[{i}]"),
                    format!(
                        "is {}, expected {share}, the {} rate of its links (uplink[{src}] shared by {}, downlink[{dst}] by {})",
                        x.rate,
                        sharing.name(),
                        s.out_active[src].len(),
                        s.in_active[dst].len()
                    ),
                ));
            }
            let done = x.updated + x.remaining / x.rate;
            if done < now {
                return Err(bad_state(
                    &format!("active_remaining[{i}]"),
                    format!(
                        "is {}: at rate {} its last byte would have left at {done}, before now={now}",
                        x.remaining, x.rate
                    ),
                ));
            }
            s.completions.push(Reverse((key(done), id as u64, 1)));
        }
        // ... and each queued transfer's due start: its ready time, or with FIFO, for the head of
        // an idle sender, when the sender went idle if later.
        for (i, &id) in queued.id.iter().enumerate() {
            let (src, ready, due) = (queued.src[i] as usize, queued.ready[i], queued.start[i]);
            let entry = format!("queued_start[{i}]");
            let scheduled = if fifo_per_pair {
                let dst = queued.dst[i] as u32;
                let pair = s.pair_index(src, dst);
                let p = &s.pairs[src][pair];
                if p.queue.front() != Some(&(id as u64)) || p.busy {
                    if !due.is_nan() {
                        return Err(bad_state(
                            &entry,
                            format!("is {due}, expected NaN: it waits behind an earlier transfer from {src} to {dst}"),
                        ));
                    }
                    false
                } else {
                    if !(due.is_finite() && due >= ready) {
                        return Err(bad_state(
                            &entry,
                            format!(
                                "is {due}, expected a time at or after its ready time {ready} (it heads the idle FIFO from {src} to {dst})"
                            ),
                        ));
                    }
                    s.pairs[src][pair].busy = true;
                    true
                }
            } else if !fifo_per_sender {
                if due != ready {
                    return Err(bad_state(
                        &entry,
                        format!("is {due}, expected its ready time {ready} (no FIFO per sender)"),
                    ));
                }
                true
            } else if s.waiting[src].front() != Some(&(id as u64)) {
                if !due.is_nan() {
                    return Err(bad_state(
                        &entry,
                        format!("is {due}, expected NaN: it waits behind an earlier transfer of node {src}"),
                    ));
                }
                false
            } else if let Some(&sending) = s.out_active[src].first() {
                if !due.is_nan() {
                    return Err(bad_state(
                        &entry,
                        format!("is {due}, expected NaN: node {src} is sending transfer {sending}"),
                    ));
                }
                false
            } else {
                if !(due.is_finite() && due >= ready) {
                    return Err(bad_state(
                        &entry,
                        format!(
                            "is {due}, expected a time at or after its ready time {ready} (it heads idle node {src}'s FIFO)"
                        ),
                    ));
                }
                s.head_scheduled[src] = true;
                true
            };
            if scheduled {
                if due < now {
                    return Err(bad_state(
                        &entry,
                        format!("is {due}, before now={now}: its start would be in the past"),
                    ));
                }
                s.starts.push(Reverse((key(due), id as u64)));
            }
        }
        s.counts = Counts {
            queued: queued.len(),
            active: active.len(),
            in_flight: in_flight.len(),
        };
        Ok(s)
    }

    /// Put a checkpointed transfer in its slot, refusing an id listed twice.
    fn place(&mut self, group: &str, row: usize, id: u64, x: Transfer) -> Result<()> {
        let i = self.index(id);
        let slot = &mut self.transfers[i];
        if slot.state != State::Retired {
            let other = match slot.state {
                State::Queued => "queued",
                State::Active => "active",
                _ => "in_flight",
            };
            return Err(bad_state(
                &format!("{group}_id[{row}]"),
                format!("is {id}, an id '{other}_id' lists too"),
            ));
        }
        *slot = x;
        Ok(())
    }
}

/// Each column of `group` has one entry per id.
fn check_columns(group: &str, rows: &TransferRows, extra: &[(&str, &Vec<f64>)]) -> Result<()> {
    let expected = rows.len();
    let common = [
        ("src", rows.src.len()),
        ("dst", rows.dst.len()),
        ("bytes", rows.bytes.len()),
        ("ready", rows.ready.len()),
        ("start", rows.start.len()),
    ];
    let others = extra.iter().map(|(name, column)| (*name, column.len()));
    for (name, len) in common.into_iter().chain(others) {
        if len != expected {
            return Err(bad_state(
                &format!("{group}_{name}"),
                format!("has {len} entries, expected {expected} (one per entry of '{group}_id')"),
            ));
        }
    }
    Ok(())
}

/// The checks every transfer passes: ids ascending below `next_id`, node ids, sizes, ready times.
fn check_rows(group: &str, rows: &TransferRows, n_nodes: usize, next_id: u64) -> Result<()> {
    let mut previous = -1_i64;
    for i in 0..rows.len() {
        let at = |column: &str| format!("{group}_{column}[{i}]");
        let id = rows.id[i];
        if id <= previous || id as u64 >= next_id {
            return Err(bad_state(
                &at("id"),
                format!(
                    "is {id}, expected ids in increasing order above {previous} and below next_id={next_id}"
                ),
            ));
        }
        previous = id;
        for (column, node) in [("src", rows.src[i]), ("dst", rows.dst[i])] {
            if !(0..n_nodes as i64).contains(&node) {
                return Err(bad_state(
                    &at(column),
                    format!("is {node}, not a node id (the network has nodes 0..{n_nodes})"),
                ));
            }
        }
        let bytes = rows.bytes[i];
        if !(bytes.is_finite() && (0.0..=MAX_BYTES).contains(&bytes)) {
            return Err(bad_state(
                &at("bytes"),
                format!("is {bytes}, expected a finite size from 0 to 2^53"),
            ));
        }
        let ready = rows.ready[i];
        if !(ready.is_finite() && ready >= 0.0) {
            return Err(bad_state(
                &at("ready"),
                format!("is {ready}, expected a finite non-negative time (seconds)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        let mut s =
            Scheduler::new(vec![inf; 2], vec![inf; 2], Latency::Global(0.25), true).unwrap();
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
                    Scheduler::with_options(up, down, Latency::Global(0.1), queueing, sharing)
                        .unwrap();
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
}
