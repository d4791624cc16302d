//! `mosaic_fast._core`: thin pyo3 glue over `mosaic-core`. Each function extracts and checks its
//! arguments while attached to Python, runs one core call with the GIL released, and maps errors in
//! one place (`to_pyerr`). Users import `mosaic_fast`, not this module.
//!
//! One module per exposed concept: `fragments` (`FragmentMap`), `graphs` (`Graphs`,
//! `sample_graphs`), `kernel` (`aggregate` and what it runs on; its array arguments are read in
//! `operands`), `network` (`NetworkScheduler`, `schedule_transfers`); `errors` and `args`
//! are shared by all of them. This file only registers them.

mod args;
mod errors;
mod fragments;
mod graphs;
mod kernel;
mod network;
mod operands;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<fragments::PyFragmentMap>()?;
    m.add_class::<graphs::PyGraphs>()?;
    m.add_function(wrap_pyfunction!(graphs::sample_graphs, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::check_aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::aggregate, m)?)?;
    #[cfg(feature = "bench-probes")]
    m.add_function(wrap_pyfunction!(kernel::copy_into, m)?)?;
    #[cfg(feature = "bench-probes")]
    m.add_function(wrap_pyfunction!(kernel::panel_ceiling, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::prefault, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::check_memory, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::tile_width, m)?)?;
    m.add_class::<network::PyNetworkScheduler>()?;
    m.add_function(wrap_pyfunction!(network::schedule_transfers, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
