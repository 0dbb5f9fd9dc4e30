//! `lbfgs MODEL on DATA { ... }`: adversarial examples by box-constrained
//! L-BFGS with a search over c, then a refinement to the nearest point of
//! the target's region (see `attack::search` for the objective, why it is
//! written as it is and why it is refined; `refine: false` is the paper's
//! method alone).
//!
//! Interrupted (Ctrl-C, SIGTERM), it returns the batches that finished as
//! a result marked partial everywhere it shows: the table's text and
//! HTML, its JSON (`partial`, the examples' indices), the CSV's `partial`
//! column and the `partial` and `attacked` fields.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use ndarray::{Array4, ArrayD, IxDyn};
use serde_json::json;

use super::{Args, Operation, Param};
use crate::attack::search::{self, Attacked, Found, Options};
use crate::attack::sizing::{self, ExampleCost};
use crate::attack::target::Target;
use crate::attack::workers;
use crate::data::Label;
use crate::interrupt::Signal;
use crate::plot::{Figure, Grid, Histogram, Plot};
use crate::session::show::figure_output;
use crate::session::table::Table;
use crate::session::value::{ImageSet, LoadedModel, Object, Shown, Value, format_number};
use crate::session::{Context, MimeBundle};
use crate::shard::Rows;
use crate::shard::columns::{Column, Columns, integers, reals};
use crate::stats::{mean, quantile};

