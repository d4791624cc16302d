//! A scheduler's state as a dict of numpy arrays and Python scalars, and back (entry types checked
//! here, values by the core).

use mosaic_core::network;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::latency_arg;
use crate::args::type_name;
use crate::errors::{internal_err, type_err, value_err};

/// The columns of each kind of transfer in a scheduler's state dict, after the `{kind}_` prefix
/// (`queued_id`, ...): the shared ones, then the kind's own.
const STATE_ROWS: [&str; 6] = ["id", "src", "dst", "bytes", "ready", "start"];

/// A scheduler state's entries as numpy arrays and Python scalars, keyed as
/// `mosaic_fast.network.scheduler.NetworkScheduler.state_dict` names them.
pub(crate) fn state_to_dict<'py>(
    py: Python<'py>,
    state: network::SchedulerState,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let n = state.uplink.len();
    out.set_item("uplink", state.uplink.into_pyarray(py))?;
    out.set_item("downlink", state.downlink.into_pyarray(py))?;
    let (shape, values) = match state.latency {
        network::Latency::Global(s) => (vec![], vec![s]),
        network::Latency::PerNode(s) => (vec![n], s),
        network::Latency::PerLink(s) => (vec![n, n], s),
    };
    let latency = numpy::ndarray::ArrayD::from_shape_vec(shape, values)
        .map_err(|e| internal_err(py, format!("latency of the wrong size: {e}")))?;
    out.set_item("latency", latency.into_pyarray(py))?;
    out.set_item("fifo_per_sender", state.fifo_per_sender)?;
    out.set_item("fifo_per_pair", state.fifo_per_pair)?;
    out.set_item("bandwidth_sharing", state.sharing.name())?;
    out.set_item("now", state.now)?;
    out.set_item("next_id", state.next_id)?;
    for (kind, rows) in [
        ("queued", state.queued),
        ("active", state.active),
        ("in_flight", state.in_flight),
    ] {
        out.set_item(format!("{kind}_id"), rows.id.into_pyarray(py))?;
        out.set_item(format!("{kind}_src"), rows.src.into_pyarray(py))?;
        out.set_item(format!("{kind}_dst"), rows.dst.into_pyarray(py))?;
        out.set_item(format!("{kind}_bytes"), rows.bytes.into_pyarray(py))?;
        out.set_item(format!("{kind}_ready"), rows.ready.into_pyarray(py))?;
        out.set_item(format!("{kind}_start"), rows.start.into_pyarray(py))?;
    }
    for (name, column) in [
        ("active_remaining", state.active_remaining),
        ("active_rate", state.active_rate),
        ("active_updated", state.active_updated),
        ("in_flight_last_byte", state.in_flight_last_byte),
        ("in_flight_delivered", state.in_flight_delivered),
    ] {
        out.set_item(name, column.into_pyarray(py))?;
    }
    Ok(out)
}

/// Entry `name` of a state dict as a vector (a 1-D numpy array of `T`).
fn state_column<T: numpy::Element + Copy>(
    py: Python<'_>,
    state: &Bound<'_, PyDict>,
    name: &str,
) -> PyResult<Vec<T>> {
    let entry = state_entry(py, state, name)?;
    let array = entry
        .extract::<numpy::PyReadonlyArray1<'_, T>>()
        .map_err(|_| {
            type_err(
                py,
                format!(
                    "network state '{name}' must be a 1-D {} numpy array, got {}",
                    std::any::type_name::<T>(),
                    type_name(&entry)
                ),
            )
        })?;
    Ok(array.as_array().to_vec())
}

fn state_entry<'py>(
    py: Python<'_>,
    state: &Bound<'py, PyDict>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    state
        .get_item(name)?
        .ok_or_else(|| value_err(py, format!("network state lacks '{name}'")))
}

fn state_rows(
    py: Python<'_>,
    state: &Bound<'_, PyDict>,
    kind: &str,
) -> PyResult<network::TransferRows> {
    let [id, src, dst, bytes, ready, start] = STATE_ROWS.map(|column| format!("{kind}_{column}"));
    Ok(network::TransferRows {
        id: state_column(py, state, &id)?,
        src: state_column(py, state, &src)?,
        dst: state_column(py, state, &dst)?,
        bytes: state_column(py, state, &bytes)?,
        ready: state_column(py, state, &ready)?,
        start: state_column(py, state, &start)?,
    })
}

/// The scheduler state in a dict `state_to_dict` wrote (its entries' types checked, their values
/// left to the core's checks).
pub(crate) fn state_from_dict(
    py: Python<'_>,
    state: &Bound<'_, PyDict>,
) -> PyResult<network::SchedulerState> {
    let uplink: Vec<f64> = state_column(py, state, "uplink")?;
    let latency = latency_arg(py, &state_entry(py, state, "latency")?, uplink.len())?;
    let wrong = |name: &str, what: &str, entry: &Bound<'_, PyAny>| {
        type_err(
            py,
            format!(
                "network state '{name}' must be {what}, got {}",
                type_name(entry)
            ),
        )
    };
    let fifo = state_entry(py, state, "fifo_per_sender")?;
    // Checkpoints written before these entries: no FIFO per pair, min-share links.
    let per_pair = match state.get_item("fifo_per_pair")? {
        Some(entry) => entry
            .extract::<bool>()
            .map_err(|_| wrong("fifo_per_pair", "a bool", &entry))?,
        None => false,
    };
    let sharing = match state.get_item("bandwidth_sharing")? {
        Some(entry) => {
            let name = entry
                .extract::<String>()
                .map_err(|_| wrong("bandwidth_sharing", "a str", &entry))?;
            network::Sharing::from_name(&name).map_err(|e| {
                value_err(
                    py,
                    format!("network state 'bandwidth_sharing': {}", e.message),
                )
            })?
        }
        None => network::Sharing::MinShare,
    };
    let now = state_entry(py, state, "now")?;
    let next_id = state_entry(py, state, "next_id")?;
    Ok(network::SchedulerState {
        downlink: state_column(py, state, "downlink")?,
        uplink,
        latency,
        fifo_per_sender: fifo
            .extract::<bool>()
            .map_err(|_| wrong("fifo_per_sender", "a bool", &fifo))?,
        fifo_per_pair: per_pair,
        sharing,
        now: now
            .extract::<f64>()
            .map_err(|_| wrong("now", "a float", &now))?,
        next_id: next_id
            .extract::<u64>()
            .map_err(|_| wrong("next_id", "a non-negative int", &next_id))?,
        queued: state_rows(py, state, "queued")?,
        active: state_rows(py, state, "active")?,
        active_remaining: state_column(py, state, "active_remaining")?,
        active_rate: state_column(py, state, "active_rate")?,
        active_updated: state_column(py, state, "active_updated")?,
        in_flight: state_rows(py, state, "in_flight")?,
        in_flight_last_byte: state_column(py, state, "in_flight_last_byte")?,
        in_flight_delivered: state_column(py, state, "in_flight_delivered")?,
    })
}
