//! `advx info`'s tensors and the unit analysis of convolutional layers: a
//! layer `[N, C, H, W]` read in channel space, reduced over the positions
//! (mean, max or the centre), in `units` and in `visualize`'s ascent.

use std::path::{Path, PathBuf};
use std::process::Command;

use advx::onnx::builder::{Elem, GraphBuilder};
use advx::onnx::shape::Dim::{Batch, Fixed};
use advx::runtime::{Device, Feed, Runtime};
use advx::session::{Session, Value};

mod cell_errors;
use advx::units::ascent::{Ascent, Options};
use advx::units::layer::with_output;
use advx::units::{Layer, Reduction, Spec, directions};
use cell_errors::{error, has};
use ndarray::{Array2, Array4, Axis, Ix4};
use serde_json::Value as Json;

const CNN: &str = "models/fixtures/residual_cnn.onnx";
/// The residual block's output: `[N, 8, 16, 16]`.
const BLOCK: &str = "/Relu_2_output_0";
const CHANNELS: usize = 8;
const IMAGES: usize = 40;

fn model(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn advx_info(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_advx")).arg("info").arg(path).output().expect("advx runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `IMAGES` RGB 32x32 images with labels 0 to 3, smooth enough that the
/// network's channels respond to them differently.
fn rgb_images() -> Array4<f32> {
    Array4::from_shape_fn((IMAGES, 3, 32, 32), |(n, c, h, w)| {
        let phase = (n * 13 + c * 5) as f32;
        (0.5 + 0.45 * ((h as f32 * (0.1 + 0.02 * n as f32) + w as f32 * 0.17 + phase).sin())).clamp(0.0, 1.0)
    })
}

/// A session in `dir` holding `rgb` (the images above, as a `.npz`) and the
/// fixture CNN as `cnn`.
fn session(dir: &Path) -> Session {
    let labels: Vec<u32> = (0..IMAGES as u32).map(|i| i % 4).collect();
    advx::data::numpy::save(&dir.join("rgb.npz"), rgb_images().view(), Some(&labels), None).unwrap();
    let mut s = Session::new().unwrap().with_base_dir(dir).with_device(Device::Cpu);
    s.run(&format!("let rgb = numpy \"rgb.npz\"\nmodel cnn = onnx \"{}\"", model(CNN).display())).unwrap();
    s
}

/// The recorded data of the first output that has some.
fn recorded(s: &mut Session, code: &str) -> Json {
    let outputs = s.run(code).unwrap();
    outputs.iter().find_map(|o| o.bundle.json.clone()).expect("recorded data")
}

fn numbers(value: Option<&Value>) -> Vec<f64> {
    match value {
        Some(Value::List(items)) => items.iter().map(|v| v.as_number().unwrap()).collect(),
        other => panic!("{other:?}"),
    }
}

/// The block's output `[N, 8, 16, 16]` for every image, from ONNX Runtime
/// running the fixture with the tensor as an output: nothing of the unit
/// analysis in between.
fn block_by_ort(images: &Array4<f32>) -> Array4<f32> {
    let proto = advx::onnx::load(model(CNN)).unwrap();
    let mut m = Runtime::get().unwrap().load_proto(&with_output(&proto, BLOCK), "block", Device::Cpu).unwrap();
    let mut out = m.run(&[("input", Feed::F32(images.view().into_dyn()))]).unwrap();
    out.take(BLOCK).unwrap().into_dimensionality::<Ix4>().unwrap()
}

/// The reduction written out: one number per image and channel.
fn reduce_by_hand(block: &Array4<f32>, reduction: Reduction) -> Array2<f32> {
    let (n, c, h, w) = block.dim();
    Array2::from_shape_fn((n, c), |(i, j)| {
        let plane = block.index_axis(Axis(0), i);
        let plane = plane.index_axis(Axis(0), j);
        match reduction {
            Reduction::Mean => plane.iter().map(|&v| v as f64).sum::<f64>() as f32 / (h * w) as f32,
            Reduction::Max => plane.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Reduction::Centre => plane[[h / 2, w / 2]],
            Reduction::None => unreachable!("not a reduction over positions"),
        }
    })
}

/// Whether `indices` are the `k` largest of `scores` (ties within `tol`
/// either way) and in decreasing order.
fn are_top(scores: &[f32], indices: &[usize], tol: f32) -> bool {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[indices.len() - 1];
    indices.iter().all(|&i| scores[i] >= kth - tol) && indices.windows(2).all(|p| scores[p[0]] >= scores[p[1]] - tol)
}

#[test]
fn advx_info_lists_every_tensor_with_its_op_and_shape_in_graph_order() {
    let info = advx_info(&model(CNN));
    let line = |name: &str| {
        let at = info.lines().position(|l| l.split_whitespace().next() == Some(name));
        at.unwrap_or_else(|| panic!("no line for {name}: {info}"))
    };
    let block = &info.lines().nth(line(BLOCK)).unwrap();
    assert!(block.contains("Relu") && block.ends_with("float32 [N, 8, 16, 16]"), "{block}");
    assert!(info.lines().nth(line("/Reshape_output_0")).unwrap().ends_with("float32 [N, 512]"), "{info}");
    assert!(info.lines().nth(line("/Shape_output_0")).unwrap().ends_with("int64 [4]"), "{info}");
    assert!(line("/conv1/Conv_output_0") < line(BLOCK) && line(BLOCK) < line("logits"), "graph order: {info}");
    assert!(info.contains("tensors:    18 node outputs"), "Constants are values, not listed: {info}");
}

/// Past an op advx has no rule for, shapes are unknown and say so; the
/// tensors before it keep theirs.
#[test]
fn advx_info_says_where_shape_inference_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Batch, Fixed(4)]);
    let relu = b.op("Relu", &["x"], vec![]);
    let soft = b.op("Softplus", &[&relu], vec![]);
    let out = b.op("Relu", &[&soft], vec![]);
    b.output(&out, Elem::F32, &[Batch, Fixed(4)]);
    let path = dir.path().join("softplus.onnx");
    advx::onnx::save(&b.into_model("softplus", 17, ""), &path).unwrap();
    let info = advx_info(&path);
    let line = |name: &str| info.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap().to_string();
    assert!(line(&relu).ends_with("float32 [N, 4]"), "{info}");
    assert!(line(&soft).ends_with("? (not inferred)") && line(&out).ends_with("? (not inferred)"), "{info}");
    assert!(info.contains("shapes:     inferred up to where advx stopped:") && info.contains("Softplus"), "{info}");
}

