//! The attack against an exact answer: on softmax regression (FC10) the
//! smallest perturbation that makes the model say l is a convex quadratic
//! programme, solved here independently with Clarabel (an interior-point
//! solver), and `lbfgs` must land within 2% of its distortion for at
//! least 99% of the examples.

use advx::attack::search::{self, Options};
use advx::attack::target::Target;
use advx::attack::workers;
use advx::runtime::Device;
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus};
use ndarray::{Array2, Axis};

const EXAMPLES: usize = 200;
/// Distortions below this are zero for the comparison.
const SLACK: f64 = 1e-4;

/// W [10, 784] and b [10] of a single Gemm layer.
fn softmax_regression(path: &str) -> (Array2<f64>, Vec<f64>) {
    let model = advx::onnx::load(path).unwrap();
    let graph = advx::onnx::graph(&model);
    let find = |rank: usize| {
        let t = graph.initializer.iter().find(|t| t.dims.len() == rank).expect("a weight and a bias");
        advx::onnx::tensor::to_f32(t).unwrap().mapv(f64::from)
    };
    let w = find(2).into_dimensionality().unwrap();
    let b = find(1).iter().copied().collect();
    (w, b)
}

/// min |z - x|² s.t. (w_l - w_j)·z + b_l - b_j >= 0 for j != l, 0 <= z <= 1.
fn exact_distortion(w: &Array2<f64>, b: &[f64], x: &[f64], l: usize) -> f64 {
    let n = x.len();
    let others: Vec<usize> = (0..w.nrows()).filter(|&j| j != l).collect();
    let m = others.len() + 2 * n;
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for k in 0..n {
        for (row, &j) in others.iter().enumerate() {
            rowval.push(row);
            nzval.push(-(w[[l, k]] - w[[j, k]]));
        }
        rowval.extend([others.len() + k, others.len() + n + k]);
        nzval.extend([1.0, -1.0]);
        colptr.push(rowval.len());
    }
    let a = CscMatrix::new(m, n, colptr, rowval, nzval);
    let mut rhs: Vec<f64> = others.iter().map(|&j| b[l] - b[j]).collect();
    rhs.extend(std::iter::repeat_n(1.0, n));
    rhs.extend(std::iter::repeat_n(0.0, n));
    let mut p = CscMatrix::identity(n);
    p.nzval.iter_mut().for_each(|v| *v *= 2.0);
    let q: Vec<f64> = x.iter().map(|v| -2.0 * v).collect();
    let settings = DefaultSettingsBuilder::default().verbose(false).build().unwrap();
    let mut solver = DefaultSolver::new(&p, &q, &a, &rhs, &[NonnegativeConeT(m)], settings).unwrap();
    solver.solve();
    assert_eq!(solver.solution.status, SolverStatus::Solved);
    search::distortion(&solver.solution.x, x)
}

#[test]
fn lbfgs_finds_the_exact_minimum_on_softmax_regression() {
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..EXAMPLES).unwrap();
    for name in ["fc10-1e-4", "fc10-1e-2", "fc10-1"] {
        let path = format!("models/mnist/{name}.onnx");
        let (w, b) = softmax_regression(&path);
        let backward = format!("models/mnist/backward/{name}.xent.onnx");
        let mut workers = workers::workers(path.as_ref(), backward.as_ref(), Device::Cpu).unwrap();
        let options = Options { target: Target::Random { seed: 7 }, ..Options::default() };
        let found = search::attack(&mut workers, set.images.view(), &set.labels, &options, |_| Ok(()))
            .unwrap()
            .complete()
            .unwrap();
        let mut within = 0;
        let mut worst: f64 = 0.0;
        for (i, f) in found.iter().enumerate() {
            assert!(f.success, "{name} example {i} failed");
            let x: Vec<f64> = set.images.index_axis(Axis(0), i).iter().map(|&v| v as f64).collect();
            let exact = exact_distortion(&w, &b, &x, f.target.unwrap());
            // Interior-point answers carry about 1e-6 of slack: below
            // SLACK (an example the model already labels l) both are zero.
            assert!(
                f.distortion > exact * (1.0 - 1e-3) - SLACK,
                "{name} example {i}: {} beats the optimum {exact}",
                f.distortion
            );
            let ratio = (f.distortion + SLACK) / (exact + SLACK);
            worst = worst.max(ratio);
            within += usize::from(ratio <= 1.02);
        }
        println!("{name}: {within}/{EXAMPLES} within 2% of the exact minimum, worst ratio {worst:.4}");
        assert!(within * 100 >= EXAMPLES * 99, "{name}: only {within}/{EXAMPLES} within 2% of the exact minimum");
        assert!(worst < 2.0, "{name}: an example's distortion is {worst:.2} times the minimum");
    }
}

