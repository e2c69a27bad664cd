//! Decoding of ONNX `TensorProto`s (raw little-endian `raw_data` or the typed repeated fields)
//! into f64 tensors, checking the declared size against the bytes before allocating.
//! onnx-protobuf's own `as_value` ignores `raw_data`, so we decode ourselves.

use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::Tensor;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::TensorProto;

/// Element types we can hold as constants.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DType {
    /// Any floating-point type (f16, bf16, f32, f64), held exactly in f64.
    Float,
    /// Any integer type (exact in f64 up to 2^53; larger int64 values are clamped, which only
    /// matters for "until the end" sentinels in Slice).
    Int,
    Bool,
}

/// A constant: values in f64 plus the element type, so integer arithmetic folds correctly.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    pub dtype: DType,
    pub value: Tensor<f64>,
}

impl ConstTensor {
    pub fn ints(shape: Vec<usize>, v: Vec<i64>) -> Result<Self> {
        Ok(ConstTensor { dtype: DType::Int, value: Tensor::new(shape, v.into_iter().map(|x| x as f64).collect())? })
    }
    /// The values as integers (for shapes, axes, indices).
    pub fn to_ints(&self) -> Vec<i64> {
        self.value.data().iter().map(|&v| v as i64).collect()
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
}

/// ONNX data type codes (TensorProto.DataType).
pub mod code {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const BFLOAT16: i32 = 16;
}

/// Name of an ONNX data type code, for messages.
pub fn dtype_name(code: i32) -> &'static str {
    match code {
        code::FLOAT => "float32",
        code::UINT8 => "uint8",
        code::INT8 => "int8",
        code::UINT16 => "uint16",
        code::INT16 => "int16",
        code::INT32 => "int32",
        code::INT64 => "int64",
        code::STRING => "string",
        code::BOOL => "bool",
        code::FLOAT16 => "float16",
        code::DOUBLE => "float64",
        code::UINT32 => "uint32",
        code::UINT64 => "uint64",
        code::BFLOAT16 => "bfloat16",
        14 | 15 => "complex",
        _ => "an unknown type",
    }
}

/// The DType of an ONNX data type code, or None when unsupported.
pub fn dtype_of(code: i32) -> Option<DType> {
    match code {
        code::FLOAT | code::DOUBLE | code::FLOAT16 | code::BFLOAT16 => Some(DType::Float),
        code::UINT8
        | code::INT8
        | code::UINT16
        | code::INT16
        | code::INT32
        | code::INT64
        | code::UINT32
        | code::UINT64 => Some(DType::Int),
        code::BOOL => Some(DType::Bool),
        _ => None,
    }
}

fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f64;
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

fn bf16_to_f64(bits: u16) -> f64 {
    f32::from_bits((bits as u32) << 16) as f64
}

