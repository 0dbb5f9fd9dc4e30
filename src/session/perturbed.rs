//! Perturbed copies of images with their measured distortion: Gaussian
//! noise, magnified adversarial perturbations. Rows of a transfer table.

use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use super::output::MimeBundle;
use super::value::{ImageSet, Object, Shown, Value, format_number};

pub struct Perturbed {
    /// How the set was made ("Gaussian noise, stddev 0.1").
    pub label: String,
    pub images: Arc<ImageSet>,
    /// sqrt(Σ r² / n) of each image against its original.
    pub distortion: Vec<f64>,
}

impl Perturbed {
    pub fn mean_distortion(&self) -> f64 {
        self.distortion.iter().sum::<f64>() / self.distortion.len().max(1) as f64
    }
}

impl Object for Perturbed {
    fn kind(&self) -> &'static str {
        "a perturbed image set"
    }

    fn field_names(&self) -> Vec<String> {
        ["images", "distortion", "mean_distortion", "label"].map(String::from).to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "images" => Value::Images(self.images.clone()),
            "distortion" => Value::List(self.distortion.iter().map(|&d| Value::Number(d)).collect()),
            "mean_distortion" => Value::Number(self.mean_distortion()),
            "label" => Value::Str(self.label.clone()),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let text = format!(
            "{}: {} images, av. distortion {}",
            self.label,
            self.images.len(),
            format_number(self.mean_distortion())
        );
        let mut shown = vec![Shown::text(MimeBundle { text, json: Some(self.to_json()), ..Default::default() })];
        shown.extend(super::show::show(&Value::Images(self.images.clone()))?.into_iter().skip(1));
        Ok(shown)
    }

    fn to_json(&self) -> serde_json::Value {
        use super::value::Recorded;
        json!({ "perturbed": { "label": self.label, "images": self.images.len(),
                               "mean_distortion": self.mean_distortion().recorded(),
                               "distortion": self.distortion.recorded() } })
    }

    fn images(&self) -> Option<Arc<ImageSet>> {
        Some(self.images.clone())
    }
}

/// sqrt(Σ (a - b)² / n) per image of two equally shaped sets.
pub fn distortions(a: &ImageSet, b: &ImageSet) -> Vec<f64> {
    use ndarray::Axis;
    a.images
        .axis_iter(Axis(0))
        .zip(b.images.axis_iter(Axis(0)))
        .map(|(x, y)| {
            let n = x.len().max(1) as f64;
            (x.iter().zip(y.iter()).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>() / n).sqrt()
        })
        .collect()
}
