//! The networks people export: shape computations as `torch.onnx.export`
//! writes them (folded with the batch size symbolic, no gradient through
//! them), and every fixture of `models/fixtures/` (ResNet-18, VGG, AlexNet,
//! SqueezeNet, DenseNet, MobileNetV2/V3, EfficientNet, ShuffleNet, ConvNeXt,
//! ViT, a flat MLP, a fixed batch, a Keras-style NHWC graph, and eight of
//! them again as the dynamo exporter writes them at opset 20, two also with
//! its optimizer off): each
//! validates, its backward graph passes onnx.checker's full check and
//! loads in ONNX Runtime, and its input gradient agrees with finite
//! differences.

use advx::grad::check::{self, Value};
use advx::grad::ops::samples::uniform;
use advx::grad::{self, Objective, names};
use advx::onnx::builder::{Elem, GraphBuilder, attr};
use advx::onnx::proto::tensor_proto::DataType;
use advx::onnx::shape::Dim::{Batch, Fixed};
use advx::onnx::{ModelProto, NodeProto, tensor};
use ndarray::{ArrayD, IxDyn};

mod onnx_tools;

/// Largest relative error accepted between exported gradients and central differences.
const TOLERANCE: f32 = 1e-2;

// ------------------------------------------------- shape computations

/// A node with one output, as the exporter names them.
fn node(b: &mut GraphBuilder, op: &str, inputs: &[&str], output: &str, attrs: Vec<advx::onnx::AttributeProto>) {
    b.push(NodeProto {
        name: Some(format!("/{output}/{op}")),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    });
}

/// An int64 Constant node, as the exporter writes shapes and indices.
fn constant(b: &mut GraphBuilder, output: &str, dims: &[usize], values: &[i64]) {
    node(b, "Constant", &[], output, vec![attr::tensor("value", tensor::from_i64(output, dims, values))]);
}

/// `x [N, 3, 4, 4] -> Conv(4) -> Relu -> x.view(x.size(0), -1)`, then a
/// class token `cls.expand(x.shape[0], -1, -1)` joined to the rows and taken
/// back (`y[:, 0]`), as torch.onnx.export (opset 13) writes them: Shape,
/// Gather, Unsqueeze, Concat, Reshape; ConstantOfShape, Mul, Equal, Where,
/// Expand; Concat and Gather on floats; and a size from the shape that
/// reaches the logits as a float (Gather, Cast, Div).
fn exporter_shapes() -> ModelProto {
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Batch, Fixed(3), Fixed(4), Fixed(4)]);
    b.initializers.push(tensor::from_f32("conv.weight", &uniform(&[4, 3, 3, 3], 1).mapv(|v| 0.4 * v)));
    b.initializers.push(tensor::from_f32("cls_token", &uniform(&[1, 1, 64], 2)));
    b.initializers.push(tensor::from_f32("fc.weight", &uniform(&[10, 64], 3).mapv(|v| 0.3 * v)));
    node(&mut b, "Conv", &["x", "conv.weight"], "conv", vec![attr::ints("pads", &[1, 1, 1, 1])]);
    node(&mut b, "Relu", &["conv"], "relu", vec![]);
    // x.view(x.size(0), -1)
    node(&mut b, "Shape", &["relu"], "shape", vec![]);
    constant(&mut b, "zero", &[], &[0]);
    node(&mut b, "Gather", &["shape", "zero"], "batch", vec![attr::int("axis", 0)]);
    constant(&mut b, "axes0", &[1], &[0]);
    node(&mut b, "Unsqueeze", &["batch", "axes0"], "batch_1d", vec![]);
    constant(&mut b, "minus_one", &[1], &[-1]);
    node(&mut b, "Concat", &["batch_1d", "minus_one"], "view_shape", vec![attr::int("axis", 0)]);
    node(&mut b, "Reshape", &["relu", "view_shape"], "rows", vec![]);
    // rows [N, 64] -> [N, 1, 64]; cls.expand(N, -1, -1) -> [N, 1, 64]
    constant(&mut b, "axes1", &[1], &[1]);
    node(&mut b, "Unsqueeze", &["rows", "axes1"], "tokens", vec![]);
    constant(&mut b, "minus_ones", &[2], &[-1, -1]);
    node(&mut b, "Concat", &["batch_1d", "minus_ones"], "expand_spec", vec![attr::int("axis", 0)]);
    constant(&mut b, "three", &[1], &[3]);
    let one = tensor::from_i64("one", &[1], &[1]);
    node(&mut b, "ConstantOfShape", &["three"], "ones", vec![attr::tensor("value", one)]);
    constant(&mut b, "neg", &[], &[-1]);
    node(&mut b, "Mul", &["ones", "neg"], "neg_ones", vec![]);
    node(&mut b, "Equal", &["expand_spec", "neg_ones"], "is_minus_one", vec![]);
    node(&mut b, "Where", &["is_minus_one", "ones", "expand_spec"], "expand_shape", vec![]);
    node(&mut b, "Expand", &["cls_token", "expand_shape"], "cls", vec![]);
    node(&mut b, "Concat", &["cls", "tokens"], "joined", vec![attr::int("axis", 1)]);
    constant(&mut b, "first", &[], &[1]);
    node(&mut b, "Gather", &["joined", "first"], "picked", vec![attr::int("axis", 1)]);
    // * size(-1) ** -0.5, the size a float from the shape
    constant(&mut b, "last", &[1], &[-1]);
    node(&mut b, "Gather", &["shape", "last"], "width", vec![attr::int("axis", 0)]);
    node(&mut b, "Cast", &["width"], "width_f", vec![attr::int("to", DataType::Float as i64)]);
    node(&mut b, "Div", &["picked", "width_f"], "scaled", vec![]);
    node(&mut b, "Gemm", &["scaled", "fc.weight"], "logits", vec![attr::int("transB", 1)]);
    b.output("logits", Elem::F32, &[Batch, Fixed(10)]);
    b.into_model("torch_jit", 13, "shape computations as torch.onnx.export writes them")
}