#[test]
fn units_on_a_conv_layer_follows_its_channels_and_records_the_reduction() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let json = recorded(&mut s, &format!("units cnn layer: \"{BLOCK}\" on rgb {{ random: 3, top: 4, seed: 2 }}"));
    let units = &json["units"];
    assert_eq!(units["width"], CHANNELS, "{units}");
    assert_eq!(units["reduce"], "mean", "the default reduction, recorded: {units}");
    assert_eq!(units["shape"], "[N, 8, 16, 16]", "{units}");
    let directions = units["directions"].as_array().unwrap();
    let natural: Vec<&str> =
        directions.iter().filter(|d| d["family"] == "natural").map(|d| d["direction"].as_str().unwrap()).collect();
    assert_eq!(natural, (0..CHANNELS).map(|c| format!("e_{c}")).collect::<Vec<_>>(), "one per channel");
    assert_eq!(directions.len(), CHANNELS + 3);

    s.run(&format!("let u = units cnn layer: \"{BLOCK}\" on rgb {{ reduce: \"centre\", top: 4 }}")).unwrap();
    s.run("let r = u.reduce\nlet n = u.units").unwrap();
    assert!(matches!(s.get("r"), Some(Value::Str(r)) if r == "centre"));
    assert!(matches!(s.get("n"), Some(Value::Number(n)) if *n == CHANNELS as f64));
    s.run(&format!("let every = units cnn layer: \"{BLOCK}\" on rgb {{ reduce: \"none\", natural: 3 }}")).unwrap();
    s.run("let n = every.units").unwrap();
    assert!(matches!(s.get("n"), Some(Value::Number(n)) if *n == (8 * 16 * 16) as f64), "none: every value a unit");
}

