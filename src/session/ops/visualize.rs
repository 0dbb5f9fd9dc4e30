//! `visualize MODEL layer: NAME { natural: 8, random: 8, from: IMAGES, steps: 100, step: 0.1 }`:
//! the gradient alternative to `units`. Instead of ranking a dataset, it
//! makes the images that maximise <phi(x), v> for each direction, by
//! projected gradient ascent inside the pixel box, from noise or from
//! given images. On a convolutional layer the directions are in channel
//! space and the objective is `<reduce(phi(x)), v>`, the reduction part of
//! the graph the ascent differentiates (`units::phi`).

use std::sync::Arc;

use anyhow::{Result, bail};
use ndarray::{Array2, Array4, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{Value as Json, json};

use super::{Args, Operation, Param};
use crate::plot::{Figure, Grid, Lines, Plot, Series};
use crate::runtime::Runtime;
use crate::session::show::figure_output;
use crate::session::table::{Table, escape};
use crate::session::value::{ImageSet, LoadedModel, Object, Shown, Value};
use crate::session::{Context, MimeBundle};
use crate::units::ascent::{self, Ascended, Ascent};
use crate::units::directions::{self, Direction, Family};
use crate::units::{Phi, Spec};
use crate::data::Label;

pub const OP: Operation = Operation {
    name: "visualize",
    summary: "images that maximise <phi(x), v> for natural and random directions of a hidden layer, by gradient ascent",
    usage: "visualize MODEL layer: NAME { natural: 8, random: 8, from: IMAGES, starts: 1, steps: 100, step: 0.1, seed: 0, reduce: \"mean\" }",
    params: &[
        Param { name: "model", positional: true, required: true, doc: "the model" },
        Param { name: "layer", positional: false, required: true, doc: "the hidden tensor phi, by its ONNX name (`advx info MODEL` lists them)" },
        Param {
            name: "natural",
            positional: false,
            required: false,
            doc: "e_i: a count (the first units), a list or range of units, or \"all\" (default 8)",
        },
        Param {
            name: "random",
            positional: false,
            required: false,
            doc: "random unit directions (default: as many as natural ones)",
        },
        Param {
            name: "from",
            positional: false,
            required: false,
            doc: "starting images (default: noise around mid-grey)",
        },
        Param {
            name: "starts",
            positional: false,
            required: false,
            doc: "noise images per direction when there is no `from` (default 1)",
        },
        Param { name: "steps", positional: false, required: false, doc: "ascent steps (default 100)" },
        Param {
            name: "step",
            positional: false,
            required: false,
            doc: "L2 length of a step in pixel space (default 0.1)",
        },
        Param {
            name: "seed",
            positional: false,
            required: false,
            doc: "seed of the random directions and the noise (default 0)",
        },
        Param { name: "reduce", positional: false, required: false, doc: super::units::REDUCE_DOC },
    ],
    run,
};

/// Natural directions when `natural:` is not given: a figure's worth.
const DEFAULT_NATURAL: usize = 8;
/// Images a figure can show legibly, as for `grid`.
const MAX_IMAGES: usize = 400;
/// The noise starts: mid-grey plus this much Gaussian noise. Full-range
/// noise would saturate sigmoid layers, where gradients vanish.
const NOISE: f32 = 0.1;
/// Ascent steps at most: the trace keeps a value per image and step.
const MAX_STEPS: usize = 100_000;

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let model = args.model("model")?;
    let layer = args.string_or("layer", "")?;
    let seed = args.seed_or("seed")?;
    let steps = args.count_or("steps", 100, 1..=MAX_STEPS)?;
    let step = args.positive_or("step", 0.1)?;
    if !(step as f32 > 0.0 && (step as f32).is_finite()) {
        bail!("visualize: `step` must be a positive number that f32 holds, not {step}");
    }
    let options = ascent::Options { steps, step: step as f32 };
    let starts = starts(args, seed, &model)?;
    model.check_images("visualize", &starts)?;
    let spec = Spec { layer: &layer, reduce: super::units::reduce_of(args)?, model: &model.name, given: &model.path };
    let mut climber = Ascent::open_spec(model.file()?, &spec, model.device, Runtime::get()?.threads())?;
    let width = climber.width();
    let dirs = super::units::directions_from(args, width, DEFAULT_NATURAL, seed)?;
    starts.check_drawable()?;
    let count = dirs.len() * starts.len();
    if count > MAX_IMAGES {
        bail!(
            "visualize: {count} images ({} directions x {} starts) are too many to show (at most {MAX_IMAGES})",
            dirs.len(),
            starts.len()
        );
    }
    let (images, rows) = batch(&dirs, &starts, width);
    let bar = ctx.bar(options.steps, &format!("visualize {}", model.name));
    let ascended = climber.ascend(images, rows.view(), options, |step| {
        bar.set_position(step as u64);
        ctx.check_interrupt()
    })?;
    bar.finish_and_clear();
    let predicted = model.classifier()?.predict(ascended.images.view())?;
    let info = Info { model: model.name.clone(), phi: climber.phi().clone(), options, seed };
    let given = args.get("from").is_some();
    Ok(Value::Object(Arc::new(Visualisation { info, directions: dirs, starts, given, ascended, predicted })))
}

