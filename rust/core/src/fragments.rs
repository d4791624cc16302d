//! Fragment maps: the fixed coordinate -> fragment assignment, and the per-tile plans the averaging
//! kernel uses so that its cost does not grow with the number of fragments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::bail;
use crate::error::Result;
use crate::rng::{Rng, Stream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmenterKind {
    Contiguous,
    Random,
    Blocks,
    /// A user-given fragment id per coordinate ([`FragmentMap::from_ids`]).
    Assignment,
}

impl FragmenterKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Contiguous => "contiguous",
            Self::Random => "random",
            Self::Blocks => "blocks",
            Self::Assignment => "assignment",
        }
    }
}

/// A maximal range of one fragment inside a tile: positions `start..end` (tile-local).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub fragment: u32,
    pub start: u32,
    pub end: u32,
}

/// Index maps of a gathered tile (i32: the operand type of AVX2 gathers).
#[derive(Debug, Clone)]
pub struct Gather {
    /// Gathered slot -> tile-local column (padding slots repeat their group's last column).
    pub perm: Vec<i32>,
    /// Tile-local column -> gathered slot, to read results back in column order.
    pub inverse: Vec<i32>,
}

/// How the kernel walks one column tile `[col_start, col_end)`.
#[derive(Debug, Clone)]
pub struct Tile {
    pub col_start: usize,
    pub col_end: usize,
    /// `None`: segments are column ranges. `Some(perm)`: the tile's columns are first gathered in the
    /// order `perm` (tile-local column indices grouped by fragment, each group padded to a multiple of
    /// `PAD` slots) and segments index that order; slots from `end` to the padded end are padding.
    pub perm: Option<Gather>,
    pub segments: Vec<Segment>,
}

#[derive(Debug)]
pub struct TilePlan {
    pub width: usize,
    pub tiles: Vec<Tile>,
}

/// Group alignment (floats) inside a gathered tile: one AVX2 register.
pub const PAD: u32 = 8;

/// Runs shorter than this on average make gathering the tile cheaper than walking the runs (each run
/// boundary costs scalar heads and tails). Measured at n=64, d=1e6, K=16 with blocks of 32/64/128
/// columns: walking 63/35/26 ms, gathering 36/36/36 ms. The packed path of many nodes passes its
/// own threshold to [`FragmentMap::plan`].
pub const MIN_MEAN_RUN: usize = 64;

/// A window of columns `[col_start, col_end)` staged in fragment order: the window's columns sorted
/// by fragment (stable: ascending columns within a fragment), so that each fragment's columns form
/// one run of the staged copy.
#[derive(Debug)]
pub struct Window {
    pub col_start: usize,
    pub col_end: usize,
    /// Staged position -> window-local column (i32: the operand type of AVX2 gathers).
    pub order: Vec<i32>,
    /// Window-local column -> staged position.
    pub inverse: Vec<i32>,
    /// The staged window as a map of its own (`K` fragments, one run each where present), whose
    /// plans the kernel walks over the staged copy.
    pub map: FragmentMap,
}

/// Column windows of `width` columns (the last may be narrower), each staged in fragment order.
#[derive(Debug)]
pub struct StagedPlan {
    pub width: usize,
    pub windows: Vec<Window>,
}

#[derive(Debug)]
pub struct FragmentMap {
    kind: FragmenterKind,
    assignment: Vec<u32>,
    sizes: Vec<usize>,
    plans: Mutex<HashMap<(usize, usize), Arc<TilePlan>>>,
    staged: Mutex<HashMap<usize, Arc<StagedPlan>>>,
}

/// The most coordinates a map holds: fragment ids are u32 and the kernel's column arithmetic
/// stays far from overflow.
pub const MAX_PARAMS: usize = u32::MAX as usize * 64;

/// `n_params` and `K` in range, and the map's memory available before any of it is allocated:
/// the assignment (4 bytes per coordinate), fragment sizes (8 bytes per fragment) and
/// `scratch_ids` u32 ids a constructor draws before copying them into the assignment.
fn check_counts(n_params: usize, n_fragments: usize, scratch_ids: usize) -> Result<()> {
    if n_params == 0 {
        bail!("n_params=0: the model must have at least one parameter");
    }
    if n_fragments == 0 {
        bail!("K=0: the number of fragments must be at least 1");
    }
    if n_params > MAX_PARAMS {
        bail!("n_params={n_params} is too large: a fragment map holds at most {MAX_PARAMS} coordinates");
    }
    if n_fragments > n_params {
        bail!("K={n_fragments} exceeds n_params={n_params}: every fragment needs a coordinate");
    }
    if n_fragments > u32::MAX as usize {
        bail!(
            "K={n_fragments} is too large: at most {} fragments",
            u32::MAX
        );
    }
    let bytes = 4 * n_params as u64 + 8 * n_fragments as u64 + 4 * scratch_ids as u64;
    crate::memory::check_fits(
        bytes,
        &format!("a fragment map of n_params={n_params}, K={n_fragments}"),
    )
}

