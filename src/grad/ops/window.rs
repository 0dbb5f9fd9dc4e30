//! Geometry shared by the 2-D window ops (Conv, MaxPool, AveragePool): the
//! kernel, strides, dilations and pads of a node resolved against its
//! input's static spatial size, the output size, and the transposed
//! geometry that maps an output gradient back onto the input.
//!
//! The formulas follow ONNX Runtime, which the gradient check compares
//! with: `auto_pad` SAME pads are computed from the undilated kernel
//! (ONNX Runtime rejects SAME with dilations for Conv, and disagrees with
//! the ONNX spec for pools, so advx refuses that combination), and
//! `ceil_mode` adds a last, partial window. ONNX Runtime drops that window
//! when it would start in the end padding while ONNX shape inference keeps
//! it; advx refuses such nodes rather than export a graph that fails to load.

use anyhow::{Result, bail};

use crate::grad::graph::Node;
use crate::onnx::builder::attr;
use crate::onnx::shape::{self, Dim, MAX_ELEMENTS, MAX_ELEMENTS_LOG2};
use crate::onnx::{self, AttributeProto};

/// Which op family a window belongs to; they treat odd SAME pads differently.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    Conv,
    Pool,
}

/// A 2-D window op's geometry, per spatial axis (height, width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Pads as ONNX orders them: [top, left, bottom, right].
    pub pads: [usize; 4],
    /// The input's spatial size.
    pub input: [usize; 2],
    /// The output's spatial size.
    pub output: [usize; 2],
}

/// An NCHW tensor: its batch dimension, channels and static spatial size.
pub struct Nchw {
    pub batch: Dim,
    pub channels: usize,
    pub spatial: [usize; 2],
}

/// Reads input `i` of a node as a 4-D NCHW tensor with static C, H and W,
/// none of them 0.
pub fn nchw(n: &Node, i: usize) -> Result<Nchw> {
    let s = n.in_shape(i)?;
    let &[batch, c, h, w] = s.as_slice() else {
        bail!("{} supports only 2-D (NCHW, rank 4) inputs, but input {i} is {}", n.describe(), shape::show(s));
    };
    let fixed = |d: Dim, what: &str| match d.fixed() {
        Some(size) if size > 0 => Ok(size),
        _ => bail!("{} needs a static, nonzero {what} size, but input {i} is {}", n.describe(), shape::show(s)),
    };
    Ok(Nchw { batch, channels: fixed(c, "channel")?, spatial: [fixed(h, "height")?, fixed(w, "width")?] })
}

/// Sizes from an attribute, each in `least..=MAX_ELEMENTS`: no window,
/// stride or pad of a model advx handles is larger, and bounded ones keep
/// every size computed from them far from overflow.
fn sizes(n: &Node, name: &str, values: &[i64], least: i64) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&v| match usize::try_from(v) {
            Ok(s) if v >= least && s <= MAX_ELEMENTS => Ok(s),
            _ if v < least => bail!("{} has {name} {values:?}; each must be at least {least}", n.describe()),
            _ => bail!("{} has {name} {values:?}, larger than the 2^{MAX_ELEMENTS_LOG2} advx handles", n.describe()),
        })
        .collect()
}

/// A pair of positive integers from a 2-D attribute, `[1, 1]` when absent.
fn pair(n: &Node, name: &str) -> Result<[usize; 2]> {
    match n.ints(name) {
        None => Ok([1, 1]),
        Some(v) if v.len() == 2 => {
            let s = sizes(n, name, &v, 1)?;
            Ok([s[0], s[1]])
        }
        Some(v) => bail!("{} has {name} {v:?}; advx supports only 2-D windows (two values)", n.describe()),
    }
}

/// The kernel size: the `kernel_shape` attribute, checked against
/// `from_weights` when the op also has a weight tensor.
pub fn kernel(n: &Node, from_weights: Option<[usize; 2]>) -> Result<[usize; 2]> {
    if let Some(w) = from_weights.filter(|w| w.contains(&0)) {
        bail!("{} has weights with an empty {w:?} kernel", n.describe());
    }
    match (n.ints("kernel_shape"), from_weights) {
        (None, Some(k)) => Ok(k),
        (None, None) => bail!("{} has no kernel_shape", n.describe()),
        (Some(_), w) => {
            let k = pair(n, "kernel_shape")?;
            if let Some(w) = w.filter(|w| *w != k) {
                bail!("{} has kernel_shape {k:?} but weights with a {w:?} kernel", n.describe());
            }
            Ok(k)
        }
    }
}

