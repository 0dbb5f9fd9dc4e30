//! What a benchmark run leaves: the YAML file with every figure, and a
//! short table (printed, and written beside the YAML as `.txt`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::Results;
use crate::artefact::write_atomic;

/// Writes `out` (YAML) and the table beside it (`out` with `.txt`), each
/// atomically.
pub fn write(results: &Results, out: &Path) -> Result<()> {
    let yaml = serde_yaml::to_string(results)?;
    let header = "# advx bench results: see README.md, section Benchmarks, for how to read them.\n";
    write_atomic(out, format!("{header}{yaml}").as_bytes())?;
    write_atomic(&out.with_extension("txt"), table(results).as_bytes())
}

/// The short table: one block per part that ran.
pub fn table(r: &Results) -> String {
    let m = &r.machine;
    let load = |l: Option<[f64; 3]>| l.map_or("?".into(), |l| format!("{:.1}", l[0]));
    let mut s = format!(
        "advx bench: {} ({} cores, {:.2} GHz, peak ≈ {:.0} GFLOP/s f32), ONNX Runtime {} with {} threads, \
         device {}, load {} → {}, {:.0} s\n",
        m.cpu,
        m.cores,
        m.ghz,
        m.peak_gflops,
        r.versions.onnxruntime,
        r.threads,
        r.options.device,
        load(m.load_average),
        load(r.load_average_after),
        r.seconds
    );
    if let Some(first) = r.lbfgs.first() {
        let o = crate::attack::search::Options::default();
        let _ = writeln!(
            s,
            "\nlbfgs: {} images of {}{} in batches of {}, {} targets, c in {}..{}, {} steps of ≤ {} L-BFGS-B iterations",
            first.images,
            r.options.data,
            preprocessed(&r.options.preprocess),
            first.batch,
            first.target,
            o.c_min,
            o.c_max,
            o.steps,
            o.solver.max_iterations
        );
        let mut t = Columns::new(&[
            "model",
            "method",
            "examples/s",
            "examples/CPU-s",
            "success",
            "av. min. distortion",
            "evals/example",
            "iterations/example",
            "GFLOP/s",
            "% peak",
        ]);
        for row in &r.lbfgs {
            for run in [Some(&row.advx), Some(&row.advx_no_refine), row.reference.as_ref()].into_iter().flatten() {
                t.row(vec![
                    row.model.clone(),
                    run.method.clone(),
                    format!("{:.2}", run.examples_per_second),
                    run.examples_per_cpu_second.map_or("-".into(), |r| format!("{r:.2}")),
                    format!("{:.1}%", 100.0 * run.success_rate),
                    format!("{:.4}", run.mean_distortion),
                    format!("{:.0}", run.evaluations_per_example),
                    format!("{:.0}", run.iterations_per_example),
                    format!("{:.2}", run.gflops),
                    percent(run.peak_fraction, 2),
                ]);
            }
            if let Some(c) = &row.comparison {
                let n = format!("{} examples", c.examples);
                t.row(vec![
                    row.model.clone(),
                    "advx / reference".into(),
                    format!("{:.1}×", c.speed_ratio),
                    c.cpu_speed_ratio.map_or("-".into(), |r| format!("{r:.1}×")),
                    n.clone(),
                    format!("{:.3}×", c.distortion_ratio),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                t.row(vec![
                    row.model.clone(),
                    "refine off / reference".into(),
                    format!("{:.1}×", c.speed_ratio_no_refine),
                    c.cpu_speed_ratio_no_refine.map_or("-".into(), |r| format!("{r:.1}×")),
                    n,
                    format!("{:.3}×", c.distortion_ratio_no_refine),
                    format!("{:.2}×", c.evaluations_ratio_no_refine),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
        s.push_str(&t.text());
    }
    if !r.backward.is_empty() {
        s.push_str("\nbackward: one ONNX Runtime run of the model against its exported xent backward graph\n");
        let mut t = Columns::new(&[
            "model",
            "batch",
            "forward images/s",
            "fwd+bwd images/s",
            "ratio",
            "fwd GFLOP/s",
            "fwd+bwd GFLOP/s",
            "fwd+bwd % peak",
        ]);
        for b in &r.backward {
            t.row(vec![
                b.model.clone(),
                b.batch.to_string(),
                format!("{:.0}", b.forward_images_per_second),
                format!("{:.0}", b.forward_backward_images_per_second),
                format!("{:.2}", b.ratio),
                format!("{:.1}", b.forward_gflops),
                format!("{:.1}", b.forward_backward_gflops),
                percent(b.forward_backward_peak_fraction, 1),
            ]);
        }
        s.push_str(&t.text());
    }
    if !r.train.is_empty() {
        s.push_str("\ntrain: one step per minibatch as `advx train` runs it\n");
        let mut t = Columns::new(&["recipe", "phase", "batch", "images/s", "GFLOP/s", "% peak"]);
        for row in &r.train {
            t.row(vec![
                row.recipe.clone(),
                row.phase.clone(),
                row.batch.to_string(),
                format!("{:.0}", row.images_per_second),
                format!("{:.1}", row.gflops),
                percent(m.fraction(row.gflops), 1),
            ]);
        }
        s.push_str(&t.text());
    }
    if !r.units.is_empty() {
        s.push_str("\nunits: activations, then top 8 images of every direction and the chance level\n");
        let mut t = Columns::new(&["model", "layer", "images", "directions", "activations s", "ranking s", "images/s"]);
        for u in &r.units {
            t.row(vec![
                u.model.clone(),
                format!("{} ({})", u.layer, u.width),
                u.images.to_string(),
                u.directions.to_string(),
                format!("{:.3}", u.activations_seconds),
                format!("{:.3}", u.ranking_seconds),
                format!("{:.0}", u.images_per_second),
            ]);
        }
        s.push_str(&t.text());
    }
    if !r.optimality.is_empty() {
        s.push_str(&optimality(&r.optimality));
    }
    s
}

/// How advx's attack starts: the search over c, or the Lagrangian's steps.
fn start(lagrangian: usize) -> String {
    if lagrangian == 0 { "the search over c".into() } else { format!("{lagrangian} Lagrangian steps") }
}

/// The optimality block: a row per attack and model, the ratios to the
/// per-example best, then advx against the speed peer.
fn optimality(rows: &[super::optimality::Row]) -> String {
    let first = &rows[0];
    let mut s = format!(
        "
optimality: {} targets, advx's lbfgs with {} and a walk of {} steps; peers at {} steps; {} busy processes
",
        first.target,
        start(first.lagrangian),
        first.walk,
        first.peer_steps,
        first.busy
    );
    let mut t = Columns::new(&[
        "model",
        "attack",
        "examples",
        "success",
        "mean distortion",
        "ratio to best",
        "within 1%",
        "examples/s",
        "evals/example",
    ]);
    for row in rows {
        for m in &row.methods {
            t.row(vec![
                row.model.clone(),
                m.name.clone(),
                m.examples.to_string(),
                percent(m.success_rate, 1),
                format!("{:.5}", m.mean_distortion),
                if m.mean_ratio_to_best.is_nan() { "-".into() } else { format!("{:.4}", m.mean_ratio_to_best) },
                percent(m.within_1_percent, 1),
                format!("{:.2}", m.examples_per_second),
                m.evaluations_per_example.map_or(String::new(), |e| format!("{e:.0}")),
            ]);
        }
        if let Some(speed) = &row.speed {
            t.row(vec![
                row.model.clone(),
                "advx / lbfgs".into(),
                speed.examples.to_string(),
                String::new(),
                format!("{:.4}×", speed.distortion_ratio),
                String::new(),
                String::new(),
                format!("{:.1}×", speed.speed_ratio),
                String::new(),
            ]);
        }
    }
    s.push_str(&t.text());
    s
}

/// A plain text table: the first two columns left-aligned, the others right.
struct Columns {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Columns {
    fn new(header: &[&str]) -> Columns {
        Columns { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn text(&self) -> String {
        let all: Vec<&Vec<String>> = std::iter::once(&self.header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| all.iter().map(|r| r.get(c).map_or(0, |x| x.chars().count())).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in all {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    let cell = row.get(c).map_or("", |x| x.as_str());
                    if c < 2 { format!("{cell:<w$}") } else { format!("{cell:>w$}") }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// A fraction as a percentage, "-" when there is none (NaN: a GPU run).
fn percent(fraction: f64, decimals: usize) -> String {
    if fraction.is_nan() { "-".into() } else { format!("{:.*}%", decimals, 100.0 * fraction) }
}

/// ", preprocessing: ..." when the models were given some.
fn preprocessed(preprocess: &crate::runtime::Preprocess) -> String {
    match preprocess.is_identity() {
        true => String::new(),
        false => format!(" (preprocessing: {preprocess})"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Columns, percent};
    use crate::bench::machine::Machine;

    #[test]
    fn columns_align_names_left_and_numbers_right() {
        let mut t = Columns::new(&["model", "method", "n"]);
        t.row(vec!["fc".into(), "advx".into(), "12.5".into()]);
        t.row(vec!["cnn-long".into(), "x".into(), "3".into()]);
        assert_eq!(t.text(), "model     method     n\nfc        advx    12.5\ncnn-long  x          3\n");
    }

    #[test]
    fn a_gpu_run_is_not_read_against_the_cpus_peak() {
        let cpu = Machine::from_cpuinfo("processor : 0\ncpu MHz : 2000\nflags : avx2 fma\n", None, None);
        assert_eq!(percent(cpu.fraction(cpu.peak_gflops / 4.0), 1), "25.0%");
        let gpu = Machine { on_gpu: true, ..cpu };
        assert_eq!(percent(gpu.fraction(100.0), 1), "-");
    }
}