/// The ranking `units` gives on a conv layer is the one computed directly:
/// the layer from ONNX Runtime, reduced by hand, scored along the same
/// directions.
#[test]
fn the_channel_space_ranking_equals_a_direct_computation() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let images = rgb_images();
    let block = block_by_ort(&images);
    for reduction in [Reduction::Mean, Reduction::Max, Reduction::Centre] {
        let by_hand = reduce_by_hand(&block, reduction);
        let spec = Spec { layer: BLOCK, reduce: Some(reduction), model: "cnn", given: Path::new(CNN) };
        let phi = Layer::open_spec(&model(CNN), &spec, Device::Cpu).unwrap().activations(images.view(), 16, |_| Ok(()));
        let gap = (&phi.unwrap() - &by_hand).iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(gap < 1e-5, "{reduction}: phi and the hand reduction differ by {gap}");

        let code = format!(
            "let u = units cnn layer: \"{BLOCK}\" on rgb {{ reduce: \"{reduction}\", random: 4, top: 5, seed: 7 }}\n\
             let indices = u.indices"
        );
        s.run(&code).unwrap();
        let Some(Value::List(rows)) = s.get("indices") else { panic!("no indices") };
        let rows: Vec<Vec<usize>> =
            rows.iter().map(|r| numbers(Some(r)).iter().map(|&i| i as usize).collect()).collect();
        let mut dirs = directions::natural(&(0..CHANNELS).collect::<Vec<_>>(), CHANNELS);
        dirs.extend(directions::random(4, CHANNELS, 7));
        assert_eq!(rows.len(), dirs.len());
        for (d, top) in dirs.iter().zip(&rows) {
            let scores: Vec<f32> = by_hand.rows().into_iter().map(|r| r.dot(&d.vector)).collect();
            assert!(are_top(&scores, top, 1e-5), "{reduction} {}: {top:?} are not the top of {scores:?}", d.label());
        }
    }
}

#[test]
fn a_misspelt_layer_suggests_the_closest_names_and_advx_info() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let path = model(CNN);
    let e = error(&mut s, "units cnn layer: \"/Relu_2_outptu_0\" on rgb");
    assert!(has(&e, "cnn has no layer `/Relu_2_outptu_0` (did you mean `/Relu_2_output_0`?)"), "{e}");
    assert!(has(&e, &format!("`advx info {}` lists every tensor with its shape", path.display())), "{e}");
    assert!(!has(&e, "/Shape_output_0"), "integer tensors are no layers: {e}");
    let e = error(&mut s, "visualize cnn layer: \"/Relu_2_outptu_0\"");
    assert!(has(&e, "did you mean `/Relu_2_output_0`?") && has(&e, "advx info"), "{e}");

    // A long list gives the closest names, not every one.
    let resnet = model("models/fixtures/resnet18.onnx");
    s.run(&format!("model resnet = onnx \"{}\"", resnet.display())).unwrap();
    let e = error(&mut s, "units resnet layer: \"/layer1/layer1.0/relu/Relu_outptu_0\" on rgb");
    assert!(has(&e, "the closest of its") && has(&e, "are: /layer1/layer1.0/relu/Relu_output_0 (Relu)"), "{e}");
    assert!(!has(&e, "/fc/Gemm") && has(&e, &format!("advx info {}", resnet.display())), "{e}");
}

#[test]
fn layers_of_another_rank_and_unknown_reductions_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    s.run(&format!("model vit = onnx \"{}\"", model("models/fixtures/vit.onnx").display())).unwrap();
    let e = error(&mut s, "units vit layer: \"/Transpose_output_0\" on rgb");
    assert!(has(&e, "layer `/Transpose_output_0` of vit is [N, 16, 16]"), "{e}");
    assert!(has(&e, "a flat layer [N, D] or a convolutional one [N, C, H, W]") && has(&e, "reduce: \"none\""), "{e}");
    let e = error(&mut s, "units cnn layer: \"/Reshape_output_0\" on rgb { reduce: \"max\" }");
    assert!(has(&e, "layer `/Reshape_output_0` of cnn is [N, 512], a flat layer"), "{e}");
    let e = error(&mut s, &format!("visualize cnn layer: \"{BLOCK}\" {{ reduce: \"sum\" }}"));
    assert!(has(&e, "visualize: `reduce` must be one of \"mean\", \"max\", \"centre\", \"none\", not \"sum\""), "{e}");
    let e = error(&mut s, &format!("units cnn layer: \"{BLOCK}\" on rgb {{ reduce: 2 }}"));
    assert!(has(&e, "units: `reduce` must be a string"), "{e}");
}