impl Window {
    /// Resolves a node's window attributes (`strides`, `dilations`, `pads`,
    /// `auto_pad`, and `ceil_mode` for pools) for an input of spatial size `input`.
    pub fn of(n: &Node, family: Family, kernel: [usize; 2], input: [usize; 2]) -> Result<Window> {
        let strides = pair(n, "strides")?;
        let dilations = pair(n, "dilations")?;
        let ceil_mode = family == Family::Pool && n.int("ceil_mode", 0) != 0;
        let auto_pad = onnx::attr_string(n.proto, "auto_pad").unwrap_or_default();
        let explicit = n.ints("pads");
        if explicit.is_some() && !matches!(auto_pad.as_str(), "" | "NOTSET") {
            bail!(
                "{} has both auto_pad {auto_pad} and pads; ONNX and ONNX Runtime pad such a window differently",
                n.describe()
            );
        }
        let mut pads = [0usize; 4];
        match auto_pad.as_str() {
            "" | "NOTSET" => {
                if let Some(p) = &explicit {
                    if p.len() != 4 {
                        bail!("{} has pads {p:?}; advx supports only 2-D windows (four pads)", n.describe());
                    }
                    pads.copy_from_slice(&sizes(n, "pads", p, 0)?);
                }
            }
            "VALID" => {}
            "SAME_UPPER" | "SAME_LOWER" => {
                if dilations != [1, 1] {
                    bail!(
                        "{} combines auto_pad {auto_pad} with dilations {dilations:?}, which advx does not support",
                        n.describe()
                    );
                }
                for axis in 0..2 {
                    let out = input[axis].div_ceil(strides[axis]);
                    let needed = ((out - 1) * strides[axis] + kernel[axis]) as i64 - input[axis] as i64;
                    if needed < 0 && family == Family::Pool {
                        bail!(
                            "{} needs negative SAME padding along axis {axis} (kernel {kernel:?} shorter than \
                             strides {strides:?}), which ONNX Runtime does not pool",
                            n.describe()
                        );
                    }
                    let needed = needed.max(0) as usize;
                    let head = if auto_pad == "SAME_UPPER" { needed / 2 } else { needed.div_ceil(2) };
                    pads[axis] = head;
                    pads[axis + 2] = needed - head;
                }
            }
            other => bail!("{} has unknown auto_pad '{other}'", n.describe()),
        }
        if family == Family::Pool && (0..4).any(|i| pads[i] >= kernel[i % 2]) {
            bail!(
                "{} has pads {pads:?} for a {kernel:?} kernel; a pool's pads must be smaller than its kernel \
                 (ONNX Runtime refuses others)",
                n.describe()
            );
        }
        let mut output = [0usize; 2];
        for axis in 0..2 {
            let span = (kernel[axis] - 1) * dilations[axis] + 1;
            let padded = input[axis] + pads[axis] + pads[axis + 2];
            if padded < span {
                bail!(
                    "{}: the window ({} with dilation {}) is larger than the padded input ({padded}) along axis {axis}",
                    n.describe(),
                    kernel[axis],
                    dilations[axis]
                );
            }
            let s = strides[axis];
            let room = padded - span;
            output[axis] = if ceil_mode {
                let out = room.div_ceil(s) + 1;
                if (out - 1) * s >= input[axis] + pads[axis] {
                    bail!(
                        "{}: with ceil_mode the last window along axis {axis} starts in the end padding; \
                         ONNX Runtime drops it but ONNX shape inference keeps it, so no backward graph \
                         of it would load",
                        n.describe()
                    );
                }
                out
            } else {
                room / s + 1
            };
        }
        Ok(Window { kernel, strides, dilations, pads, input, output })
    }

