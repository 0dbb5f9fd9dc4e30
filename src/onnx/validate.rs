//! The checks of a model that need no shapes: the opsets it imports, that
//! every name is defined once, and that attributes are well formed.
//!
//! ONNX Runtime and onnx.checker reject models that break these rules; advx
//! checks them before it differentiates a model (`grad::validate`, which
//! then infers every shape), so that the error names the culprit instead of
//! a backward graph failing to load later.

use std::collections::HashSet;

use anyhow::{Result, bail};

use super::proto::attribute_proto::AttributeType;
use super::{AttributeProto, ModelProto, graph};

/// The first opset advx differentiates; earlier ones coerce Softmax inputs to 2-D.
pub const MIN_OPSET: i64 = 13;

/// The last opset advx differentiates: the newest ONNX Runtime 1.32 loads.
/// No op advx has a rule for, nor any op its backward graphs use, changed
/// meaning between 13 and 28 (later versions only add element types), but
/// for ReduceMean's axes (an input from 18) and AveragePool's dilations
/// (from 19), which the rules read either way.
pub const MAX_OPSET: i64 = 28;

/// The other domains ONNX Runtime 1.32 knows, and the last opset of each it
/// runs (it refuses models that import later ones, used or not).
const OTHER_DOMAINS: [(&str, i64); 4] =
    [("ai.onnx.ml", 5), ("ai.onnx.training", 1), ("ai.onnx.preview.training", 1), ("com.microsoft", 1)];

/// The IR versions ONNX Runtime 1.32 loads (and onnx.checker 1.23 checks;
/// before 3 a model could not import opsets).
const IR_VERSIONS: std::ops::RangeInclusive<i64> = 3..=14;

/// Checks the IR version, the opsets and the names of a model and returns
/// the version of the default ONNX domain it uses.
pub fn structure(model: &ModelProto) -> Result<i64> {
    match model.ir_version {
        Some(v) if IR_VERSIONS.contains(&v) => {}
        Some(v) => bail!(
            "the model has IR version {v}; ONNX Runtime 1.32 reads {} to {}",
            IR_VERSIONS.start(),
            IR_VERSIONS.end()
        ),
        None => bail!("the model has no IR version"),
    }
    let opset = opset(model)?;
    names(model)?;
    Ok(opset)
}

/// The default domain's opset, checked to be imported once, within the
/// range advx supports.
fn opset(model: &ModelProto) -> Result<i64> {
    let mut seen: Vec<(&str, Option<i64>)> = Vec::new();
    for import in &model.opset_import {
        let domain = match import.domain() {
            "ai.onnx" => "",
            d => d,
        };
        if let Some((_, earlier)) = seen.iter().find(|(d, _)| *d == domain) {
            bail!(
                "the model imports {} twice (opsets {} and {})",
                domain_name(domain),
                show(*earlier),
                show(import.version)
            );
        }
        seen.push((domain, import.version));
    }
    for &(domain, version) in &seen {
        if let Some((_, last)) = OTHER_DOMAINS.iter().find(|(d, _)| *d == domain)
            && !version.is_some_and(|v| (1..=*last).contains(&v))
        {
            bail!(
                "the model imports domain '{domain}' at opset {}; ONNX Runtime 1.32 runs opsets 1 to {last} of it",
                show(version)
            );
        }
    }
    let Some(&(_, version)) = seen.iter().find(|(d, _)| d.is_empty()) else {
        bail!("the model imports no opset of the default ONNX domain");
    };
    match version {
        Some(v) if (MIN_OPSET..=MAX_OPSET).contains(&v) => Ok(v),
        v => bail!(
            "the model uses opset {} of the default ONNX domain; advx differentiates opsets {MIN_OPSET} to \
             {MAX_OPSET} (ONNX Runtime 1.32 runs up to {MAX_OPSET})",
            show(v)
        ),
    }
}

fn domain_name(domain: &str) -> String {
    if domain.is_empty() { "the default ONNX domain".into() } else { format!("domain '{domain}'") }
}

fn show(version: Option<i64>) -> String {
    version.map_or("without a version".into(), |v| v.to_string())
}

