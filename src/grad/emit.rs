//! The vocabulary rules use to write gradient nodes.

use crate::onnx::AttributeProto;
use crate::onnx::builder::{GraphBuilder, attr};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim};

use super::graph::TensorInfo;

/// Emits ONNX nodes into the backward graph under construction.
pub struct Emit<'a> {
    pub b: &'a mut GraphBuilder,
}

impl Emit<'_> {
    /// Any op with one output.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.b.op(op, inputs, attrs)
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], vec![])
    }

    pub fn sub(&mut self, a: &str, b: &str) -> String {
        self.op("Sub", &[a, b], vec![])
    }

    pub fn mul(&mut self, a: &str, b: &str) -> String {
        self.op("Mul", &[a, b], vec![])
    }

    pub fn div(&mut self, a: &str, b: &str) -> String {
        self.op("Div", &[a, b], vec![])
    }

    pub fn neg(&mut self, a: &str) -> String {
        self.op("Neg", &[a], vec![])
    }

    /// `a * value`, skipping the node when `value` is 1.
    pub fn scale(&mut self, a: &str, value: f32) -> String {
        if value == 1.0 {
            return a.to_string();
        }
        let c = self.scalar(value);
        self.mul(a, &c)
    }

    /// `x` where the boolean `keep` holds, 0 elsewhere. A Mul by the cast
    /// mask, since ONNX Runtime's Where is several times slower than Mul.
    pub fn mask(&mut self, x: &str, keep: &str) -> String {
        let ones = self.op("Cast", &[keep], vec![attr::int("to", DataType::Float as i64)]);
        self.mul(x, &ones)
    }

    /// A float scalar constant.
    pub fn scalar(&mut self, value: f32) -> String {
        self.b.scalar(value)
    }

    /// A 1-D int64 constant.
    pub fn ints(&mut self, values: &[i64]) -> String {
        self.b.const_i64("advx_ints", values)
    }

    /// The runtime shape of a tensor.
    pub fn shape_of(&mut self, x: &str) -> String {
        self.op("Shape", &[x], vec![])
    }

    /// `x` reshaped to the runtime shape of `like`.
    pub fn reshape_like(&mut self, x: &str, like: &str) -> String {
        let s = self.shape_of(like);
        self.op("Reshape", &[x, &s], vec![])
    }

    /// `x` reshaped to a static shape (0 copies a dimension, -1 infers one).
    pub fn reshape(&mut self, x: &str, dims: &[i64]) -> String {
        let s = self.ints(dims);
        self.op("Reshape", &[x, &s], vec![])
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op("Transpose", &[x], vec![attr::ints("perm", perm)])
    }

    pub fn reduce_sum(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        let a = self.ints(axes);
        self.op("ReduceSum", &[x, &a], vec![attr::int("keepdims", keepdims as i64)])
    }

    /// Zeros shaped like `x` at run time.
    pub fn zeros_like(&mut self, x: &str) -> String {
        let s = self.shape_of(x);
        self.op("ConstantOfShape", &[&s], vec![])
    }

    /// Undoes numpy broadcasting: sums `grad` (shaped `from`) down to the
    /// shape of `target`.
    pub fn sum_to(&mut self, grad: &str, from: &[Dim], target: &TensorInfo) -> String {
        let axes = shape::reduction_axes(&target.shape, from);
        if axes.is_empty() {
            return grad.to_string();
        }
        let reduced = self.reduce_sum(grad, &axes, true);
        if target.shape.len() == from.len() { reduced } else { self.reshape_like(&reduced, &target.name) }
    }
}