    /// The extent of the dilated kernel along an axis.
    pub fn span(&self, axis: usize) -> usize {
        (self.kernel[axis] - 1) * self.dilations[axis] + 1
    }

    /// How far the last window reaches past the input's end, in the padded
    /// coordinates of the start pad: negative when trailing input rows are
    /// never read (stride remainder), positive when windows read end padding.
    pub fn overhang(&self, axis: usize) -> i64 {
        let reach = (self.output[axis] - 1) * self.strides[axis] + self.span(axis);
        reach as i64 - (self.pads[axis] + self.input[axis]) as i64
    }

    /// `pads` and `output_padding` of the ConvTranspose (same kernel,
    /// strides and dilations) that spreads an output gradient back onto
    /// exactly the input's spatial size.
    pub fn transposed(&self) -> (Vec<i64>, Vec<i64>) {
        let over = [self.overhang(0), self.overhang(1)];
        let pads = vec![self.pads[0] as i64, self.pads[1] as i64, over[0].max(0), over[1].max(0)];
        let output_padding = vec![(-over[0]).max(0), (-over[1]).max(0)];
        (pads, output_padding)
    }

    /// The attributes of that ConvTranspose (its group is the caller's).
    pub fn transposed_attrs(&self) -> Vec<AttributeProto> {
        let (pads, output_padding) = self.transposed();
        let mut attrs = vec![
            attr::ints("strides", &self.strides.map(|v| v as i64)),
            attr::ints("dilations", &self.dilations.map(|v| v as i64)),
            attr::ints("pads", &pads),
        ];
        if output_padding.iter().any(|&v| v != 0) {
            attrs.push(attr::ints("output_padding", &output_padding));
        }
        attrs
    }