/// Every name is defined once: graph inputs, initializers and node outputs
/// (ONNX's static single assignment), node names, graph outputs; and the
/// graph has outputs, each of them defined.
fn names(model: &ModelProto) -> Result<()> {
    let graph = graph(model);
    let mut inputs = HashSet::new();
    for input in &graph.input {
        nonempty(input.name(), "a graph input")?;
        if !inputs.insert(input.name()) {
            bail!("the graph has two inputs named '{}'", input.name());
        }
    }
    let mut initializers = HashSet::new();
    for init in &graph.initializer {
        nonempty(init.name(), "an initializer")?;
        if !initializers.insert(init.name()) {
            bail!("the graph has two initializers named '{}'", init.name());
        }
    }
    let mut defined: HashSet<&str> = inputs.union(&initializers).copied().collect();
    let mut node_names = HashSet::new();
    for node in &graph.node {
        let name = node.name();
        if !name.is_empty() && !node_names.insert(name) {
            bail!("the graph has two nodes named '{name}'");
        }
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            if !defined.insert(output) {
                bail!(
                    "{} defines '{output}', which {} already defines (each tensor is defined once)",
                    super::describe(node),
                    if inputs.contains(output.as_str()) || initializers.contains(output.as_str()) {
                        "the graph's inputs or initializers"
                    } else {
                        "an earlier node"
                    }
                );
            }
        }
    }
    if graph.output.is_empty() {
        bail!("the graph has no outputs");
    }
    let mut outputs = HashSet::new();
    for output in &graph.output {
        nonempty(output.name(), "a graph output")?;
        if !outputs.insert(output.name()) {
            bail!("the graph has two outputs named '{}'", output.name());
        }
        if !defined.contains(output.name()) {
            bail!("the graph's output '{}' is not computed by any node, nor an input or initializer", output.name());
        }
    }
    Ok(())
}

fn nonempty(name: &str, what: &str) -> Result<()> {
    if name.is_empty() {
        bail!("{what} has an empty name");
    }
    Ok(())
}

