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
use crate::session::value::{ImageSet, Object, Shown, Value, format_number};
use crate::session::{Context, MimeBundle};
use crate::spectral::{self, Bounds, Layer, measure};

pub const OP: Operation = Operation {
    name: "lipschitz",
    summary: "per-layer upper bounds of the Lipschitz constant, their product, and a measured lower bound",
    usage: "lipschitz MODEL [on DATA] [pairs: N]",
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
    ],
    run,
};

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
    let data = match (pairs, args.get("on")) {
        (0, _) => None,
        (_, Some(_)) => Some(args.pixels("on")?),
        (_, None) => Some(default_data()?),
    };
    if let Some(data) = &data {
        model.check_images("lipschitz", data)?;
    }
    let proto = crate::onnx::load(model.file()?)?;
    let bounds = spectral::analyse(&proto).with_context(|| format!("lipschitz: model {}", model.name))?;
    let lower = match &data {
        None => Measured::Skipped,
        Some(data) => {
            let measured = ctx.check_interrupt().and_then(|()| {
                measure::lower_bound(&mut *model.classifier()?, data.images.view(), pairs, 0)
            });
            measured.map_or_else(|e| Measured::Failed(format!("{e:#}")), Measured::Lower)
        }
    };
    let data = data.map_or_else(|| "no data (pairs: 0)".to_string(), |d| d.name.clone());
    Ok(Value::Object(Arc::new(Lipschitz { model: model.name.clone(), data, bounds, lower })))
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
        let mut table = Table::new(&["layer", "op", "weight", "stride", "bound", "network so far", "time", "rule"]);
        for (l, reach) in self.bounds.layers.iter().zip(self.bounds.reach()) {
            let weight = l.weight.as_ref().map_or(String::new(), |(name, shape)| format!("{name} {}", dims(shape)));
            let stride =
                l.stride.map_or(String::new(), |[a, b]| if a == b { a.to_string() } else { format!("{a}×{b}") });
            table.row(vec![
                l.name.clone(),
                l.op.clone(),
                weight,
                stride,
                format_number(l.bound),
                format_number(reach),
                seconds(l.seconds),
                l.method.clone(),
            ]);
        }
        table
    }

    /// The lines under the table: product, measurement, and the gap.
    fn summary(&self) -> Vec<String> {
        let bound = self.bounds.network();
        let how = match self.bounds.is_chain() {
            true => "the product of the layers",
            false => "composed over the graph: products along paths, sums at Add, roots of sums of squares at Concat",
        };
        let product = format!("upper bound of the network ({how}): {}", format_number(bound));
        match &self.lower {
            Measured::Lower(lower) => vec![
                product,
                format!(
                    "measured lower bound: {} on {} (best of {} image pairs: {}; then zooming along the {} steepest)",
                    format_number(lower.ratio),
                    self.data,
                    lower.pairs,
                    format_number(lower.pairs_ratio),
                    measure::ZOOM.min(lower.pairs)
                ),
                format!("the bound is {}× the measured ratio", format_number(bound / lower.ratio)),
            ],
            Measured::Skipped => vec![product, "measured lower bound: not measured (pairs: 0)".to_string()],
            Measured::Failed(why) => vec![product, format!("measured lower bound: failed on {}: {why}", self.data)],
        }
    }

    fn layer_json(l: &Layer) -> serde_json::Value {
        use crate::session::value::Recorded;
        json!({ "name": l.name, "op": l.op, "weight": l.weight.as_ref().map(|(n, _)| n),
                "shape": l.weight.as_ref().map(|(_, s)| s), "stride": l.stride, "bound": l.bound.recorded(),
                "method": l.method, "seconds": l.seconds })
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
        ["layers", "names", "ops", "bound", "lower", "lower_pairs"].map(String::from).to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let layers = &self.bounds.layers;
        Some(match name {
            "layers" => Value::List(layers.iter().map(|l| Value::Number(l.bound)).collect()),
            "names" => Value::List(layers.iter().map(|l| Value::Str(l.name.clone())).collect()),
            "ops" => Value::List(layers.iter().map(|l| Value::Str(l.op.clone())).collect()),
            "bound" => Value::Number(self.bounds.network()),
            "lower" => Value::Number(self.lower.get().map_or(f64::NAN, |l| l.ratio)),
            "lower_pairs" => Value::Number(self.lower.get().map_or(f64::NAN, |l| l.pairs_ratio)),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let title = format!("Lipschitz bounds of {} per layer (Szegedy et al. §4.3)", self.model);
        let lines = self.summary();
        let text = format!("{title}\n{}{}\n", table.text(), lines.join("\n"));
        let items: String = lines.iter().map(|l| format!("<li>{}</li>", escape(l))).collect();
        let html = format!("<p>{}</p>{}<ul>{items}</ul>", escape(&title), table.html());
        Ok(vec![Shown::text(MimeBundle { text, html: Some(html), json: Some(self.to_json()), ..Default::default() })])
    }

    fn to_json(&self) -> serde_json::Value {
        use crate::session::value::Recorded;
        let layers: Vec<_> = self.bounds.layers.iter().map(Lipschitz::layer_json).collect();
        let lower = self.lower.get();
        let mut record = json!({ "model": self.model, "data": self.data, "layers": layers,
                "bound": self.bounds.network().recorded(),
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