/// Fragment ids for `len` slots, balanced: each fragment appears floor or ceil of len/K times, the
/// extra slots going to fragments `offset, offset+1, ...` (mod K) so sizes stay balanced across layers.
fn balanced_ids(len: usize, n_fragments: usize, offset: usize) -> Vec<u32> {
    let base = len / n_fragments;
    let extra = len % n_fragments;
    let mut ids = Vec::with_capacity(len);
    for k in 0..n_fragments {
        let count =
            base + usize::from((k + n_fragments - offset % n_fragments) % n_fragments < extra);
        ids.extend(std::iter::repeat_n(k as u32, count));
    }
    ids
}

impl FragmentMap {
    /// Fragment `k` = the `k`-th of `K` nearly equal consecutive ranges.
    pub fn contiguous(n_params: usize, n_fragments: usize) -> Result<Self> {
        check_counts(n_params, n_fragments, 0)?;
        let mut assignment = Vec::with_capacity(n_params);
        for k in 0..n_fragments {
            // u128: k * n_params can pass 2**64 for the largest maps.
            let bound = |k: usize| (k as u128 * n_params as u128 / n_fragments as u128) as usize;
            let (lo, hi) = (bound(k), bound(k + 1));
            assignment.extend(std::iter::repeat_n(k as u32, hi - lo));
        }
        Ok(Self::from_assignment(
            FragmenterKind::Contiguous,
            assignment,
            n_fragments,
        ))
    }

    /// Seeded random coordinate-level assignment, balanced within each layer (SHATTER / DivShare).
    /// `layer_sizes` must sum to `n_params`; `None` treats the whole vector as one layer.
    pub fn random(
        n_params: usize,
        n_fragments: usize,
        seed: u64,
        layer_sizes: Option<&[usize]>,
    ) -> Result<Self> {
        let whole = [n_params];
        let layers = layer_sizes.unwrap_or(&whole);
        // Checked before the sum, which could overflow; each layer's ids are drawn on their own.
        let largest = layers.iter().copied().max().unwrap_or(0);
        check_counts(n_params, n_fragments, largest.min(n_params))?;
        let total = layers
            .iter()
            .try_fold(0usize, |sum, &size| sum.checked_add(size))
            .unwrap_or(usize::MAX);
        if total != n_params {
            bail!("layer_sizes sum to {total}, but n_params={n_params}");
        }
        if let Some(pos) = layers.iter().position(|&s| s == 0) {
            bail!("layer_sizes[{pos}]=0: layers must be non-empty");
        }
        let mut assignment = Vec::with_capacity(n_params);
        let mut offset = 0usize;
        for (layer, &size) in layers.iter().enumerate() {
            let mut ids = balanced_ids(size, n_fragments, offset);
            Rng::from_key(seed, 0, layer as u64, Stream::FragmentMap).shuffle(&mut ids);
            assignment.extend_from_slice(&ids);
            offset += size % n_fragments;
        }
        Ok(Self::from_assignment(
            FragmenterKind::Random,
            assignment,
            n_fragments,
        ))
    }

    /// Consecutive blocks of `block_size` coordinates (the last may be shorter), each assigned to a
    /// fragment at random, balanced: every fragment gets floor or ceil of n_blocks/K blocks.
    pub fn blocks(
        n_params: usize,
        n_fragments: usize,
        block_size: usize,
        seed: u64,
    ) -> Result<Self> {
        check_counts(n_params, n_fragments, n_params.div_ceil(block_size.max(1)))?;
        if block_size == 0 {
            bail!("block_size=0 must be at least 1");
        }
        let n_blocks = n_params.div_ceil(block_size);
        if n_blocks < n_fragments {
            bail!(
                "K={n_fragments} exceeds the {n_blocks} blocks of block_size={block_size} in n_params={n_params}; \
                 use a smaller block_size"
            );
        }
        let mut ids = balanced_ids(n_blocks, n_fragments, 0);
        Rng::from_key(seed, 0, 0, Stream::FragmentMap).shuffle(&mut ids);
        let mut assignment = Vec::with_capacity(n_params);
        for (b, &k) in ids.iter().enumerate() {
            let len = block_size.min(n_params - b * block_size);
            assignment.extend(std::iter::repeat_n(k, len));
        }
        Ok(Self::from_assignment(
            FragmenterKind::Blocks,
            assignment,
            n_fragments,
        ))
    }

