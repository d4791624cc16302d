//! Max-min progressive filling over a region of links, on a dense copy of the sending transfers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::network::transfer::{key, Key};

/// Relative slack below which a link counts as full for max-min's local refill: a link this
/// close to full is refilled with its neighbours (more work, never a wrong rate).
const TIGHT: f64 = 1e-9;

/// Capacity left above which a boundary link is surely not full (see
/// [`MaxMin::filled_boundary`]), for links of at most `MAX_STEPS` transfers.
const ROOM: f64 = 4.0 * TIGHT;
const MAX_STEPS: usize = 1 << 20;

/// Relative distance below its link's largest rate at which a transfer counts as bottlenecked
/// elsewhere: a refill keeps its rate unless the link's new share falls below it.
const BOTTLENECK: f64 = TIGHT;

/// A sending transfer as a refill reads and writes it (32 bytes: two to a cache line).
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
pub(in crate::network) struct Slot {
    /// The recomputation that last reached it.
    mark: u64,
    /// Its current rate (equal to its transfer's).
    pub(in crate::network) rate: f64,
    /// The rate the last refill that reached it assigned.
    pub(in crate::network) fill: f64,
    /// When the last refill assigned it (assignments counted from 0).
    seq: u32,
}

/// A sending transfer's id and links (uplink `s` is `s`, downlink `d` is `n + d`).
#[derive(Debug, Clone, Copy)]
pub(in crate::network) struct Owner {
    pub(in crate::network) id: u64,
    up: u32,
    down: u32,
}

/// A fill queue entry (equal share, link) as one number that orders like the pair.
fn entry(k: Key, l: u32) -> u128 {
    (u128::from(k) << 32) | u128::from(l)
}

fn unpack(e: u128) -> (Key, u32) {
    ((e >> 32) as Key, e as u32)
}

/// A link as max-min sees it: its capacity and a refill's scratch, together in one cache line.
#[derive(Debug, Clone, Copy)]
struct Link {
    capacity: f64,
    /// The recomputation whose region it is in.
    mark: u64,
    /// The recomputation that filled it (`mark + 1`: a boundary link, held back).
    frozen: u64,
    /// Capacity left to the region's transfers not assigned yet, and their count.
    cap: f64,
    count: u32,
    /// Its leaf in the fill queue's tournament (a region link, or a boundary link that joined).
    leaf: u32,
    /// The sum of its transfers' rates, in list order, as `is_tight` takes it (NaN: not known
    /// since its transfers or their rates changed).
    load: f64,
    /// Held back: its smallest entry in `held`.
    held: u128,
}

/// Whether link `x` (its transfers `members`) is (nearly) full at the transfers' current rates: a
/// link with room left bounds none of its transfers, so a change elsewhere reaches them only if it
/// fills it.
fn is_tight(x: &mut Link, level: &mut f64, members: &[Member], slots: &[Slot]) -> bool {
    if !x.capacity.is_finite() {
        return false;
    }
    measure(x, level, members, slots);
    x.load >= x.capacity * (1.0 - TIGHT)
}

/// The rate below which a transfer of region link `x` is bottlenecked elsewhere (none with
/// `all`).
fn bottleneck_floor(
    all: bool,
    x: &mut Link,
    level: &mut f64,
    members: &[Member],
    slots: &[Slot],
) -> f64 {
    if all {
        return f64::NEG_INFINITY;
    }
    measure(x, level, members, slots);
    *level * (1.0 - BOTTLENECK)
}

/// Link `x`'s load and `level` (its transfers' largest rate), unless known.
fn measure(x: &mut Link, level: &mut f64, members: &[Member], slots: &[Slot]) {
    if x.load.is_nan() {
        let (mut load, mut top) = (0.0, 0.0_f64);
        for e in members {
            let rate = slots[e.slot as usize].rate;
            load += rate;
            top = top.max(rate);
        }
        x.load = load;
        *level = top;
    }
}

/// Whether boundary link `x` (of `len` transfers), with its region transfers all assigned and not
/// filled as the tightest, still has more than `ROOM` of its capacity left (see
/// [`MaxMin::filled_boundary`], which checks `finite_shares`).
fn surely_not_full(x: &Link, len: usize) -> bool {
    x.capacity.is_finite() && x.cap > x.capacity * ROOM && len <= MAX_STEPS
}