/// A random target depends on the seed and the example's index only: the
/// same examples in batches of any size get the same targets, never their
/// own label, and a different seed changes them.
#[test]
fn random_targets_do_not_depend_on_the_batch() {
    let n = 200;
    let labels: Vec<advx::data::Label> = (0..n).map(|i| (i * 7 % 10) as advx::data::Label).collect();
    let scores = Array2::<f32>::zeros((n, 10));
    let choose = |seed: u64, batch: usize| -> Vec<Option<usize>> {
        let target = Target::Random { seed };
        labels
            .chunks(batch)
            .enumerate()
            .flat_map(|(k, chunk)| {
                let rows = scores.slice(ndarray::s![k * batch..k * batch + chunk.len(), ..]).to_owned();
                target.choose(chunk, &rows, k * batch).expect("ten classes")
            })
            .collect()
    };
    let whole = choose(3, n);
    for batch in [1, 7, 100] {
        assert_eq!(choose(3, batch), whole, "batch {batch}");
    }
    for (label, target) in labels.iter().zip(&whole) {
        assert_ne!(target.expect("a random target for every example"), *label as usize);
    }
    let drawn: std::collections::HashSet<_> = whole.iter().flatten().collect();
    assert_eq!(drawn.len(), 10, "every class is some example's target");
    assert_ne!(choose(4, n), whole, "another seed, other targets");
}

/// Two workers side by side give what one gives, batch for batch; an error
/// from the progress callback stops the attack and is returned.
#[test]
fn the_attack_does_not_depend_on_how_many_workers_run_it() {
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..12).unwrap();
    let (model, backward) = ("models/mnist/fc100-100-10.onnx", "models/mnist/backward/fc100-100-10.xent.onnx");
    let load = || workers::Worker::load(model.as_ref(), backward.as_ref(), Device::Cpu, 1).unwrap();
    let options = Options { batch: 5, steps: 4, ..Options::default() };
    let run = |workers: &mut [workers::Worker]| {
        let mut reported = Vec::new();
        let found = search::attack(workers, set.images.view(), &set.labels, &options, |done| {
            reported.push(done);
            Ok(())
        })
        .unwrap()
        .complete()
        .unwrap();
        // Running totals in the order batches finish, which two workers may change.
        let mut sizes: Vec<usize> =
            reported.iter().scan(0, |done, &now| Some(now - std::mem::replace(done, now))).collect();
        sizes.sort();
        assert_eq!(sizes, [2, 5, 5], "progress after each batch: {reported:?}");
        found
    };
    let alone = run(&mut [load()]);
    let side_by_side = run(&mut [load(), load()]);
    assert_eq!(alone.len(), 12);
    for (i, (a, b)) in alone.iter().zip(&side_by_side).enumerate() {
        assert_eq!((a.target, a.success, a.iterations), (b.target, b.success, b.iterations), "example {i}");
        assert_eq!(a.image, b.image, "example {i}");
    }
    let stopped = search::attack(&mut [load(), load()], set.images.view(), &set.labels, &options, |_| {
        anyhow::bail!("interrupted")
    });
    assert_eq!(stopped.unwrap_err().to_string(), "interrupted");
}

