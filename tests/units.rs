//! Unit analysis (Section 3 of the paper): the top images of a direction,
//! the coherence numbers, the directions, the gradient ascent, and both
//! operations through the language. Needs MNIST (ADVX_DATA).

use std::path::Path;

use advx::data::{self, Split};
use advx::onnx::{self, tensor};
use advx::runtime::Device;
use advx::session::Session;
use advx::units::ascent::{Ascent, Options};
use advx::units::directions::{self, Family};
use advx::units::metrics::{self, Summary};
use advx::units::{self as analysis, Layer};
use ndarray::{Array2, Array4, ArrayView4, Axis, arr2, s};

const FC100: &str = "models/mnist/fc100-100-10.onnx";
/// The first hidden layer of FC100-100-10: sigmoid(W1 x + b1).
const H1: &str = "advx_sigmoid";
/// The second hidden layer.
const H2: &str = "advx_sigmoid_1";

fn test_images(n: usize) -> data::Dataset {
    data::load("mnist", Split::Test).unwrap().slice(0..n).unwrap()
}

fn phi(layer: &str, images: ArrayView4<f32>) -> Array2<f32> {
    let mut layer = Layer::open(Path::new(FC100), layer, "fc100", Device::Cpu).unwrap();
    layer.activations(images, 700, |_| Ok(())).unwrap()
}

/// The first hidden layer computed from the initializers, without ONNX
/// Runtime: sigmoid(x W^T + b), as the Gemm with transB = 1 does.
fn first_layer_by_hand(images: ArrayView4<f32>) -> Array2<f32> {
    let model = onnx::load(FC100).unwrap();
    let init = |name: &str| {
        let t = onnx::graph(&model).initializer.iter().find(|t| t.name() == name).unwrap();
        tensor::to_f32(t).unwrap()
    };
    let w = init("layer1.weight").into_dimensionality::<ndarray::Ix2>().unwrap();
    let b = init("layer1.bias").into_dimensionality::<ndarray::Ix1>().unwrap();
    let x = images.as_standard_layout().into_owned().into_shape_with_order((images.len_of(Axis(0)), 784)).unwrap();
    (x.dot(&w.t()) + &b).mapv(|z| 1.0 / (1.0 + (-z).exp()))
}

#[test]
fn natural_top_images_are_the_largest_activations() {
    let set = test_images(2000);
    let by_hand = first_layer_by_hand(set.images.view());
    let from_ort = phi(H1, set.images.view());
    assert_eq!(from_ort.dim(), (2000, 100));
    let gap = (&from_ort - &by_hand).iter().fold(0f32, |m, d| m.max(d.abs()));
    assert!(gap < 1e-4, "ORT and the hand computation differ by {gap}");

    let k = 8;
    let units = [0, 17, 63, 99];
    let ranked = analysis::rank(from_ort.view(), Some(&set.labels), &directions::natural(&units, 100), k).unwrap();
    for (r, &unit) in ranked.iter().zip(&units) {
        assert_eq!(r.direction.label(), format!("e_{unit}"));
        let column = by_hand.column(unit);
        let chosen: Vec<f32> = r.indices.iter().map(|&i| column[i]).collect();
        let mut rest: Vec<f32> = (0..column.len()).filter(|i| !r.indices.contains(i)).map(|i| column[i]).collect();
        rest.sort_by(|a, b| b.total_cmp(a));
        let weakest = chosen.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(weakest >= rest[0] - 1e-5, "unit {unit}: top-{k} minimum {weakest} < next best {}", rest[0]);
        assert!(r.scores.windows(2).all(|w| w[0] >= w[1]), "scores are sorted: {:?}", r.scores);
        let purity = metrics::purity(&r.indices.iter().map(|&i| set.labels[i]).collect::<Vec<_>>()).unwrap();
        assert_eq!(r.purity, Some(purity));
        assert!((0.0..=1.0).contains(&purity));
        assert!((-1.0..=1.0).contains(&r.similarity), "similarity {}", r.similarity);
    }
}

