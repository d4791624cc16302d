//! How sending transfers share their links: each one's rate after an event, by min-share or by
//! max-min progressive filling of the region the event reached.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::model::Sharing;
use super::scheduler::Scheduler;
use super::transfer::{key, State, Transfer};

/// Relative slack below which a link counts as full for max-min's local refill: a link this
/// close to full is refilled with its neighbours (more work, never a wrong rate).
const TIGHT: f64 = 1e-9;

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
    pub(super) fn max_min_fill(&mut self, seeds: &[u32]) {
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
        let (links, boundary) = self.grow_region(seeds, mark);
        self.prepare_fill(&links, &boundary, mark);
        // A transfer is assigned when its `mark` is bumped past the region's.
        let assigned = mark + 1;
        self.fill_links(mark, assigned);
        // The next recomputation uses mark + 2 so that `assigned` never equals a fresh mark.
        self.mark = assigned;
        self.filled_boundary(&boundary, assigned)
    }

    /// The region of recomputation `mark`: the seeds and every tight link reached from them
    /// through transfers (`links`), and the links with room left that those transfers also use
    /// (`boundary`). The region's transfers get `mark` and are listed in `component_ids`.
    fn grow_region(&mut self, seeds: &[u32], mark: u64) -> (Vec<u32>, Vec<u32>) {
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
        (links, boundary)
    }

    /// Each region and boundary link's capacity left to the region's transfers, and their count;
    /// a link with some goes on the fill heap at its equal share.
    fn prepare_fill(&mut self, links: &[u32], boundary: &[u32], mark: u64) {
        self.fill_heap.clear();
        for &l in links.iter().chain(boundary) {
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
    }

    /// Progressive filling: the link of smallest equal share gives it to each of its region's
    /// transfers not assigned yet (`fill`, and `mark` bumped to `assigned`), which leaves the
    /// other end of each less to share among fewer.
    fn fill_links(&mut self, mark: u64, assigned: u64) {
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
    }

    /// The boundary links the refill filled: their outside transfers may have to slow down.
    fn filled_boundary(&self, boundary: &[u32], assigned: u64) -> Vec<u32> {
        let mut grown = Vec::new();
        for &b in boundary {
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
    pub(super) fn fair_share(&self, src: usize, dst: usize) -> f64 {
        let up = self.uplink[src] / self.out_active[src].len() as f64;
        let down = self.downlink[dst] / self.in_active[dst].len() as f64;
        up.min(down)
    }
}
