//! `units MODEL layer: NAME on DATA { natural: 10, random: 10, top: 8, seed: 1 }`:
//! the paper's unit analysis (Section 3). For each direction v of a hidden
//! layer (natural basis vectors e_i and random unit vectors), the images of
//! DATA that maximise <phi(x), v>, drawn one row per direction, and how
//! coherent they are, measured and compared across the two families. On a
//! convolutional layer `[N, C, H, W]` the directions are in channel space:
//! phi is reduced over the positions (`reduce:`, the mean by default,
//! `units::phi`).

use std::sync::Arc;

use anyhow::{Result, bail};
use ndarray::Array3;
use serde_json::{Value as Json, json};

use super::{Args, Operation, Param};
use crate::plot::{Figure, Grid, Lines, Plot, Series};
use crate::session::show::figure_output;
use crate::session::table::{Table, escape};
use crate::session::value::{ImageSet, Object, Shown, Value, format_number};
use crate::session::{Context, MimeBundle};
use crate::units::directions::{self, Direction, Family, Natural};
use crate::units::metrics::{self, Summary};
use crate::onnx::shape;
use crate::units::{self as analysis, Chance, Layer, Phi, Ranked, Reduction, Spec};
use crate::data::Label;

pub const OP: Operation = Operation {
    name: "units",
    summary: "unit analysis: top images of natural and random directions of a hidden layer, and their coherence",
    usage: "units MODEL layer: NAME on DATA { natural: 10, random: 10, top: 8, seed: 0, rows: 8, batch: 1000, reduce: \"mean\" }",
    params: &[
        Param { name: "model", positional: true, required: true, doc: "the model" },
        Param { name: "on", positional: true, required: true, doc: "the images to rank, e.g. mnist.test" },
        Param { name: "layer", positional: false, required: true, doc: "the hidden tensor phi, by its ONNX name (`advx info MODEL` lists them)" },
        Param {
            name: "natural",
            positional: false,
            required: false,
            doc: "e_i: a count (the first units), a list or range of units, or \"all\" (default all, at most 100)",
        },
        Param {
            name: "random",
            positional: false,
            required: false,
            doc: "random unit directions (default: as many as natural ones)",
        },
        Param { name: "top", positional: false, required: false, doc: "images per direction (default 8)" },
        Param { name: "seed", positional: false, required: false, doc: "seed of the random directions (default 0)" },
        Param {
            name: "rows",
            positional: false,
            required: false,
            doc: "directions per family drawn in the grid (default 8)",
        },
        Param { name: "batch", positional: false, required: false, doc: "images per ONNX Runtime call (default 1000)" },
        Param { name: "reduce", positional: false, required: false, doc: REDUCE_DOC },
    ],
    run,
};

/// `reduce:` as `units` and `visualize` document it.
pub(super) const REDUCE_DOC: &str = "a convolutional layer [N, C, H, W] is read as its C channels, each reduced over \
    the positions by \"mean\" (default), \"max\" or \"centre\" (the value at (H/2, W/2)); \"none\" takes every value \
    of any layer as a unit";