/// A link's record of one of its transfers: its slot and its other link.
#[derive(Debug, Clone, Copy)]
pub(in crate::network) struct Member {
    pub(in crate::network) slot: u32,
    pub(in crate::network) other: u32,
}

/// Max-min's state: its copy of the sending transfers (each in a slot, listed per link in the
/// order of `out_active` / `in_active`) and the scratch of a refill, kept between refills so
/// that none allocates.
#[derive(Debug, Clone, Default)]
pub(in crate::network) struct MaxMin {
    /// Whether the copy is built and kept up to date (a fresh or restored scheduler has none).
    pub(in crate::network) built: bool,
    pub(in crate::network) link_slots: Vec<Vec<Member>>,
    pub(in crate::network) slots: Vec<Slot>,
    /// Per slot: its transfer (apart from the rest: the refill's scans read it only for a
    /// changed rate).
    pub(in crate::network) owners: Vec<Owner>,
    free: Vec<u32>,
    /// Per link: its capacity and the refill's scratch.
    link: Vec<Link>,
    /// Per link: its transfers' largest rate (known when its `load` is).
    level: Vec<f64>,
    /// Per link: the refill (a [`MaxMin::fill`] call) that takes all its transfers into the
    /// region, and the recomputation that left some of them at their rates.
    all_mark: Vec<u64>,
    partial_mark: Vec<u64>,
    /// [`MaxMin::fill`] calls so far.
    refills: u64,
    /// Per partial region link: the largest rate it keeps, and the share it was filled at.
    kept_top: Vec<f64>,
    filled_share: Vec<f64>,
    /// The region links that keep some of their transfers' rates.
    partial: Vec<u32>,
    mark: u64,
    /// Whether every share the last filling assigned was finite.
    finite_shares: bool,
    /// The links whose transfers changed (input of [`MaxMin::fill`]; grows with filled boundary
    /// links).
    pub(in crate::network) seeds: Vec<u32>,
    /// The slots of the last refill's transfers (output of [`MaxMin::fill`]).
    pub(in crate::network) region: Vec<u32>,
    stack: Vec<u32>,
    links: Vec<u32>,
    boundary: Vec<u32>,
    /// The fill's queue of (equal share, link) entries ([`entry`]): each region link's current
    /// one, and each joined boundary link's, until it is filled or has none left to fill. A
    /// boundary link is held back (`frozen` is `mark + 1`) until the queue reaches its entry in
    /// the heap `held` (`Link::held`), at most its current share.
    queue: Tournament,
    held: BinaryHeap<Reverse<u128>>,
    /// Assignments of the filling so far, and a joining link's (order, share) scratch.
    assigned_count: u32,
    taken: Vec<(u32, f64)>,
    /// The last filling's transfers whose `fill` differs from their rate (their order is not
    /// their transfers': each takes its fill on its own).
    pub(in crate::network) changed: Vec<u32>,
    /// The boundary links [`MaxMin::filled_boundary`] checks: those the last filling filled as
    /// the tightest or left with little room.
    check: Vec<u32>,
}

