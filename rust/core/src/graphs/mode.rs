//! Which kind of graph a round draws per fragment.

use crate::bail;
use crate::error::Result;

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
    /// [`super::Graphs::from_edge_lists`]); named `edges` like the shared list.
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
