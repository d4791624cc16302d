//! Random regular graphs: the switch chains of `el-oracle` and `undirected`, and the pairing
//! model of `el-oracle-pairing`.

use crate::rng::Rng;
use crate::simd::prefetch_line;

/// Directed graph with every out- and in-degree exactly `s`, no self loops, no repeated edges, as
/// edges `(src, dst)` ([`regular_heads`]).
pub(super) fn regular_digraph(n: usize, s: usize, rng: &mut Rng) -> Vec<(u32, u32)> {
    let (order, heads) = regular_heads(n, s, rng);
    heads
        .iter()
        .enumerate()
        .map(|(e, &h)| (order[e / s], order[h as usize]))
        .collect()
}

/// Directed graph with every out- and in-degree exactly `s`, no self loops, no repeated edges.
/// A randomly relabelled circulant, then `10 n s` random edge switches (each keeps all degrees), which
/// makes the draw close to uniform over such graphs. Returned as the relabelling `order` and the
/// heads of the edges on positions: edge `e` runs from node `order[e / s]` to `order[heads[e]]`.
pub(super) fn regular_heads(n: usize, s: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    // The chain runs on positions in the relabelling `order` (node `order[p]` sits at position `p`),
    // then maps them to nodes: whether a switch keeps the graph simple only compares ids, which a
    // relabelling preserves, so every switch is taken or refused as on node ids. Edge
    // `e = p * s + step - 1` runs from position `p = e / s` to `heads[e]`: the `s` edges of a
    // source sit together, so a switch finds the out-lists it checks on its own edges' lines and
    // rewrites the two heads in place (a simple graph's out-list names each head once, so `e` is
    // where its head is). One random array (n=10,000, s=8: 320 KB) and no lookup of `order`.
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let mut heads = vec![0u32; n * s];
    for p in 0..n {
        for step in 1..=s {
            heads[p * s + step - 1] = ((p + step) % n) as u32;
        }
    }
    if s + 1 < n {
        // The paper's degree gets its own copy, in which `e / s` is a shift.
        match s {
            8 => switch_heads(&mut heads, 8, rng),
            _ => switch_heads(&mut heads, s, rng),
        }
    }
    (order, heads)
}

/// `10 m` random switches of the `m` edges in `heads`, `s` from each source (see
/// [`regular_heads`]).
#[inline(always)]
fn switch_heads(heads: &mut [u32], s: usize, rng: &mut Rng) {
    let m = heads.len();
    let total = 10 * m;
    // The switches read heads at random: draw the edge pairs AHEAD switches early (the same draws
    // in the same order) and prefetch their out-lists, which matters once `heads` no longer fits
    // in L2.
    // A function, not a closure: the closure stayed a call per switch (n=10,000, K=8: 15.2 -> 14.7 ms).
    #[inline(always)]
    fn draw(rng: &mut Rng, heads: &[u32]) -> (usize, usize) {
        let m = heads.len();
        let pair = (rng.below(m), rng.below(m));
        prefetch_line(&heads[pair.0]);
        prefetch_line(&heads[pair.1]);
        pair
    }
    let mut ahead = [(0usize, 0usize); AHEAD];
    for slot in ahead.iter_mut().take(total.min(AHEAD)) {
        *slot = draw(rng, heads);
    }
    for i in 0..total {
        let (e1, e2) = ahead[i % AHEAD];
        if i + AHEAD < total {
            ahead[i % AHEAD] = draw(rng, heads);
        }
        let (a, c) = (e1 / s, e2 / s);
        let (b, d) = (heads[e1], heads[e2]);
        let (list_a, list_c) = (&heads[a * s..a * s + s], &heads[c * s..c * s + s]);
        if switch_stays_simple(list_a, list_c, (a as u32, b), (c as u32, d)) {
            heads[e1] = d;
            heads[e2] = b;
        }
    }
}

/// Simple undirected graph with every degree exactly `s` (`n s` even): a relabelled circulant
/// (plus the antipodal matching when `s` is odd), then `10 n s` degree-preserving switches.
pub(super) fn regular_undirected(n: usize, s: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut adj: Vec<Vec<usize>> = vec![Vec::with_capacity(s); n];
    let mut edges = Vec::with_capacity(n * s / 2);
    let mut add = |a: usize, b: usize, adj: &mut Vec<Vec<usize>>| {
        adj[a].push(b);
        adj[b].push(a);
        edges.push((a, b));
    };
    for pos in 0..n {
        for step in 1..=s / 2 {
            add(order[pos], order[(pos + step) % n], &mut adj);
        }
    }
    if s % 2 == 1 {
        // n is even here: pair each position with the antipodal one.
        for pos in 0..n / 2 {
            add(order[pos], order[pos + n / 2], &mut adj);
        }
    }
    let m = edges.len();
    if s + 1 < n && m >= 2 {
        for _ in 0..10 * n * s {
            let (e1, e2) = (rng.below(m), rng.below(m));
            let (a, b) = edges[e1];
            let (mut c, mut d) = edges[e2];
            if rng.below(2) == 1 {
                std::mem::swap(&mut c, &mut d);
            }
            // {a,b},{c,d} -> {a,d},{c,b}
            if a == c || a == d || b == c || b == d || adj[a].contains(&d) || adj[c].contains(&b) {
                continue;
            }
            replace(&mut adj[a], b, d);
            replace(&mut adj[b], a, c);
            replace(&mut adj[c], d, b);
            replace(&mut adj[d], c, a);
            edges[e1] = (a, d);
            edges[e2] = (c, b);
        }
    }
    edges
}