/// Decodes a tensor; `what` names it in errors.
pub fn decode(t: &TensorProto, what: &str) -> Result<ConstTensor> {
    let err = |m: String| Error::InvalidModel(format!("tensor '{what}': {m}"));
    if !t.external_data.is_empty() || t.data_location.value() == DataLocation::EXTERNAL as i32 {
        return Err(err("its data is stored in an external file; robustcert reads self-contained models only \
             (re-save with onnx.save_model(model, path, save_as_external_data=False))"
            .into()));
    }
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(err(format!("negative dimension {d} in {:?}", t.dims)));
        }
        shape.push(usize::try_from(d).map_err(|_| err(format!("dimension {d} too large")))?);
    }
    let n = checked_numel(&shape).map_err(|e| err(e.to_string()))?;
    let dtype = dtype_of(t.data_type)
        .ok_or_else(|| err(format!("element type {} is not supported", dtype_name(t.data_type))))?;
    let width = match t.data_type {
        code::UINT8 | code::INT8 | code::BOOL => 1,
        code::UINT16 | code::INT16 | code::FLOAT16 | code::BFLOAT16 => 2,
        code::FLOAT | code::INT32 | code::UINT32 => 4,
        _ => 8,
    };
    let data: Vec<f64> = if !t.raw_data.is_empty() || n == 0 && t.float_data.is_empty() {
        let raw = &t.raw_data;
        // Checked before allocating: a header claiming 10^12 elements with a few bytes of data
        // is refused here.
        if raw.len() != n * width {
            return Err(err(format!(
                "shape {shape:?} of {} needs {} bytes of raw data, found {}",
                dtype_name(t.data_type),
                n * width,
                raw.len()
            )));
        }
        let mut out = Vec::with_capacity(n);
        for c in raw.chunks_exact(width) {
            let v = match t.data_type {
                code::FLOAT => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                code::DOUBLE => f64::from_le_bytes(c.try_into().expect("8 bytes")),
                code::FLOAT16 => f16_to_f64(u16::from_le_bytes([c[0], c[1]])),
                code::BFLOAT16 => bf16_to_f64(u16::from_le_bytes([c[0], c[1]])),
                code::UINT8 => c[0] as f64,
                code::INT8 => c[0] as i8 as f64,
                code::BOOL => (c[0] != 0) as u8 as f64,
                code::UINT16 => u16::from_le_bytes([c[0], c[1]]) as f64,
                code::INT16 => i16::from_le_bytes([c[0], c[1]]) as f64,
                code::INT32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                code::UINT32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                code::INT64 => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
                _ => u64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
            };
            out.push(v);
        }
        out
    } else {
        let typed: Vec<f64> = match t.data_type {
            code::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
            code::DOUBLE => t.double_data.clone(),
            code::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
            code::UINT32 | code::UINT64 => t.uint64_data.iter().map(|&v| v as f64).collect(),
            // int32_data carries the narrow types, float16/bfloat16 as their bit patterns.
            code::FLOAT16 => t.int32_data.iter().map(|&v| f16_to_f64(v as u16)).collect(),
            code::BFLOAT16 => t.int32_data.iter().map(|&v| bf16_to_f64(v as u16)).collect(),
            code::BOOL => t.int32_data.iter().map(|&v| (v != 0) as u8 as f64).collect(),
            code::INT8 => t.int32_data.iter().map(|&v| v as i8 as f64).collect(),
            code::UINT8 => t.int32_data.iter().map(|&v| v as u8 as f64).collect(),
            code::INT16 => t.int32_data.iter().map(|&v| v as i16 as f64).collect(),
            code::UINT16 => t.int32_data.iter().map(|&v| v as u16 as f64).collect(),
            _ => t.int32_data.iter().map(|&v| v as f64).collect(),
        };
        if typed.len() != n {
            return Err(err(format!("shape {shape:?} holds {n} elements but the data has {}", typed.len())));
        }
        typed
    };
    Ok(ConstTensor { dtype, value: Tensor::new(shape, data)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(bf16_to_f64(0x3f80), 1.0);
    }

    #[test]
    fn raw_and_typed_agree() {
        let mut raw = TensorProto::new();
        raw.dims = vec![2];
        raw.data_type = code::FLOAT;
        raw.raw_data = [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat();
        let mut typed = TensorProto::new();
        typed.dims = vec![2];
        typed.data_type = code::FLOAT;
        typed.float_data = vec![1.5, -2.0];
        assert_eq!(decode(&raw, "r").unwrap(), decode(&typed, "t").unwrap());
    }

    #[test]
    fn absurd_sizes_refused_before_allocation() {
        let mut t = TensorProto::new();
        t.dims = vec![1_000_000, 1_000_000];
        t.data_type = code::FLOAT;
        t.raw_data = vec![0; 16];
        assert!(matches!(decode(&t, "big"), Err(Error::InvalidModel(m)) if m.contains("exceeds")));
        t.dims = vec![5];
        assert!(decode(&t, "short").is_err());
    }

    #[test]
    fn external_data_refused() {
        let mut t = TensorProto::new();
        t.dims = vec![1];
        t.data_type = code::FLOAT;
        t.data_location = DataLocation::EXTERNAL.into();
        assert!(decode(&t, "ext").unwrap_err().to_string().contains("external file"));
    }
}
