//! The scheduler's arguments: latencies, node ids, contiguous arrays, queueing and sharing.

use mosaic_core::network;
use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::args::type_name;
use crate::errors::{to_pyerr, type_err, value_err};

/// A contiguous 1-D numpy array argument as a slice (the Python wrapper makes it one).
pub(crate) fn slice_of<'a, T: numpy::Element>(
    py: Python<'_>,
    name: &str,
    array: &'a numpy::PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|_| type_err(py, format!("{name} must be a C-contiguous numpy array")))
}

/// `latency`: a float (every message), a float64 array of shape (n_nodes,) (access-link delays,
/// a message pays src's + dst's) or (n_nodes, n_nodes) (per ordered pair, row = sender).
pub(crate) fn latency_arg(
    py: Python<'_>,
    latency: &Bound<'_, PyAny>,
    n_nodes: usize,
) -> PyResult<network::Latency> {
    if let Ok(array) = latency.downcast::<numpy::PyArrayDyn<f64>>() {
        let values: Vec<f64> = array.readonly().as_array().iter().copied().collect();
        return match array.shape() {
            [] => Ok(network::Latency::Global(values[0])),
            [n] if *n == n_nodes => Ok(network::Latency::PerNode(values)),
            [a, b] if *a == n_nodes && *b == n_nodes => Ok(network::Latency::PerLink(values)),
            shape => Err(value_err(
                py,
                format!(
                    "latency must be a number, shape ({n_nodes},) or ({n_nodes}, {n_nodes}), got shape {shape:?}"
                ),
            )),
        };
    }
    latency
        .extract::<f64>()
        .map(network::Latency::Global)
        .map_err(|_| {
            type_err(
                py,
                format!(
                    "latency must be a number or a float64 numpy array, got {}",
                    type_name(latency)
                ),
            )
        })
}

pub(crate) fn node_arg(py: Python<'_>, name: &str, value: i64, n_nodes: usize) -> PyResult<usize> {
    if value < 0 {
        return Err(value_err(
            py,
            format!("{name}={value} is not a node id (the network has nodes 0..{n_nodes})"),
        ));
    }
    Ok(value as usize)
}

/// The scheduler's queueing and sharing from the keyword arguments.
pub(crate) fn scheduler_options(
    py: Python<'_>,
    fifo_per_sender: bool,
    fifo_per_pair: bool,
    bandwidth_sharing: &str,
) -> PyResult<(network::Queueing, network::Sharing)> {
    let queueing =
        match (fifo_per_sender, fifo_per_pair) {
            (false, false) => network::Queueing::Concurrent,
            (true, false) => network::Queueing::PerSender,
            (false, true) => network::Queueing::PerPair,
            (true, true) => return Err(value_err(
                py,
                "fifo_per_sender and fifo_per_pair are exclusive: one queue per sender or per pair"
                    .to_string(),
            )),
        };
    let sharing = network::Sharing::from_name(bandwidth_sharing).map_err(|e| to_pyerr(py, e))?;
    Ok((queueing, sharing))
}
