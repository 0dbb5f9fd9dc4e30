//! The generic gradient check over every rule of the derivatives table.

use advx::grad::check;
use advx::grad::ops::RULES;

/// Largest relative error accepted between the exported gradient and
/// central differences in f32.
const TOLERANCE: f32 = 1e-2;

#[test]
fn every_rule_matches_finite_differences() {
    let mut failures = Vec::new();
    for rule in RULES {
        let samples = (rule.samples)();
        // Ops of shape computations (Shape, Equal, Range) carry no gradient.
        assert_eq!(samples.is_empty(), !rule.signature.differentiable(), "rule {}'s gradient-check samples", rule.op);
        for (i, sample) in samples.iter().enumerate() {
            match check::check_sample(rule, sample) {
                Ok(r) if r.worst <= TOLERANCE && r.largest > 0.0 => {
                    println!(
                        "{:<20} sample {i}: {:>4} entries, worst relative error {:.2e}",
                        rule.op, r.checked, r.worst
                    )
                }
                Ok(r) => failures.push(format!("{} sample {i}: {r:?}", rule.op)),
                Err(e) => failures.push(format!("{} sample {i}: {e:#}", rule.op)),
            }
        }
    }
    assert!(failures.is_empty(), "gradient check failed:\n{}", failures.join("\n"));
}
