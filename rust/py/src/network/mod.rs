//! `NetworkScheduler` and `schedule_transfers`: the network model's transfer scheduler
//! (`mosaic_core::network`), its arguments ([`args`]) and its state dict ([`state`]).

mod args;
mod state;

use mosaic_core::network;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{detached, to_pyerr};
use args::{latency_arg, node_arg, scheduler_options, slice_of};
use state::{state_from_dict, state_to_dict};

/// Per-transfer arrays of a list of deliveries: id, src, dst (int64), bytes, ready, start,
/// last_byte, delivered (float64 seconds).
type DeliveryArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// A batch's (start, last_byte, delivered) float64 arrays, by row.
type ScheduleArrays<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// One delivery: (id, src, dst, bytes, ready, start, last_byte, delivered).
type DeliveryTuple = (u64, usize, usize, f64, f64, f64, f64, f64);

fn delivery_arrays(py: Python<'_>, deliveries: Vec<network::Delivery>) -> DeliveryArrays<'_> {
    let ints = |f: fn(&network::Delivery) -> i64| {
        deliveries
            .iter()
            .map(f)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    };
    let floats = |f: fn(&network::Delivery) -> f64| {
        deliveries
            .iter()
            .map(f)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    };
    (
        ints(|d| d.id as i64),
        ints(|d| d.src as i64),
        ints(|d| d.dst as i64),
        floats(|d| d.bytes),
        floats(|d| d.ready),
        floats(|d| d.start),
        floats(|d| d.last_byte),
        floats(|d| d.delivered),
    )
}

/// Cancelled transfers: their ids and the bytes each had sent.
type Cancelled<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);

/// Fair up/downlink sharing plus latency; see mosaic_fast.network.scheduler for the semantics.
#[pyclass(name = "NetworkScheduler", module = "mosaic_fast._core")]
pub(crate) struct PyNetworkScheduler {
    inner: network::Scheduler,
}

#[pymethods]
impl PyNetworkScheduler {
    #[new]
    #[pyo3(signature = (uplink, downlink, latency, *, fifo_per_sender=false, fifo_per_pair=false, bandwidth_sharing="max-min"))]
    fn new(
        py: Python<'_>,
        uplink: numpy::PyReadonlyArray1<'_, f64>,
        downlink: numpy::PyReadonlyArray1<'_, f64>,
        latency: &Bound<'_, PyAny>,
        fifo_per_sender: bool,
        fifo_per_pair: bool,
        bandwidth_sharing: &str,
    ) -> PyResult<Self> {
        let up = uplink.as_array().to_vec();
        let down = downlink.as_array().to_vec();
        let latency = latency_arg(py, latency, up.len())?;
        let (queueing, sharing) =
            scheduler_options(py, fifo_per_sender, fifo_per_pair, bandwidth_sharing)?;
        let inner = network::Scheduler::with_options(up, down, latency, queueing, sharing)
            .map_err(|e| to_pyerr(py, e))?;
        Ok(Self { inner })
    }

    #[pyo3(signature = (src, dst, bytes, ready_time=None))]
    fn submit(
        &mut self,
        py: Python<'_>,
        src: i64,
        dst: i64,
        bytes: f64,
        ready_time: Option<f64>,
    ) -> PyResult<u64> {
        let n = self.inner.n_nodes();
        let (s, d) = (node_arg(py, "src", src, n)?, node_arg(py, "dst", dst, n)?);
        let ready = ready_time.unwrap_or(self.inner.now());
        self.inner
            .submit(s, d, bytes, ready)
            .map_err(|e| to_pyerr(py, e))
    }

    fn submit_many<'py>(
        &mut self,
        py: Python<'py>,
        src: numpy::PyReadonlyArray1<'py, i64>,
        dst: numpy::PyReadonlyArray1<'py, i64>,
        bytes: numpy::PyReadonlyArray1<'py, f64>,
        ready_time: numpy::PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let (s, d) = (slice_of(py, "src", &src)?, slice_of(py, "dst", &dst)?);
        let (b, r) = (
            slice_of(py, "bytes", &bytes)?,
            slice_of(py, "ready_time", &ready_time)?,
        );
        let inner = &mut self.inner;
        let first = detached(py, move || inner.submit_many(s, d, b, r))? as i64;
        Ok((first..first + s.len() as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    #[pyo3(signature = (until=None))]
    fn next_delivery(
        &mut self,
        py: Python<'_>,
        until: Option<f64>,
    ) -> PyResult<Option<DeliveryTuple>> {
        let inner = &mut self.inner;
        let next = detached(py, move || inner.next_delivery(until))?;
        Ok(next.map(|d| {
            (
                d.id,
                d.src,
                d.dst,
                d.bytes,
                d.ready,
                d.start,
                d.last_byte,
                d.delivered,
            )
        }))
    }

    fn run_until<'py>(&mut self, py: Python<'py>, until: f64) -> PyResult<DeliveryArrays<'py>> {
        let inner = &mut self.inner;
        let deliveries = detached(py, move || inner.advance_until(until))?;
        Ok(delivery_arrays(py, deliveries))
    }

