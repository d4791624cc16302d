//! The checks of a sampling call, before any graph is drawn: parameters against the mode, user
//! edge lists, and whether the graphs fit (u32 ids and offsets, memory).

use super::mode::GraphMode;
use crate::bail;
use crate::error::Result;

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

pub(super) fn validate(
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
