//! MaxPool (2-D, NCHW): the largest input of each window, with pads,
//! strides, dilations and `ceil_mode`; the optional second output holds
//! the flat indices of the maxima.

use anyhow::{Result, bail};

use super::samples::distinct;
use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::window::{self, Family, Nchw, Window};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{Dim, Shape};

pub const RULE: Rule = Rule {
    op: "MaxPool",
    grads: "dX = dY added at each window's argmax (MaxPool's Indices output, placed by MaxUnpool when \
            windows are disjoint, else scattered with ScatterElements)",
    signature: Signature {
        since: 1,
        inputs: 1..=1,
        outputs: 1..=2,
        inputs_since: &[],
        typed: &[(Port::Output(1), Ty::Is(DataType::Int64))],
        t: FLOAT,
        attributes: &[
            Attribute::of("auto_pad", Kind::String),
            Attribute::of("ceil_mode", Kind::Int).flag(),
            Attribute::of("dilations", Kind::Ints),
            Attribute::of("kernel_shape", Kind::Ints),
            Attribute::of("pads", Kind::Ints),
            Attribute::of("storage_order", Kind::Int).flag(),
            Attribute::of("strides", Kind::Ints),
        ],
    },
    infer,
    backward,
    samples,
    fold: None,
};

fn geometry(n: &Node) -> Result<(Window, Nchw)> {
    let x = window::nchw(n, 0)?;
    if n.int("storage_order", 0) != 0 {
        bail!("{} uses storage_order 1 (column-major indices); advx supports only 0", n.describe());
    }
    Ok((Window::of(n, Family::Pool, window::kernel(n, None)?, x.spatial)?, x))
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (w, x) = geometry(n)?;
    let y = vec![x.batch, Dim::Fixed(x.channels), Dim::Fixed(w.output[0]), Dim::Fixed(w.output[1])];
    Ok(vec![y; n.proto.output.len().clamp(1, 2)])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None]);
    };
    let (window, _) = geometry(n)?;
    let x = &n.input(0)?.name;

    // The forward's own Indices when it has them, else a twin MaxPool with
    // the same attributes (so the same windows) that returns them.
    let indices = match n.proto.output.get(1).filter(|o| !o.is_empty()) {
        Some(i) => i.clone(),
        None => e.b.op_n("MaxPool", &[x], 2, n.proto.attribute.clone()).pop().expect("two outputs"),
    };
    if disjoint(&window) {
        let shape = e.shape_of(x);
        let mut attrs = vec![attr::ints("kernel_shape", &window.kernel.map(|v| v as i64))];
        attrs.push(attr::ints("strides", &window.strides.map(|v| v as i64)));
        attrs.push(attr::ints("pads", &window.pads.map(|v| v as i64)));
        return Ok(vec![Some(e.op("MaxUnpool", &[dy, &indices, &shape], attrs))]);
    }
    let flat = [-1];
    let indices = e.reshape(&indices, &flat);
    let updates = e.reshape(dy, &flat);
    let zeros = e.zeros_like(x);
    let zeros = e.reshape(&zeros, &flat);
    let scattered = e.op(
        "ScatterElements",
        &[&zeros, &indices, &updates],
        vec![attr::int("axis", 0), attr::string("reduction", "add")],
    );
    Ok(vec![Some(e.reshape_like(&scattered, x))])
}

/// Whether no two windows overlap (stride >= kernel span): then each input
/// is the argmax of at most one window, and MaxUnpool (one pass over dY)
/// places the gradient, instead of zeros plus a ScatterElements.
/// MaxUnpool has no dilations, and rejects windows that reach past the end
/// padding (ceil_mode), so those take the scatter.
fn disjoint(w: &Window) -> bool {
    w.dilations == [1, 1] && (0..2).all(|a| w.strides[a] >= w.kernel[a] && w.overhang(a) <= w.pads[a + 2] as i64)
}

fn samples() -> Vec<Sample> {
    let pool = |x: &[usize], seed: u64, attrs| Sample {
        inputs: vec![SampleInput::Checked(distinct(x, seed))],
        attrs,
        outputs: 1,
    };
    let mut with_indices = pool(&[1, 2, 4, 5], 6, vec![attr::ints("kernel_shape", &[2, 2])]);
    with_indices.outputs = 2;
    vec![
        pool(&[2, 3, 4, 4], 1, vec![attr::ints("kernel_shape", &[2, 2]), attr::ints("strides", &[2, 2])]),
        pool(
            &[1, 2, 5, 5],
            2,
            vec![
                attr::ints("kernel_shape", &[3, 3]),
                attr::ints("strides", &[2, 2]),
                attr::ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        pool(
            &[1, 2, 5, 6],
            3,
            vec![attr::ints("kernel_shape", &[2, 2]), attr::ints("strides", &[2, 2]), attr::int("ceil_mode", 1)],
        ),
        pool(
            &[1, 2, 6, 6],
            4,
            vec![
                attr::ints("kernel_shape", &[2, 2]),
                attr::ints("dilations", &[2, 2]),
                attr::ints("pads", &[1, 0, 0, 1]),
            ],
        ),
        pool(
            &[1, 2, 5, 5],
            5,
            vec![
                attr::ints("kernel_shape", &[3, 2]),
                attr::ints("strides", &[2, 1]),
                attr::string("auto_pad", "SAME_UPPER"),
            ],
        ),
        with_indices,
    ]
}
