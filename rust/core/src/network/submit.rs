//! Submitting transfers (one, many, or a whole batch scheduled at once) and cancelling them.

use std::cmp::Reverse;

use super::model::Queueing;
use super::scheduler::Scheduler;
use super::transfer::{key, Schedule, State, Transfer, MAX_BYTES, NO_TRANSFER};
use crate::bail;
use crate::error::Result;

impl Scheduler {
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
            max_min_slot: 0,
            fill: 0.0,
            next_in_pair: NO_TRANSFER,
        });
        self.waiting[src].push_back(id);
        self.counts.queued += 1;
        match self.queueing {
            Queueing::PerSender => self.schedule_head(src, self.now),
            Queueing::Concurrent => self.starts.push(Reverse((key(ready), id))),
            Queueing::PerPair => self.join_pair(id, (src, dst as u32), ready),
        }
        id
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
            Queueing::PerPair => self.hold_sending_pairs(src),
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
        cancelled.extend(queued.into_iter().map(|id| (id, 0.0)));
        cancelled.sort_unstable_by_key(|&(id, _)| id);
        if !sending.is_empty() {
            self.update_touched(t);
        }
        self.reclaim();
        Ok(cancelled.into_iter().unzip())
    }

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
        self.starts.settle();
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
