//! Per-fragment gossip graphs for one round, stored as in-neighbour lists (CSR per fragment).
//!
//! `mode` names the kinds of graph, `checks` validates a call before anything is drawn,
//! `regular` draws random regular graphs, and `digraph` stores one fragment's graph; this module
//! samples a round's graphs, one per fragment.

mod checks;
mod digraph;
mod mode;
mod regular;
#[cfg(test)]
mod tests;

pub use digraph::Digraph;
pub use mode::GraphMode;

use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::fragments::FragmentMap;
use crate::pool::pool;
use crate::rng::{Rng, Stream};
use checks::validate;
use regular::{pairing_digraph, regular_digraph, regular_heads, regular_undirected};

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
            for (s, &deg) in sent.iter_mut().zip(g.out_degrees()) {
                *s += deg as u64 * size as u64;
            }
        }
        Ok(sent)
    }
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