fn images(dims: &[usize], seed: u64) -> ArrayD<f32> {
    uniform(dims, seed).mapv(|v| 0.5 + 0.5 * v)
}

fn labels(batch: usize) -> Value {
    Value::I64(ArrayD::from_shape_fn(IxDyn(&[batch]), |i| (3 * i[0] as i64 + 1) % 10))
}

#[test]
fn shape_computations_are_folded_and_carry_no_gradient() {
    let model = exporter_shapes();
    grad::validate(&model).expect("valid");
    let backward = grad::export(&model, &Objective::Xent).expect("exported");
    for batch in [1, 3] {
        let feeds =
            [("x".to_string(), Value::F32(images(&[batch, 3, 4, 4], 7))), (names::TARGET.into(), labels(batch))];
        let report = check::against_finite_differences(&backward, &feeds, &["x".to_string()], 40).expect("checked");
        println!("batch {batch}: {report:?}");
        assert!(report.worst <= TOLERANCE && report.largest > 0.0, "batch {batch}: {report:?}");
    }
    // The shape computations stay in the graph and run in ONNX Runtime, so
    // their N is the batch's; only the forward nodes read them, no gradient rule.
    let integers = ["shape", "batch", "batch_1d", "view_shape", "expand_spec", "expand_shape", "width"];
    let readers = |m: &ModelProto| {
        let graph = advx::onnx::graph(m);
        graph.node.iter().filter(|n| n.input.iter().any(|i| integers.contains(&i.as_str()))).count()
    };
    assert_eq!(readers(&backward), readers(&model));
}

#[test]
fn a_shape_that_mixes_the_batch_with_other_dimensions_is_an_error_naming_the_node() {
    // x.view(x.size(0) * 2, -1): N * 2 is no dimension advx can write down.
    let mut model = exporter_shapes();
    let g = model.graph.as_mut().expect("graph");
    let at = g.node.iter().position(|n| n.output[0] == "batch_1d").expect("unsqueeze");
    g.node[at].output[0] = "batch_1d_once".into();
    let two = tensor::from_i64("two", &[1], &[2]);
    let mul = NodeProto {
        name: Some("/double/Mul".into()),
        op_type: Some("Mul".into()),
        input: vec!["batch_1d_once".into(), "two".into()],
        output: vec!["batch_1d".into()],
        ..Default::default()
    };
    g.initializer.push(two);
    g.node.insert(at + 1, mul);
    let err = format!("{:#}", grad::validate(&model).unwrap_err());
    assert!(err.contains("Reshape node '/rows/Reshape'") && err.contains("cannot compute before run time"), "{err}");
}

