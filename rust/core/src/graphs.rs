//! Per-fragment gossip graphs for one round, stored as in-neighbour lists (CSR per fragment).

use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::fragments::FragmentMap;
use crate::pool::pool;
use crate::rng::{Rng, Stream};
use crate::simd::prefetch_line;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphMode {
    /// Random directed `s`-regular graph: out-degree and in-degree exactly `s`, no self loops.
    ElOracle,
    /// The same kind of graph from the pairing model (a random matching of out- to in-slots)
    /// with its few loops and repeats switched away: O(n s) instead of `ElOracle`'s `10 n s`
    /// switches, for thousands of nodes; other graphs than `ElOracle` for the same seed.
    ElOraclePairing,
    /// Each node sends to `s` distinct uniformly random others.
    ElLocal,
    /// Each node receives from `s` distinct uniformly random others.
    Pull,
    /// Random simple undirected `s`-regular graph (each edge carries both directions).
    Undirected,
    /// An `ElOracle` graph per fragment drawn once (round 0) and reused every round.
    Static,
    /// Undirected ring: node `i` exchanges with `i - 1` and `i + 1`.
    Ring,
    /// Every node exchanges with every other.
    Complete,
    /// A user edge list of directed `(src, dst)` pairs, the same for every fragment and round.
    Edges(Vec<(usize, usize)>),
    /// One user edge list of directed `(src, dst)` pairs per fragment (see
    /// [`Graphs::from_edge_lists`]); named `edges` like the shared list.
    FragmentEdges(Vec<Vec<(usize, usize)>>),
    /// SHATTER: one directed `s`-regular graph over `n * K` virtual nodes; fragment `k` of node `u`
    /// goes to the owners of the out-neighbours of virtual node `(u, k)` (own node and repeats dropped).
    Shatter,
}

impl GraphMode {
    pub fn parse(name: &str, edges: Option<Vec<(usize, usize)>>) -> Result<Self> {
        let has_edges = edges.is_some();
        let mode = match name {
            "el-oracle" => Self::ElOracle,
            "el-oracle-pairing" => Self::ElOraclePairing,
            "el-local" => Self::ElLocal,
            "pull" => Self::Pull,
            "undirected" => Self::Undirected,
            "static" => Self::Static,
            "ring" => Self::Ring,
            "complete" => Self::Complete,
            "shatter" => Self::Shatter,
            "edges" => match edges {
                Some(e) => Self::Edges(e),
                None => bail!("mode='edges' needs an edge list"),
            },
            other => bail!(
                "unknown graph mode {other:?}; choose one of el-oracle, el-oracle-pairing, el-local, pull, \
                 undirected, static, \
                 ring, complete, edges, shatter"
            ),
        };
        if has_edges && !matches!(mode, Self::Edges(_)) {
            bail!("an edge list was given but mode={name:?}; use mode='edges'");
        }
        Ok(mode)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::ElOracle => "el-oracle",
            Self::ElOraclePairing => "el-oracle-pairing",
            Self::ElLocal => "el-local",
            Self::Pull => "pull",
            Self::Undirected => "undirected",
            Self::Static => "static",
            Self::Ring => "ring",
            Self::Complete => "complete",
            Self::Edges(_) | Self::FragmentEdges(_) => "edges",
            Self::Shatter => "shatter",
        }
    }

    /// Whether `degree` is a parameter of this mode (ring, complete and edge lists fix their own).
    pub fn uses_degree(&self) -> bool {
        !matches!(
            self,
            Self::Ring | Self::Complete | Self::Edges(_) | Self::FragmentEdges(_)
        )
    }
}

/// In-neighbours of every node for one fragment, sorted ascending, deduplicated, no self loops.
/// Built only inside this crate, so every node id is below `n_nodes()`: the kernel reads rows by
/// these ids without bounds checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digraph {
    offsets: Vec<u32>,
    sources: Vec<u32>,
    out_degree: Vec<u32>,
}

