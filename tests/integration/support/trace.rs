//! Loader for the editing traces in tests/data/traces (CC BY 4.0, see the
//! README there): gzip JSON `{ startContent, endContent, txns: [{ patches:
//! [[pos, delCount, insText], ...] }] }`, positions in Unicode code points.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One editing trace.
pub struct Trace {
    pub name: String,
    pub start: String,
    pub end: String,
    /// Transactions, each a list of (pos, deleted, inserted) in chars.
    pub txns: Vec<Vec<(usize, usize, String)>>,
}

impl Trace {
    pub fn patch_count(&self) -> usize {
        self.txns.iter().map(|t| t.len()).sum()
    }
}

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/traces")
}

/// Every `*.json.gz` trace, sorted by name.
pub fn all() -> Vec<Trace> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/data/traces")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    names.sort();
    names.iter().map(|p| load(p)).collect()
}

pub fn load_named(name: &str) -> Trace {
    load(&dir().join(format!("{name}.json.gz")))
}

pub fn load(path: &Path) -> Trace {
    let file = std::fs::File::open(path).expect("trace file");
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .expect("gzip");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let txns = v["txns"]
        .as_array()
        .expect("txns")
        .iter()
        .map(|t| {
            t["patches"]
                .as_array()
                .expect("patches")
                .iter()
                .map(|p| {
                    (
                        p[0].as_u64().expect("pos") as usize,
                        p[1].as_u64().expect("del") as usize,
                        p[2].as_str().expect("ins").to_string(),
                    )
                })
                .collect()
        })
        .collect();
    Trace {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".json.gz").to_string())
            .unwrap_or_default(),
        start: v["startContent"].as_str().unwrap_or("").to_string(),
        end: v["endContent"].as_str().expect("endContent").to_string(),
        txns,
    }
}
