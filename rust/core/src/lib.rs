//! mosaic-core: the algorithmic core of mosaic-fast, free of Python.
//!
//! - [`fragments`]: fixed coordinate -> fragment maps (contiguous, random per layer, blocks);
//! - [`graphs`]: per-fragment gossip graph samplers keyed by `(seed, round, fragment)`;
//! - [`aggregate`]: fragment-wise averaging of all nodes on a dedicated thread pool.

pub mod aggregate;
pub mod error;
pub mod fragments;
pub mod graphs;
pub mod pool;
pub mod rng;

pub use aggregate::{aggregate, copy_into, tile_width};
pub use error::{ErrorKind, MosaicError, Result};
pub use fragments::{FragmentMap, FragmenterKind};
pub use graphs::{sample_graphs, Digraph, GraphMode, Graphs};
