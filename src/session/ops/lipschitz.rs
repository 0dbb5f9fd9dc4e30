//! `lipschitz MODEL [on DATA] [pairs: N]`: the paper's spectral analysis
//! (§4.3, Table 5). Per-layer upper bounds of the Lipschitz constant and
//! their product, beside a lower bound measured on images, so the gap
//! between what the weights allow and what the model does is in view. The
//! bounds are computed by [`crate::spectral`], which documents each.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{Args, Operation, Param};
use crate::data::{self, Split};
use crate::session::table::{Table, escape};
use crate::session::value::{ImageSet, LoadedModel, Object, Shown, Value, format_number};
use crate::session::{Context, MimeBundle};
use crate::spectral::{self, Bounds, Layer, Measurement, measure};

pub const OP: Operation = Operation {
    name: "lipschitz",
    summary: "per-layer upper bounds of the Lipschitz constant, their composition over the graph, the linear \
              layers' measured norms, and a measured lower bound",
    usage: "lipschitz MODEL [on DATA] [pairs: N] [norms: BOOL]",
    params: &[
        Param { name: "model", positional: true, required: true, doc: "a model" },
        Param {
            name: "on",
            positional: true,
            required: false,
            doc: "images for the measured lower bound (default mnist.test[0..1000])",
        },
        Param {
            name: "pairs",
            positional: false,
            required: false,
            doc: "image pairs compared at most (default 200000; all pairs of a smaller set; 0: no lower bound)",
        },
        Param {
            name: "norms",
            positional: false,
            required: false,
            doc: "measure each linear layer's operator norm at the model's input size, beside its bound (default true)",
        },
    ],
    run,
};

/// The relative residual at which a layer's measured norm stops: the
/// Ritz value it gives is then within about 0.1% of a singular value
/// (closer in practice: it converges faster than its residual).
const NORM_TOLERANCE: f64 = 1e-3;
/// Pairs compared when `pairs:` is not given: all pairs of 632 images.
const DEFAULT_PAIRS: usize = 200_000;
/// Images measured on when `on` is not given.
const DEFAULT_IMAGES: usize = 1000;
/// Pairs compared at most: they are streamed, so this bounds time only.
const MAX_PAIRS: usize = 1_000_000_000;

/// The data is checked against the model before any work; once the
/// bounds are computed, a failure of the measurement (or a stop) is shown
/// beside them rather than discarding them.
fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let model = args.model("model")?;
    let pairs = args.count_or("pairs", DEFAULT_PAIRS, 0..=MAX_PAIRS)?;
    let norms = args.bool_or("norms", true)?.then_some(model.device);
    let data = match (pairs, args.get("on")) {
        (0, _) => None,
        (_, Some(_)) => Some(args.pixels("on")?),
        (_, None) => Some(default_data()?),
    };
    if let Some(data) = &data {
        model.check_images("lipschitz", data)?;
    }
    let proto = crate::onnx::load(model.file()?)?;
    let options = spectral::Options { norms, tolerance: NORM_TOLERANCE };
    let bounds = spectral::analyse_with(&proto, &options).with_context(|| format!("lipschitz: model {}", model.name))?;
    let (data, lower) = match data {
        None => (None, Measured::Skipped),
        Some(data) => {
            let (data, measured) = measure_lower(ctx, &model, &data, pairs)?;
            (Some(data), measured.map_or_else(|e| Measured::Failed(format!("{e:#}")), Measured::Lower))
        }
    };
    let data = data.map_or_else(|| "no data (pairs: 0)".to_string(), |d| d.name.clone());
    Ok(Value::Object(Arc::new(Lipschitz { model: model.name.clone(), data, bounds, lower })))
}