#[test]
fn a_shape_cast_like_another_tensor_is_folded() {
    // The dynamo exporter's CastLike (opset 15) between the Concat of
    // x.view(x.size(0), -1) and its Reshape: the shape must fold through it.
    let mut model = exporter_shapes();
    model.opset_import[0].version = Some(15);
    let g = model.graph.as_mut().expect("graph");
    let at = g.node.iter().position(|n| n.output[0] == "view_shape").expect("concat");
    g.node[at].output[0] = "view_shape_any".into();
    let like = NodeProto {
        name: Some("/view_shape/CastLike".into()),
        op_type: Some("CastLike".into()),
        input: vec!["view_shape_any".into(), "shape".into()],
        output: vec!["view_shape".into()],
        ..Default::default()
    };
    g.node.insert(at + 1, like);
    let backward = grad::export(&model, &Objective::Xent).unwrap_or_else(|e| panic!("{e:#}"));
    let feeds = [("x".to_string(), Value::F32(images(&[2, 3, 4, 4], 8))), (names::TARGET.into(), labels(2))];
    let report = check::against_finite_differences(&backward, &feeds, &["x".to_string()], 40).expect("checked");
    assert!(report.worst <= TOLERANCE && report.largest > 0.0, "{report:?}");
}

// ------------------------------------------------- the fixtures

/// Every fixture of models/fixtures: `dynamo_<name>` is `<name>` (the same
/// weights, the same reference) exported by the dynamo exporter, and
/// `dynamo_raw_<name>` with its optimizer off.
const FIXTURES: [&str; 26] = [
    "alexnet",
    "convnext",
    "densenet",
    "dynamo_densenet",
    "dynamo_efficientnet",
    "dynamo_mlp_flat",
    "dynamo_mobilenet_v3",
    "dynamo_raw_residual_cnn",
    "dynamo_raw_vit",
    "dynamo_residual_cnn",
    "dynamo_resnet18",
    "dynamo_shufflenet",
    "dynamo_vit",
    "efficientnet",
    "fixed_batch",
    "keras_nhwc",
    "mlp_flat",
    "mobilenet_v2",
    "mobilenet_v3",
    "residual_cnn",
    "resnet18",
    "shufflenet",
    "squeezenet",
    "vgg",
    "vit",
    "vit_opset17",
];

/// Random directions the input gradient is checked along, besides its own.
const DIRECTIONS: usize = 3;

/// The directional differences' step, a unit direction's length: moving
/// each pixel by about 2e-5, it changes the loss by some 1e-3 of itself.
const STEP: f32 = 1e-3;

/// Largest error accepted against the float64 reference, relative to the
/// reference's largest entry: what float32 rounding leaves.
const REFERENCE_TOLERANCE: f32 = 1e-4;

/// The label the references' cross-entropy is taken against (LABEL in make_fixtures.py).
const LABEL: i64 = 3;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures")
}