#[test]
fn coherence_of_a_hand_made_set() {
    // Four images in a 2-unit layer; unit 0 ranks images 0, 1 first
    // (parallel rows, both labelled 3), unit 1 ranks 3, 2 first
    // (orthogonal-ish rows, labels 5 and 1).
    let phi = arr2(&[[4.0f32, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 3.0]]);
    let labels = [3u32, 3, 1, 5];
    let ranked = analysis::rank(phi.view(), Some(&labels), &directions::natural(&[0, 1], 2), 2).unwrap();
    assert_eq!(ranked[0].indices, vec![0, 1]);
    assert_eq!(ranked[0].purity, Some(1.0));
    assert!((ranked[0].similarity - 1.0).abs() < 1e-9);
    assert_eq!(ranked[1].indices, vec![3, 2]);
    assert_eq!(ranked[1].purity, Some(0.5));
    let cosine = 3.0 / 10f64.sqrt();
    assert!((ranked[1].similarity - cosine).abs() < 1e-6, "{} vs {cosine}", ranked[1].similarity);
    assert!(analysis::rank(phi.view(), None, &directions::natural(&[0], 2), 2).unwrap()[0].purity.is_none());
    assert!(analysis::rank(phi.view(), None, &directions::natural(&[0], 2), 1).is_err(), "k = 1 has no pairs");
    assert!(analysis::rank(phi.view(), None, &directions::natural(&[0], 2), 5).is_err(), "k > N");

    let s = Summary::of(&[0.25, 0.5, 0.75, 1.0]).unwrap();
    assert_eq!((s.q25, s.median, s.q75), (0.4375, 0.625, 0.8125));
    let chance = analysis::chance(phi.view(), Some(&labels), 2, 50, 1).unwrap();
    assert_eq!(chance.purity.len(), 50);
    assert!(chance.purity.iter().all(|&p| p == 0.5 || p == 1.0));
}

#[test]
fn random_directions_are_unit_vectors_reproducible_by_seed() {
    let a = directions::random(20, 100, 42);
    let b = directions::random(20, 100, 42);
    let c = directions::random(20, 100, 43);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.family, Family::Random);
        assert_eq!(x.vector, y.vector, "same seed, same direction");
        let norm = x.vector.dot(&x.vector).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_ne!(a[0].vector, c[0].vector, "another seed, another direction");
    // Uniform on the sphere: independent draws are nearly orthogonal in 100-D.
    let cos = a[0].vector.dot(&a[1].vector);
    assert!(cos.abs() < 0.5, "cosine of two draws {cos}");
}

#[test]
fn a_wrong_layer_name_lists_the_candidates() {
    let err = Layer::open(Path::new(FC100), "h2", "fc100", Device::Cpu).err().unwrap().to_string();
    for name in [H1, H2, "advx_gemm"] {
        assert!(err.contains(name), "{err}");
    }
    assert!(err.contains("`h2`") && err.contains("Sigmoid"), "{err}");
    let err = Ascent::open(Path::new(FC100), "advx_sigmoid_2", "fc100", Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("did you mean"), "{err}");
}

#[test]
fn ascent_increases_the_objective_inside_the_box() {
    let mut climber = Ascent::open(Path::new(FC100), H2, "fc100", Device::Cpu).unwrap();
    assert_eq!(climber.width(), 100);
    let set = test_images(3);
    let noise = Array4::from_shape_fn((1, 1, 28, 28), |(_, _, i, j)| {
        0.5 + 0.1 * (((i * 31 + j * 17) % 11) as f32 / 11.0 - 0.5)
    });
    let starts = ndarray::concatenate(Axis(0), &[set.images.view(), noise.view()]).unwrap();
    let mut dirs = directions::natural(&[5, 50], 100);
    dirs.extend(directions::random(2, 100, 9));
    let rows = directions::matrix(&dirs, 100);
    let options = Options { steps: 40, step: 0.2 };
    let out = climber.ascend(starts.clone(), rows.view(), options, |_| Ok(())).unwrap();
    assert_eq!(out.trace.len(), 41);
    assert!(out.images.iter().all(|v| (0.0..=1.0).contains(v)), "pixels leave [0, 1]");
    for i in 0..4 {
        assert!(out.best[i] > out.initial[i] + 0.05, "direction {i}: {} -> {}", out.initial[i], out.best[i]);
    }
    // The reported objective is <phi(x), v> of the returned images.
    let phi = phi(H2, out.images.view());
    for i in 0..4 {
        let value = phi.row(i).dot(&rows.row(i));
        assert!((value - out.best[i]).abs() < 1e-4, "{value} vs {}", out.best[i]);
    }
    let first = climber.run(starts.slice(s![0..1, .., .., ..]), rows.slice(s![0..1, ..])).unwrap().0[0];
    assert!((first - out.initial[0]).abs() < 1e-6);
}