pub const OP: Operation = Operation {
    name: "lbfgs",
    summary: "adversarial examples: the smallest box-constrained perturbation that makes the model say the target",
    usage: "lbfgs MODEL on DATA { target: \"random\", seed: 0, c: 1e-3..1e3, steps: 10, iterations: 50, memory: 10, noise: 1.2e-7, refine: true, lagrangian: 500, walk: 0, batch: 25 }",
    params: &[
        Param { name: "model", positional: true, required: true, doc: "the model to attack" },
        Param { name: "on", positional: true, required: true, doc: "labelled images" },
        Param {
            name: "target",
            positional: false,
            required: false,
            doc: "\"random\" (default), \"next\", \"untargeted\" or a class index such as 3",
        },
        Param { name: "seed", positional: false, required: false, doc: "seed of the random targets (default 0)" },
        Param {
            name: "c",
            positional: false,
            required: false,
            doc: "the range searched for c, the weight of the loss (default 1e-3..1e3)",
        },
        Param { name: "steps", positional: false, required: false, doc: "values of c tried per example (default 10)" },
        Param {
            name: "iterations",
            positional: false,
            required: false,
            doc: "L-BFGS-B iterations per value of c (default 50)",
        },
        Param { name: "memory", positional: false, required: false, doc: "L-BFGS-B memory (default 10)" },
        Param {
            name: "tolerance",
            positional: false,
            required: false,
            doc: "projected-gradient tolerance (default 1e-5)",
        },
        Param {
            name: "noise",
            positional: false,
            required: false,
            doc: "relative error of the loss's evaluation: L-BFGS-B stops when a step could change it by less \
                  (default f32's epsilon, 1.2e-7; 0 keeps scipy's stopping rules)",
        },
        Param {
            name: "refine",
            positional: false,
            required: false,
            doc: "start from the Lagrangian (or the search) and move each success to the nearest point of the \
                  target's region (default true; false: the paper's method alone, the search over c)",
        },
        Param {
            name: "walk",
            positional: false,
            required: false,
            doc: "steps of a walk along the decision boundary after the refinement, one gradient evaluation \
                  each (default 0: none; with refine)",
        },
        Param {
            name: "lagrangian",
            positional: false,
            required: false,
            doc: "steps at most of ALMA's augmented Lagrangian method, which replaces the search over c before the \
                  refinement, one gradient evaluation each; examples stop on their own (default 500; 0: the search)",
        },
        Param {
            name: "batch",
            positional: false,
            required: false,
            doc: "examples per ONNX Runtime call (default 25; on the CPU every core attacks batches of its own)",
        },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let model = args.model("model")?;
    let data = args.pixels("on")?;
    model.check_images("lbfgs", &data)?;
    data.labels("lbfgs")?;
    let mut options = options(args)?;
    let sized = args.get("batch").is_none();
    let key = super::record_key(ctx, std::slice::from_ref(&model));
    let (data, attack) = ctx.per_example(key, &data, |part| attack(ctx, &model, part, &mut options, sized))?;
    let set = Adversarial::new(model.name.clone(), data.name.clone(), options, attack, &data)?;
    Ok(Value::Object(Arc::new(set)))
}

/// Attacks every example of `data` (none: an empty part of a shard).
fn attack(ctx: &Context, model: &LoadedModel, data: &ImageSet, options: &mut Options, sized: bool) -> Result<Attack> {
    let labels = data.labels("lbfgs")?.to_vec();
    if labels.is_empty() {
        return Ok(Attack { attacked: Attacked { found: Vec::new(), requested: 0, interrupted: None }, seconds: 0.0 });
    }
    let mut workers = workers::workers(model.file()?, model.backward()?, model.device)?;
    if sized {
        options.batch = sized_batch(model, data, options, workers.len())?;
    }
    let bar = ctx.bar(labels.len(), &format!("lbfgs {}", model.name));
    let started = Instant::now();
    let attacked = search::attack_examples(&mut workers, data.images.view(), &labels, &data.ids, options, |done| {
        bar.set_position(done as u64);
        ctx.check_interrupt()
    })?;
    bar.finish_and_clear();
    Ok(Attack { attacked, seconds: started.elapsed().as_secs_f64() })
}

/// What an attack found, and how long it took: the rows a shard records,
/// one per example (`seconds` shared out among them, so that a merge
/// has the time its shards spent).
struct Attack {
    attacked: Attacked,
    seconds: f64,
}

impl Rows for Attack {
    fn to_columns(&self) -> Columns {
        let found = &self.attacked.found;
        let mut c = Columns::default();
        let share = self.seconds / found.len().max(1) as f64;
        let pixels = found.first().map_or(0, |f| f.image.len());
        let images: Vec<f32> = found.iter().flat_map(|f| f.image.iter().copied()).collect();
        let images = ArrayD::from_shape_vec(IxDyn(&[found.len(), pixels]), images).expect("one row per example");
        c.put("image", Column::F32(images));
        c.put("label", integers(found.iter().map(|f| f.label as i64)));
        c.put("target", integers(found.iter().map(|f| f.target.map_or(-1, |t| t as i64))));
        c.put("success", integers(found.iter().map(|f| f.success as i64)));
        c.put("distortion", reals(found.iter().map(|f| f.distortion)));
        c.put("c", reals(found.iter().map(|f| f.c.unwrap_or(f64::NAN))));
        c.put("iterations", integers(found.iter().map(|f| f.iterations as i64)));
        c.put("evaluations", integers(found.iter().map(|f| f.evaluations as i64)));
        c.put("seconds", reals(found.iter().map(|_| share)));
        c
    }

    /// Each example's `index` is its row: its position in the merged set.
    fn from_columns(c: &Columns) -> Result<Attack> {
        let images = c.f32("image")?;
        let (label, target, success) = (c.i64("label")?, c.i64("target")?, c.i64("success")?);
        let (distortion, cs) = (c.f64("distortion")?, c.f64("c")?);
        let (iterations, evaluations) = (c.i64("iterations")?, c.i64("evaluations")?);
        let found = (0..c.rows())
            .map(|i| Found {
                index: i,
                label: label[i] as Label,
                target: (target[i] >= 0).then_some(target[i] as usize),
                image: images.index_axis(ndarray::Axis(0), i).iter().copied().collect(),
                success: success[i] != 0,
                distortion: distortion[i],
                c: Some(cs[i]).filter(|c| !c.is_nan()),
                iterations: iterations[i] as usize,
                evaluations: evaluations[i] as usize,
            })
            .collect::<Vec<_>>();
        let seconds = c.f64("seconds")?.sum();
        let requested = found.len();
        Ok(Attack { attacked: Attacked { found, requested, interrupted: None }, seconds })
    }

    fn complete(&self) -> bool {
        self.attacked.interrupted.is_none()
    }
}

/// The default batch, or fewer examples when that many per worker would
/// not fit in memory (`attack::sizing`), said when it is fewer.
fn sized_batch(model: &LoadedModel, data: &ImageSet, options: &Options, workers: usize) -> Result<usize> {
    let Some(free) = sizing::free_memory() else { return Ok(options.batch) };
    let pixels = data.images.len() / data.len().max(1);
    let cost = ExampleCost::of(&crate::onnx::load(model.file()?)?, pixels, options.solver.memory);
    let batch = cost.batch(options.batch, workers, free);
    if batch < options.batch {
        tracing::info!(
            "lbfgs {}: batches of {batch} examples (each needs about {} MB; {} MB free, {workers} workers)",
            model.name,
            cost.total() >> 20,
            free >> 20
        );
    }
    Ok(batch)
}

/// Values of c tried per example at most: the bisection has halved the
/// log-range 2^100 times by then.
const MAX_STEPS: usize = 100;
/// L-BFGS-B iterations per value of c at most (scipy's default limit).
const MAX_ITERATIONS: usize = 15_000;
/// Correction pairs at most: each costs two rows of the image's size per example.
const MAX_MEMORY: usize = 100;
/// Examples per batch at most: a batch holds every example's solver memory.
const MAX_BATCH: usize = 10_000;
/// Steps of the walk along the boundary at most.
const MAX_WALK: usize = 100_000;
/// The Lagrangian's steps per example at most.
const MAX_LAGRANGIAN: usize = 100_000;

fn options(args: &Args) -> Result<Options> {
    let mut options = Options::default();
    let target = match args.get("target") {
        Some(Value::Number(_)) => args.count_or("target", 0, 0..=Label::MAX as usize)?.to_string(),
        _ => args.string_or("target", "random")?,
    };
    options.target = match target.as_str() {
        "random" => Target::Random { seed: args.seed_or("seed")? },
        other => other.parse()?,
    };
    if let Some((lo, hi)) = args.range("c")? {
        if lo <= 0.0 {
            bail!("lbfgs: `c` must be a range of positive numbers, not {lo}..{hi}");
        }
        (options.c_min, options.c_max) = (lo, hi);
    }
    options.steps = args.count_or("steps", options.steps, 1..=MAX_STEPS)?;
    options.solver.max_iterations = args.count_or("iterations", options.solver.max_iterations, 1..=MAX_ITERATIONS)?;
    options.solver.memory = args.count_or("memory", options.solver.memory, 1..=MAX_MEMORY)?;
    options.solver.pgtol = args.non_negative_or("tolerance", options.solver.pgtol)?;
    options.solver.noise = args.non_negative_or("noise", options.solver.noise)?;
    if options.solver.noise >= 1.0 {
        bail!("lbfgs: `noise` must be in [0, 1), not {}", options.solver.noise);
    }
    options.batch = args.count_or("batch", options.batch, 1..=MAX_BATCH)?;
    options.refine = args.bool_or("refine", options.refine)?;
    options.walk = args.count_or("walk", options.walk, 0..=MAX_WALK)?;
    options.lagrangian = args.count_or("lagrangian", options.lagrangian, 0..=MAX_LAGRANGIAN)?;
    check_start(args, &mut options)?;
    Ok(options)
}

/// The options that tune the search over c.
const SEARCH_OPTIONS: [&str; 6] = ["c", "steps", "iterations", "memory", "tolerance", "noise"];

/// Which start the options ask for: the Lagrangian (by default, when
/// refining) or the search over c, and never options of the one not run.
fn check_start(args: &Args, options: &mut Options) -> Result<()> {
    let given = |name: &str| args.get(name).is_some();
    if !options.refine {
        if given("lagrangian") {
            bail!("lbfgs: `refine: false` is the paper's method alone, the search over c, which `lagrangian` replaces");
        }
        options.lagrangian = 0;
    }
    if options.lagrangian > 0
        && let Some(name) = SEARCH_OPTIONS.into_iter().find(|&n| given(n))
    {
        bail!(
            "lbfgs: `{name}` tunes the search over c, which the Lagrangian method replaces by default: add \
             `lagrangian: 0` to search and refine, or `refine: false` for the paper's method alone"
        );
    }
    Ok(())
}

/// An attack's results: one `Found` per example finished.
pub struct Adversarial {
    model: String,
    data: String,
    options: Options,
    found: Vec<Found>,
    /// The examples asked for: more than `found` holds when interrupted.
    requested: usize,
    interrupted: Option<Signal>,
    seconds: f64,
    /// The successful examples, labelled with their true labels.
    adversarial: Arc<ImageSet>,
    originals: Arc<ImageSet>,
}

impl Adversarial {
    fn new(
        model: String,
        data: String,
        options: Options,
        attack: Attack,
        originals: &ImageSet,
    ) -> Result<Self> {
        let Attack { attacked: Attacked { found, requested, interrupted }, seconds } = attack;
        let shape = originals.images.shape().to_vec();
        let kept: Vec<&Found> = found.iter().filter(|f| f.success).collect();
        let pixels: Vec<f32> = kept.iter().flat_map(|f| f.image.iter().copied()).collect();
        let images = Array4::from_shape_vec([kept.len(), shape[1], shape[2], shape[3]], pixels)?;
        let labels = Some(kept.iter().map(|f| f.label).collect());
        let indices: Vec<usize> = kept.iter().map(|f| f.index).collect();
        let originals = Arc::new(originals.select(&indices, format!("{data} (attacked)"))?);
        let adversarial = ImageSet {
            classes: originals.classes.clone(),
            ids: originals.ids.clone(),
            ..ImageSet::new(format!("lbfgs {model} on {data}"), images, labels)
        };
        let adversarial = Arc::new(adversarial);
        Ok(Adversarial { model, data, options, found, requested, interrupted, seconds, adversarial, originals })
    }

    /// `partial: 120 of 1000 examples, interrupted (Ctrl-C)` when a signal
    /// stopped the attack.
    fn partial(&self) -> Option<String> {
        let signal = self.interrupted?;
        Some(format!("partial: {} of {} examples, {}", self.found.len(), self.requested, signal.describe()))
    }

    /// `; partial: ...` for figure titles, empty for a complete attack.
    fn title_note(&self) -> String {
        self.partial().map(|p| format!("; {p}")).unwrap_or_default()
    }

    fn distortions(&self) -> Vec<f64> {
        self.found.iter().filter(|f| f.success).map(|f| f.distortion).collect()
    }

    fn attempted(&self) -> usize {
        self.found.iter().filter(|f| f.target.is_some()).count()
    }

    fn success_rate(&self) -> f64 {
        self.distortions().len() as f64 / self.attempted().max(1) as f64
    }

    /// How the attack ran, for its heading.
    fn method(&self) -> String {
        let o = &self.options;
        let refined = if o.walk > 0 { format!("refined, a walk of {} steps", o.walk) } else { "refined".into() };
        match (o.refine, o.lagrangian) {
            (false, _) => format!("the paper's search: {} values of c in {}..{}", o.steps, o.c_min, o.c_max),
            (true, 0) => format!("{} values of c in {}..{}, {refined}", o.steps, o.c_min, o.c_max),
            (true, steps) => format!("augmented Lagrangian, at most {steps} steps, {refined}"),
        }
    }

    fn summary(&self) -> Table {
        let d = sorted(self.distortions());
        let searched = self.options.lagrangian == 0;
        let mut columns = vec!["model", "examples", "success", "av. min. distortion", "q25", "median", "q75"];
        if searched {
            columns.push("mean c");
        }
        columns.extend(["grad evals/example", "examples/s"]);
        let mut table = Table::new(&columns);
        let mean_c = mean(&self.found.iter().filter_map(|f| f.success.then_some(f.c?.ln())).collect::<Vec<_>>()).exp();
        let evals = mean(&self.found.iter().map(|f| f.evaluations as f64).collect::<Vec<_>>());
        let mut row = vec![
            self.model.clone(),
            self.attempted().to_string(),
            format!("{:.1}%", 100.0 * self.success_rate()),
            format_number(mean(&d)),
            format_number(quantile(&d, 0.25)),
            format_number(quantile(&d, 0.5)),
            format_number(quantile(&d, 0.75)),
        ];
        if searched {
            row.push(format_number(mean_c));
        }
        row.extend([format!("{evals:.0}"), format!("{:.1}", self.found.len() as f64 / self.seconds.max(1e-9))]);
        table.row(row);
        table
    }

    fn grid(&self) -> Result<Option<Figure>> {
        let n = self.adversarial.len().min(8);
        if n == 0 {
            return Ok(None);
        }
        let take = |set: &ImageSet| Ok::<_, anyhow::Error>(set.pictures()?.into_iter().take(n).collect::<Vec<_>>());
        let (originals, adversarial) = (take(&self.originals)?, take(&self.adversarial)?);
        let differences: Vec<_> = originals
            .iter()
            .zip(&adversarial)
            .map(|(o, a)| (a - o).mapv(|d| (0.5 + 5.0 * d).clamp(0.0, 1.0)))
            .collect();
        let kept: Vec<&Found> = self.found.iter().filter(|f| f.success).take(n).collect();
        let mut captions: Vec<String> = kept.iter().map(|f| self.originals.caption(f.label)).collect();
        captions.extend(kept.iter().map(|f| f.target.map_or(String::new(), |t| self.originals.caption(t as Label))));
        captions.extend(kept.iter().map(|f| format!("{:.3}", f.distortion)));
        let grid = Grid {
            images: originals.into_iter().chain(adversarial).chain(differences).collect(),
            cols: n,
            range: (0.0, 1.0),
            captions,
            alerts: vec![false; 3 * n],
            row_labels: vec!["original".into(), "adversarial".into(), "10 × difference".into()],
            col_labels: Vec::new(),
        };
        let title = format!(
            "Adversarial examples for {} (captions: label, target, distortion){}",
            self.model,
            self.title_note()
        );
        Ok(Some(Figure::new(title, Plot::Grid(grid))))
    }

    fn histogram(&self) -> Option<Figure> {
        let d = self.distortions();
        (d.len() > 1).then(|| {
            let h =
                Histogram {
                    values: d, bins: 30, x_label: "distortion sqrt(Σr²/n)".into(), y_label: "examples".into()
                };
            let title = format!("Minimum distortion, {} on {}{}", self.model, self.data, self.title_note());
            Figure::new(title, Plot::Histogram(h))
        })
    }
}

impl Object for Adversarial {
    fn kind(&self) -> &'static str {
        "an adversarial set"
    }

    fn field_names(&self) -> Vec<String> {
        [
            "images",
            "originals",
            "distortion",
            "success_rate",
            "mean_distortion",
            "targets",
            "labels",
            "c",
            "evaluations",
            "label",
            "partial",
            "attacked",
        ]
        .map(String::from)
        .to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let kept = || self.found.iter().filter(|f| f.success);
        let numbers = |v: Vec<f64>| Value::List(v.into_iter().map(Value::Number).collect());
        Some(match name {
            "images" => Value::Images(self.adversarial.clone()),
            "originals" => Value::Images(self.originals.clone()),
            "distortion" => numbers(self.distortions()),
            "success_rate" => Value::Number(self.success_rate()),
            "mean_distortion" => Value::Number(mean(&self.distortions())),
            "targets" => numbers(kept().map(|f| f.target.unwrap_or(0) as f64).collect()),
            "labels" => numbers(kept().map(|f| f.label as f64).collect()),
            "c" => numbers(kept().filter_map(|f| f.c).collect()),
            "evaluations" => numbers(self.found.iter().map(|f| f.evaluations as f64).collect()),
            "label" => Value::Str(format!("{} (adversarial)", self.model)),
            "partial" => Value::Bool(self.interrupted.is_some()),
            "attacked" => numbers(self.found.iter().map(|f| f.index as f64).collect()),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.summary();
        let mut text = format!("lbfgs on {} ({}, {})\n{}", self.data, self.options.target, self.method(), table.text());
        let mut html = table.html();
        if let Some(partial) = self.partial() {
            text.push_str(&format!("{partial}\n"));
            html.push_str(&format!("<p class=\"partial\"><strong>{partial}</strong></p>"));
        }
        let mut shown = vec![Shown::text(MimeBundle {
            text,
            html: Some(html),
            json: Some(self.to_json()),
            ..Default::default()
        })];
        if let Some(grid) = self.grid()? {
            shown.push(figure_output(&grid, "adversarial")?);
        }
        if let Some(h) = self.histogram() {
            shown.push(figure_output(&h, "distortion")?);
        }
        Ok(shown)
    }

    fn to_json(&self) -> serde_json::Value {
        use crate::session::value::Recorded;
        let d = sorted(self.distortions());
        let quartiles = [0.25, 0.5, 0.75].map(|q| quantile(&d, q));
        let examples: Vec<_> = self
            .found
            .iter()
            .map(|f| json!({ "index": f.index, "label": f.label, "target": f.target, "success": f.success,
                             "distortion": f.distortion.recorded(), "c": f.c.recorded(), "iterations": f.iterations,
                             "evaluations": f.evaluations }))
            .collect();
        json!({ "lbfgs": {
            "model": self.model, "data": self.data,
            "options": { "target": self.options.target.to_string(),
                         "c": [self.options.c_min.recorded(), self.options.c_max.recorded()],
                         "steps": self.options.steps, "iterations": self.options.solver.max_iterations,
                         "memory": self.options.solver.memory, "tolerance": self.options.solver.pgtol.recorded(),
                         "noise": self.options.solver.noise.recorded(),
                         "refine": self.options.refine, "walk": self.options.walk, "lagrangian": self.options.lagrangian,
                         "batch": self.options.batch },
            "examples": self.attempted(), "success_rate": self.success_rate().recorded(),
            "mean_distortion": mean(&d).recorded(),
            "quartiles": quartiles.recorded(),
            "seconds": self.seconds.recorded(), "partial": self.interrupted.is_some(), "requested": self.requested,
            "interrupted": self.interrupted.map(Signal::describe), "per_example": examples } })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        let mut rows = vec![
            ["index", "label", "target", "success", "distortion", "c", "iterations", "evaluations", "partial"]
                .map(String::from)
                .to_vec(),
        ];
        let partial = self.interrupted.is_some().to_string();
        for f in &self.found {
            rows.push(vec![
                f.index.to_string(),
                f.label.to_string(),
                f.target.map_or(String::new(), |t| t.to_string()),
                f.success.to_string(),
                f.distortion.to_string(),
                f.c.map_or(String::new(), |c| c.to_string()),
                f.iterations.to_string(),
                f.evaluations.to_string(),
                partial.clone(),
            ]);
        }
        Some(rows)
    }

    fn figure(&self) -> Option<Arc<Figure>> {
        self.grid().ok().flatten().map(Arc::new)
    }

    fn images(&self) -> Option<Arc<ImageSet>> {
        Some(self.adversarial.clone())
    }
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}
