//! mosaic-core: the algorithmic core of mosaic-fast, free of Python.
//!
//! - [`fragments`]: fixed coordinate -> fragment maps (contiguous, random per layer, blocks);
//! - [`graphs`]: per-fragment gossip graph samplers keyed by `(seed, round, fragment)`;
//! - [`aggregate`](mod@aggregate): fragment-wise averaging of all nodes on a dedicated thread pool;
//! - [`memory`]: whether buffers fit in memory, and faulting them in on the pool;
//! - [`boundary`]: every check of the kernel's array arguments, in one place;
//! - [`network`]: the network model's event-driven transfer scheduler (fair bandwidth sharing);
//! - `probes` (feature `bench-probes`): what benchmarks measure the kernel against;
//! - `simd`: instruction-set detection, prefetches, gathers and streaming stores, under all of them.

pub mod aggregate;
pub mod boundary;
pub mod error;
pub mod fragments;
pub mod graphs;
pub mod memory;
pub mod network;
pub mod pool;
#[cfg(feature = "bench-probes")]
pub mod probes;
pub mod rng;
mod simd;

pub use aggregate::{aggregate, tile_width};
pub use boundary::{check_aggregate, check_shapes, Checked, Operand};
pub use error::{ErrorKind, MosaicError, Result};
pub use fragments::{FragmentMap, FragmenterKind};
pub use graphs::{sample_graphs, Digraph, GraphMode, Graphs};