/// The steepest ratio between pairs of `data`, from every image's class
/// scores (per example, so a sharded run records them). A measurement
/// that fails is shown beside the bounds; a merge whose shards do not
/// hold the scores fails.
fn measure_lower(
    ctx: &Context,
    model: &Arc<LoadedModel>,
    data: &Arc<ImageSet>,
    pairs: usize,
) -> Result<(Arc<ImageSet>, Result<measure::Lower>)> {
    let key = super::record_key(ctx, std::slice::from_ref(model));
    let mut failed = None;
    let scored = ctx.per_example(key, data, |part| {
        let scores = ctx
            .check_interrupt()
            .and_then(|()| measure::class_scores(&mut *model.classifier()?, part.images.view()));
        scores.map_err(|e| {
            let message = anyhow::anyhow!("{e:#}");
            failed = Some(e);
            message
        })
    });
    match (scored, failed) {
        (Ok((data, scores)), _) => {
            let lower = ctx.check_interrupt().and_then(|()| {
                measure::lower_bound_with(&mut *model.classifier()?, data.images.view(), scores.view(), pairs, 0)
            });
            Ok((data, lower))
        }
        (Err(_), Some(measuring)) => Ok((data.clone(), Err(measuring))),
        (Err(merging), None) => Err(merging),
    }
}

/// The measured lower bound, or why there is none.
enum Measured {
    Lower(measure::Lower),
    /// `pairs: 0`.
    Skipped,
    /// The measurement failed or was stopped after the bounds were computed.
    Failed(String),
}

impl Measured {
    fn get(&self) -> Option<&measure::Lower> {
        match self {
            Measured::Lower(lower) => Some(lower),
            _ => None,
        }
    }
}

/// The first test images of MNIST.
fn default_data() -> Result<Arc<ImageSet>> {
    let test = data::load("mnist", Split::Test)?;
    let n = DEFAULT_IMAGES.min(test.len());
    let images = test.images.slice_move(ndarray::s![..n, .., .., ..]);
    Ok(Arc::new(ImageSet::new(format!("mnist.test[0..{n}]"), images, Some(test.labels[..n].to_vec()))))
}

/// The result: the bounds, and the measurement beside them.
pub struct Lipschitz {
    model: String,
    data: String,
    bounds: Bounds,
    lower: Measured,
}

impl Lipschitz {
    fn table(&self) -> Table {
        let measured = self.bounds.measured();
        let mut headers = vec!["layer", "op", "weight", "stride", "bound"];
        if measured {
            headers.extend(["measured norm", "bound / norm"]);
        }
        headers.extend(["network so far", "time", "rule"]);
        let mut table = Table::new(&headers);
        for (l, reach) in self.bounds.layers.iter().zip(self.bounds.reach()) {
            let weight = l.weight.as_ref().map_or(String::new(), |(name, shape)| format!("{name} {}", dims(shape)));
            let mut row = vec![l.name.clone(), l.op.clone(), weight, stride(l), format_number(l.bound)];
            if measured {
                row.extend(norm_cells(l));
            }
            let time = l.seconds + norm_seconds(l);
            row.extend([format_number(reach), seconds(time), l.method.clone()]);
            table.row(row);
        }
        table
    }

    /// The weighted layers alone, as the paper's Table 5 lays them out:
    /// size (`Cin × kh × kw × Cout` for a convolution, `in × out` for a
    /// fully connected layer), stride, bound, and the measured norm.
    fn weighted(&self) -> Option<Table> {
        let layers: Vec<&Layer> = self.bounds.layers.iter().filter(|l| l.weight.is_some() && l.op != "BatchNormalization").collect();
        if layers.len() < 2 {
            return None;
        }
        let measured = self.bounds.measured();
        let mut headers = vec!["layer", "size", "stride", "upper bound"];
        if measured {
            headers.extend(["measured norm", "bound / norm"]);
        }
        let mut table = Table::new(&headers);
        for l in layers {
            let mut row = vec![l.name.clone(), size(l), stride(l), format_number(l.bound)];
            if measured {
                row.extend(norm_cells(l));
            }
            table.row(row);
        }
        Some(table)
    }

