//! Typed access to a node's attributes, with errors that name the node and attribute.

use super::tensor::{decode, ConstTensor};
use crate::error::{Error, Result};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};

/// The attributes of one node.
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn err(&self, name: &str, msg: &str) -> Error {
        Error::node(&self.node.name, &self.node.op_type, format!("attribute '{name}': {msg}"))
    }

    fn check(&self, a: &AttributeProto, want: AttributeType) -> Result<()> {
        let t = a.type_.value();
        // Some old exporters leave the type UNDEFINED; accept it and read the field.
        if t == want as i32 || t == AttributeType::UNDEFINED as i32 {
            Ok(())
        } else {
            Err(self.err(&a.name, &format!("expected {want:?}, found type code {t}")))
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        self.get(name).map(|a| self.check(a, AttributeType::INT).map(|_| a.i)).transpose()
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>> {
        self.get(name).map(|a| self.check(a, AttributeType::FLOAT).map(|_| a.f)).transpose()
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.get(name).map(|a| self.check(a, AttributeType::INTS).map(|_| a.ints.clone())).transpose()
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        self.get(name).map(|a| self.check(a, AttributeType::FLOATS).map(|_| a.floats.clone())).transpose()
    }

    pub fn string(&self, name: &str) -> Result<Option<String>> {
        self.get(name)
            .map(|a| {
                self.check(a, AttributeType::STRING)?;
                String::from_utf8(a.s.clone()).map_err(|_| self.err(name, "not UTF-8"))
            })
            .transpose()
    }

    pub fn tensor(&self, name: &str) -> Result<Option<ConstTensor>> {
        self.get(name)
            .map(|a| {
                self.check(a, AttributeType::TENSOR)?;
                let t = a.t.as_ref().ok_or_else(|| self.err(name, "no tensor"))?;
                decode(t, &format!("{}.{name}", self.node.name))
            })
            .transpose()
    }

    /// Non-negative integers, e.g. kernel sizes, strides, pads.
    pub fn usizes(&self, name: &str) -> Result<Option<Vec<usize>>> {
        self.ints(name)?
            .map(|v| {
                v.iter()
                    .map(|&x| usize::try_from(x).map_err(|_| self.err(name, &format!("negative value {x} in {v:?}"))))
                    .collect()
            })
            .transpose()
    }
}
