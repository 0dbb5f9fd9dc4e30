//! Helpers shared by the integration tests of sharded runs.

use std::path::Path;
use std::process::Output;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with the command's output unless it succeeded.
pub fn ok(out: &Output) {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// results.yaml without what differs between any two runs of one script:
/// times, the clock, how the script and models were named, the note
/// saying a report is a shard's or a merge's.
pub fn numbers(dir: &Path) -> serde_yaml::Value {
    fn strip(value: &mut serde_yaml::Value) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for key in ["seconds", "started", "script", "path", "sharding"] {
                    map.remove(key);
                }
                map.iter_mut().for_each(|(_, v)| strip(v));
            }
            serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let path = dir.join("results.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    strip(&mut value);
    value
}