/// The starting images: `from`, or `starts` noise images.
fn starts(args: &Args, seed: u64, model: &LoadedModel) -> Result<Arc<ImageSet>> {
    if args.get("from").is_some() {
        return args.pixels("from");
    }
    let Some([c, h, w]) = model.image_shape() else {
        bail!(
            "visualize: noise starts take the shape of {}'s images, which its input does not say; give starting \
             images with `from:`",
            model.name
        )
    };
    let count = args.count_or("starts", 1, 1..=MAX_IMAGES)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Another stream than the random directions drawn from the same seed.
    rng.set_stream(2);
    let normal = Normal::new(0.5f32, NOISE)?;
    let images = Array4::from_shape_simple_fn((count, c, h, w), || normal.sample(&mut rng).clamp(0.0, 1.0));
    Ok(Arc::new(ImageSet::new(format!("noise (seed {seed})"), images, None)))
}

/// Every (direction, start) pair as one image of the batch, direction-major,
/// with the direction repeated as its row of the direction matrix.
fn batch(dirs: &[Direction], starts: &ImageSet, width: usize) -> (Array4<f32>, Array2<f32>) {
    let s = starts.len();
    let index: Vec<usize> = (0..dirs.len()).flat_map(|_| 0..s).collect();
    let images = starts.images.select(Axis(0), &index);
    let repeated: Vec<Direction> = dirs.iter().flat_map(|d| std::iter::repeat_n(d.clone(), s)).collect();
    (images, directions::matrix(&repeated, width))
}

struct Info {
    model: String,
    phi: Phi,
    options: ascent::Options,
    seed: u64,
}

/// The result of `visualize`: one optimised image per direction and start.
pub struct Visualisation {
    info: Info,
    directions: Vec<Direction>,
    starts: Arc<ImageSet>,
    /// Whether the starts were given (and so are worth a row of the grid).
    given: bool,
    ascended: Ascended,
    /// The model's class for each optimised image.
    predicted: Vec<usize>,
}

impl Visualisation {
    /// The batch positions of direction `d`'s images.
    fn of(&self, d: usize) -> std::ops::Range<usize> {
        d * self.starts.len()..(d + 1) * self.starts.len()
    }

    fn mean(values: &[f32], range: std::ops::Range<usize>) -> f64 {
        let n = range.len().max(1) as f64;
        values[range].iter().map(|&v| v as f64).sum::<f64>() / n
    }

    fn table(&self) -> Table {
        let mut table = Table::new(&["direction", "<phi(x), v> at start", "after ascent", "gain", "classes"]);
        for (d, dir) in self.directions.iter().enumerate() {
            let (before, after) =
                (Self::mean(&self.ascended.initial, self.of(d)), Self::mean(&self.ascended.best, self.of(d)));
            let classes: Vec<String> = self.predicted[self.of(d)].iter().map(usize::to_string).collect();
            table.row(vec![
                dir.label(),
                format!("{before:.3}"),
                format!("{after:.3}"),
                format!("{:+.3}", after - before),
                classes.join(" "),
            ]);
        }
        table
    }

    fn headline(&self) -> String {
        let o = &self.info.options;
        format!(
            "images maximising <phi(x), v> for {} directions of {} ({}) in {}, from {}: {} steps of {} (means of {} \
             starts)",
            self.directions.len(),
            self.info.phi.layer,
            self.info.phi.describe(),
            self.info.model,
            self.starts.name,
            o.steps,
            o.step,
            self.starts.len()
        )
    }

    /// The true label of the image batch position `i` started from.
    fn start_label(&self, i: usize) -> Option<usize> {
        self.starts.labels.as_ref().map(|l| l[i % self.starts.len()] as usize)
    }