    /// A user-given assignment (fragment id per coordinate); every fragment must be non-empty.
    pub fn from_ids(ids: &[i64], n_fragments: usize) -> Result<Self> {
        check_counts(ids.len(), n_fragments, 0)?;
        let mut assignment = Vec::with_capacity(ids.len());
        for (c, &k) in ids.iter().enumerate() {
            if k < 0 || k as usize >= n_fragments {
                bail!("assignment[{c}]={k} is outside 0..K={n_fragments}");
            }
            assignment.push(k as u32);
        }
        let map = Self::from_assignment(FragmenterKind::Assignment, assignment, n_fragments);
        if let Some(k) = map.sizes.iter().position(|&s| s == 0) {
            bail!("fragment {k} of K={n_fragments} has no coordinate in the assignment");
        }
        Ok(map)
    }

    fn from_assignment(kind: FragmenterKind, assignment: Vec<u32>, n_fragments: usize) -> Self {
        let mut sizes = vec![0usize; n_fragments];
        for &k in &assignment {
            sizes[k as usize] += 1;
        }
        Self {
            kind,
            assignment,
            sizes,
            plans: Mutex::new(HashMap::new()),
            staged: Mutex::new(HashMap::new()),
        }
    }

    pub fn kind(&self) -> FragmenterKind {
        self.kind
    }

    pub fn n_params(&self) -> usize {
        self.assignment.len()
    }

    pub fn n_fragments(&self) -> usize {
        self.sizes.len()
    }

    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    pub fn assignment(&self) -> &[u32] {
        &self.assignment
    }

    /// The tile plan for a column-tile width, built once per width and shared: tiles whose runs of
    /// one fragment are at least `min_mean_run` columns long on average are walked run by run, the
    /// others gathered into fragment order.
    pub fn plan(&self, width: usize, min_mean_run: usize) -> Arc<TilePlan> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .entry((width, min_mean_run))
            .or_insert_with(|| Arc::new(self.build_plan(width, min_mean_run)))
            .clone()
    }

    /// Windows of `width` columns staged in fragment order, built once per width and shared.
    pub fn staged_plan(&self, width: usize) -> Arc<StagedPlan> {
        let mut staged = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        staged
            .entry(width)
            .or_insert_with(|| Arc::new(self.build_staged_plan(width)))
            .clone()
    }

    fn build_staged_plan(&self, width: usize) -> StagedPlan {
        assert!(width > 0 && width <= i32::MAX as usize);
        let d = self.assignment.len();
        let n_fragments = self.sizes.len();
        let mut windows = Vec::with_capacity(d.div_ceil(width));
        let mut start = 0;
        while start < d {
            let end = (start + width).min(d);
            let cols = &self.assignment[start..end];
            let mut order: Vec<i32> = (0..cols.len() as i32).collect();
            order.sort_by_key(|&c| cols[c as usize]);
            let mut inverse = vec![0i32; cols.len()];
            for (p, &c) in order.iter().enumerate() {
                inverse[c as usize] = p as i32;
            }
            let sorted = order.iter().map(|&c| cols[c as usize]).collect();
            windows.push(Window {
                col_start: start,
                col_end: end,
                order,
                inverse,
                map: Self::from_assignment(self.kind, sorted, n_fragments),
            });
            start = end;
        }
        StagedPlan { width, windows }
    }

    fn build_plan(&self, width: usize, min_mean_run: usize) -> TilePlan {
        assert!(width > 0 && width <= i32::MAX as usize / 2);
        let d = self.assignment.len();
        let mut tiles = Vec::with_capacity(d.div_ceil(width));
        let mut counts = vec![0u32; self.sizes.len()];
        let mut start = 0;
        while start < d {
            let end = (start + width).min(d);
            let cols = &self.assignment[start..end];
            let runs = column_runs(cols);
            let tile = if runs.len() * min_mean_run <= cols.len() {
                Tile {
                    col_start: start,
                    col_end: end,
                    perm: None,
                    segments: runs,
                }
            } else {
                let (gather, segments) = fragment_order(cols, &mut counts);
                Tile {
                    col_start: start,
                    col_end: end,
                    perm: Some(gather),
                    segments,
                }
            };
            tiles.push(tile);
            start = end;
        }
        TilePlan { width, tiles }
    }
}