/// Beyond this many natural directions by default the table is still
/// cheap, but the user should ask for "all" knowingly on a wide layer.
const DEFAULT_NATURAL: usize = 100;
/// Random sets of `top` images drawn for the chance level.
const CHANCE_DRAWS: usize = 1000;
/// Rounds of the permutation test of natural against random.
const PERMUTATIONS: usize = 10_000;
/// Top images per direction at most: their similarity compares every
/// pair, so its cost grows with the square (and one direction stays one
/// step between two checks for Ctrl-C on the widest layers).
const MAX_TOP: usize = 100;
/// Random directions at most: each is a vector as long as the layer.
pub(super) const MAX_RANDOM: usize = 10_000;
/// Directions per family drawn in the grid at most.
const MAX_ROWS: usize = 100;
/// Images per ONNX Runtime call at most.
const MAX_BATCH: usize = 100_000;
/// The largest unit count or index written; the layer's width bounds them
/// once it is known (`Natural::resolve`).
const MAX_UNIT: usize = 1_000_000_000;

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let model = args.model("model")?;
    let data = args.pixels("on")?;
    model.check_images("units", &data)?;
    let layer = args.string_or("layer", "")?;
    let (top, seed) = (args.count_or("top", 8, 2..=MAX_TOP)?, args.seed_or("seed")?);
    let (rows, batch) = (args.count_or("rows", 8, 0..=MAX_ROWS)?, args.count_or("batch", 1000, 1..=MAX_BATCH)?);
    let spec = Spec { layer: &layer, reduce: reduce_of(args)?, model: &model.name, given: &model.path };
    let mut phi_layer = Layer::open_spec(model.file()?, &spec, model.device)?;
    let key = format!("{} {}", super::record_key(ctx, std::slice::from_ref(&model)), phi_layer.phi().layer);
    let (data, phi) = ctx.per_example(key, &data, |part| {
        let bar = ctx.bar(part.len(), &format!("units {}", model.name));
        let phi = phi_layer.activations(part.images.view(), batch, |done| {
            bar.set_position(done as u64);
            ctx.check_interrupt()
        })?;
        bar.finish_and_clear();
        Ok(phi)
    })?;
    if let Some(shard) = ctx.shard()
        && data.len() < top
    {
        // The shard's rows are recorded; only its own ranking cannot be made.
        return Ok(Value::Str(format!(
            "units: shard {shard} holds {} of the images of {}, fewer than the top {top} per direction; `advx merge` \
             ranks them all",
            data.len(),
            data.name
        )));
    }
    let width = phi.ncols();
    let dirs = directions_from(args, width, DEFAULT_NATURAL, seed)?;
    let phi_info = phi_layer.phi().clone();
    let labels = data.labels.as_deref();
    let ranked = analysis::rank(phi.view(), labels, &dirs, top)?;
    let chance = analysis::chance(phi.view(), labels, top, CHANCE_DRAWS, seed)?;
    let info =
        Info { model: model.name.clone(), phi: phi_info, data: data.name.clone(), width, images: data.len(), top, seed };
    Ok(Value::Object(Arc::new(UnitAnalysis::new(info, ranked, chance, &data, rows)?)))
}

/// `reduce:`, when given.
pub(super) fn reduce_of(args: &Args) -> Result<Option<Reduction>> {
    match args.get("reduce") {
        None => Ok(None),
        Some(Value::Str(word)) => Reduction::parse(word).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", args.op)),
        Some(other) => bail!("{}: `reduce` must be a string such as \"mean\", not {}", args.op, other.kind()),
    }
}

/// Records how phi was read beside its layer: a reduced layer's shape and
/// reduction (a flat layer's record is as it always was).
pub(super) fn record_phi(record: &mut Json, phi: &Phi) {
    if let Some(reduction) = phi.reduction {
        record["shape"] = json!(phi.shape.as_ref().map(|s| shape::show(s)));
        record["reduce"] = json!(reduction);
    }
}

/// The directions `natural:` and `random:` ask for in a `width`-unit
/// layer, natural first. Without `natural:`, the first `default` units (or
/// all when fewer); without `random:`, as many random ones as natural.
pub(super) fn directions_from(args: &Args, width: usize, default: usize, seed: u64) -> Result<Vec<Direction>> {
    let natural = natural_spec(args)?.unwrap_or(Natural::First(width.min(default)));
    let units = natural.resolve(width).map_err(|e| anyhow::anyhow!("{}: {e}", args.op))?;
    let random = args.count_or("random", units.len().min(MAX_RANDOM), 0..=MAX_RANDOM)?;
    if units.is_empty() && random == 0 {
        bail!("{}: no directions to follow; ask for `natural` or `random` ones", args.op);
    }
    let mut dirs = directions::natural(&units, width);
    dirs.extend(directions::random(random, width, seed));
    Ok(dirs)
}