#[test]
fn units_and_visualize_through_the_language() {
    let mut session = Session::new().unwrap().with_device(Device::Cpu);
    let units = format!("units fc100 layer: \"{H2}\" on mnist.test[0..500] {{ natural: 4, random: 4, seed: 1 }}");
    let code = format!("model fc100 = onnx \"{FC100}\"\nlet u = {units}\nshow u");
    let outputs = session.run(&code).unwrap();
    let table =
        outputs.iter().find(|o| o.bundle.html.as_deref().is_some_and(|h| h.contains("<table"))).expect("a table");
    assert!(table.bundle.text.contains("natural") && table.bundle.text.contains("chance"), "{}", table.bundle.text);
    let json = table.bundle.json.as_ref().unwrap();
    assert_eq!(json["units"]["directions"].as_array().unwrap().len(), 8);
    let figures: Vec<_> = outputs.iter().filter_map(|o| o.bundle.png.as_ref()).collect();
    assert!(figures.len() >= 2, "the grid and the spread");
    std::fs::write("/tmp/advx-units-grid.png", figures[0]).unwrap();
    std::fs::write("/tmp/advx-units-purity.png", figures[1]).unwrap();

    session.run("let p = u.purity.natural.mean\nlet n = u.natural\nlet top = u.images").unwrap();
    match session.get("p") {
        Some(advx::session::Value::Number(p)) => assert!((0.0..=1.0).contains(p)),
        other => panic!("{other:?}"),
    }
    match session.get("top") {
        Some(advx::session::Value::Images(set)) => assert_eq!(set.len(), 8 * 8),
        other => panic!("{other:?}"),
    }

    session
        .run(&format!(
            "let v = units fc100 layer: \"{H1}\" on mnist.test[0..300] {{ natural: [3, 7], random: 2, top: 4 }}"
        ))
        .unwrap();
    let code = [
        "let d = v.directions",
        "let same = units fc100 layer: \"advx_sigmoid\" on mnist.test[0..300] { natural: 3..5, random: 0 }",
        "let r = same.directions",
    ];
    session.run(&code.join("\n")).unwrap();
    let texts = |name: &str| match session.get(name) {
        Some(advx::session::Value::List(items)) => items.iter().map(|v| v.summary()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(texts("d"), ["e_3", "e_7", "random 0", "random 1"]);
    assert_eq!(texts("r"), ["e_3", "e_4"]);

    let shown = session
        .run(&format!(
            "show visualize fc100 layer: \"{H2}\" {{ natural: 3, random: 3, from: mnist.test[0..3], steps: 20 }}"
        ))
        .unwrap();
    let png = shown.iter().find_map(|o| o.bundle.png.as_ref()).expect("a grid");
    std::fs::write("/tmp/advx-visualize-grid.png", png).unwrap();
}

#[test]
fn wrong_options_are_errors_that_say_why() {
    let mut session = Session::new().unwrap().with_device(Device::Cpu);
    session.run(&format!("model fc100 = onnx \"{FC100}\"")).unwrap();
    let fails = |session: &mut Session, code: &str| session.execute(code).error.expect(code).render(false);
    let err = fails(&mut session, "units fc100 layer: \"h2\" on mnist.test[0..50]");
    assert!(err.contains(H2), "{err}");
    let err = fails(&mut session, &format!("units fc100 layer: \"{H2}\" on mnist.test[0..50] {{ natural: 101 }}"));
    assert!(err.contains("100 units"), "{err}");
    let err = fails(&mut session, &format!("units fc100 layer: \"{H2}\" on mnist.test[0..50] {{ top: 1 }}"));
    assert!(err.contains("top"), "{err}");
}
