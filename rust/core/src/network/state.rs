//! The scheduler's checkpoint, and its export as columns ([`super::restore`] turns it back into a
//! scheduler).

use std::cmp::Reverse;

use super::model::{Latency, Queueing, Sharing};
use super::scheduler::Scheduler;
use super::transfer::{time_of, State, Transfer};

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
    pub(super) fn len(&self) -> usize {
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
}