impl MaxMin {
    /// Max-min over the links `uplink ++ downlink`.
    pub(in crate::network) fn new(uplink: &[f64], downlink: &[f64]) -> Self {
        let links = uplink.len() + downlink.len();
        Self {
            level: vec![0.0; links],
            all_mark: vec![0; links],
            partial_mark: vec![0; links],
            kept_top: vec![0.0; links],
            filled_share: vec![0.0; links],
            link: uplink
                .iter()
                .chain(downlink)
                .map(|&capacity| Link {
                    capacity,
                    mark: 0,
                    frozen: 0,
                    cap: 0.0,
                    load: f64::NAN,
                    count: 0,
                    leaf: 0,
                    held: 0,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Forget every slot (the copy is rebuilt after this).
    pub(in crate::network) fn clear_slots(&mut self, links: usize) {
        self.link_slots.clear();
        self.link_slots.resize(links, Vec::new());
        self.slots.clear();
        self.owners.clear();
        self.free.clear();
        self.region.clear();
        for x in &mut self.link {
            x.load = f64::NAN;
        }
    }

    /// A slot for transfer `id` over links `up` and `down`, listed on neither yet.
    pub(in crate::network) fn new_slot(
        &mut self,
        id: u64,
        up: usize,
        down: usize,
        rate: f64,
    ) -> u32 {
        let x = Slot {
            mark: 0,
            rate,
            fill: 0.0,
            seq: 0,
        };
        let owner = Owner {
            id,
            up: up as u32,
            down: down as u32,
        };
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = x;
                self.owners[slot as usize] = owner;
                slot
            }
            None => {
                self.slots.push(x);
                self.owners.push(owner);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Transfer `id` starts sending over `up` and `down` (at the ends of their lists); returns
    /// its slot.
    pub(in crate::network) fn start(&mut self, id: u64, up: usize, down: usize) -> u32 {
        let slot = self.new_slot(id, up, down, 0.0);
        let other = down as u32;
        self.link_slots[up].push(Member { slot, other });
        let other = up as u32;
        self.link_slots[down].push(Member { slot, other });
        self.link[up].load = f64::NAN;
        self.link[down].load = f64::NAN;
        slot
    }

    /// The transfer in `slot`, at `up_pos` of `up`'s list and `down_pos` of `down`'s, stops
    /// sending (each list's last moves into its place, as `out_active` / `in_active` do).
    pub(in crate::network) fn stop(
        &mut self,
        slot: u32,
        (up, up_pos): (usize, usize),
        (down, down_pos): (usize, usize),
    ) {
        let first = self.link_slots[up].swap_remove(up_pos).slot;
        let second = self.link_slots[down].swap_remove(down_pos).slot;
        debug_assert!(first == slot && second == slot);
        self.free.push(slot);
        self.link[up].load = f64::NAN;
        self.link[down].load = f64::NAN;
    }

    /// Slot `slot` takes its `fill` as its rate; returns its transfer's id and new rate when
    /// they differ (`None`: unchanged).
    pub(in crate::network) fn take_fill(&mut self, slot: u32) -> Option<(u64, f64)> {
        let x = &mut self.slots[slot as usize];
        // `Scheduler::set_rate` would leave an unchanged rate alone.
        if x.fill == x.rate {
            return None;
        }
        x.rate = x.fill;
        let o = self.owners[slot as usize];
        let (up, down) = (o.up as usize, o.down as usize);
        let out = (o.id, x.fill);
        self.link[up].load = f64::NAN;
        self.link[down].load = f64::NAN;
        Some(out)
    }

    /// Max-min rates by progressive filling, written to each recomputed transfer's `fill`
    /// (`region` lists them), after the links `seeds` changed.
    ///
    /// Only a region is refilled: the seeds and every full ("tight") link reached from them
    /// through transfers, with those of their transfers a change can move (see
    /// [`MaxMin::grow_region`]); a link with room left that such a transfer also uses is a
    /// boundary: its capacity less its other transfers' (unchanged) rates bounds the region's
    /// transfers. No transfer outside the region can change: its own bottleneck is a full link
    /// outside the region, none of whose transfers changed. If the refill fills a boundary link,
    /// the outside transfers there may have to slow down: that link joins the region and the
    /// refill starts over; so does a partial link filled below a rate it kept, with all its
    /// transfers. With every link among the seeds, all their transfers taken
    /// ([`MaxMin::fill_all`]), this is the whole progressive filling. Links are filled in increasing order of their equal share of what is
    /// left (ties by link index), so the result is deterministic.
    pub(in crate::network) fn fill(&mut self) {
        self.refills += 1;
        while self.fill_once() {}
    }

    /// [`MaxMin::fill`] with all the seeds' transfers in the region (with every sending
    /// transfer's uplink among the seeds, a filling of everything).
    pub(in crate::network) fn fill_all(&mut self) {
        for &l in &self.seeds {
            self.all_mark[l as usize] = self.refills + 1;
        }
        self.fill();
    }

    /// One refill of the region grown from `seeds`; adds the boundary links it filled to the
    /// seeds and returns whether there were any (none: the rates in `fill` are max-min fair).
    fn fill_once(&mut self) -> bool {
        // Marks only grow (u64: never wrap): a mark of an earlier recomputation is never current.
        self.mark += 1;
        let mark = self.mark;
        self.grow_region(mark);
        self.prepare_fill();
        // A transfer is assigned when its `mark` is bumped past the region's.
        let assigned = mark + 1;
        self.fill_links(mark, assigned);
        // The next recomputation uses mark + 2 so that `assigned` never equals a fresh mark.
        self.mark = assigned;
        self.filled_boundary(mark, assigned)
    }

    /// The region of recomputation `mark`: the seeds and every tight link reached from them
    /// through transfers (`links`), and the links with room left that those transfers also use
    /// (`boundary`). The region's transfers get `mark` and are listed in `region`.
    ///
    /// On a region link, a transfer whose rate is below the link's largest is bottlenecked
    /// elsewhere: it is not reached through this link (the link is `partial` and keeps its
    /// rate), so a change spreads only along the transfers it can move. A transfer that has just
    /// started (rate 0) is always reached. If a partial link's new share falls below a rate it
    /// kept, [`MaxMin::filled_boundary`] has the next recomputation take all its transfers.
    fn grow_region(&mut self, mark: u64) {
        self.seed_region(mark);
        let Self {
            link_slots,
            slots,
            link,
            level,
            all_mark,
            refills,
            partial_mark,
            partial,
            region,
            stack,
            links,
            boundary,
            ..
        } = self;
        // Region links have link_mark == mark; boundary links link_frozen == mark + 1 (reset to
        // "not frozen" before the filling).
        while let Some(l) = stack.pop() {
            links.push(l);
            let (x, members) = (&mut link[l as usize], &link_slots[l as usize]);
            let all = all_mark[l as usize] == *refills;
            let floor = bottleneck_floor(all, x, &mut level[l as usize], members, slots);
            for &Member { slot, other } in &link_slots[l as usize] {
                let x = &mut slots[slot as usize];
                if x.mark == mark {
                    continue;
                }
                if x.rate < floor && x.rate > 0.0 {
                    if partial_mark[l as usize] != mark {
                        partial_mark[l as usize] = mark;
                        partial.push(l);
                    }
                    continue;
                }
                x.mark = mark;
                let rate = x.rate;
                region.push(slot);
                let o = &mut link[other as usize];
                if o.mark == mark {
                    continue;
                }
                // A boundary link's region transfers are those reached from their other link
                // (`cap` sums their rates until `prepare_fill`).
                if o.frozen == mark + 1 {
                    o.count += 1;
                    o.cap += rate;
                } else if is_tight(
                    o,
                    &mut level[other as usize],
                    &link_slots[other as usize],
                    slots,
                ) {
                    o.mark = mark;
                    stack.push(other);
                } else {
                    o.frozen = mark + 1;
                    o.count = 1;
                    o.cap = rate;
                    boundary.push(other);
                }
            }
        }
    }

    /// An empty region of recomputation `mark`, with the seeds to grow it from on the stack.
    fn seed_region(&mut self, mark: u64) {
        self.region.clear();
        self.stack.clear();
        self.links.clear();
        self.boundary.clear();
        self.partial.clear();
        for &l in &self.seeds {
            if self.link[l as usize].mark != mark {
                self.link[l as usize].mark = mark;
                self.stack.push(l);
            }
        }
    }

    /// Each region and boundary link's capacity left to the region's transfers, and their count;
    /// a region link with some goes on the fill queue at its equal share, a boundary link is held
    /// back (`link_frozen` is `mark + 1`) at a lower bound of it.
    fn prepare_fill(&mut self) {
        self.queue.clear();
        // A region link's capacity is its region transfers', less the rates a partial one keeps.
        for i in 0..self.links.len() {
            let l = self.links[i] as usize;
            let (cap, count) = if self.partial_mark[l] == self.mark {
                self.kept_capacity(l)
            } else {
                (
                    self.link[l].capacity.max(0.0),
                    self.link_slots[l].len() as u32,
                )
            };
            self.link[l].cap = cap;
            self.link[l].count = count;
            self.link[l].frozen = 0;
            if count > 0 {
                let e = entry(key(cap / f64::from(count)), l as u32);
                self.link[l].leaf = self.queue.add(e);
            }
        }
        self.queue.build();
        let mut held = std::mem::take(&mut self.held).into_vec();
        held.clear();
        for &l in &self.boundary {
            let l = l as usize;
            let cap = self.link[l].capacity;
            // Held back, a finite link's `link_cap` is at most its capacity left as `exact_cap`
            // takes it: its capacity less the sum of its rates (`is_tight` cached it), plus its
            // region transfers' rates, less those sums' rounding.
            if cap.is_finite() {
                let m = self.link_slots[l].len() as f64;
                let slack = cap * (m + 4.0) * 1e-15;
                let region = self.link[l].cap;
                self.link[l].cap = (cap - self.link[l].load + region - slack).max(0.0);
            } else {
                self.link[l].cap = cap;
            }
            let count = self.link[l].count;
            if count > 0 {
                let e = entry(key(self.link[l].cap / f64::from(count)), l as u32);
                self.link[l].held = e;
                held.push(Reverse(e));
            }
        }
        self.held = BinaryHeap::from(held);
    }

    /// Partial region link `l`'s capacity left to its region transfers (less the rates it keeps,
    /// one by one in list order) and their count; notes the largest rate it keeps.
    fn kept_capacity(&mut self, l: usize) -> (f64, u32) {
        let mark = self.mark;
        let mut cap = self.link[l].capacity;
        let (mut count, mut top) = (0_u32, 0.0_f64);
        for e in &self.link_slots[l] {
            let x = &self.slots[e.slot as usize];
            if x.mark == mark {
                count += 1;
            } else {
                top = top.max(x.rate);
                if cap.is_finite() {
                    cap -= x.rate;
                }
            }
        }
        self.kept_top[l] = top;
        (cap.max(0.0), count)
    }

    /// The capacity boundary link `b` leaves to the region's transfers, as taken before the
    /// filling: less its outside transfers' rates one by one in list order.
    fn exact_cap(&self, b: usize, mark: u64, assigned: u64) -> f64 {
        let mut cap = self.link[b].capacity;
        for e in &self.link_slots[b] {
            let m = self.slots[e.slot as usize].mark;
            if m != mark && m != assigned && cap.is_finite() {
                cap -= self.slots[e.slot as usize].rate; // an outside transfer keeps its rate
            }
        }
        cap.max(0.0)
    }

    /// Progressive filling: the link of smallest equal share gives it to each of its region's
    /// transfers not assigned yet (`fill`, and `mark` bumped to `assigned`), which leaves the
    /// other end of each less to share among fewer. Stops once every region transfer is
    /// assigned: every entry left is stale then (each link's count is 0).
    fn fill_links(&mut self, mark: u64, assigned: u64) {
        self.finite_shares = true;
        self.assigned_count = 0;
        self.changed.clear();
        self.check.clear();
        let todo = self.region.len() as u32;
        while self.assigned_count < todo {
            let Some((k, l)) = self.pop(mark, assigned) else {
                break;
            };
            let l = l as usize;
            // The queue holds each link's current entry only (none once filled or left with
            // none to fill).
            debug_assert!(self.link[l].frozen != mark && self.link[l].count > 0);
            let share = self.link[l].cap / f64::from(self.link[l].count);
            debug_assert_eq!(key(share), k);
            self.finite_shares &= share.is_finite();
            self.link[l].frozen = mark;
            self.filled_share[l] = share;
            if self.link[l].mark != mark {
                self.check.push(l as u32); // a boundary link filled as the tightest
            }
            self.assign(l, share, mark);
        }
    }

    /// Link `l` gives `share` to each of its region transfers not assigned yet (`fill`, and
    /// `mark` bumped to `mark + 1`); the other end of each, if not filled yet, has one fewer to
    /// share what is left. A boundary link left with none is checked after the filling (see
    /// [`MaxMin::filled_boundary`]) unless its capacity left shows it surely not full.
    fn assign(&mut self, l: usize, share: f64, mark: u64) {
        let Self {
            link_slots,
            slots,
            link,
            changed,
            check,
            queue,
            held,
            assigned_count,
            ..
        } = self;
        for &Member { slot, other } in &link_slots[l] {
            let x = &mut slots[slot as usize];
            if x.mark != mark {
                continue; // assigned already, or outside the region
            }
            x.mark = mark + 1;
            x.fill = share;
            x.seq = *assigned_count;
            if share != x.rate {
                changed.push(slot);
            }
            *assigned_count += 1;
            let o = &mut link[other as usize];
            if o.frozen == mark {
                continue;
            }
            o.count -= 1;
            if share.is_finite() {
                o.cap = (o.cap - share).max(0.0);
            }
            if o.count == 0 {
                if o.frozen != mark + 1 {
                    queue.set(o.leaf, u128::MAX);
                }
                if o.mark != mark && !surely_not_full(o, link_slots[other as usize].len()) {
                    check.push(other);
                }
                continue;
            }
            let e = entry(key(o.cap / f64::from(o.count)), other);
            if o.frozen != mark + 1 {
                queue.set(o.leaf, e);
            } else if e < o.held {
                // Held back: its share (bounded below) rose, unless rounding lowered it.
                o.held = e;
                held.push(Reverse(e));
            }
        }
    }

    /// The smallest entry of the fill's queue, taken off it (its link is filled next). Entries
    /// come in the order of one queue of every link's current entry: a held-back boundary link
    /// joins (at its current share) before an entry above its held entry is taken. Once the
    /// queue is empty every region transfer is assigned: the links still held back have none
    /// left.
    fn pop(&mut self, mark: u64, assigned: u64) -> Option<(Key, u32)> {
        loop {
            let next = self.queue.min();
            if let Some(&Reverse(e)) = self.held.peek() {
                if e <= next {
                    self.held.pop();
                    self.release(e, mark, assigned);
                    continue;
                }
            }
            if next == u128::MAX {
                return None;
            }
            let (k, l) = unpack(next);
            // Filled (or left with none to fill): it leaves the queue.
            self.queue.set(self.link[l as usize].leaf, u128::MAX);
            return Some((k, l));
        }
    }

    /// Held entry `e`, the smallest, joins the fill queue if its link is still held back with
    /// region transfers left to fill (most have none by then) and `e` is its smallest entry.
    fn release(&mut self, e: u128, mark: u64, assigned: u64) {
        let l = unpack(e).1 as usize;
        if self.link[l].frozen == mark + 1 && self.link[l].count > 0 && self.link[l].held == e {
            self.join(l, mark, assigned);
        }
    }

    /// Held-back boundary link `b` joins the fill queue, at its current share: its capacity left
    /// as `prepare_fill` and `fill_links` would have taken it (less the shares of its region
    /// transfers assigned so far, in the order assigned).
    fn join(&mut self, b: usize, mark: u64, assigned: u64) {
        if self.link[b].frozen != mark + 1 {
            return; // joined already
        }
        self.link[b].frozen = 0;
        let count = self.link[b].count;
        if count == 0 {
            return; // keeps its lower bound: only `filled_boundary` reads it
        }
        let mut cap = self.exact_cap(b, mark, assigned);
        self.taken.clear();
        for e in &self.link_slots[b] {
            if self.slots[e.slot as usize].mark == assigned {
                let x = &self.slots[e.slot as usize];
                self.taken.push((x.seq, x.fill));
            }
        }
        self.taken.sort_unstable_by_key(|&(seq, _)| seq);
        for &(_, share) in &self.taken {
            if share.is_finite() {
                cap = (cap - share).max(0.0);
            }
        }
        self.link[b].cap = cap;
        let e = entry(key(cap / f64::from(count)), b as u32);
        self.link[b].leaf = self.queue.join(e);
    }

    /// Adds the boundary links the refill filled to the seeds (their outside transfers may have
    /// to slow down), and the partial links it filled below a rate they kept (to be refilled with
    /// all their transfers); returns whether there were any.
    ///
    /// A boundary link that was not filled as the tightest and still has more than `ROOM` of its
    /// capacity left after its region transfers' shares is not full: its capacity less its
    /// outside rates less those shares, each step rounded (to at most half an ulp of the
    /// capacity, as every step lies between 0 and the capacity), is within `steps * 2^-53` of
    /// its capacity less its load, so its load summed (as rounded) stays below
    /// `cap * (1 - TIGHT)` while `2 * steps * 2^-53 < ROOM - TIGHT`. Only finite shares were
    /// taken off (`finite_shares`), and links of at most `MAX_STEPS` transfers are checked so.
    /// A link that never joined the fill queue holds a lower bound of that capacity left. The
    /// filling listed in `check` the links it filled and those it left with little room (with a
    /// share that was not finite, every boundary link is checked).
    fn filled_boundary(&mut self, mark: u64, assigned: u64) -> bool {
        debug_assert!(self.boundary.iter().all(|&b| {
            let b = &self.link[b as usize];
            b.frozen != mark + 1 || b.count == 0
        }));
        if !self.finite_shares {
            // Every boundary link is checked.
            self.check.clear();
            self.check.extend_from_slice(&self.boundary);
        }
        let mut grew = false;
        // A partial link filled below a rate it kept: that transfer is bottlenecked here now.
        for &l in &self.partial {
            let l = l as usize;
            if self.link[l].frozen == mark && self.filled_share[l] < self.kept_top[l] {
                self.all_mark[l] = self.refills;
                self.seeds.push(l as u32);
                grew = true;
            }
        }
        for k in 0..self.check.len() {
            let b = self.check[k] as usize;
            if self.finite_shares
                && self.link[b].frozen != mark
                && surely_not_full(&self.link[b], self.link_slots[b].len())
            {
                continue;
            }
            let cap = self.link[b].capacity;
            let slots = &self.slots;
            let load: f64 = self.link_slots[b]
                .iter()
                .map(|e| {
                    let x = &slots[e.slot as usize];
                    if x.mark == assigned {
                        x.fill
                    } else {
                        x.rate
                    }
                })
                .sum();
            if load >= cap * (1.0 - TIGHT) {
                self.seeds.push(b as u32);
                grew = true;
            }
        }
        grew
    }
}

/// The fill queue: a min-tournament over leaves, one per link in it holding that link's current
/// entry (`u128::MAX`: none), so the smallest is at the root.
#[derive(Debug, Clone, Default)]
struct Tournament {
    /// Nodes from 1; the leaves from `width` on.
    node: Vec<u128>,
    width: usize,
    leaves: usize,
}

impl Tournament {
    fn clear(&mut self) {
        self.node.clear();
        self.width = 0;
        self.leaves = 0;
    }

    /// A leaf for entry `e`, before [`Tournament::build`] (kept as a list until then).
    fn add(&mut self, e: u128) -> u32 {
        self.node.push(e);
        self.leaves += 1;
        (self.leaves - 1) as u32
    }

    /// The tournament over the leaves added, with room for at least one more (few boundary
    /// links join).
    fn build(&mut self) {
        let width = (self.leaves + 1).next_power_of_two();
        self.node.resize(2 * width, u128::MAX);
        self.node.copy_within(0..self.leaves, width);
        self.width = width;
        for i in (1..width).rev() {
            self.node[i] = self.node[2 * i].min(self.node[2 * i + 1]);
        }
    }

    /// The smallest entry (`u128::MAX`: none).
    fn min(&self) -> u128 {
        self.node.get(1).copied().unwrap_or(u128::MAX)
    }

    /// Leaf `leaf` holds entry `e` now (`u128::MAX`: none).
    fn set(&mut self, leaf: u32, e: u128) {
        let mut i = self.width + leaf as usize;
        self.node[i] = e;
        while i > 1 {
            i /= 2;
            self.node[i] = self.node[2 * i].min(self.node[2 * i + 1]);
        }
    }

    /// A new leaf for entry `e` (a boundary link joining), the tournament widened if full.
    fn join(&mut self, e: u128) -> u32 {
        if self.leaves == self.width {
            self.node.copy_within(self.width.., 0);
            self.node.truncate(self.width);
            self.build();
        }
        let leaf = self.leaves as u32;
        self.leaves += 1;
        self.set(leaf, e);
        leaf
    }
}
