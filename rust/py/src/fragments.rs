//! `FragmentMap`: a fixed coordinate -> fragment map over a flat parameter vector.

use std::sync::Arc;

use mosaic_core::FragmentMap;
use numpy::{
    IntoPyArray, PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::args::{type_name, uint_arg};
use crate::errors::{detached, internal_err, type_err, value_err};

/// A fixed coordinate -> fragment map over a flat parameter vector.
#[pyclass(frozen, weakref, name = "FragmentMap", module = "mosaic_fast._core")]
pub(crate) struct PyFragmentMap {
    pub(crate) inner: Arc<FragmentMap>,
}

#[pymethods]
impl PyFragmentMap {
    #[staticmethod]
    fn contiguous(
        py: Python<'_>,
        n_params: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let (d, k) = (
            uint_arg(py, "n_params", n_params)?,
            uint_arg(py, "K", n_fragments)?,
        );
        let inner = detached(py, || FragmentMap::contiguous(d as usize, k as usize))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    #[pyo3(signature = (n_params, n_fragments, *, seed, layer_sizes=None))]
    fn random(
        py: Python<'_>,
        n_params: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
        seed: &Bound<'_, PyAny>,
        layer_sizes: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Self> {
        let (d, k) = (
            uint_arg(py, "n_params", n_params)?,
            uint_arg(py, "K", n_fragments)?,
        );
        let seed = uint_arg(py, "seed", seed)?;
        let layers = match layer_sizes {
            Some(sizes) => Some(
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| uint_arg(py, &format!("layer_sizes[{i}]"), s).map(|v| v as usize))
                    .collect::<PyResult<Vec<usize>>>()?,
            ),
            None => None,
        };
        let inner = detached(py, || {
            FragmentMap::random(d as usize, k as usize, seed, layers.as_deref())
        })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    #[pyo3(signature = (n_params, n_fragments, *, block_size, seed))]
    fn blocks(
        py: Python<'_>,
        n_params: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
        block_size: &Bound<'_, PyAny>,
        seed: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let (d, k) = (
            uint_arg(py, "n_params", n_params)?,
            uint_arg(py, "K", n_fragments)?,
        );
        let b = uint_arg(py, "block_size", block_size)?;
        let seed = uint_arg(py, "seed", seed)?;
        let inner = detached(py, || {
            FragmentMap::blocks(d as usize, k as usize, b as usize, seed)
        })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[staticmethod]
    fn from_assignment(
        py: Python<'_>,
        assignment: &Bound<'_, PyAny>,
        n_fragments: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let k = uint_arg(py, "K", n_fragments)?;
        let ids = assignment_ids(py, assignment)?;
        let ids = ids.readonly();
        let ids = ids
            .as_slice()
            .map_err(|e| internal_err(py, format!("assignment as int64: {e}")))?;
        let inner = detached(py, || FragmentMap::from_ids(ids, k as usize))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn n_params(&self) -> usize {
        self.inner.n_params()
    }

    #[getter]
    fn n_fragments(&self) -> usize {
        self.inner.n_fragments()
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
    }

    fn fragment_sizes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner
            .sizes()
            .iter()
            .map(|&s| s as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    fn assignment<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner
            .assignment()
            .iter()
            .map(|&k| k as i64)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "FragmentMap(kind={:?}, n_params={}, n_fragments={})",
            self.inner.kind().name(),
            self.inner.n_params(),
            self.inner.n_fragments()
        )
    }
}

/// A fragment id per coordinate: a one-dimensional integer numpy array, as a contiguous int64 copy
/// (made once per map, so any integer dtype and layout is accepted).
fn assignment_ids<'py>(
    py: Python<'py>,
    assignment: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let array = assignment.downcast::<PyUntypedArray>().map_err(|_| {
        type_err(
            py,
            format!(
                "assignment must be an integer numpy array of shape (n_params,), got {}",
                type_name(assignment)
            ),
        )
    })?;
    let dtype = array.dtype();
    if !matches!(dtype.kind(), b'i' | b'u') {
        return Err(type_err(
            py,
            format!("assignment must be integers, got dtype {}", dtype.str()?),
        ));
    }
    if array.ndim() != 1 {
        return Err(value_err(
            py,
            format!(
                "assignment must have shape (n_params,), got shape {}",
                assignment.getattr("shape")?.repr()?
            ),
        ));
    }
    let numpy = py.import("numpy")?;
    let copy = numpy.call_method1("ascontiguousarray", (assignment, "int64"))?;
    copy.downcast_into::<PyArray1<i64>>()
        .map_err(|e| internal_err(py, format!("assignment as int64: {e}")))
}
