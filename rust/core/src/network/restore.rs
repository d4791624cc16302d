//! A scheduler rebuilt from its checkpoint. Every entry is checked first, against the invariants
//! the scheduler keeps between calls, so that a malformed one is an error naming it; then each
//! structure is rebuilt in turn: the transfer table, the queues, the links, and the pending events.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use super::model::{Queueing, Sharing};
use super::scheduler::{pair_key, Scheduler};
use super::state::{SchedulerState, TransferRows};
use super::transfer::{key, Counts, State, Transfer, MAX_BYTES, NO_TRANSFER};
use crate::error::{MosaicError, Result};

/// A checkpoint error naming its entry, as `network state '<entry>' <problem>`.
fn bad_state(entry: &str, problem: impl std::fmt::Display) -> MosaicError {
    MosaicError::value(format!("network state '{entry}' {problem}"))
}

/// The sending transfers of a checkpoint: their rows and the columns only they have.
struct Sending {
    rows: TransferRows,
    remaining: Vec<f64>,
    rate: Vec<f64>,
    updated: Vec<f64>,
}

/// With FIFO per pair, while restoring: each pair's first queued transfer, and the pairs with
/// one sending (by `pair_key`).
#[derive(Default)]
struct PairFifos {
    head: HashMap<u64, u64>,
    sending: HashSet<u64>,
}

/// The transfers in flight of a checkpoint: their rows and the columns only they have.
struct InFlight {
    rows: TransferRows,
    last_byte: Vec<f64>,
    delivered: Vec<f64>,
}