/// The runs of equal fragment ids in a tile's columns, in column order.
fn column_runs(cols: &[u32]) -> Vec<Segment> {
    let mut runs = Vec::new();
    let mut run_start = 0usize;
    for c in 1..=cols.len() {
        if c == cols.len() || cols[c] != cols[run_start] {
            runs.push(Segment {
                fragment: cols[run_start],
                start: run_start as u32,
                end: c as u32,
            });
            run_start = c;
        }
    }
    runs
}

/// A tile's columns in fragment order, and each fragment's group in it. A counting sort (stable:
/// ascending columns), each fragment's group starting at a multiple of PAD so the kernel runs whole
/// SIMD chunks. Padding slots repeat the group's last column: gathered, averaged, never scattered.
/// `counts` is scratch of one entry per fragment.
fn fragment_order(cols: &[u32], counts: &mut [u32]) -> (Gather, Vec<Segment>) {
    let k_total = counts.len();
    counts.iter_mut().for_each(|c| *c = 0);
    for &k in cols {
        counts[k as usize] += 1;
    }
    let mut segments = Vec::new();
    let mut starts = vec![0u32; k_total];
    let mut padded = 0u32;
    for k in 0..k_total {
        if counts[k] > 0 {
            starts[k] = padded;
            segments.push(Segment {
                fragment: k as u32,
                start: padded,
                end: padded + counts[k],
            });
            padded += counts[k].div_ceil(PAD) * PAD;
        }
    }
    let mut perm = vec![0i32; padded as usize];
    let mut inverse = vec![0i32; cols.len()];
    let mut cursor = starts;
    for (c, &k) in cols.iter().enumerate() {
        perm[cursor[k as usize] as usize] = c as i32;
        inverse[c] = cursor[k as usize] as i32;
        cursor[k as usize] += 1;
    }
    for seg in &segments {
        let last = perm[seg.end as usize - 1];
        let padded_end = seg.start + (seg.end - seg.start).div_ceil(PAD) * PAD;
        perm[seg.end as usize..padded_end as usize].fill(last);
    }
    (Gather { perm, inverse }, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_partition(map: &FragmentMap) {
        let d = map.n_params();
        let k = map.n_fragments();
        assert_eq!(map.assignment().len(), d);
        assert!(map.assignment().iter().all(|&f| (f as usize) < k));
        assert_eq!(map.sizes().iter().sum::<usize>(), d);
        assert!(
            map.sizes().iter().all(|&s| s > 0),
            "empty fragment: {:?}",
            map.sizes()
        );
    }

    #[test]
    fn every_fragmenter_partitions_the_coordinates() {
        for &(d, k) in &[(1usize, 1usize), (10, 3), (1000, 16), (1001, 7), (64, 64)] {
            let c = FragmentMap::contiguous(d, k).unwrap();
            assert_partition(&c);
            let max = *c.sizes().iter().max().unwrap();
            let min = *c.sizes().iter().min().unwrap();
            assert!(max - min <= 1);
            assert!(c.assignment().windows(2).all(|w| w[0] <= w[1]));
            let r = FragmentMap::random(d, k, 5, None).unwrap();
            assert_partition(&r);
            let max = *r.sizes().iter().max().unwrap();
            let min = *r.sizes().iter().min().unwrap();
            assert!(max - min <= 1);
            if d >= k * 2 {
                let b = FragmentMap::blocks(d, k, 2, 9).unwrap();
                assert_partition(&b);
            }
        }
    }

    #[test]
    fn random_is_per_layer_balanced_and_seeded() {
        let layers = [7usize, 300, 5, 100];
        let m = FragmentMap::random(412, 4, 11, Some(&layers)).unwrap();
        assert_partition(&m);
        let mut start = 0;
        for &size in &layers {
            let mut counts = [0usize; 4];
            for &f in &m.assignment()[start..start + size] {
                counts[f as usize] += 1;
            }
            let (mx, mn) = (counts.iter().max().unwrap(), counts.iter().min().unwrap());
            assert!(mx - mn <= 1, "layer of {size}: {counts:?}");
            start += size;
        }
        let again = FragmentMap::random(412, 4, 11, Some(&layers)).unwrap();
        assert_eq!(m.assignment(), again.assignment());
        let other = FragmentMap::random(412, 4, 12, Some(&layers)).unwrap();
        assert_ne!(m.assignment(), other.assignment());
    }

    #[test]
    fn blocks_are_consecutive_runs() {
        let m = FragmentMap::blocks(1000, 4, 64, 3).unwrap();
        for b in 0..(1000 / 64) {
            let s = &m.assignment()[b * 64..(b + 1) * 64];
            assert!(s.iter().all(|&f| f == s[0]));
        }
    }

    #[test]
    fn bad_counts_are_errors() {
        assert!(FragmentMap::contiguous(10, 11)
            .unwrap_err()
            .message
            .contains("K=11 exceeds n_params=10"));
        assert!(FragmentMap::contiguous(10, 0).is_err());
        assert!(FragmentMap::contiguous(0, 1).is_err());
        assert!(FragmentMap::blocks(100, 8, 64, 0)
            .unwrap_err()
            .message
            .contains("block_size=64"));
        assert!(FragmentMap::random(10, 2, 0, Some(&[3, 3])).is_err());
        assert!(FragmentMap::from_ids(&[0, 0, 2], 3)
            .unwrap_err()
            .message
            .contains("fragment 1"));
        assert!(FragmentMap::from_ids(&[0, 5], 2).is_err());
    }

    #[test]
    fn staged_windows_sort_each_window_by_fragment() {
        let map = FragmentMap::random(1000, 7, 3, None).unwrap();
        let plan = map.staged_plan(300);
        assert_eq!(plan.windows.len(), 4);
        for w in &plan.windows {
            let len = w.col_end - w.col_start;
            assert_eq!(
                (w.order.len(), w.inverse.len(), w.map.n_params()),
                (len, len, len)
            );
            assert_eq!(w.map.n_fragments(), 7);
            let ids = w.map.assignment();
            assert!(ids.windows(2).all(|p| p[0] <= p[1]));
            for (p, &c) in w.order.iter().enumerate() {
                assert_eq!(ids[p], map.assignment()[w.col_start + c as usize]);
                assert_eq!(w.inverse[c as usize] as usize, p);
            }
            // stable: ascending columns within a fragment
            assert!(w
                .order
                .windows(2)
                .all(|o| ids[w.inverse[o[0] as usize] as usize]
                    != ids[w.inverse[o[1] as usize] as usize]
                    || o[0] < o[1]));
        }
        assert!(Arc::ptr_eq(&plan, &map.staged_plan(300)));
    }

    #[test]
    fn huge_maps_are_refused_before_allocating() {
        let msg = |r: Result<FragmentMap>| r.unwrap_err().message;
        assert!(msg(FragmentMap::contiguous(1 << 63, 2))
            .starts_with("n_params=9223372036854775808 is too large"));
        assert!(msg(FragmentMap::contiguous(usize::MAX, 2)).contains("too large"));
        // Within range but more than any machine has (4 bytes per coordinate: 4 PiB).
        let beyond = MAX_PARAMS;
        if crate::memory::available_bytes().is_some() {
            for r in [
                FragmentMap::contiguous(beyond, 2),
                FragmentMap::random(beyond, 2, u64::MAX, None),
                FragmentMap::blocks(beyond, 2, 1, 0),
            ] {
                assert!(
                    msg(r).contains("needs"),
                    "a map of {beyond} coordinates was allocated"
                );
            }
        }
        let layers = [usize::MAX, 2];
        assert!(FragmentMap::random(10, 2, 0, Some(&layers)).is_err());
        // The largest K * n_params products stay exact (u128).
        let map = FragmentMap::contiguous(1000, 7).unwrap();
        assert_eq!(map.sizes().iter().sum::<usize>(), 1000);
    }

    #[test]
    fn plans_cover_every_column_once() {
        for map in [
            FragmentMap::contiguous(5000, 16).unwrap(),
            FragmentMap::random(5000, 16, 1, None).unwrap(),
            FragmentMap::blocks(5000, 16, 100, 1).unwrap(),
        ] {
            let plan = map.plan(512, MIN_MEAN_RUN);
            let mut seen = vec![0u8; 5000];
            for tile in &plan.tiles {
                for seg in &tile.segments {
                    for p in seg.start..seg.end {
                        let local = match &tile.perm {
                            Some(g) => g.perm[p as usize] as usize,
                            None => p as usize,
                        };
                        let c = tile.col_start + local;
                        assert!(c < tile.col_end);
                        assert_eq!(map.assignment()[c], seg.fragment);
                        seen[c] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1));
        }
    }
}