    /// Per output position along an axis, how many window taps an average
    /// divides by: taps inside the input, or (`include_pad`) inside the
    /// padded input, as ONNX Runtime counts them. Counted in closed form:
    /// a window may have as many taps as the input has positions.
    pub fn counts(&self, axis: usize, include_pad: bool) -> Vec<usize> {
        let (lo, hi) = if include_pad {
            (-(self.pads[axis] as i64), (self.input[axis] + self.pads[axis + 2]) as i64)
        } else {
            (0, self.input[axis] as i64)
        };
        let (kernel, dilation) = (self.kernel[axis], self.dilations[axis]);
        // Taps k with lo <= start + k d < hi, 0 <= k < kernel: from the first
        // k past lo to the first past hi.
        let taps_before = |edge: i64, start: i64| ((edge - start).max(0) as usize).div_ceil(dilation).min(kernel);
        (0..self.output[axis])
            .map(|o| {
                let start = (o * self.strides[axis]) as i64 - self.pads[axis] as i64;
                taps_before(hi, start) - taps_before(lo, start)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::graph::TensorInfo;
    use crate::onnx::NodeProto;
    use crate::onnx::builder::attr;

    fn window(family: Family, kernel: [usize; 2], input: [usize; 2], attrs: Vec<AttributeProto>) -> Result<Window> {
        let proto = NodeProto {
            op_type: Some("MaxPool".into()),
            name: Some("p".into()),
            attribute: attrs,
            ..Default::default()
        };
        let x = TensorInfo {
            name: "x".into(),
            elem: 1,
            shape: shape::fixed(&[1, 1, input[0], input[1]]),
            value: None,
            ints: None,
        };
        let node = Node { proto: &proto, inputs: vec![Some(x)], outputs: vec![] };
        Window::of(&node, family, kernel, input)
    }

    #[test]
    fn ceil_mode_adds_a_partial_window_but_not_one_starting_in_the_end_pad() {
        let w = window(Family::Pool, [3, 2], [6, 6], vec![attr::ints("strides", &[2, 2]), attr::int("ceil_mode", 1)])
            .unwrap();
        assert_eq!(w.output, [3, 3]);
        let err = window(
            Family::Pool,
            [2, 2],
            [4, 4],
            vec![attr::ints("strides", &[2, 2]), attr::ints("pads", &[0, 0, 1, 1]), attr::int("ceil_mode", 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ceil_mode") && err.contains("'p'"), "{err}");
    }

    #[test]
    fn same_pads_put_the_odd_pad_last_for_upper_and_first_for_lower() {
        let upper = window(Family::Conv, [2, 2], [5, 5], vec![attr::string("auto_pad", "SAME_UPPER")]).unwrap();
        assert_eq!((upper.pads, upper.output), ([0, 0, 1, 1], [5, 5]));
        let lower = window(Family::Conv, [2, 2], [5, 5], vec![attr::string("auto_pad", "SAME_LOWER")]).unwrap();
        assert_eq!(lower.pads, [1, 1, 0, 0]);
        assert!(
            window(
                Family::Pool,
                [1, 1],
                [5, 5],
                vec![attr::string("auto_pad", "SAME_UPPER"), attr::ints("strides", &[3, 3])]
            )
            .is_err()
        );
    }

    #[test]
    fn the_transposed_geometry_restores_the_input_size() {
        let w = window(
            Family::Conv,
            [3, 2],
            [7, 8],
            vec![attr::ints("strides", &[3, 3]), attr::ints("pads", &[1, 0, 0, 0])],
        )
        .unwrap();
        let (pads, out_pad) = w.transposed();
        for axis in 0..2 {
            let full = w.strides[axis] * (w.output[axis] - 1) + w.span(axis) + out_pad[axis] as usize;
            assert_eq!(full - pads[axis] as usize - pads[axis + 2] as usize, w.input[axis]);
        }
    }

    #[test]
    fn counts_exclude_or_include_the_pads() {
        let w = window(
            Family::Pool,
            [3, 3],
            [5, 5],
            vec![attr::ints("strides", &[2, 2]), attr::ints("pads", &[1, 1, 1, 1])],
        )
        .unwrap();
        assert_eq!(w.counts(0, false), vec![2, 3, 2]);
        assert_eq!(w.counts(0, true), vec![3, 3, 3]);
        // Against counting tap by tap, with dilations, strides and pads.
        for (kernel, stride, dilation, pads, input) in
            [(3, 1, 2, [2, 1], 7), (2, 3, 1, [1, 1], 8), (4, 2, 3, [3, 0], 9), (1, 1, 1, [0, 0], 1)]
        {
            let attrs = vec![
                attr::ints("strides", &[stride, 1]),
                attr::ints("dilations", &[dilation, 1]),
                attr::ints("pads", &[pads[0], 0, pads[1], 0]),
            ];
            let w = window(Family::Conv, [kernel, 1], [input, 1], attrs).unwrap();
            for include in [false, true] {
                let (lo, hi) = if include { (-pads[0], input as i64 + pads[1]) } else { (0, input as i64) };
                let tapped: Vec<usize> = (0..w.output[0])
                    .map(|o| {
                        let start = o as i64 * stride - pads[0];
                        (0..kernel as i64).filter(|k| (lo..hi).contains(&(start + k * dilation))).count()
                    })
                    .collect();
                assert_eq!(w.counts(0, include), tapped, "kernel {kernel}, include_pad {include}");
            }
        }
    }

    /// Found by fuzzing: ONNX Runtime pools with the pads, and ONNX's shape
    /// inference pads the SAME way, so no backward graph of it would check.
    #[test]
    fn auto_pad_with_pads_is_refused() {
        let attrs = vec![attr::string("auto_pad", "SAME_UPPER"), attr::ints("pads", &[0, 0, 1, 1])];
        let err = window(Family::Pool, [2, 2], [4, 4], attrs).unwrap_err().to_string();
        assert!(err.contains("both auto_pad SAME_UPPER and pads") && err.contains("'p'"), "{err}");
        let attrs = vec![attr::string("auto_pad", "NOTSET"), attr::ints("pads", &[0, 0, 1, 1])];
        assert!(window(Family::Pool, [2, 2], [4, 4], attrs).is_ok());
    }

    #[test]
    fn three_d_windows_are_refused_clearly() {
        let err =
            window(Family::Conv, [3, 3], [5, 5], vec![attr::ints("strides", &[1, 1, 1])]).unwrap_err().to_string();
        assert!(err.contains("only 2-D") && err.contains("'p'"), "{err}");
    }
}