impl Scheduler {
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
        let queueing = checked_queueing(fifo_per_sender, fifo_per_pair)?;
        let mut s = Self::with_options(uplink, downlink, latency, queueing, sharing)
            .map_err(|e| MosaicError::value(format!("network state: {}", e.message)))?;
        let now = checked_clock(now, next_id)?;
        let active = Sending {
            rows: active,
            remaining: active_remaining,
            rate: active_rate,
            updated: active_updated,
        };
        let in_flight = InFlight {
            rows: in_flight,
            last_byte: in_flight_last_byte,
            delivered: in_flight_delivered,
        };
        check_groups(&queued, &active, &in_flight, s.n_nodes(), next_id)?;
        s.reserve_ids([&queued, &active.rows, &in_flight.rows], next_id)?;
        s.now = now;
        let mut pairs = PairFifos::default();
        s.restore_queued(&queued, &mut pairs)?;
        s.restore_active(&active, &mut pairs)?;
        s.restore_in_flight(&in_flight)?;
        // Pending events: each sending transfer's last byte, each queued one's due start.
        s.restore_completions(&active.rows)?;
        s.restore_starts(&queued, &pairs)?;
        s.counts = Counts {
            queued: queued.len(),
            active: active.rows.len(),
            in_flight: in_flight.rows.len(),
        };
        Ok(s)
    }

    /// Size the transfer table to span the oldest live id to `next_id`; the ids between are
    /// retired.
    fn reserve_ids(&mut self, groups: [&TransferRows; 3], next_id: u64) -> Result<()> {
        let first_id = groups
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
            max_min_slot: 0,
            fill: 0.0,
            next_in_pair: NO_TRANSFER,
        };
        match span {
            Some(span) if self.transfers.try_reserve_exact(span).is_ok() => {
                self.transfers.resize(span, placeholder);
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
        self.first_id = first_id;
        Ok(())
    }

    /// The transfers not started yet, each in its sender's waiting list (and its pair's FIFO).
    fn restore_queued(&mut self, queued: &TransferRows, pairs: &mut PairFifos) -> Result<()> {
        for (i, &id) in queued.id.iter().enumerate() {
            let (src, ready) = (queued.src[i] as usize, queued.ready[i] + 0.0);
            let x = Transfer {
                src: src as u32,
                dst: queued.dst[i] as u32,
                state: State::Queued,
                version: 0,
                out_pos: self.waiting[src].len() as u32,
                in_pos: 0,
                bytes: queued.bytes[i],
                ready,
                start: f64::NAN,
                last_byte: f64::NAN,
                remaining: queued.bytes[i],
                rate: 0.0,
                updated: ready,
                max_min_slot: 0,
                fill: 0.0,
                next_in_pair: NO_TRANSFER,
            };
            self.place("queued", i, id as u64, x)?;
            self.waiting[src].push_back(id as u64);
            if self.queueing == Queueing::PerPair {
                // Row order is each pair's FIFO order.
                let pair = pair_key(src, queued.dst[i] as u32);
                match self.pair_tail.insert(pair, id as u64) {
                    Some(tail) => self.transfer_mut(tail).next_in_pair = id as u64,
                    None => {
                        pairs.head.insert(pair, id as u64);
                    }
                }
            }
        }
        Ok(())
    }

    /// The sending transfers, each on its two links and holding its FIFO, if any.
    fn restore_active(&mut self, active: &Sending, pairs: &mut PairFifos) -> Result<()> {
        let rows = &active.rows;
        for (i, &id) in rows.id.iter().enumerate() {
            let (src, dst) = (rows.src[i] as usize, rows.dst[i] as usize);
            active.check_times(i, self.now)?;
            let next_in_pair = self.hold_fifo(i, (id as u64, src, dst), pairs)?;
            let x = Transfer {
                src: src as u32,
                dst: dst as u32,
                state: State::Active,
                version: 1,
                out_pos: self.out_active[src].len() as u32,
                in_pos: self.in_active[dst].len() as u32,
                bytes: rows.bytes[i],
                ready: rows.ready[i] + 0.0,
                start: rows.start[i] + 0.0,
                last_byte: f64::NAN,
                remaining: active.remaining[i],
                rate: active.rate[i],
                updated: active.updated[i] + 0.0,
                max_min_slot: 0,
                fill: 0.0,
                next_in_pair,
            };
            self.place("active", i, id as u64, x)?;
            self.out_active[src].push(id as u64);
            self.in_active[dst].push(id as u64);
        }
        Ok(())
    }

    /// With a FIFO, sending transfer `i` (`id`, from `src` to `dst`) holds its sender's or its
    /// pair's queue: a second one sending from the same queue is an error. Returns the transfer
    /// that follows it in its pair's FIFO.
    fn hold_fifo(
        &mut self,
        i: usize,
        (id, src, dst): (u64, usize, usize),
        pairs: &mut PairFifos,
    ) -> Result<u64> {
        let at = |column: &str| format!("active_{column}[{i}]");
        if self.queueing == Queueing::PerSender {
            if let Some(&other) = self.out_active[src].first() {
                return Err(bad_state(
                    &at("src"),
                    format!("is {src}, whose FIFO already has transfer {other} sending"),
                ));
            }
        }
        if self.queueing == Queueing::PerPair {
            let pair = pair_key(src, dst as u32);
            if !pairs.sending.insert(pair) {
                return Err(bad_state(
                    &at("dst"),
                    format!(
                        "is {dst}: the FIFO from {src} to {dst} already has a transfer sending"
                    ),
                ));
            }
            // Its pair's queued transfers wait behind it.
            self.pair_tail.entry(pair).or_insert(id);
            return Ok(pairs.head.get(&pair).copied().unwrap_or(NO_TRANSFER));
        }
        Ok(NO_TRANSFER)
    }

    /// The transfers in flight, each with its delivery queued.
    fn restore_in_flight(&mut self, in_flight: &InFlight) -> Result<()> {
        let rows = &in_flight.rows;
        let n = self.n_nodes();
        for (i, &id) in rows.id.iter().enumerate() {
            let (src, dst) = (rows.src[i] as usize, rows.dst[i] as usize);
            in_flight.check_times(i, self.now, self.latency.between(src, dst, n))?;
            let last_byte = in_flight.last_byte[i];
            let x = Transfer {
                src: src as u32,
                dst: dst as u32,
                state: State::InFlight,
                version: 0,
                out_pos: 0,
                in_pos: 0,
                bytes: rows.bytes[i],
                ready: rows.ready[i] + 0.0,
                start: rows.start[i] + 0.0,
                last_byte: last_byte + 0.0,
                remaining: 0.0,
                rate: 0.0,
                updated: last_byte + 0.0,
                max_min_slot: 0,
                fill: 0.0,
                next_in_pair: NO_TRANSFER,
            };
            self.place("in_flight", i, id as u64, x)?;
            let delivered = in_flight.delivered[i];
            self.deliveries.push(Reverse((key(delivered), id as u64)));
        }
        Ok(())
    }

    /// Each sending transfer's last byte at its current rate, which must be the rate the links
    /// give it now (every rate is brought up to date within an event).
    fn restore_completions(&mut self, active: &TransferRows) -> Result<()> {
        if self.sharing == Sharing::MaxMin {
            let seeds: Vec<u32> = (0..self.n_nodes() as u32)
                .filter(|&l| !self.out_active[l as usize].is_empty())
                .collect();
            self.max_min_fill(&seeds);
        }
        let now = self.now;
        for (i, &id) in active.id.iter().enumerate() {
            let (src, dst) = (active.src[i] as usize, active.dst[i] as usize);
            self.check_rate(i, id as u64, src, dst)?;
            let x = self.transfer(id as u64);
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
            self.completions.push(Reverse((key(done), id as u64, 1)));
        }
        Ok(())
    }

    /// Sending transfer `i` (`id`, from `src` to `dst`) has the rate its links give it.
    fn check_rate(&self, i: usize, id: u64, src: usize, dst: usize) -> Result<()> {
        let sharing = self.sharing;
        let share = match sharing {
            Sharing::MinShare => self.fair_share(src, dst),
            Sharing::MaxMin => self.transfer(id).fill,
        };
        let x = self.transfer(id);
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
                    self.out_active[src].len(),
                    self.in_active[dst].len()
                ),
            ));
        }
        Ok(())
    }

    /// Each queued transfer's due start: its ready time, or with FIFO, for the head of an idle
    /// queue, when the queue went idle if later. Those waiting behind another have none.
    fn restore_starts(&mut self, queued: &TransferRows, pairs: &PairFifos) -> Result<()> {
        let now = self.now;
        for (i, &id) in queued.id.iter().enumerate() {
            let (src, ready, due) = (queued.src[i] as usize, queued.ready[i], queued.start[i]);
            let entry = format!("queued_start[{i}]");
            let scheduled = match self.queueing {
                Queueing::PerPair => {
                    let dst = queued.dst[i] as u32;
                    let pair = pair_key(src, dst);
                    let heads = pairs.head.get(&pair) == Some(&(id as u64));
                    let idle_head = heads && !pairs.sending.contains(&pair);
                    self.due_pair_head(&entry, idle_head, (src, dst), ready, due)?
                }
                Queueing::Concurrent => {
                    if due != ready {
                        return Err(bad_state(
                            &entry,
                            format!(
                                "is {due}, expected its ready time {ready} (no FIFO per sender)"
                            ),
                        ));
                    }
                    true
                }
                Queueing::PerSender => self.due_sender_head(&entry, id as u64, src, ready, due)?,
            };
            if scheduled {
                if due < now {
                    return Err(bad_state(
                        &entry,
                        format!("is {due}, before now={now}: its start would be in the past"),
                    ));
                }
                self.starts.push(Reverse((key(due), id as u64)));
            }
        }
        Ok(())
    }

    /// With a FIFO per pair: whether a queued transfer heads the idle FIFO from `src` to `dst`
    /// (`idle_head`: then it is due at `due`); otherwise `due` must be NaN.
    fn due_pair_head(
        &self,
        entry: &str,
        idle_head: bool,
        (src, dst): (usize, u32),
        ready: f64,
        due: f64,
    ) -> Result<bool> {
        if !idle_head {
            if !due.is_nan() {
                return Err(bad_state(
                    entry,
                    format!("is {due}, expected NaN: it waits behind an earlier transfer from {src} to {dst}"),
                ));
            }
            return Ok(false);
        }
        if !(due.is_finite() && due >= ready) {
            return Err(bad_state(
                entry,
                format!(
                    "is {due}, expected a time at or after its ready time {ready} (it heads the idle FIFO from {src} to {dst})"
                ),
            ));
        }
        Ok(true)
    }

    /// With a FIFO per sender: whether queued transfer `id` heads idle node `src`'s FIFO (then it
    /// is due at `due`); otherwise `due` must be NaN.
    fn due_sender_head(
        &mut self,
        entry: &str,
        id: u64,
        src: usize,
        ready: f64,
        due: f64,
    ) -> Result<bool> {
        if self.waiting[src].front() != Some(&id) {
            if !due.is_nan() {
                return Err(bad_state(
                    entry,
                    format!(
                        "is {due}, expected NaN: it waits behind an earlier transfer of node {src}"
                    ),
                ));
            }
            return Ok(false);
        }
        if let Some(&sending) = self.out_active[src].first() {
            if !due.is_nan() {
                return Err(bad_state(
                    entry,
                    format!("is {due}, expected NaN: node {src} is sending transfer {sending}"),
                ));
            }
            return Ok(false);
        }
        if !(due.is_finite() && due >= ready) {
            return Err(bad_state(
                entry,
                format!(
                    "is {due}, expected a time at or after its ready time {ready} (it heads idle node {src}'s FIFO)"
                ),
            ));
        }
        self.head_scheduled[src] = true;
        Ok(true)
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

impl Sending {
    /// Row `i` started by `now`, was last updated between its start and `now`, and has bytes
    /// to send.
    fn check_times(&self, i: usize, now: f64) -> Result<()> {
        let rows = &self.rows;
        let (bytes, ready, start) = (rows.bytes[i], rows.ready[i] + 0.0, rows.start[i]);
        let (remaining, updated) = (self.remaining[i], self.updated[i]);
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
        Ok(())
    }
}

impl InFlight {
    /// Row `i` started and sent its last byte by `now`, and is delivered `latency` after its last
    /// byte, not before `now`.
    fn check_times(&self, i: usize, now: f64, latency: f64) -> Result<()> {
        let (ready, start) = (self.rows.ready[i] + 0.0, self.rows.start[i]);
        let (last_byte, delivered) = (self.last_byte[i], self.delivered[i]);
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
        let expected = last_byte + latency;
        if delivered != expected || delivered < now {
            return Err(bad_state(
                &at("delivered"),
                format!(
                    "is {delivered}, expected last_byte + latency = {expected}, not before now={now}"
                ),
            ));
        }
        Ok(())
    }
}

/// The queueing the checkpoint's two FIFO flags name (at most one may be set).
fn checked_queueing(fifo_per_sender: bool, fifo_per_pair: bool) -> Result<Queueing> {
    match (fifo_per_sender, fifo_per_pair) {
        (false, false) => Ok(Queueing::Concurrent),
        (true, false) => Ok(Queueing::PerSender),
        (false, true) => Ok(Queueing::PerPair),
        (true, true) => Err(bad_state(
            "fifo_per_pair",
            "is true, and so is 'fifo_per_sender': choose one queue per sender or per pair",
        )),
    }
}

/// The checkpoint's clock (as `+ 0.0`, never -0.0), once it and `next_id` are checked.
fn checked_clock(now: f64, next_id: u64) -> Result<f64> {
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
    Ok(now + 0.0)
}

/// Every group's columns have one entry per id, and every transfer passes [`check_rows`].
fn check_groups(
    queued: &TransferRows,
    active: &Sending,
    in_flight: &InFlight,
    n_nodes: usize,
    next_id: u64,
) -> Result<()> {
    check_columns("queued", queued, &[])?;
    check_columns(
        "active",
        &active.rows,
        &[
            ("remaining", &active.remaining),
            ("rate", &active.rate),
            ("updated", &active.updated),
        ],
    )?;
    check_columns(
        "in_flight",
        &in_flight.rows,
        &[
            ("last_byte", &in_flight.last_byte),
            ("delivered", &in_flight.delivered),
        ],
    )?;
    for (group, rows) in [
        ("queued", queued),
        ("active", &active.rows),
        ("in_flight", &in_flight.rows),
    ] {
        check_rows(group, rows, n_nodes, next_id)?;
    }
    Ok(())
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
