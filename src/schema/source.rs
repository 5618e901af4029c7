//! Where schema documents come from: the copy embedded at build time, or a folder on disk
//! (`--schemas DIR`) so spec authors can try an edit without rebuilding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SchemaError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
}

/// The raw JSON documents of a schema folder, keyed by path relative to it (`core/Pong.json`).
#[derive(Debug, Clone)]
pub struct SchemaSource {
    origin: String,
    files: BTreeMap<String, String>,
}

impl SchemaSource {
    /// The schemas compiled into this binary.
    pub fn embedded() -> SchemaSource {
        let files = embedded::SCHEMA_FILES
            .iter()
            .filter(|(path, _)| path.ends_with(".json"))
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        SchemaSource { origin: "embedded schemas".into(), files }
    }

    /// Any file of the embedded schema tree by its path below `schemas/`, the AsyncAPI
    /// document included.
    pub fn embedded_text(relative: &str) -> Option<&'static str> {
        embedded::SCHEMA_FILES.iter().find(|(path, _)| *path == relative).map(|(_, text)| *text)
    }

    /// Every `*.json` below `dir`.
    pub fn from_dir(dir: &Path) -> Result<SchemaSource, SchemaError> {
        let mut files = BTreeMap::new();
        read_tree(dir, dir, &mut files)?;
        if files.is_empty() {
            return Err(SchemaError::EmptyDir(dir.to_path_buf()));
        }
        Ok(SchemaSource { origin: dir.display().to_string(), files })
    }

    /// Files given directly (path relative to the folder → text), for tests and tools.
    pub fn from_files(files: BTreeMap<String, String>) -> SchemaSource {
        SchemaSource { origin: "given files".into(), files }
    }

    /// Human description of where the files came from, for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn read_tree(base: &Path, dir: &Path, files: &mut BTreeMap<String, String>) -> Result<(), SchemaError> {
    let io = |path: &Path, source| SchemaError::Io { path: path.to_path_buf(), source };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| io(dir, e))?.path());
    }
    for path in paths {
        if path.is_dir() {
            read_tree(base, &path, files)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            files.insert(rel, text);
        }
    }
    Ok(())
}