/// Checks that an attribute is well formed, as onnx.checker does: a name,
/// a type, and a value only in the field of that type (a list may be
/// empty; a single value must be there). Returns its type.
pub fn attribute(a: &AttributeProto) -> Result<AttributeType> {
    let name = a.name();
    if name.is_empty() {
        bail!("an attribute has an empty name");
    }
    if a.ref_attr_name.is_some() {
        bail!("attribute '{name}' refers to a function's attribute, which only functions may do");
    }
    let kind = a.r#type();
    if kind == AttributeType::Undefined {
        bail!("attribute '{name}' has no type");
    }
    let fields = [
        (a.f.is_some(), AttributeType::Float),
        (a.i.is_some(), AttributeType::Int),
        (a.s.is_some(), AttributeType::String),
        (a.t.is_some(), AttributeType::Tensor),
        (a.g.is_some(), AttributeType::Graph),
        (a.sparse_tensor.is_some(), AttributeType::SparseTensor),
        (a.tp.is_some(), AttributeType::TypeProto),
        (!a.floats.is_empty(), AttributeType::Floats),
        (!a.ints.is_empty(), AttributeType::Ints),
        (!a.strings.is_empty(), AttributeType::Strings),
        (!a.tensors.is_empty(), AttributeType::Tensors),
        (!a.graphs.is_empty(), AttributeType::Graphs),
        (!a.sparse_tensors.is_empty(), AttributeType::SparseTensors),
        (!a.type_protos.is_empty(), AttributeType::TypeProtos),
    ];
    if let Some((_, other)) = fields.iter().find(|(set, k)| *set && *k != kind) {
        bail!("attribute '{name}' is of type {} but holds a {} value", kind.as_str_name(), other.as_str_name());
    }
    let single = [
        AttributeType::Float,
        AttributeType::Int,
        AttributeType::String,
        AttributeType::Tensor,
        AttributeType::Graph,
        AttributeType::SparseTensor,
        AttributeType::TypeProto,
    ];
    if single.contains(&kind) && !fields.iter().any(|(set, k)| *set && *k == kind) {
        bail!("attribute '{name}' of type {} holds no value", kind.as_str_name());
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::{Elem, GraphBuilder, attr};
    use crate::onnx::proto::OperatorSetIdProto;
    use crate::onnx::shape::Dim;

    /// x -> Relu -> y, at opset 17.
    fn relu() -> ModelProto {
        let mut b = GraphBuilder::new();
        b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        let y = b.op("Relu", &["x"], vec![]);
        b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        b.into_model("relu", 17, "one Relu")
    }

    fn error(model: &ModelProto) -> String {
        format!("{:#}", structure(model).unwrap_err())
    }

    #[test]
    fn opsets_are_imported_once_and_within_range() {
        assert_eq!(structure(&relu()).unwrap(), 17);
        for version in [12, 29, 99] {
            let mut m = relu();
            m.opset_import[0].version = Some(version);
            let e = error(&m);
            assert!(e.contains(&format!("opset {version}")) && e.contains("13 to 28"), "{e}");
        }
        let mut m = relu();
        m.opset_import.push(OperatorSetIdProto { domain: Some("ai.onnx".into()), version: Some(13) });
        assert!(error(&m).contains("twice (opsets 17 and 13)"));
        let mut m = relu();
        m.opset_import[0].domain = Some("com.example".into());
        assert!(error(&m).contains("no opset of the default ONNX domain"));
        let mut m = relu();
        m.opset_import[0].domain = Some("ai.onnx".into());
        assert_eq!(structure(&m).unwrap(), 17);
        let mut m = relu();
        m.opset_import.push(OperatorSetIdProto { domain: Some("ai.onnx.ml".into()), version: Some(6) });
        assert!(error(&m).contains("domain 'ai.onnx.ml' at opset 6; ONNX Runtime 1.32 runs opsets 1 to 5"));
        m.opset_import[1].version = Some(3);
        assert_eq!(structure(&m).unwrap(), 17);
    }

    #[test]
    fn the_ir_version_is_one_onnx_runtime_reads() {
        let mut m = relu();
        for (version, error) in [(None, "no IR version"), (Some(2), "IR version 2"), (Some(15), "IR version 15")] {
            m.ir_version = version;
            let e = format!("{:#}", structure(&m).unwrap_err());
            assert!(e.contains(error) && (version.is_none() || e.contains("3 to 14")), "{e}");
        }
        m.ir_version = Some(14);
        assert!(structure(&m).is_ok());
    }

    #[test]
    fn every_name_is_defined_once() {
        let mut m = relu();
        let g = m.graph.as_mut().unwrap();
        g.output.push(g.output[0].clone());
        assert!(error(&m).contains("two outputs named"));

        let mut m = relu();
        let g = m.graph.as_mut().unwrap();
        g.node.push(g.node[0].clone());
        g.node[1].name = Some("other".into());
        let e = error(&m);
        assert!(e.contains("Relu node 'other' defines") && e.contains("an earlier node"), "{e}");

        let mut m = relu();
        let g = m.graph.as_mut().unwrap();
        g.node[0].output[0] = "x".into();
        assert!(error(&m).contains("the graph's inputs or initializers"));

        let mut m = relu();
        let g = m.graph.as_mut().unwrap();
        g.node.push(crate::onnx::NodeProto { output: vec!["z".into()], ..g.node[0].clone() });
        assert!(error(&m).contains("two nodes named"));

        let mut m = relu();
        let g = m.graph.as_mut().unwrap();
        g.output[0].name = Some("nowhere".into());
        assert!(error(&m).contains("'nowhere' is not computed by any node"));
    }

    #[test]
    fn attributes_hold_one_value_of_their_type() {
        assert_eq!(attribute(&attr::ints("pads", &[])).unwrap(), AttributeType::Ints);
        let mut a = attr::ints("strides", &[1, 1]);
        a.i = Some(3);
        assert!(attribute(&a).unwrap_err().to_string().contains("type INTS but holds a INT"));
        let mut a = attr::int("axis", 1);
        a.i = None;
        assert!(attribute(&a).unwrap_err().to_string().contains("holds no value"));
        let mut a = attr::int("axis", 1);
        a.r#type = None;
        assert!(attribute(&a).unwrap_err().to_string().contains("no type"));
    }
}