/// `natural:` as a count, a list, a range or "all"; `None` when not given.
fn natural_spec(args: &Args) -> Result<Option<Natural>> {
    let wrong = || anyhow::anyhow!("{}: `natural` must be a count, a list or range of units, or \"all\"", args.op);
    let unit = |n: f64| if n.fract() == 0.0 && (0.0..=MAX_UNIT as f64).contains(&n) { Ok(n as usize) } else { Err(wrong()) };
    Ok(Some(match args.get("natural") {
        None => return Ok(None),
        Some(Value::Number(_)) => Natural::First(args.count_or("natural", 0, 0..=MAX_UNIT)?),
        Some(Value::Str(s)) if s == "all" => Natural::All,
        Some(Value::Range(a, b)) => Natural::Range(unit(*a)?, unit(*b)?),
        Some(Value::List(items)) => {
            Natural::Units(items.iter().map(|v| v.as_number().ok_or_else(wrong).and_then(unit)).collect::<Result<_>>()?)
        }
        Some(_) => return Err(wrong()),
    }))
}

/// What was analysed, for titles and records.
struct Info {
    model: String,
    phi: Phi,
    data: String,
    width: usize,
    images: usize,
    top: usize,
    seed: u64,
}

/// The result of `units`: every direction's top images and their
/// coherence, the chance level, and the comparison of the families.
pub struct UnitAnalysis {
    info: Info,
    ranked: Vec<Ranked>,
    chance: Chance,
    /// The top images of every direction, in order, `top` per direction.
    images: Arc<ImageSet>,
    purity: Arc<Comparison>,
    similarity: Arc<Comparison>,
    /// The grid of top images, or why it cannot be drawn (the numbers
    /// stand without it).
    grid: Result<Arc<Figure>, String>,
}

impl UnitAnalysis {
    fn new(info: Info, ranked: Vec<Ranked>, chance: Chance, data: &ImageSet, rows: usize) -> Result<UnitAnalysis> {
        let indices: Vec<usize> = ranked.iter().flat_map(|r| r.indices.iter().copied()).collect();
        let name = format!("top {} of {} along {} directions of {}", info.top, info.data, ranked.len(), info.phi.layer);
        let images = Arc::new(data.select(&indices, name)?);
        let purity = Comparison::new("purity", family_values(&ranked, |r| r.purity), &chance.purity, info.seed)?;
        let similarity = Comparison::new(
            "similarity",
            family_values(&ranked, |r| Some(r.similarity)),
            &chance.similarity,
            info.seed,
        )?;
        let (purity, similarity) = (Arc::new(purity), Arc::new(similarity));
        let grid = grid(&info, &ranked, data, rows).map(Arc::new).map_err(|e| format!("{e:#}"));
        Ok(UnitAnalysis { info, ranked, chance, images, purity, similarity, grid })
    }

    fn family(&self, family: Family) -> impl Iterator<Item = &Ranked> {
        self.ranked.iter().filter(move |r| r.direction.family == family)
    }

    fn numbers(&self, family: Family, f: impl Fn(&Ranked) -> f64) -> Value {
        Value::List(self.family(family).map(|r| Value::Number(f(r))).collect())
    }

    fn headline(&self) -> String {
        let i = &self.info;
        format!(
            "unit analysis of {} ({}) in {} on {} ({} images): top {} images per direction",
            i.phi.layer,
            i.phi.describe(),
            i.model,
            i.data,
            i.images,
            i.top
        )
    }

    fn table(&self) -> Table {
        let mut table = Table::new(&["metric", "family", "directions", "mean", "std", "q25", "median", "q75"]);
        for comparison in [self.purity.as_ref(), self.similarity.as_ref()] {
            for (family, summary) in comparison.rows() {
                let cells = summary.map_or_else(
                    || vec!["0".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()],
                    |s| {
                        let mut c = vec![s.count.to_string()];
                        c.extend([s.mean, s.std, s.q25, s.median, s.q75].map(|v| format!("{v:.3}")));
                        c
                    },
                );
                table.row([vec![comparison.metric.to_string(), family.to_string()], cells].concat());
            }
        }
        table
    }

