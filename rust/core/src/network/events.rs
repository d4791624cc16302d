//! The event loop: transfers start, send their last byte and are delivered, in time order.

use std::cmp::Reverse;

use super::model::Queueing;
use super::scheduler::Scheduler;
use super::transfer::{key, time_of, Delivery, State};
use crate::bail;
use crate::error::Result;

impl Scheduler {
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

    /// Time of the next start or last byte, if any.
    pub(super) fn next_event(&mut self) -> Option<f64> {
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
    pub(super) fn handle_events_at(&mut self, t: f64) {
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

    pub(super) fn start(&mut self, id: u64, t: f64) {
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
        if self.max_min.built {
            let n = self.n_nodes();
            self.transfers[i].max_min_slot = u64::from(self.max_min.start(id, src, n + dst));
        }
        self.counts.active += 1;
        self.touch(src, dst);
    }

    /// Take an active transfer off its links.
    pub(super) fn stop_sending(&mut self, id: u64) {
        let (src, dst, out_pos, in_pos, slot) = {
            let x = self.transfer(id);
            (
                x.src as usize,
                x.dst as usize,
                x.out_pos as usize,
                x.in_pos as usize,
                x.max_min_slot as u32,
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
        if self.max_min.built {
            let n = self.n_nodes();
            self.max_min.stop(slot, (src, out_pos), (n + dst, in_pos));
        }
        self.touch(src, dst);
    }

    /// The last byte of `id` left at `t`: queue its delivery (or record it in batch mode) and, with
    /// FIFO, let its sender's next transfer go.
    pub(super) fn finish(&mut self, id: u64, t: f64) {
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
            Queueing::PerPair => self.leave_pair(id, t),
        }
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
