//! How sending transfers share their links: each one's rate after an event, by min-share or by
//! max-min progressive filling of the region the event reached.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::model::Sharing;
use super::scheduler::Scheduler;
use super::transfer::{key, State};

mod max_min;
pub(super) use max_min::{MaxMin, Member};

impl Scheduler {
    /// Bring the rates of the transfers whose links changed (`touched_*`) up to date at `t`.
    pub(super) fn update_touched(&mut self, t: f64) {
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
                self.ensure_slots();
                let n = self.n_nodes() as u32;
                let mm = &mut self.max_min;
                mm.seeds.clear();
                mm.seeds.extend(self.touched_up.iter().copied());
                mm.seeds.extend(self.touched_down.iter().map(|&d| d + n));
                mm.fill();
                // Only the transfers whose fill differs from their rate (each on its own).
                for k in 0..self.max_min.changed.len() {
                    let slot = self.max_min.changed[k];
                    if let Some((id, rate)) = self.max_min.take_fill(slot) {
                        self.set_rate(id, rate, t);
                    }
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

    /// Drop every stale completion entry (O(entries); done when most of them are stale).
    fn compact_completions(&mut self) {
        let mut entries = std::mem::take(&mut self.completions).into_vec();
        entries.retain(|&Reverse((_, id, version))| {
            self.state(id) == State::Active && self.transfer(id).version == version
        });
        self.completions = BinaryHeap::from(entries);
    }

    /// Give an active transfer `rate` from `t`; when it changed, account the bytes sent at the old
    /// rate and queue its new last-byte time.
    pub(super) fn set_rate(&mut self, id: u64, rate: f64, t: f64) {
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

    /// Max-min rates by progressive filling after the links `seeds` changed (uplink `s` is `s`,
    /// downlink `d` is `n + d`), written to each recomputed transfer's `fill` (see
    /// [`MaxMin::fill`]).
    pub(super) fn max_min_fill(&mut self, seeds: &[u32]) {
        self.ensure_slots();
        let mm = &mut self.max_min;
        mm.seeds.clear();
        mm.seeds.extend_from_slice(seeds);
        mm.fill_all();
        for k in 0..self.max_min.region.len() {
            let slot = self.max_min.region[k] as usize;
            let fill = self.max_min.slots[slot].fill;
            let id = self.max_min.owners[slot].id;
            self.transfer_mut(id).fill = fill;
        }
    }

    /// Build max-min's copy of the sending transfers, unless it is kept up to date already (a
    /// fresh or restored scheduler has none).
    fn ensure_slots(&mut self) {
        if self.max_min.built {
            return;
        }
        let n = self.n_nodes();
        self.max_min.clear_slots(2 * n);
        for s in 0..n {
            for &id in &self.out_active[s] {
                let i = (id - self.first_id) as usize;
                let x = &self.transfers[i];
                let slot = self.max_min.new_slot(id, s, n + x.dst as usize, x.rate);
                let other = (n + x.dst as usize) as u32;
                self.max_min.link_slots[s].push(Member { slot, other });
                // With max-min, a sending transfer's `mark` is its slot.
                self.transfers[i].max_min_slot = u64::from(slot);
            }
        }
        // Downlinks list the same slots in `in_active`'s order.
        for d in 0..n {
            for &id in &self.in_active[d] {
                let x = &self.transfers[(id - self.first_id) as usize];
                let slot = self.max_min.link_slots[x.src as usize][x.out_pos as usize].slot;
                self.max_min.link_slots[n + d].push(Member { slot, other: x.src });
            }
        }
        self.max_min.built = true;
    }

    /// The rate of a transfer sending from `src` to `dst`: the smaller of its two fair shares.
    pub(super) fn fair_share(&self, src: usize, dst: usize) -> f64 {
        let up = self.uplink[src] / self.out_active[src].len() as f64;
        let down = self.downlink[dst] / self.in_active[dst].len() as f64;
        up.min(down)
    }
}
