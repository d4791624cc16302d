//! One transfer, as the scheduler tracks it and as it is handed out.

/// Largest message size accepted: integers up to 2^53 bytes are exact in `f64`.
pub const MAX_BYTES: f64 = 9_007_199_254_740_992.0;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Submitted, not started (cancellable).
    Queued,
    /// Sending bytes.
    Active,
    /// Last byte sent, waiting for its delivery to be handed out.
    InFlight,
    /// Delivered or cancelled: its slot may be reclaimed.
    Retired,
}

impl State {
    /// With FIFO per pair: whether a transfer in this state keeps its pair busy (queued or
    /// sending; the next one to its peer waits behind it).
    pub(super) fn holds_its_pair(self) -> bool {
        matches!(self, State::Queued | State::Active)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Transfer {
    pub(super) src: u32,
    pub(super) dst: u32,
    pub(super) state: State,
    /// Bumped on each rate change; completion entries of older versions are stale.
    pub(super) version: u64,
    /// Index in `out_active[src]` / `in_active[dst]` while active; in `waiting[src]` while queued
    /// without FIFO.
    pub(super) out_pos: u32,
    pub(super) in_pos: u32,
    pub(super) bytes: f64,
    pub(super) ready: f64,
    pub(super) start: f64,
    pub(super) last_byte: f64,
    /// Bytes left as of `updated`, sent at `rate` since then.
    pub(super) remaining: f64,
    pub(super) rate: f64,
    pub(super) updated: f64,
    /// Max-min: the transfer's slot in the dense copy of the sending transfers
    /// (`rates::max_min`), and the rate the last refill assigned it.
    pub(super) max_min_slot: u64,
    pub(super) fill: f64,
    /// With FIFO per pair: the transfer submitted next from `src` to `dst` while this one was
    /// queued or sending (`NO_TRANSFER`: none); it starts when this one's last byte leaves.
    pub(super) next_in_pair: u64,
}

/// No transfer (an id never given out).
pub(super) const NO_TRANSFER: u64 = u64::MAX;

/// A time as a key that orders like the time: the bits of a non-negative `f64` (+0.0, never -0.0).
pub(super) type Key = u64;

pub(super) fn key(t: f64) -> Key {
    (t + 0.0).to_bits()
}

pub(super) fn time_of(k: Key) -> f64 {
    f64::from_bits(k)
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub(super) queued: usize,
    pub(super) active: usize,
    pub(super) in_flight: usize,
}