    /// Rows are directions, columns the starts; given starting images get
    /// a row of their own on top. Captions are the model's classes, red where
    /// the ascent changed the class of a labelled start.
    fn grid(&self) -> Figure {
        let picture = |images: &Array4<f32>, i: usize| images.index_axis(Axis(0), i).to_owned();
        let mut grid = Grid { cols: self.starts.len(), ..Grid::default() };
        if self.given {
            grid.images.extend((0..self.starts.len()).map(|i| picture(&self.starts.images, i)));
            let labels = self.starts.labels.iter().flatten().map(|&l| self.starts.caption(l));
            grid.captions.extend(labels.chain(std::iter::repeat(String::new())).take(self.starts.len()));
            grid.row_labels.push("start".into());
        }
        grid.alerts = vec![false; grid.captions.len()];
        grid.images.extend((0..self.predicted.len()).map(|i| picture(&self.ascended.images, i)));
        grid.captions.extend(self.predicted.iter().map(|&p| self.starts.caption(p as Label)));
        grid.alerts
            .extend(self.predicted.iter().enumerate().map(|(i, &p)| self.start_label(i).is_some_and(|l| l != p)));
        grid.row_labels.extend(self.directions.iter().map(Direction::label));
        Figure::new(format!("{} {}: images maximising <phi(x), v>", self.info.model, self.info.phi.layer), Plot::Grid(grid))
    }

    /// The mean objective of each family against the step.
    fn trace(&self) -> Figure {
        let series = [Family::Natural, Family::Random]
            .into_iter()
            .filter_map(|family| {
                let members: Vec<usize> = (0..self.directions.len())
                    .filter(|&d| self.directions[d].family == family)
                    .flat_map(|d| self.of(d))
                    .collect();
                (!members.is_empty()).then(|| Series {
                    name: family.name().to_string(),
                    points: self
                        .ascended
                        .trace
                        .iter()
                        .enumerate()
                        .map(|(step, values)| {
                            (step as f64, members.iter().map(|&i| values[i] as f64).sum::<f64>() / members.len() as f64)
                        })
                        .collect(),
                })
            })
            .collect();
        let lines =
            Lines { series, x_label: "step".into(), y_label: "mean <phi(x), v>".into(), log_x: false, log_y: false };
        Figure::new(format!("gradient ascent on {} {}", self.info.model, self.info.phi.layer), Plot::Lines(lines))
    }

    fn images(&self) -> Value {
        let name = format!("visualize {} {}", self.info.model, self.info.phi.layer);
        Value::Images(Arc::new(ImageSet::new(name, self.ascended.images.clone(), None)))
    }
}

fn numbers(values: impl IntoIterator<Item = f64>) -> Value {
    Value::List(values.into_iter().map(Value::Number).collect())
}

impl Object for Visualisation {
    fn kind(&self) -> &'static str {
        "a feature visualisation"
    }

    fn field_names(&self) -> Vec<String> {
        ["images", "initial", "final", "gain", "predicted", "directions"].map(String::from).to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let a = &self.ascended;
        Some(match name {
            "images" => self.images(),
            "initial" => numbers(a.initial.iter().map(|&v| v as f64)),
            "final" => numbers(a.best.iter().map(|&v| v as f64)),
            "gain" => numbers(a.best.iter().zip(&a.initial).map(|(&b, &i)| (b - i) as f64)),
            "predicted" => numbers(self.predicted.iter().map(|&c| c as f64)),
            "directions" => Value::List(self.directions.iter().map(|d| Value::Str(d.label())).collect()),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let text = format!("{}\n{}", self.headline(), table.text());
        let html = format!("<p>{}</p>{}", escape(&self.headline()), table.html());
        Ok(vec![
            Shown::text(MimeBundle { text, html: Some(html), json: Some(self.to_json()), ..Default::default() }),
            figure_output(&self.grid(), "visualize")?,
            figure_output(&self.trace(), "visualize-trace")?,
        ])
    }

    fn to_json(&self) -> Json {
        use crate::session::value::Recorded;
        let a = &self.ascended;
        let directions: Vec<Json> = self
            .directions
            .iter()
            .enumerate()
            .map(|(d, dir)| {
                json!({ "family": dir.family, "direction": dir.label(), "index": dir.index,
                        "initial": a.initial[self.of(d)].recorded(), "final": a.best[self.of(d)].recorded(),
                        "predicted": self.predicted[self.of(d)] })
            })
            .collect();
        let mut record = json!({ "model": self.info.model, "layer": self.info.phi.layer, "from": self.starts.name,
                                 "options": self.info.options, "seed": self.info.seed, "directions": directions });
        super::units::record_phi(&mut record, &self.info.phi);
        json!({ "visualize": record })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        Some(self.table().csv())
    }

    fn figure(&self) -> Option<Arc<Figure>> {
        Some(Arc::new(self.grid()))
    }
}