/// The ascent climbs `<reduce(phi(x)), v>`: its values grow, and they are
/// what `units` computes of the images it returns.
#[test]
fn visualize_on_a_conv_layer_climbs_the_reduced_objective() {
    let images = rgb_images();
    for reduction in [Reduction::Mean, Reduction::Max, Reduction::Centre] {
        let spec = Spec { layer: BLOCK, reduce: Some(reduction), model: "cnn", given: Path::new(CNN) };
        let mut climber = Ascent::open_spec(&model(CNN), &spec, Device::Cpu, 1).unwrap();
        assert_eq!(climber.width(), CHANNELS, "{reduction}");
        let mut dirs = directions::natural(&[1, 6], CHANNELS);
        dirs.extend(directions::random(2, CHANNELS, 5));
        let rows = directions::matrix(&dirs, CHANNELS);
        let starts = images.select(Axis(0), &[0, 9, 17, 30]);
        let out = climber.ascend(starts, rows.view(), Options { steps: 15, step: 0.5 }, |_| Ok(())).unwrap();
        assert!(out.images.iter().all(|v| (0.0..=1.0).contains(v)), "pixels leave [0, 1]");
        let phi =
            Layer::open_spec(&model(CNN), &spec, Device::Cpu).unwrap().activations(out.images.view(), 4, |_| Ok(()));
        let phi = phi.unwrap();
        for (i, d) in dirs.iter().enumerate() {
            let (before, after) = (out.initial[i], out.best[i]);
            assert!(after > before, "{reduction} {}: {before} -> {after}", d.label());
            let value = phi.row(i).dot(&rows.row(i));
            assert!((value - out.best[i]).abs() < 1e-4, "{reduction}: {value} vs {}", out.best[i]);
        }
    }
}

/// Through the language: a conv layer's visualisation records its
/// reduction (MNIST's CNN, whose one-channel images figures draw).
#[test]
fn visualize_records_the_reduction_of_a_conv_layer() {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    s.run(&format!("model cnn = onnx \"{}\"", model("models/mnist/cnn.onnx").display())).unwrap();
    let code = "visualize cnn layer: \"advx_relu_1\" { natural: 2, random: 1, steps: 5, reduce: \"max\" }";
    let json = recorded(&mut s, code);
    let v = &json["visualize"];
    assert_eq!((v["reduce"].as_str(), v["shape"].as_str()), (Some("max"), Some("[N, 32, 14, 14]")), "{v}");
    assert_eq!(v["directions"].as_array().unwrap().len(), 3);
    for d in v["directions"].as_array().unwrap() {
        let (initial, last) = (d["initial"][0].as_f64().unwrap(), d["final"][0].as_f64().unwrap());
        assert!(last > initial, "{d}");
    }
}

/// A layer past an op advx has no rule for has no inferred shape: it is
/// read only as every value a unit, as `reduce: "none"` asks, and the
/// error without it says so.
#[test]
fn a_layer_whose_shape_is_not_inferred_is_read_with_reduce_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Batch, Fixed(1), Fixed(2), Fixed(2)]);
    let soft = b.op("Softplus", &["x"], vec![]);
    let relu = b.op("Relu", &[&soft], vec![]);
    b.output(&relu, Elem::F32, &[Batch, Fixed(1), Fixed(2), Fixed(2)]);
    let path = dir.path().join("softplus.onnx");
    advx::onnx::save(&b.into_model("softplus", 17, ""), &path).unwrap();

    let e = Layer::open(&path, &relu, "soft", Device::Cpu).err().unwrap().to_string();
    assert!(has(&e, &format!("cannot tell the shape of layer `{relu}` of soft")), "{e}");
    assert!(has(&e, "Softplus") && has(&e, "`reduce: \"none\"` reads it without"), "{e}");
    let spec = Spec { layer: &relu, reduce: Some(Reduction::None), model: "soft", given: &path };
    let images = Array4::from_shape_fn((3, 1, 2, 2), |(n, _, h, w)| (n + 2 * h + w) as f32 / 6.0 - 0.5);
    let mut layer = Layer::open_spec(&path, &spec, Device::Cpu).unwrap();
    assert_eq!(layer.phi().describe(), "every value a unit; its shape not inferred");
    let phi = layer.activations(images.view(), 2, |_| Ok(())).unwrap();
    let by_hand = images.mapv(|x| (1.0 + x.exp()).ln().max(0.0)).into_shape_with_order((3, 4)).unwrap();
    let gap = (&phi - &by_hand).iter().fold(0f32, |m, d| m.max(d.abs()));
    assert!(gap < 1e-5, "{phi} vs {by_hand}");
}
