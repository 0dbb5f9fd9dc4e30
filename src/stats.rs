//! The summary statistics the reports share, one definition each so that
//! a table's median and its YAML's agree.

/// Mean of a list, NaN when empty.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// The `q`-quantile of sorted values, interpolating linearly between the
/// two nearest ranks (R's and numpy's default); NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo as f64)
}

/// Median of a list in any order, NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        assert_eq!(quantile(&sorted, 0.75), 5.0);
        assert_eq!(quantile(&sorted, 1.0), 8.0);
        assert_eq!(median(&[8.0, 1.0, 4.0]), 4.0);
        assert_eq!(mean(&sorted), 3.75);
        assert!(mean(&[]).is_nan() && median(&[]).is_nan());
    }
}