/// Directed graph with every out- and in-degree exactly `s`, no self loops, no repeated edges, from
/// the pairing model: node `a`'s `s` out-slots are matched to a random permutation of the `n s`
/// in-slots; the matching is uniform, and so is the result among simple graphs when it has no
/// loop or repeat. The few it has (about `s + s^2 / 2` on average) are each switched with a random
/// edge into a simple pair, as `regular_digraph`'s switches do. Where that takes too many draws
/// (dense graphs on few nodes), `regular_digraph` draws the graph instead.
pub(super) fn pairing_digraph(n: usize, s: usize, rng: &mut Rng) -> Vec<(u32, u32)> {
    let m = n * s;
    if s + 1 >= n {
        return regular_digraph(n, s, rng); // the complete graph: nothing to draw
    }
    // heads[a * s + j]: the target of node a's j-th edge (a flat list, as in `regular_digraph`).
    let mut heads: Vec<u32> = (0..m).map(|slot| (slot / s) as u32).collect();
    rng.shuffle(&mut heads);
    let out = |a: usize| (a * s)..(a * s + s);
    let defective = |heads: &[u32], e: usize| {
        let (a, b) = (e / s, heads[e]);
        b as usize == a || heads[out(a)].iter().filter(|&&t| t == b).count() > 1
    };
    let defects: Vec<usize> = (0..m).filter(|&e| defective(&heads, e)).collect();
    let mut budget = 100 * (defects.len() + 1) * (1 + s * s * s / n.max(1));
    for e in defects {
        // A repeat shows on both of its edges; whichever comes first is switched.
        while defective(&heads, e) {
            if budget == 0 {
                return regular_digraph(n, s, rng);
            }
            budget -= 1;
            let f = rng.below(m);
            let (a, b, c, d) = (e / s, heads[e], f / s, heads[f]);
            if switch_stays_simple(&heads[out(a)], &heads[out(c)], (a as u32, b), (c as u32, d)) {
                heads[e] = d;
                heads[f] = b;
            }
        }
    }
    (0..m).map(|e| ((e / s) as u32, heads[e])).collect()
}

/// Whether switching edges `a->b`, `c->d` (out-lists `targets_a`, `targets_c`) into `a->d`,
/// `c->b` creates no loop and no repeat. Without branches: in `regular_digraph` nearly every
/// switch goes through, and early exits mispredict (measured).
#[inline(always)]
fn switch_stays_simple(
    targets_a: &[u32],
    targets_c: &[u32],
    (a, b): (u32, u32),
    (c, d): (u32, u32),
) -> bool {
    !((a == c) | (b == d) | (a == d) | (c == b) | holds_either(targets_a, d, targets_c, b))
}

/// Whether `list_a` holds `d` or `list_c` holds `b`. Lists of 8 (the paper's degree) take two
/// SSE2 compares each, where the generic loop's vectorisation shuffled the ids into vectors
/// first (one `el-oracle` chain at n=10,000: 3.67 -> 3.45 ms).
#[inline(always)]
fn holds_either(list_a: &[u32], d: u32, list_c: &[u32], b: u32) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let (Ok(la), Ok(lc)) = (<&[u32; 8]>::try_from(list_a), <&[u32; 8]>::try_from(list_c)) {
        use std::arch::x86_64::{
            _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi32,
        };
        // SAFETY: SSE2 is part of x86_64; each load reads 4 of the 8 ids of an array.
        return unsafe {
            let (vd, vb) = (_mm_set1_epi32(d as i32), _mm_set1_epi32(b as i32));
            let load = |list: &[u32; 8], at: usize| _mm_loadu_si128(list.as_ptr().add(at).cast());
            let in_a = _mm_or_si128(
                _mm_cmpeq_epi32(load(la, 0), vd),
                _mm_cmpeq_epi32(load(la, 4), vd),
            );
            let in_c = _mm_or_si128(
                _mm_cmpeq_epi32(load(lc, 0), vb),
                _mm_cmpeq_epi32(load(lc, 4), vb),
            );
            _mm_movemask_epi8(_mm_or_si128(in_a, in_c)) != 0
        };
    }
    let holds = |list: &[u32], v: u32| list.iter().fold(false, |seen, &t| seen | (t == v));
    holds(list_a, d) | holds(list_c, b)
}

/// Switches whose edge pairs are drawn (and their edges prefetched) before their turn.
const AHEAD: usize = 16;

/// Replace `old` by `new` in a list that names `old` once (a simple graph's adjacency): every slot is
/// rewritten with a select, since a search that stops at `old` mispredicts its exit most of the time.
fn replace<T: PartialEq + Copy>(list: &mut [T], old: T, new: T) {
    for slot in list.iter_mut() {
        *slot = if *slot == old { new } else { *slot };
    }
}