    fn run<'py>(&mut self, py: Python<'py>) -> PyResult<DeliveryArrays<'py>> {
        let inner = &mut self.inner;
        let deliveries = detached(py, move || inner.run())?;
        Ok(delivery_arrays(py, deliveries))
    }

    fn cancel_queued<'py>(
        &mut self,
        py: Python<'py>,
        src: i64,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let s = node_arg(py, "src", src, self.inner.n_nodes())?;
        let ids = self.inner.cancel_queued(s).map_err(|e| to_pyerr(py, e))?;
        Ok(ids
            .into_iter()
            .map(|id| id as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    /// Cancel every transfer of `src` whose last byte has not left: (ids ascending, bytes sent).
    fn cancel_unsent<'py>(&mut self, py: Python<'py>, src: i64) -> PyResult<Cancelled<'py>> {
        let s = node_arg(py, "src", src, self.inner.n_nodes())?;
        let (ids, sent) = self.inner.cancel_unsent(s).map_err(|e| to_pyerr(py, e))?;
        Ok((
            ids.into_iter()
                .map(|id| id as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
            sent.into_pyarray(py),
        ))
    }

    /// Everything that determines this scheduler's future, as numpy arrays and Python scalars.
    fn export_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        state_to_dict(py, self.inner.export_state())
    }

    /// A scheduler restored from `export_state`'s dict; every entry is checked first.
    #[staticmethod]
    fn from_state(py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<Self> {
        let state = state_from_dict(py, state)?;
        let inner = detached(py, move || network::Scheduler::from_state(state))?;
        Ok(Self { inner })
    }

    fn queued_from(&self, py: Python<'_>, src: i64) -> PyResult<usize> {
        let s = node_arg(py, "src", src, self.inner.n_nodes())?;
        self.inner.queued_from(s).map_err(|e| to_pyerr(py, e))
    }

    #[getter]
    fn now(&self) -> f64 {
        self.inner.now()
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.n_nodes()
    }

    #[getter]
    fn fifo_per_sender(&self) -> bool {
        self.inner.fifo_per_sender()
    }

    #[getter]
    fn fifo_per_pair(&self) -> bool {
        self.inner.queueing() == network::Queueing::PerPair
    }

    #[getter]
    fn bandwidth_sharing(&self) -> &'static str {
        self.inner.sharing().name()
    }

    #[getter]
    fn n_queued(&self) -> usize {
        self.inner.n_queued()
    }

    #[getter]
    fn n_active(&self) -> usize {
        self.inner.n_active()
    }

    #[getter]
    fn n_in_flight(&self) -> usize {
        self.inner.n_in_flight()
    }

    #[getter]
    fn next_id(&self) -> u64 {
        self.inner.next_id()
    }

    fn __repr__(&self) -> String {
        format!(
            "NetworkScheduler(n_nodes={}, queueing={:?}, bandwidth_sharing={:?}, now={}, queued={}, active={}, in_flight={})",
            self.inner.n_nodes(),
            self.inner.queueing(),
            self.inner.sharing().name(),
            self.inner.now(),
            self.inner.n_queued(),
            self.inner.n_active(),
            self.inner.n_in_flight()
        )
    }
}

/// A whole batch of transfers scheduled at once, GIL released: (start, last_byte, delivered), by row.
#[pyfunction]
#[pyo3(signature = (uplink, downlink, latency, src, dst, bytes, ready_time, *, fifo_per_sender=false, fifo_per_pair=false, bandwidth_sharing="max-min"))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn schedule_transfers<'py>(
    py: Python<'py>,
    uplink: numpy::PyReadonlyArray1<'py, f64>,
    downlink: numpy::PyReadonlyArray1<'py, f64>,
    latency: &Bound<'py, PyAny>,
    src: numpy::PyReadonlyArray1<'py, i64>,
    dst: numpy::PyReadonlyArray1<'py, i64>,
    bytes: numpy::PyReadonlyArray1<'py, f64>,
    ready_time: numpy::PyReadonlyArray1<'py, f64>,
    fifo_per_sender: bool,
    fifo_per_pair: bool,
    bandwidth_sharing: &str,
) -> PyResult<ScheduleArrays<'py>> {
    let up = uplink.as_array().to_vec();
    let down = downlink.as_array().to_vec();
    let latency = latency_arg(py, latency, up.len())?;
    let (s, d) = (slice_of(py, "src", &src)?, slice_of(py, "dst", &dst)?);
    let (b, r) = (
        slice_of(py, "bytes", &bytes)?,
        slice_of(py, "ready_time", &ready_time)?,
    );
    let (queueing, sharing) =
        scheduler_options(py, fifo_per_sender, fifo_per_pair, bandwidth_sharing)?;
    let scheduler = network::Scheduler::with_options(up, down, latency, queueing, sharing)
        .map_err(|e| to_pyerr(py, e))?;
    let out = detached(py, move || scheduler.schedule_batch(s, d, b, r))?;
    Ok((
        out.start.into_pyarray(py),
        out.last_byte.into_pyarray(py),
        out.delivered.into_pyarray(py),
    ))
}