#[test]
fn the_attack_does_not_depend_on_how_many_threads_share_a_batch() {
    // 20 rows of 784 pixels are enough for the per-round passes to split
    // (advx::parallel), here into parts of 7, 7 and 6 examples.
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..20).unwrap();
    let (model, backward) = ("models/mnist/fc100-100-10.onnx", "models/mnist/backward/fc100-100-10.xent.onnx");
    let options = Options { batch: 20, steps: 2, ..Options::default() };
    let run = |threads| {
        let mut worker = workers::Worker::load(model.as_ref(), backward.as_ref(), Device::Cpu, threads).unwrap();
        let attacked =
            search::attack(std::slice::from_mut(&mut worker), set.images.view(), &set.labels, &options, |_| Ok(()));
        attacked.unwrap().complete().unwrap()
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one.len(), 20);
    for (i, (a, b)) in one.iter().zip(&three).enumerate() {
        assert_eq!((a.target, a.success, a.iterations), (b.target, b.success, b.iterations), "example {i}");
        assert_eq!(a.image, b.image, "example {i}");
    }
}

#[test]
fn a_backward_graph_that_loses_the_batch_is_named() {
    use advx::onnx::builder::{Elem, GraphBuilder, attr};
    use advx::onnx::shape::Dim::{Batch, Fixed};
    // loss: one sum over the whole batch, [1], where the attack needs [N].
    let mut b = GraphBuilder::new();
    b.input("input", Elem::F32, &[Batch, Fixed(1), Fixed(28), Fixed(28)]);
    b.input("target", Elem::I64, &[Batch]);
    let sum = b.op("ReduceSum", &["input"], vec![attr::int("keepdims", 0)]);
    let one = b.const_i64("one", &[1]);
    let loss = b.op("Reshape", &[&sum, &one], vec![]);
    b.push(advx::onnx::NodeProto {
        op_type: Some("Identity".into()),
        input: vec![loss],
        output: vec!["loss".into()],
        ..Default::default()
    });
    b.push(advx::onnx::NodeProto {
        op_type: Some("Identity".into()),
        input: vec!["input".into()],
        output: vec!["grad.input".into()],
        ..Default::default()
    });
    b.output("loss", Elem::F32, &[Fixed(1)]);
    b.output("grad.input", Elem::F32, &[Batch, Fixed(1), Fixed(28), Fixed(28)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summed.xent.onnx");
    advx::onnx::save(&b.into_model("summed", 17, "a loss summed over the batch"), &path).unwrap();

    let mut xent = advx::attack::gradient::CrossEntropy::load(&path, Device::Cpu, 1).unwrap();
    let images = ndarray::Array4::<f32>::zeros((3, 1, 28, 28));
    let err = xent.run(images.view(), &[1, 2, 3], |_, _| Ok(())).unwrap_err().to_string();
    assert!(err.contains("summed.xent.onnx gave 1 losses") && err.contains("for 3 images"), "{err}");
}

/// c is searched in log space from the top of its range down: a range that
/// is not finite, positive and increasing would search nothing or NaN.
#[test]
fn a_range_of_c_that_is_not_finite_positive_and_increasing_is_refused() {
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..2).unwrap();
    let (model, backward) = ("models/mnist/fc10-1e-4.onnx", "models/mnist/backward/fc10-1e-4.xent.onnx");
    let mut worker = workers::Worker::load(model.as_ref(), backward.as_ref(), Device::Cpu, 1).unwrap();
    for (c_min, c_max) in
        [(f64::NAN, 1.0), (1.0, f64::NAN), (0.0, 1.0), (-1.0, 1.0), (2.0, 1.0), (1.0, 1.0), (1.0, f64::INFINITY)]
    {
        let options = Options { c_min, c_max, steps: 2, ..Options::default() };
        let result =
            search::attack(std::slice::from_mut(&mut worker), set.images.view(), &set.labels, &options, |_| Ok(()));
        let error = result.expect_err(&format!("c in {c_min}..{c_max}")).to_string();
        assert!(error.contains("the range of c must be finite, positive and increasing"), "{error}");
    }
}

/// On the conv net the default start, the augmented Lagrangian, must find
/// smaller perturbations than the search over c followed by the same
/// refinement, for fewer gradient evaluations, each answer on the
/// boundary; and `refine: false` must still be the search alone.
#[test]
fn the_lagrangian_start_beats_the_search_on_the_conv_net() {
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..8).unwrap();
    let (model, backward) = ("models/mnist/cnn.onnx", "models/mnist/backward/cnn.xent.onnx");
    let mut workers = [workers::Worker::load(model.as_ref(), backward.as_ref(), Device::Cpu, 2).unwrap()];
    let mut attack = |options: Options| {
        let options = Options { batch: 8, ..options };
        search::attack(&mut workers, set.images.view(), &set.labels, &options, |_| Ok(())).unwrap().complete().unwrap()
    };
    let lagrangian = attack(Options::default());
    let searched = attack(Options { lagrangian: 0, ..Options::default() });
    let plain = attack(Options { refine: false, ..Options::default() });
    let mean = |found: &[search::Found], f: fn(&search::Found) -> f64| found.iter().map(f).sum::<f64>() / 8.0;
    assert!(lagrangian.iter().chain(&searched).chain(&plain).all(|f| f.success), "every attack succeeds");
    let (d, d_searched) = (mean(&lagrangian, |f| f.distortion), mean(&searched, |f| f.distortion));
    assert!(d < 0.99 * d_searched, "mean distortion {d} from the Lagrangian, {d_searched} from the search");
    let evaluations = |found: &[search::Found]| mean(found, |f| f.evaluations as f64);
    assert!(evaluations(&lagrangian) < evaluations(&searched), "fewer evaluations");
    assert!(lagrangian.iter().all(|f| f.c.is_none()) && plain.iter().all(|f| f.c.is_some()), "only the search has a c");
    let classifier = &mut workers[0].classifier;
    for (found, i) in lagrangian.iter().zip(0..) {
        let original: Vec<f32> = set.images.index_axis(Axis(0), i).iter().copied().collect();
        let back: Vec<f32> = found.image.iter().zip(&original).map(|(a, o)| a - 1e-3 * (a - o)).collect();
        assert_eq!(predict(classifier, found.image.clone()), found.target.unwrap(), "example {i} says the target");
        assert_ne!(predict(classifier, back), found.target.unwrap(), "example {i} is on the boundary");
    }
}