impl Digraph {
    /// Build from directed edges `(src, dst)` between nodes `0..n`; duplicates and self loops are
    /// dropped. An id outside `0..n` is a bug in this crate's samplers (users' edge lists are
    /// validated first), hence a panic rather than an error.
    pub(crate) fn from_edges(n: usize, edges: impl Iterator<Item = (usize, usize)>) -> Self {
        let pairs: Vec<(u32, u32)> = edges
            .filter(|&(src, dst)| {
                assert!(src < n && dst < n, "edge ({src}, {dst}) outside 0..{n}");
                src != dst
            })
            .map(|(src, dst)| (src as u32, dst as u32))
            .collect();
        Self::from_pairs(n, &pairs)
    }

    /// [`Self::from_edges`] on `(src, dst)` pairs already checked to lie in `0..n`: a counting sort
    /// by receiver (one pass to count, one to place) instead of a list per node, then each
    /// receiver's short list sorted and deduplicated in place.
    fn from_pairs(n: usize, pairs: &[(u32, u32)]) -> Self {
        let mut offsets = vec![0u32; n + 1];
        for &(src, dst) in pairs {
            if src != dst {
                offsets[dst as usize + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut sources = vec![0u32; offsets[n] as usize];
        for &(src, dst) in pairs {
            if src != dst {
                let slot = &mut fill[dst as usize];
                sources[*slot as usize] = src;
                *slot += 1;
            }
        }
        // Sort and deduplicate each list, compacting `sources` towards the front.
        let mut out_degree = vec![0u32; n];
        let mut write = 0usize;
        let mut start = 0usize;
        for i in 0..n {
            let end = offsets[i + 1] as usize;
            sources[start..end].sort_unstable();
            let list_start = write;
            for r in start..end {
                let v = sources[r];
                if write == list_start || sources[write - 1] != v {
                    sources[write] = v;
                    write += 1;
                    out_degree[v as usize] += 1;
                }
            }
            offsets[i] = list_start as u32;
            start = end;
        }
        offsets[n] = write as u32;
        sources.truncate(write);
        Self {
            offsets,
            sources,
            out_degree,
        }
    }

    /// A simple `s`-regular digraph from [`regular_heads`]: every in-list holds `s` nodes, so the
    /// offsets are known, and walking the sources in ascending node order fills each list already
    /// sorted, without the pair list, counting pass and per-list sort of [`Self::from_pairs`].
    fn from_regular(order: &[u32], heads: &[u32], s: usize) -> Self {
        let n = order.len();
        let mut position = vec![0u32; n];
        for (p, &v) in order.iter().enumerate() {
            position[v as usize] = p as u32;
        }
        let mut filled = vec![0u32; n];
        let mut sources = vec![0u32; n * s];
        for (v, &p) in position.iter().enumerate() {
            let p = p as usize;
            for &h in &heads[p * s..p * s + s] {
                let receiver = order[h as usize] as usize;
                sources[receiver * s + filled[receiver] as usize] = v as u32;
                filled[receiver] += 1;
            }
        }
        Self {
            offsets: (0..=n).map(|i| (i * s) as u32).collect(),
            sources,
            out_degree: vec![s as u32; n],
        }
    }

    pub fn n_nodes(&self) -> usize {
        self.out_degree.len()
    }

    /// CSR offsets: node `i`'s in-neighbours are `sources()[offsets()[i]..offsets()[i + 1]]`.
    pub fn offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// Every node's in-neighbours, concatenated (ascending within a node).
    pub fn sources(&self) -> &[u32] {
        &self.sources
    }

    pub fn out_degrees(&self) -> &[u32] {
        &self.out_degree
    }

    #[inline]
    pub fn in_neighbors(&self, node: usize) -> &[u32] {
        &self.sources[self.offsets[node] as usize..self.offsets[node + 1] as usize]
    }
}

/// One round's graphs, one per fragment; made only by [`sample_graphs`] and
/// [`Graphs::from_edge_lists`], so every graph has exactly `n_nodes` nodes.
#[derive(Debug, Clone)]
pub struct Graphs {
    n_nodes: usize,
    degree: usize,
    mode: GraphMode,
    seed: u64,
    round: u64,
    fragments: Vec<Digraph>,
}

impl Graphs {
    /// Graphs given edge by edge: `edge_lists[k]` holds the directed `(src, dst)` pairs of fragment
    /// `k` (`dst` receives fragment `k` from `src`). Every edge is checked: a node outside
    /// `0..n_nodes`, a self loop or a repeated edge is an error naming the round, fragment and edge.
    pub fn from_edge_lists(
        n_nodes: usize,
        edge_lists: Vec<Vec<(usize, usize)>>,
        round: u64,
    ) -> Result<Self> {
        let n_fragments = edge_lists.len();
        sample_graphs(
            n_nodes,
            n_fragments,
            0,
            0,
            round,
            GraphMode::FragmentEdges(edge_lists),
        )
    }

    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }

    pub fn n_fragments(&self) -> usize {
        self.fragments.len()
    }

    pub fn degree(&self) -> usize {
        self.degree
    }

    pub fn mode(&self) -> &GraphMode {
        &self.mode
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    /// The graph of every fragment, in fragment order.
    pub fn fragments(&self) -> &[Digraph] {
        &self.fragments
    }

    /// Dense row-stochastic mixing matrix of fragment `k`, row-major `n x n` (row = receiver).
    pub fn mixing_matrix(&self, k: usize) -> Result<Vec<f64>> {
        let g = self.fragment(k)?;
        let n = self.n_nodes;
        let mut w = vec![0.0f64; n * n];
        for i in 0..n {
            let nb = g.in_neighbors(i);
            let weight = 1.0 / (1 + nb.len()) as f64;
            w[i * n + i] = weight;
            for &j in nb {
                w[i * n + j as usize] = weight;
            }
        }
        Ok(w)
    }

    pub fn fragment(&self, k: usize) -> Result<&Digraph> {
        match self.fragments.get(k) {
            Some(g) => Ok(g),
            None => bail!(
                "fragment index k={k} is outside 0..K={}",
                self.fragments.len()
            ),
        }
    }

    /// Parameters each node sends this round: sum over fragments of out-degree x fragment size.
    pub fn sent_params(&self, map: &FragmentMap) -> Result<Vec<u64>> {
        if map.n_fragments() != self.n_fragments() {
            bail!(
                "fragment map has K={} fragments but the graphs have K={}",
                map.n_fragments(),
                self.n_fragments()
            );
        }
        let mut sent = vec![0u64; self.n_nodes];
        for (g, &size) in self.fragments.iter().zip(map.sizes()) {
            for (s, &deg) in sent.iter_mut().zip(&g.out_degree) {
                *s += deg as u64 * size as u64;
            }
        }
        Ok(sent)
    }
}

/// A user edge list over nodes `0..n_nodes`: no node outside, no self loop, no edge twice (a repeat
/// would silently count once). `context` prefixes every message.
fn check_edges(n_nodes: usize, edges: &[(usize, usize)], context: &str) -> Result<()> {
    for (e, &(s, d)) in edges.iter().enumerate() {
        if s >= n_nodes || d >= n_nodes {
            bail!("{context}edge {e} = ({s}, {d}) names a node outside 0..n_nodes={n_nodes}");
        }
        if s == d {
            bail!("{context}edge {e} = ({s}, {d}) is a self loop; a node's own copy always counts");
        }
    }
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_unstable_by_key(|&e| (edges[e], e));
    // Equal edges are adjacent after the sort, the first occurrence first: report the repeat that
    // comes earliest in the list.
    let repeat = order
        .windows(2)
        .filter(|pair| edges[pair[0]] == edges[pair[1]])
        .min_by_key(|pair| pair[1]);
    if let Some(pair) = repeat {
        let (s, d) = edges[pair[1]];
        bail!(
            "{context}edge {} = ({s}, {d}) repeats edge {}",
            pair[1],
            pair[0]
        );
    }
    Ok(())
}

fn validate(
    n_nodes: usize,
    n_fragments: usize,
    degree: usize,
    round: u64,
    mode: &GraphMode,
) -> Result<()> {
    if n_nodes < 2 {
        bail!("n_nodes={n_nodes} must be at least 2");
    }
    if n_nodes > u32::MAX as usize / 2 {
        bail!("n_nodes={n_nodes} is too large");
    }
    if n_fragments == 0 {
        bail!("K=0: the number of fragments must be at least 1");
    }
    match mode {
        GraphMode::Shatter => {
            let virtual_nodes = n_nodes * n_fragments;
            if degree == 0 || degree >= virtual_nodes {
                bail!("degree={degree} must satisfy 1 <= degree < n_nodes*K={virtual_nodes} for mode 'shatter'");
            }
        }
        m if m.uses_degree() => {
            if degree == 0 || degree >= n_nodes {
                bail!("degree={degree} must satisfy 1 <= degree < n_nodes={n_nodes}");
            }
            if *m == GraphMode::Undirected && (n_nodes * degree) % 2 == 1 {
                bail!("an undirected degree-regular graph needs n_nodes*degree even; got n_nodes={n_nodes}, degree={degree}");
            }
        }
        GraphMode::Edges(edges) => check_edges(n_nodes, edges, "")?,
        GraphMode::FragmentEdges(lists) => {
            if lists.len() != n_fragments {
                bail!(
                    "{} edge lists were given for K={n_fragments} fragments; give one per fragment",
                    lists.len()
                );
            }
            for (k, edges) in lists.iter().enumerate() {
                check_edges(n_nodes, edges, &format!("round {round}, fragment {k}: "))?;
            }
        }
        _ => {}
    }
    check_graph_size(n_nodes, n_fragments, degree, mode)
}

/// Edges of one fragment's graph (every fragment together for `shatter`), and whether they fit:
/// ids and offsets are u32, and the graphs must fit in memory (checked before drawing any).
fn check_graph_size(
    n_nodes: usize,
    n_fragments: usize,
    degree: usize,
    mode: &GraphMode,
) -> Result<()> {
    let per_fragment = match mode {
        GraphMode::Complete => n_nodes as u64 * (n_nodes as u64 - 1),
        GraphMode::Ring => 2 * n_nodes as u64,
        GraphMode::Edges(edges) => edges.len() as u64,
        GraphMode::FragmentEdges(lists) => lists.iter().map(|l| l.len() as u64).max().unwrap_or(0),
        GraphMode::Shatter => n_nodes as u64 * n_fragments as u64 * degree as u64,
        _ => n_nodes as u64 * degree as u64,
    };
    if *mode == GraphMode::Shatter && n_nodes as u64 * n_fragments as u64 > u32::MAX as u64 {
        bail!(
            "n_nodes*K={} virtual nodes is too many for mode 'shatter'",
            n_nodes * n_fragments
        );
    }
    if per_fragment > u32::MAX as u64 {
        bail!(
            "n_nodes={n_nodes} with degree={degree} makes {per_fragment} edges per fragment; \
             at most {} fit",
            u32::MAX
        );
    }
    // Kept: 4 bytes per edge and fragment. While drawing: about 24 bytes per edge per fragment
    // drawn at once (edge pairs, targets, the sorted copy).
    let fragments = if *mode == GraphMode::Shatter {
        1
    } else {
        n_fragments as u64
    };
    let drawing = (fragments.min(crate::pool::configured_threads()? as u64)) * per_fragment * 24;
    crate::memory::check_fits(
        per_fragment * fragments * 4 + drawing,
        &format!("sampling graphs of n_nodes={n_nodes}, K={n_fragments}, degree={degree}"),
    )
}

/// Sample one graph per fragment for `round`. Each fragment draws from its own counter-based stream
/// keyed by `(seed, round, fragment)`, so the result is the same for any thread count.
pub fn sample_graphs(
    n_nodes: usize,
    n_fragments: usize,
    degree: usize,
    seed: u64,
    round: u64,
    mode: GraphMode,
) -> Result<Graphs> {
    validate(n_nodes, n_fragments, degree, round, &mode)?;
    // On the kernel's pool, so that MOSAIC_NUM_THREADS bounds sampling too (a bad value is an error
    // here as in `aggregate`), and a forked child gets a fresh pool instead of rayon's global one,
    // whose threads it does not have. Each fragment's stream is keyed by its index, so the order in
    // which the threads draw does not matter.
    let fragments: Vec<Digraph> = pool()?.install(|| match &mode {
        GraphMode::Shatter => shatter(n_nodes, n_fragments, degree, seed, round),
        _ => (0..n_fragments)
            .into_par_iter()
            .map(|k| sample_one(n_nodes, degree, seed, round, k as u64, &mode))
            .collect(),
    });
    Ok(Graphs {
        n_nodes,
        degree,
        mode,
        seed,
        round,
        fragments,
    })
}

fn sample_one(n: usize, s: usize, seed: u64, round: u64, k: u64, mode: &GraphMode) -> Digraph {
    match mode {
        GraphMode::ElOracle => {
            let mut rng = Rng::from_key(seed, round, k, Stream::Graph);
            let (order, heads) = regular_heads(n, s, &mut rng);
            Digraph::from_regular(&order, &heads, s)
        }
        GraphMode::ElOraclePairing => {
            let mut rng = Rng::from_key(seed, round, k, Stream::Graph);
            Digraph::from_pairs(n, &pairing_digraph(n, s, &mut rng))
        }
        GraphMode::Static => {
            let mut rng = Rng::from_key(seed, 0, k, Stream::StaticGraph);
            let (order, heads) = regular_heads(n, s, &mut rng);
            Digraph::from_regular(&order, &heads, s)
        }
        GraphMode::ElLocal | GraphMode::Pull => {
            let mut rng = Rng::from_key(seed, round, k, Stream::Graph);
            let mut picks = Vec::with_capacity(s);
            let mut edges = Vec::with_capacity(n * s);
            for i in 0..n {
                rng.sample_distinct(n - 1, s, &mut picks);
                for &p in &picks {
                    let other = if p >= i { p + 1 } else { p };
                    edges.push(if *mode == GraphMode::ElLocal {
                        (i, other)
                    } else {
                        (other, i)
                    });
                }
            }
            Digraph::from_edges(n, edges.into_iter())
        }
        GraphMode::Undirected => {
            let mut rng = Rng::from_key(seed, round, k, Stream::Graph);
            let edges = regular_undirected(n, s, &mut rng);
            Digraph::from_edges(n, edges.iter().flat_map(|&(a, b)| [(a, b), (b, a)]))
        }
        GraphMode::Ring => {
            Digraph::from_edges(n, (0..n).flat_map(|i| [(i, (i + 1) % n), ((i + 1) % n, i)]))
        }
        GraphMode::Complete => {
            Digraph::from_edges(n, (0..n).flat_map(|i| (0..n).map(move |j| (i, j))))
        }
        GraphMode::Edges(edges) => Digraph::from_edges(n, edges.iter().copied()),
        GraphMode::FragmentEdges(lists) => {
            Digraph::from_edges(n, lists[k as usize].iter().copied())
        }
        GraphMode::Shatter => unreachable!("shatter couples fragments and is sampled as a whole"),
    }
}

fn shatter(n: usize, k_total: usize, s: usize, seed: u64, round: u64) -> Vec<Digraph> {
    let v = n * k_total;
    let mut rng = Rng::from_key(seed, round, 0, Stream::Shatter);
    let edges = regular_digraph(v, s, &mut rng);
    let mut per_fragment: Vec<Vec<(usize, usize)>> = vec![Vec::new(); k_total];
    // Virtual node u * K + k holds fragment k of node u.
    for (src, dst) in edges {
        let (src, dst) = (src as usize, dst as usize);
        per_fragment[src % k_total].push((src / k_total, dst / k_total));
    }
    per_fragment
        .into_iter()
        .map(|e| Digraph::from_edges(n, e.into_iter()))
        .collect()
}

/// Directed graph with every out- and in-degree exactly `s`, no self loops, no repeated edges, as
/// edges `(src, dst)` ([`regular_heads`]).
fn regular_digraph(n: usize, s: usize, rng: &mut Rng) -> Vec<(u32, u32)> {
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
fn regular_heads(n: usize, s: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
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
fn regular_undirected(n: usize, s: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
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
fn pairing_digraph(n: usize, s: usize, rng: &mut Rng) -> Vec<(u32, u32)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn in_degrees(g: &Digraph) -> Vec<usize> {
        (0..g.n_nodes()).map(|i| g.in_neighbors(i).len()).collect()
    }

    /// `el-oracle` as first written: a list of edges and an out-list per node, each switch searching
    /// the out-lists for the heads it moves. The in-place version must draw the same graphs.
    fn regular_digraph_with_edge_list(n: usize, s: usize, rng: &mut Rng) -> Vec<(u32, u32)> {
        let mut order: Vec<u32> = (0..n as u32).collect();
        rng.shuffle(&mut order);
        let mut targets = vec![Vec::new(); n];
        let mut edges = Vec::new();
        for pos in 0..n {
            for step in 1..=s {
                let (a, b) = (order[pos], order[(pos + step) % n]);
                targets[a as usize].push(b);
                edges.push((a, b));
            }
        }
        let m = edges.len();
        if s + 1 < n {
            for _ in 0..10 * m {
                let (e1, e2) = (rng.below(m), rng.below(m));
                let ((a, b), (c, d)) = (edges[e1], edges[e2]);
                let (ta, tc) = (&targets[a as usize], &targets[c as usize]);
                if a == c || b == d || a == d || c == b || ta.contains(&d) || tc.contains(&b) {
                    continue;
                }
                let slot = targets[a as usize].iter().position(|&t| t == b).unwrap();
                targets[a as usize][slot] = d;
                let slot = targets[c as usize].iter().position(|&t| t == d).unwrap();
                targets[c as usize][slot] = b;
                edges[e1] = (a, d);
                edges[e2] = (c, b);
            }
        }
        edges
    }

    #[test]
    fn el_oracle_switches_heads_in_place_as_the_edge_list_did() {
        for &(n, s, seed) in &[(2, 1, 0), (9, 8, 1), (10, 3, 2), (200, 8, 3), (1000, 7, 4)] {
            let mut fast = Rng::from_key(seed, 1, 0, Stream::Graph);
            let mut plain = fast.clone();
            assert_eq!(
                regular_digraph(n, s, &mut fast),
                regular_digraph_with_edge_list(n, s, &mut plain),
                "n={n} s={s}"
            );
        }
    }

    #[test]
    fn regular_graphs_build_the_same_in_lists_as_from_pairs() {
        for &(n, s, seed) in &[(2, 1, 0), (9, 8, 1), (10, 3, 2), (200, 8, 3), (1000, 7, 4)] {
            let mut rng = Rng::from_key(seed, 1, 0, Stream::Graph);
            let (order, heads) = regular_heads(n, s, &mut rng);
            let pairs: Vec<(u32, u32)> = heads
                .iter()
                .enumerate()
                .map(|(e, &h)| (order[e / s], order[h as usize]))
                .collect();
            assert_eq!(
                Digraph::from_regular(&order, &heads, s),
                Digraph::from_pairs(n, &pairs),
                "n={n} s={s}"
            );
        }
    }

    #[test]
    fn el_oracle_is_exactly_regular_without_loops() {
        let cases = [
            (2usize, 1usize),
            (5, 4),
            (10, 8),
            (16, 8),
            (64, 8),
            (100, 3),
            (3000, 40),
        ];
        for (&(n, s), mode) in cases.iter().flat_map(|case| {
            [
                (case, GraphMode::ElOracle),
                (case, GraphMode::ElOraclePairing),
            ]
        }) {
            let g = sample_graphs(n, 4, s, 1, 3, mode.clone()).unwrap();
            for f in &g.fragments {
                assert!(in_degrees(f).iter().all(|&d| d == s));
                assert!(f.out_degree.iter().all(|&d| d as usize == s));
                for i in 0..n {
                    assert!(!f.in_neighbors(i).contains(&(i as u32)));
                }
            }
            // fragments draw independently (small or complete graphs may coincide)
            if n >= 16 {
                assert_ne!(g.fragments[0], g.fragments[1]);
            }
            let next = sample_graphs(n.max(16), 1, s, 1, 4, mode.clone()).unwrap();
            let same = sample_graphs(n.max(16), 1, s, 1, 4, mode).unwrap();
            assert_eq!(next.fragments, same.fragments);
        }
    }

    #[test]
    fn pairing_repairs_its_loops_and_repeats_and_differs_from_the_switch_chain() {
        // Many draws at a density where the pairing model has loops and repeats in nearly every
        // draw: all come out simple and regular (checked above per mode); here, that they vary.
        let a = sample_graphs(50, 8, 6, 7, 0, GraphMode::ElOraclePairing).unwrap();
        let b = sample_graphs(50, 8, 6, 7, 1, GraphMode::ElOraclePairing).unwrap();
        let chain = sample_graphs(50, 8, 6, 7, 0, GraphMode::ElOracle).unwrap();
        for k in 0..8 {
            assert_ne!(a.fragments[k], b.fragments[k]);
            assert_ne!(a.fragments[k], chain.fragments[k]);
            assert!(in_degrees(&a.fragments[k]).iter().all(|&d| d == 6));
        }
        assert_eq!(
            GraphMode::parse("el-oracle-pairing", None).unwrap().name(),
            "el-oracle-pairing"
        );
    }

    #[test]
    fn el_local_and_pull_degrees() {
        let g = sample_graphs(30, 2, 5, 2, 0, GraphMode::ElLocal).unwrap();
        for f in &g.fragments {
            assert!(f.out_degree.iter().all(|&d| d == 5));
        }
        let p = sample_graphs(30, 2, 5, 2, 0, GraphMode::Pull).unwrap();
        for f in &p.fragments {
            assert!(in_degrees(f).iter().all(|&d| d == 5));
        }
    }

    #[test]
    fn undirected_is_symmetric_regular() {
        for &(n, s) in &[(50usize, 2usize), (10, 3), (20, 7)] {
            let g = sample_graphs(n, 3, s, 9, 1, GraphMode::Undirected).unwrap();
            for f in &g.fragments {
                assert!(in_degrees(f).iter().all(|&d| d == s));
                for i in 0..n {
                    for &j in f.in_neighbors(i) {
                        assert!(f.in_neighbors(j as usize).contains(&(i as u32)));
                    }
                }
            }
        }
        assert!(sample_graphs(5, 1, 3, 0, 0, GraphMode::Undirected).is_err());
    }

    #[test]
    fn static_graphs_do_not_change_with_round() {
        let a = sample_graphs(20, 3, 4, 5, 0, GraphMode::Static).unwrap();
        let b = sample_graphs(20, 3, 4, 5, 17, GraphMode::Static).unwrap();
        assert_eq!(a.fragments, b.fragments);
        assert_ne!(a.fragments[0], a.fragments[1]);
    }

    #[test]
    fn fixed_topologies() {
        let r = sample_graphs(6, 1, 0, 0, 0, GraphMode::Ring).unwrap();
        assert_eq!(r.fragments[0].in_neighbors(0), &[1, 5]);
        let c = sample_graphs(4, 2, 0, 0, 0, GraphMode::Complete).unwrap();
        assert_eq!(c.fragments[1].in_neighbors(2), &[0, 1, 3]);
        let e = sample_graphs(3, 2, 0, 0, 0, GraphMode::Edges(vec![(2, 1), (0, 1)])).unwrap();
        for f in &e.fragments {
            assert_eq!(f.in_neighbors(1), &[0, 2]);
            assert!(f.in_neighbors(0).is_empty());
        }
        assert!(sample_graphs(3, 1, 0, 0, 0, GraphMode::Edges(vec![(0, 3)])).is_err());
        assert!(sample_graphs(3, 1, 0, 0, 0, GraphMode::Edges(vec![(1, 1)])).is_err());
    }

    #[test]
    fn edge_lists_differ_per_fragment_and_count_what_each_node_sends() {
        let g = Graphs::from_edge_lists(3, vec![vec![(0, 1), (0, 2)], vec![], vec![(2, 0)]], 7)
            .unwrap();
        assert_eq!(
            (g.n_fragments(), g.round(), g.mode().name()),
            (3, 7, "edges")
        );
        assert_eq!(g.fragments[0].in_neighbors(2), &[0]);
        assert!(g.fragments[1].sources().is_empty());
        assert_eq!(g.fragments[2].in_neighbors(0), &[2]);
        // fragment sizes 2, 3, 5: node 0 sends fragment 0 twice, node 2 sends fragment 2 once
        let map = FragmentMap::from_ids(&[0, 0, 1, 1, 1, 2, 2, 2, 2, 2], 3).unwrap();
        assert_eq!(g.sent_params(&map).unwrap(), vec![4, 0, 5]);
    }

    #[test]
    fn bad_edges_name_the_round_fragment_and_edge() {
        let message = |lists: Vec<Vec<(usize, usize)>>| {
            Graphs::from_edge_lists(4, lists, 5).unwrap_err().message
        };
        assert_eq!(
            message(vec![vec![], vec![(0, 1), (3, 4)]]),
            "round 5, fragment 1: edge 1 = (3, 4) names a node outside 0..n_nodes=4"
        );
        assert_eq!(
            message(vec![vec![(2, 2)]]),
            "round 5, fragment 0: edge 0 = (2, 2) is a self loop; a node's own copy always counts"
        );
        assert_eq!(
            message(vec![vec![(1, 0), (0, 1), (1, 2), (0, 1), (1, 0)]]),
            "round 5, fragment 0: edge 3 = (0, 1) repeats edge 1"
        );
        assert!(message(vec![]).contains("K=0"));
        assert!(
            sample_graphs(3, 1, 0, 0, 0, GraphMode::Edges(vec![(0, 1), (0, 1)]))
                .unwrap_err()
                .message
                .contains("edge 1 = (0, 1) repeats edge 0")
        );
    }

    #[test]
    fn shatter_sends_each_fragment_to_at_most_degree_owners() {
        let g = sample_graphs(10, 4, 3, 1, 0, GraphMode::Shatter).unwrap();
        let mut total = 0;
        for f in &g.fragments {
            assert!(f.out_degree.iter().all(|&d| d <= 3));
            total += f.out_degree.iter().sum::<u32>();
            for i in 0..10 {
                assert!(!f.in_neighbors(i).contains(&(i as u32)));
            }
        }
        assert!(total > 0);
    }

    #[test]
    fn mixing_rows_sum_to_one() {
        for mode in [
            GraphMode::ElOracle,
            GraphMode::ElOraclePairing,
            GraphMode::ElLocal,
            GraphMode::Pull,
            GraphMode::Shatter,
        ] {
            let g = sample_graphs(12, 3, 4, 0, 2, mode).unwrap();
            for k in 0..3 {
                let w = g.mixing_matrix(k).unwrap();
                for i in 0..12 {
                    let row: f64 = w[i * 12..(i + 1) * 12].iter().sum();
                    assert!((row - 1.0).abs() < 1e-12);
                    assert!(w[i * 12 + i] > 0.0);
                }
            }
        }
    }

    #[test]
    fn el_oracle_sends_the_same_for_every_k() {
        let d = 1000;
        for k in [1usize, 2, 8] {
            let g = sample_graphs(16, k, 8, 0, 0, GraphMode::ElOracle).unwrap();
            let map = FragmentMap::contiguous(d, k).unwrap();
            assert!(g
                .sent_params(&map)
                .unwrap()
                .iter()
                .all(|&s| s == 8 * d as u64));
        }
    }

    #[test]
    fn graphs_too_large_are_errors_before_drawing() {
        let message = sample_graphs(100_000, 1, 99_999, 0, 0, GraphMode::ElOracle)
            .unwrap_err()
            .message;
        assert!(message.contains("degree=99999"), "{message}");
        assert!(sample_graphs(10, 1, 0, 0, 0, GraphMode::ElOracle)
            .unwrap_err()
            .message
            .contains("degree=0"));
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(sample_graphs(1, 1, 1, 0, 0, GraphMode::ElOracle)
            .unwrap_err()
            .message
            .contains("n_nodes=1"));
        assert!(sample_graphs(8, 1, 8, 0, 0, GraphMode::ElOracle)
            .unwrap_err()
            .message
            .contains("degree=8"));
        assert!(sample_graphs(8, 0, 2, 0, 0, GraphMode::ElOracle).is_err());
        assert!(GraphMode::parse("bogus", None)
            .unwrap_err()
            .message
            .contains("bogus"));
    }
}