    /// The verdict the table supports, one sentence per metric.
    fn verdicts(&self) -> Vec<String> {
        [&self.purity, &self.similarity].iter().filter_map(|c| c.verdict()).collect()
    }

    /// The figure of sorted per-direction values of one metric per family.
    fn spread(&self, comparison: &Comparison) -> Option<Figure> {
        if comparison.natural.is_empty() && comparison.random.is_empty() {
            return None;
        }
        let series: Vec<Series> =
            [("natural", &comparison.natural), ("random", &comparison.random), ("chance", &comparison.chance)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, values)| Series { name: name.to_string(), points: sorted_points(values) })
                .collect();
        let lines = Lines {
            series,
            x_label: "share of directions (sorted by value)".into(),
            y_label: format!("{} of the top {}", comparison.metric, self.info.top),
            log_x: false,
            log_y: false,
        };
        let title =
            format!("{} of {} directions' top images: natural, random, chance", comparison.metric, self.info.phi.layer);
        Some(Figure::new(title, Plot::Lines(lines)))
    }

    fn directions_json(&self) -> Vec<Json> {
        use crate::session::value::Recorded;
        self.ranked
            .iter()
            .enumerate()
            .map(|(position, r)| {
                json!({ "family": r.direction.family, "direction": r.direction.label(), "index": r.direction.index,
                        "purity": r.purity.recorded(), "similarity": r.similarity.recorded(), "indices": r.indices,
                        "scores": r.scores.recorded(),
                        "labels": self.labels_at(position) })
            })
            .collect()
    }

    /// The labels of the top images of the `position`-th direction.
    fn labels_at(&self, position: usize) -> Option<&[Label]> {
        let labels = self.images.labels.as_ref()?;
        Some(&labels[position * self.info.top..(position + 1) * self.info.top])
    }
}

/// Each family's values of a per-direction number.
fn family_values(ranked: &[Ranked], f: impl Fn(&Ranked) -> Option<f64>) -> [Vec<f64>; 2] {
    [Family::Natural, Family::Random]
        .map(|family| ranked.iter().filter(|r| r.direction.family == family).filter_map(&f).collect())
}

/// Values sorted, at evenly spaced positions in [0, 1]: a quantile plot,
/// which compares spreads of different sample sizes on one axis.
fn sorted_points(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = (sorted.len().max(2) - 1) as f64;
    sorted.into_iter().enumerate().map(|(i, v)| (i as f64 / last, v)).collect()
}

/// One metric over the natural and random families and the chance level,
/// with a permutation test of natural against random.
struct Comparison {
    metric: &'static str,
    natural: Vec<f64>,
    random: Vec<f64>,
    chance: Vec<f64>,
    p: Option<f64>,
}

impl Comparison {
    fn new(metric: &'static str, [natural, random]: [Vec<f64>; 2], chance: &[f64], seed: u64) -> Result<Comparison> {
        let p = metrics::permutation_p(&natural, &random, PERMUTATIONS, seed)?;
        Ok(Comparison { metric, natural, random, chance: chance.to_vec(), p })
    }

    fn rows(&self) -> [(&'static str, Option<Summary>); 3] {
        [
            ("natural", Summary::of(&self.natural)),
            ("random", Summary::of(&self.random)),
            ("chance", Summary::of(&self.chance)),
        ]
    }

    fn difference(&self) -> Option<f64> {
        Some(Summary::of(&self.natural)?.mean - Summary::of(&self.random)?.mean)
    }

    fn verdict(&self) -> Option<String> {
        let (difference, p) = (self.difference()?, self.p?);
        let reading = if p < 0.05 { "a significant difference" } else { "no significant difference" };
        Some(format!(
            "{}: natural - random = {difference:+.3} (permutation p = {}, {} rounds): {reading}",
            self.metric,
            format_number(p),
            PERMUTATIONS
        ))
    }

    fn to_json(&self) -> Json {
        use crate::session::value::Recorded;
        let [natural, random, chance] = self.rows().map(|(_, s)| s.as_ref().map_or(Json::Null, summary_json));
        json!({ "natural": natural, "random": random, "chance": chance,
                "difference": self.difference().recorded(), "p": self.p.recorded(), "permutations": PERMUTATIONS })
    }
}

impl Object for Comparison {
    fn kind(&self) -> &'static str {
        "a comparison of directions"
    }