/// The class the conv net gives one MNIST image.
fn predict(classifier: &mut advx::classifier::Classifier, pixels: Vec<f32>) -> usize {
    let image = ndarray::Array4::from_shape_vec([1, 1, 28, 28], pixels).unwrap();
    advx::classifier::argmax(classifier.scores(image.view()).unwrap().row(0).iter().copied())
}

/// On the conv net, where the refinement's linearisation holds only near
/// its point, the walk along the boundary must lower the distortion of
/// most examples and never raise one, and every answer must lie on the
/// boundary: the model says the target there, and the original's side a
/// thousandth of the way back towards the original.
#[test]
fn the_walk_along_the_boundary_lowers_the_conv_nets_distortions() {
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..6).unwrap();
    let (model, backward) = ("models/mnist/cnn.onnx", "models/mnist/backward/cnn.xent.onnx");
    let mut workers = [workers::Worker::load(model.as_ref(), backward.as_ref(), Device::Cpu, 2).unwrap()];
    let attack = |workers: &mut [workers::Worker], walk: usize| {
        let options = Options { batch: 6, steps: 4, walk, lagrangian: 0, ..Options::default() };
        search::attack(workers, set.images.view(), &set.labels, &options, |_| Ok(())).unwrap().complete().unwrap()
    };
    let (plain, walked) = (attack(&mut workers, 0), attack(&mut workers, 40));
    let mut lowered = 0;
    for (i, (p, w)) in plain.iter().zip(&walked).enumerate() {
        assert!(p.success && w.success, "example {i}");
        assert!(w.distortion <= p.distortion, "example {i}: {} after the walk, {} before", w.distortion, p.distortion);
        assert_eq!(w.evaluations, p.evaluations + 40, "example {i}: one evaluation per step");
        lowered += usize::from(w.distortion < 0.998 * p.distortion);
    }
    assert!(lowered >= 4, "the walk lowered {lowered} of 6 distortions by 0.2% or more");
    let classifier = &mut workers[0].classifier;
    let original: Vec<f32> = set.images.index_axis(Axis(0), 0).iter().copied().collect();
    let answer = &walked[0];
    let back: Vec<f32> = answer.image.iter().zip(&original).map(|(a, o)| a - 1e-3 * (a - o)).collect();
    assert_eq!(predict(classifier, answer.image.clone()), answer.target.unwrap(), "the answer says the target");
    assert_ne!(predict(classifier, back), answer.target.unwrap(), "the answer is not deep inside the region");
}