fn fixture(name: &str) -> ModelProto {
    advx::onnx::load(root().join(format!("{name}.onnx"))).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// The fixture's input name, its reference input (its batch, or one image)
/// and PyTorch's float64 gradient of the summed cross-entropy against LABEL.
struct Reference {
    input: String,
    x: ArrayD<f32>,
    gradient: ArrayD<f32>,
}

fn reference(name: &str, model: &ModelProto) -> Reference {
    let input = &advx::onnx::graph(model).input[0];
    let (_, shape) = advx::onnx::shape::of_value_info(input).expect("a shaped input");
    let dims: Vec<usize> = shape.iter().map(|d| d.fixed().unwrap_or(1)).collect();
    let bytes = std::fs::read(root().join(format!("reference/{name}.bin"))).expect("a reference");
    let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    let n: usize = dims.iter().product();
    assert_eq!(values.len(), 2 * n, "{name}: the reference holds an input {dims:?} and its gradient");
    let array = |v: &[f32]| ArrayD::from_shape_vec(IxDyn(&dims), v.to_vec()).expect("sized");
    Reference { input: input.name().to_string(), x: array(&values[..n]), gradient: array(&values[n..]) }
}

fn targets(batch: usize) -> Value {
    Value::I64(ArrayD::from_elem(IxDyn(&[batch]), LABEL))
}

#[test]
fn the_fixture_folder_holds_exactly_these_models() {
    let mut found: Vec<String> = std::fs::read_dir(root())
        .expect("models/fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| p.file_stem().expect("a name").to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, FIXTURES);
}

/// Each dynamo export, optimized or raw, is its TorchScript twin written
/// again: the same reference file, and the same scores from ONNX Runtime
/// on its input.
#[test]
fn every_dynamo_fixture_computes_what_its_torchscript_twin_does() {
    let scores = |name: &str, r: &Reference| -> ArrayD<f32> {
        let model = fixture(name);
        let mut session = advx::runtime::Runtime::get()
            .and_then(|rt| rt.load_proto(&model, name, advx::runtime::Device::Cpu))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let output = advx::onnx::graph(&model).output[0].name().to_string();
        let feeds = [(r.input.as_str(), advx::runtime::Feed::F32(r.x.view()))];
        session.run(&feeds).and_then(|mut o| o.take(&output)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
    };
    let dynamo = FIXTURES.iter().filter_map(|f| Some((*f, f.strip_prefix("dynamo_")?)));
    let twins: Vec<(&str, &str)> = dynamo.map(|(f, t)| (f, t.strip_prefix("raw_").unwrap_or(t))).collect();
    assert!(twins.len() >= 6, "dynamo fixtures: {twins:?}");
    for (name, twin) in twins {
        let (r, twin_r) = (reference(name, &fixture(name)), reference(twin, &fixture(twin)));
        assert!(r.x == twin_r.x && r.gradient == twin_r.gradient, "{name}: another reference than {twin}'s");
        let (a, b) = (scores(name, &r), scores(twin, &r));
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(a.shape() == b.shape() && scale > 0.0 && worst <= 1e-5 * scale, "{name}: {a} against {b}");
    }
}

/// The input gradient of the xent backward graph, run by ONNX Runtime in
/// float32, against PyTorch's float64 autograd, and along directions
/// against central differences of the graph's own loss.
#[test]
fn every_fixture_validates_and_its_input_gradient_is_right() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        let model = fixture(name);
        if let Err(e) = grad::validate(&model) {
            failures.push(format!("{name}: invalid: {e:#}"));
            continue;
        }
        let backward = match grad::export(&model, &Objective::Xent) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        let r = reference(name, &model);
        let batch = r.x.shape()[0];
        let feeds = [(r.input.clone(), Value::F32(r.x.clone())), (names::TARGET.into(), targets(batch))];
        match against_reference(&backward, &feeds, &r) {
            Ok(worst) if worst <= REFERENCE_TOLERANCE => print!("{name:<20} against float64 {worst:.1e}"),
            Ok(worst) => failures.push(format!("{name}: {worst:.2e} from the float64 reference")),
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
        match check::directional(&backward, &feeds, &r.input, DIRECTIONS, STEP) {
            Ok(d) if d.worst <= TOLERANCE && d.largest > 0.0 => {
                println!(", along {} directions {:.1e}", d.checked, d.worst)
            }
            Ok(d) => failures.push(format!("{name}: along directions {d:?}")),
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every backward graph a fixture gets (the attack's xent, training's
/// gradients for every weight, a direction on the scores as unit analysis
/// asks) passes onnx.checker's full check and loads in ONNX Runtime.
#[test]
fn every_fixture_backward_graph_passes_onnx_checker_full_check() {
    let Some(python) = onnx_tools::python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut paths, mut written) = (Vec::new(), Vec::new());
    for name in FIXTURES {
        let model = fixture(name);
        let scores = grad::class_scores(&model).expect("class scores");
        for objective in [Objective::Xent, Objective::Train, Objective::Direction(scores)] {
            let backward = grad::export(&model, &objective).unwrap_or_else(|e| panic!("{name} {objective}: {e:#}"));
            let path = dir.path().join(format!("{name}.{}.onnx", paths.len()));
            advx::onnx::save(&backward, &path).expect("saved");
            paths.push((path, onnx_tools::Check::Strict));
            written.push(format!("{name} {objective}"));
        }
    }
    let verdicts = onnx_tools::verdicts(&python, &paths);
    let rejected: Vec<String> =
        written.iter().zip(&verdicts).filter(|(_, v)| *v != "ok").map(|(w, v)| format!("{w}: {v}")).collect();
    assert!(rejected.is_empty(), "rejected backward graphs:\n{}", rejected.join("\n"));
}

/// The largest difference from the reference gradient, relative to its largest entry.
fn against_reference(backward: &ModelProto, feeds: &[(String, Value)], r: &Reference) -> anyhow::Result<f32> {
    let mut session =
        advx::runtime::Runtime::get()?.load_proto(backward, "fixture backward graph", advx::runtime::Device::Cpu)?;
    let views: Vec<(&str, advx::runtime::Feed)> = feeds
        .iter()
        .map(|(n, v)| match v {
            Value::F32(a) => (n.as_str(), advx::runtime::Feed::F32(a.view())),
            Value::I64(a) => (n.as_str(), advx::runtime::Feed::I64(a.view())),
        })
        .collect();
    let g = session.run(&views)?.take(&names::grad(&r.input))?;
    anyhow::ensure!(g.shape() == r.gradient.shape(), "gradient of shape {:?}", g.shape());
    let scale = r.gradient.iter().fold(0f32, |m, v| m.max(v.abs()));
    anyhow::ensure!(scale > 0.0, "the reference gradient is zero");
    Ok(g.iter().zip(&r.gradient).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale)
}

/// Each fixture as a researcher runs it: loaded by a script, given images
/// of its shape (pixels in [0, 1], NCHW whatever its input takes),
/// evaluated and attacked, with adversarial images that stay pictures.
/// Every attack finds its examples but on SqueezeNet, whose final ReLU
/// holds most of its random network's classes at exactly 0, out of reach.
#[test]
fn every_fixture_evaluates_and_is_attacked_in_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in FIXTURES {
        let (c, h) = if name.ends_with("mlp_flat") { (1, 28) } else { (3, 32) };
        let images = ndarray::Array4::from_shape_fn((2, c, h, h), |(n, c, y, x)| {
            ((n * 13 + c * 5 + y * 7 + x * 3) % 31) as f32 / 30.0
        });
        let data = dir.path().join(format!("{name}.npz"));
        advx::data::numpy::save(&data, images.view(), Some(&[0, 1]), None).unwrap();
        let script = format!(
            "model m = onnx \"{}\"\nlet x = numpy \"{}\"\nlet e = evaluate m on x\nlet a = lbfgs m on x {{ lagrangian: 50 }}",
            root().join(format!("{name}.onnx")).display(),
            data.display()
        );
        let mut s = advx::session::Session::new().unwrap().with_device(advx::runtime::Device::Cpu);
        if let Err(e) = s.run(&script) {
            failures.push(format!("{name}: {}", e.render(false)));
            continue;
        }
        let Some(advx::session::Value::Object(attack)) = s.get("a") else { panic!("{name}: an attack") };
        let field = |f: &str| attack.field(f).unwrap_or_else(|| panic!("{name}: no {f}"));
        let advx::session::Value::Number(rate) = field("success_rate") else { panic!("{name}: a rate") };
        let advx::session::Value::Images(found) = field("images") else { panic!("{name}: images") };
        let advx::session::Value::List(attacked) = field("attacked") else { panic!("{name}: attacked") };
        let reachable = name != "squeezenet";
        if attacked.len() != 2 || (reachable && rate == 0.0) || !found.images.iter().all(|v| (0.0..=1.0).contains(v)) {
            failures.push(format!("{name}: {} attacked, success rate {rate}, or pixels out of [0, 1]", attacked.len()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
