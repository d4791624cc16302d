//! One fragment's graph as in-neighbour lists (CSR), built from edges or from a regular draw.

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
    pub(super) fn from_pairs(n: usize, pairs: &[(u32, u32)]) -> Self {
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

    /// A simple `s`-regular digraph from [`super::regular::regular_heads`]: every in-list holds `s`
    /// nodes, so the offsets are known, and walking the sources in ascending node order fills each
    /// list already sorted, without the pair list, counting pass and per-list sort of
    /// [`Self::from_pairs`].
    pub(super) fn from_regular(order: &[u32], heads: &[u32], s: usize) -> Self {
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
