//! Embeds `schemas/` and `scenarios/` into the binary, so that `wsprobe` works from
//! any directory and the files on disk stay the single source of truth.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (dir, const_name, file) in
        [("schemas", "SCHEMA_FILES", "embedded_schemas.rs"), ("scenarios", "SCENARIO_FILES", "embedded_scenarios.rs")]
    {
        let base = root.join(dir);
        println!("cargo:rerun-if-changed={}", base.display());
        let mut files = Vec::new();
        if base.is_dir() {
            collect(&base, &mut files);
        }
        files.sort();
        let mut code = format!("/// Files under `{dir}/`, as (path relative to `{dir}/`, contents).\npub const {const_name}: &[(&str, &str)] = &[\n");
        for path in &files {
            println!("cargo:rerun-if-changed={}", path.display());
            let rel = path.strip_prefix(&base).expect("walked below base").to_string_lossy().replace('\\', "/");
            writeln!(code, "    ({rel:?}, include_str!({:?})),", path.display().to_string()).expect("write to String");
        }
        code.push_str("];\n");
        std::fs::write(out.join(file), code).expect("OUT_DIR is writable");
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml" | "md")) {
            files.push(path);
        }
    }
}