    /// The lines under the table: product, measurement, and the gap.
    fn summary(&self) -> Vec<String> {
        let bound = self.bounds.network();
        let how = match self.bounds.is_chain() {
            true => "the product of the layers",
            false => "composed over the graph: products along paths, sums at Add, roots of sums of squares at Concat",
        };
        let product = format!("upper bound of the network ({how}): {}", format_number(bound));
        let mut lines = vec![product];
        if self.bounds.measured() {
            let with_norms = self.with_norms();
            lines.push(format!(
                "with each linear layer's measured norm in place of its bound: {} (the bounds' looseness: {}×)",
                format_number(with_norms),
                format_number(bound / with_norms)
            ));
        }
        lines.extend(self.failed_norms());
        match &self.lower {
            Measured::Lower(lower) => lines.extend([
                format!(
                    "measured lower bound: {} on {} (best of {} image pairs: {}; then zooming along the {} steepest)",
                    format_number(lower.ratio),
                    self.data,
                    lower.pairs,
                    format_number(lower.pairs_ratio),
                    measure::ZOOM.min(lower.pairs)
                ),
                format!("the bound is {}× the measured ratio", format_number(bound / lower.ratio)),
            ]),
            Measured::Skipped => lines.push("measured lower bound: not measured (pairs: 0)".to_string()),
            Measured::Failed(why) => lines.push(format!("measured lower bound: failed on {}: {why}", self.data)),
        }
        lines
    }

    /// The network's bound with the measured norms in place of the bounds
    /// (NaN when none was measured).
    fn with_norms(&self) -> f64 {
        match self.bounds.measured() {
            true => self.bounds.reach_measured()[self.bounds.output],
            false => f64::NAN,
        }
    }

    /// A line for each layer whose norm could not be measured.
    fn failed_norms(&self) -> Vec<String> {
        let failed = self.bounds.layers.iter().filter_map(|l| match &l.norm {
            Measurement::Failed(why) => Some(format!("{}: norm not measured: {why}", l.name)),
            _ => None,
        });
        failed.collect()
    }

    /// A measured norm: its value, whether it reached the tolerance and
    /// its time; or why it failed; null for a layer not measured.
    fn norm_json(norm: &Measurement) -> serde_json::Value {
        use crate::session::value::Recorded;
        match norm {
            Measurement::Norm(n) => json!({ "norm": n.value.recorded(), "converged": n.converged, "seconds": n.seconds }),
            Measurement::Failed(why) => json!({ "failed": why }),
            Measurement::None => serde_json::Value::Null,
        }
    }

    fn layer_json(l: &Layer) -> serde_json::Value {
        use crate::session::value::Recorded;
        json!({ "name": l.name, "op": l.op, "weight": l.weight.as_ref().map(|(n, _)| n),
                "shape": l.weight.as_ref().map(|(_, s)| s), "stride": l.stride, "bound": l.bound.recorded(),
                "method": l.method, "seconds": l.seconds, "measured": Lipschitz::norm_json(&l.norm) })
    }
}

fn numbers(values: Vec<f64>) -> Value {
    Value::List(values.into_iter().map(Value::Number).collect())
}

/// The measured norm and the bound's ratio to it, or why there is none.
fn norm_cells(l: &Layer) -> [String; 2] {
    match &l.norm {
        Measurement::Norm(n) => {
            let value = match n.converged {
                true => format_number(n.value),
                false => format!("≥ {} (not converged)", format_number(n.value)),
            };
            [value, format_number(l.bound / n.value)]
        }
        Measurement::Failed(_) => ["failed".to_string(), String::new()],
        Measurement::None => Default::default(),
    }
}

fn norm_seconds(l: &Layer) -> f64 {
    match &l.norm {
        Measurement::Norm(n) => n.seconds,
        _ => 0.0,
    }
}

fn stride(l: &Layer) -> String {
    l.stride.map_or(String::new(), |[a, b]| if a == b { a.to_string() } else { format!("{a}×{b}") })
}