    fn field_names(&self) -> Vec<String> {
        ["natural", "random", "chance", "difference", "p"].map(String::from).to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "natural" | "random" | "chance" => {
                let summary = self.rows().into_iter().find(|(f, _)| *f == name)?.1?;
                Some(Value::Object(Arc::new(Stats(summary))))
            }
            "difference" => self.difference().map(Value::Number),
            "p" => self.p.map(Value::Number),
            _ => None,
        }
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let text = serde_json::to_string_pretty(&self.to_json())?;
        Ok(vec![Shown::text(MimeBundle { json: Some(self.to_json()), ..MimeBundle::text(text) })])
    }

    fn to_json(&self) -> Json {
        Comparison::to_json(self)
    }
}

/// A summary as a value: `u.purity.natural.mean`.
struct Stats(Summary);

impl Object for Stats {
    fn kind(&self) -> &'static str {
        "a summary"
    }

    fn field_names(&self) -> Vec<String> {
        ["count", "mean", "std", "min", "q25", "median", "q75", "max"].map(String::from).to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let s = &self.0;
        Some(Value::Number(match name {
            "count" => s.count as f64,
            "mean" => s.mean,
            "std" => s.std,
            "min" => s.min,
            "q25" => s.q25,
            "median" => s.median,
            "q75" => s.q75,
            "max" => s.max,
            _ => return None,
        }))
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let text = serde_json::to_string(&self.0)?;
        Ok(vec![Shown::text(MimeBundle { json: Some(self.to_json()), ..MimeBundle::text(text) })])
    }

    fn to_json(&self) -> Json {
        summary_json(&self.0)
    }
}

/// A summary as recorded data, each number through
/// [`Recorded`](crate::session::value::Recorded) like every other.
fn summary_json(s: &Summary) -> Json {
    use crate::session::value::Recorded;
    json!({ "count": s.count, "mean": s.mean.recorded(), "std": s.std.recorded(), "min": s.min.recorded(),
            "q25": s.q25.recorded(), "median": s.median.recorded(), "q75": s.q75.recorded(), "max": s.max.recorded() })
}

/// One row per direction, the first `rows` of each family, natural first:
/// the paper's figures side by side. Captions are the true labels, red
/// where they differ from the row's commonest one.
fn grid(info: &Info, ranked: &[Ranked], data: &ImageSet, rows: usize) -> Result<Figure> {
    data.check_drawable()?;
    let shown: Vec<&Ranked> = [Family::Natural, Family::Random]
        .into_iter()
        .flat_map(|family| ranked.iter().filter(move |r| r.direction.family == family).take(rows))
        .collect();
    let mut grid = Grid { cols: info.top, ..Grid::default() };
    for r in &shown {
        let set = data.select(&r.indices, String::new())?;
        grid.images.extend(set.pictures()?);
        if let Some(labels) = &set.labels {
            let majority = metrics::majority(labels);
            grid.captions.extend(labels.iter().map(|&l| data.caption(l)));
            grid.alerts.extend(labels.iter().map(|&l| Some(l) != majority));
        }
        grid.row_labels.push(row_label(r));
    }
    if grid.images.is_empty() {
        grid.images.push(Array3::zeros((1, 28, 28)));
    }
    let title = format!("{} {}: top {} images per direction", info.model, info.phi.layer, info.top);
    Ok(Figure::new(title, Plot::Grid(grid)))
}

/// `e_17` or `random 3`, with the purity when the images are labelled.
fn row_label(r: &Ranked) -> String {
    match r.purity {
        Some(p) => format!("{} ({:.0}%)", r.direction.label(), 100.0 * p),
        None => r.direction.label(),
    }
}

