//! What the glue reads off the kernel's array arguments (numpy arrays or torch tensors, on any
//! device) for the core's checks, and the host view of one that passed them.

use mosaic_core as core;
use numpy::{PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::type_name;
use crate::errors::{internal_err, type_err};

const NUMPY_ARRAY: &str = "numpy array";

const TORCH_TENSOR: &str = "torch tensor";

/// What the glue reads off an array argument (numpy array or torch tensor, any device) for the
/// core's checks. Reading is all it does: every check is `core::check_aggregate`'s.
pub(crate) struct Described<'py> {
    object: Bound<'py, PyAny>,
    kind: &'static str,
    dtype: String,
    is_float32: bool,
    shape: Vec<usize>,
    c_contiguous: bool,
    address: usize,
    pub(crate) device: String,
}

impl<'py> Described<'py> {
    pub(crate) fn read(py: Python<'py>, name: &str, object: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(array) = object.downcast::<PyUntypedArray>() {
            let dtype = array.dtype();
            // SAFETY: `as_array_ptr` points at the live array object `object` holds a reference to;
            // reading its `data` field is what numpy's own PyArray_DATA macro does.
            let address = unsafe { (*array.as_array_ptr()).data } as usize;
            return Ok(Self {
                object: object.clone(),
                kind: NUMPY_ARRAY,
                is_float32: dtype.is_equiv_to(&numpy::dtype::<f32>(py)),
                dtype: dtype.str()?.to_string(),
                shape: array.shape().to_vec(),
                c_contiguous: array.is_c_contiguous(),
                address,
                device: "cpu".into(),
            });
        }
        if is_torch_tensor(py, object)? {
            let layout = object.getattr("layout")?.str()?.to_string();
            if layout != "torch.strided" {
                return Err(type_err(
                    py,
                    format!("{name} must be a dense tensor, got layout {layout}"),
                ));
            }
            let dtype = object.getattr("dtype")?.str()?.to_string();
            return Ok(Self {
                object: object.clone(),
                kind: TORCH_TENSOR,
                is_float32: dtype == "torch.float32",
                dtype,
                shape: object.getattr("shape")?.extract()?,
                c_contiguous: object.call_method0("is_contiguous")?.extract()?,
                address: object.call_method0("data_ptr")?.extract()?,
                device: object.getattr("device")?.str()?.to_string(),
            });
        }
        Err(type_err(
            py,
            format!(
                "{name} must be a numpy array or torch tensor of shape (n_nodes, n_params), got {}",
                type_name(object)
            ),
        ))
    }

    pub(crate) fn operand(&self) -> core::Operand<'_> {
        core::Operand {
            kind: self.kind,
            dtype: &self.dtype,
            is_float32: self.is_float32,
            shape: &self.shape,
            c_contiguous: self.c_contiguous,
            address: self.address,
            device: &self.device,
        }
    }

    /// The checked array as a float32 numpy matrix over the same memory (a CPU tensor's `.numpy()`).
    /// The view must start where the checks were told the data is: the overlap check of `params`
    /// and `out` is what makes their slices disjoint, so it must hold for the memory touched.
    pub(crate) fn host_matrix(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let array = if self.kind == NUMPY_ARRAY {
            self.object.clone()
        } else {
            self.object.call_method0("detach")?.call_method0("numpy")?
        };
        let matrix = array
            .downcast_into::<PyArray2<f32>>()
            .map_err(|e| internal_err(py, format!("a checked array is not float32 2-D: {e}")))?;
        if matrix.data() as usize != self.address || matrix.shape() != self.shape.as_slice() {
            return Err(internal_err(
                py,
                format!(
                    "the numpy view of a {} does not cover the memory that was checked",
                    self.kind
                ),
            ));
        }
        Ok(matrix)
    }
}

/// `isinstance(object, torch.Tensor)`, without importing torch: a tensor cannot exist without it.
fn is_torch_tensor(py: Python<'_>, object: &Bound<'_, PyAny>) -> PyResult<bool> {
    let modules = py.import("sys")?.getattr("modules")?;
    match modules.downcast::<PyDict>()?.get_item("torch")? {
        Some(torch) => object.is_instance(&torch.getattr("Tensor")?),
        None => Ok(false),
    }
}