/// A weighted layer's size in the paper's notation.
fn size(l: &Layer) -> String {
    match (l.op.as_str(), l.weight.as_ref().map(|(_, s)| s.as_slice())) {
        ("Conv", Some(&[cout, cin, kh, kw])) => {
            let groups = l.input.first().map_or(1, |&c| c / cin.max(1));
            let grouped = if groups > 1 { format!(" ({groups} groups)") } else { String::new() };
            format!("{} × {kh} × {kw} × {cout}{grouped}", l.input.first().copied().unwrap_or(cin))
        }
        _ => {
            let per_sample = |dims: &[usize]| dims.iter().product::<usize>();
            format!("{} × {}", per_sample(&l.input), per_sample(&l.output))
        }
    }
}

/// A duration as the table shows it: milliseconds below a second.
fn seconds(s: f64) -> String {
    match s {
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s => format!("{s:.1} s"),
    }
}

fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

impl Object for Lipschitz {
    fn kind(&self) -> &'static str {
        "a Lipschitz analysis"
    }

    fn field_names(&self) -> Vec<String> {
        let fields = ["layers", "names", "ops", "norms", "depth", "so_far", "so_far_with_norms", "bound", "bound_with_norms"];
        fields.into_iter().chain(["lower", "lower_pairs"]).map(String::from).collect()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let layers = &self.bounds.layers;
        Some(match name {
            "layers" => Value::List(layers.iter().map(|l| Value::Number(l.bound)).collect()),
            "names" => Value::List(layers.iter().map(|l| Value::Str(l.name.clone())).collect()),
            "ops" => Value::List(layers.iter().map(|l| Value::Str(l.op.clone())).collect()),
            "norms" => Value::List(layers.iter().map(|l| Value::Number(l.norm.value().unwrap_or(f64::NAN))).collect()),
            "depth" => Value::List((1..=layers.len()).map(|d| Value::Number(d as f64)).collect()),
            "so_far" => numbers(self.bounds.reach()),
            "so_far_with_norms" => numbers(self.bounds.reach_measured()),
            "bound" => Value::Number(self.bounds.network()),
            "bound_with_norms" => Value::Number(self.with_norms()),
            "lower" => Value::Number(self.lower.get().map_or(f64::NAN, |l| l.ratio)),
            "lower_pairs" => Value::Number(self.lower.get().map_or(f64::NAN, |l| l.pairs_ratio)),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let title = format!("Lipschitz bounds of {} per layer (Szegedy et al. §4.3)", self.model);
        let lines = self.summary();
        let weighted = self.weighted();
        let caption = "the weighted layers, as Table 5 lays them out:";
        let (weighted_text, weighted_html) = match &weighted {
            Some(t) => (format!("{caption}\n{}", t.text()), format!("<p>{}</p>{}", escape(caption), t.html())),
            None => Default::default(),
        };
        let text = format!("{title}\n{}{weighted_text}{}\n", table.text(), lines.join("\n"));
        let items: String = lines.iter().map(|l| format!("<li>{}</li>", escape(l))).collect();
        let html = format!("<p>{}</p>{}{weighted_html}<ul>{items}</ul>", escape(&title), table.html());
        Ok(vec![Shown::text(MimeBundle { text, html: Some(html), json: Some(self.to_json()), ..Default::default() })])
    }

    fn to_json(&self) -> serde_json::Value {
        use crate::session::value::Recorded;
        let layers: Vec<_> = self.bounds.layers.iter().map(Lipschitz::layer_json).collect();
        let lower = self.lower.get();
        let mut record = json!({ "model": self.model, "data": self.data, "layers": layers,
                "bound": self.bounds.network().recorded(),
                "bound_with_norms": self.with_norms().recorded(),
                "lower": lower.map_or(f64::NAN, |l| l.ratio).recorded(),
                "lower_pairs": lower.map_or(f64::NAN, |l| l.pairs_ratio).recorded(),
                "pairs": lower.map_or(0, |l| l.pairs), "images": lower.map_or(0, |l| l.images) });
        if let Measured::Failed(why) = &self.lower {
            record["lower_failed"] = json!(why);
        }
        json!({ "lipschitz": record })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        Some(self.table().csv())
    }
}