impl Object for UnitAnalysis {
    fn kind(&self) -> &'static str {
        "a unit analysis"
    }

    fn field_names(&self) -> Vec<String> {
        [
            "natural",
            "random",
            "natural_similarity",
            "random_similarity",
            "purity",
            "similarity",
            "images",
            "directions",
            "indices",
            "scores",
            "layer",
            "reduce",
            "units",
        ]
        .map(String::from)
        .to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let nan = f64::NAN;
        Some(match name {
            "natural" => self.numbers(Family::Natural, |r| r.purity.unwrap_or(nan)),
            "random" => self.numbers(Family::Random, |r| r.purity.unwrap_or(nan)),
            "natural_similarity" => self.numbers(Family::Natural, |r| r.similarity),
            "random_similarity" => self.numbers(Family::Random, |r| r.similarity),
            "purity" => Value::Object(self.purity.clone()),
            "similarity" => Value::Object(self.similarity.clone()),
            "images" => Value::Images(self.images.clone()),
            "directions" => Value::List(self.ranked.iter().map(|r| Value::Str(r.direction.label())).collect()),
            "indices" => lists(&self.ranked, |r| r.indices.iter().map(|&i| i as f64).collect()),
            "scores" => lists(&self.ranked, |r| r.scores.iter().map(|&s| s as f64).collect()),
            "layer" => Value::Str(self.info.phi.layer.clone()),
            "reduce" => Value::Str(self.info.phi.reduction.map_or("none", Reduction::name).to_string()),
            "units" => Value::Number(self.info.width as f64),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let verdicts = self.verdicts();
        let text = format!(
            "{}\n{}{}",
            self.headline(),
            table.text(),
            verdicts.iter().map(|v| format!("{v}\n")).collect::<String>()
        );
        let notes: String = verdicts.iter().map(|v| format!("<p>{}</p>", escape(v))).collect();
        let html = format!("<p>{}</p>{}{notes}", escape(&self.headline()), table.html());
        let mut shown =
            vec![Shown::text(MimeBundle { text, html: Some(html), json: Some(self.to_json()), ..Default::default() })];
        match &self.grid {
            Ok(grid) => shown.push(figure_output(grid, "units")?),
            Err(why) => shown.push(Shown::text(MimeBundle::text(format!("(the grid of top images is not drawn: {why})")))),
        }
        for (comparison, suffix) in [(&self.purity, "units-purity"), (&self.similarity, "units-similarity")] {
            if let Some(figure) = self.spread(comparison) {
                shown.push(figure_output(&figure, suffix)?);
            }
        }
        Ok(shown)
    }

    fn to_json(&self) -> Json {
        let i = &self.info;
        let mut record = json!({
            "model": i.model, "layer": i.phi.layer, "data": i.data, "width": i.width, "images": i.images,
            "top": i.top, "seed": i.seed, "chance_draws": self.chance.similarity.len(),
            "purity": self.purity.to_json(), "similarity": self.similarity.to_json(),
            "directions": self.directions_json(),
        });
        record_phi(&mut record, &i.phi);
        json!({ "units": record })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        let mut rows = vec![
            ["family", "direction", "index", "purity", "similarity", "labels", "indices", "scores"]
                .map(String::from)
                .to_vec(),
        ];
        for (position, r) in self.ranked.iter().enumerate() {
            let join = |items: Vec<String>| items.join(" ");
            rows.push(vec![
                r.direction.family.name().to_string(),
                r.direction.label(),
                r.direction.index.to_string(),
                r.purity.map_or(String::new(), |p| p.to_string()),
                r.similarity.to_string(),
                join(self.labels_at(position).unwrap_or_default().iter().map(Label::to_string).collect()),
                join(r.indices.iter().map(usize::to_string).collect()),
                join(r.scores.iter().map(f32::to_string).collect()),
            ]);
        }
        Some(rows)
    }

    fn figure(&self) -> Option<Arc<Figure>> {
        self.grid.clone().ok()
    }
}

fn lists(ranked: &[Ranked], f: impl Fn(&Ranked) -> Vec<f64>) -> Value {
    Value::List(ranked.iter().map(|r| Value::List(f(r).into_iter().map(Value::Number).collect())).collect())
}
