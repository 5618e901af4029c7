//! `.snap` files in insta's layout: a small YAML header between `---` lines, then the body.
//! A new result that differs is written beside the old one as `.snap.new` (pending), which
//! `wsprobe snapshot accept` (or `cargo insta accept`) promotes.

use std::path::{Path, PathBuf};

/// The snapshot file of a scenario file's cases.
pub fn path(dir: &Path, suite: &str, profile: &str) -> PathBuf {
    dir.join(format!("{profile}__{suite}.snap"))
}

/// The messages a scenario file's cases received, whole, as JSON Lines (for replay).
pub fn capture_path(dir: &Path, suite: &str, profile: &str) -> PathBuf {
    dir.join(format!("{profile}__{suite}.received.jsonl"))
}

pub fn pending(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// The whole file for `body`.
pub fn render(suite: &str, profile: &str, body: &str) -> String {
    format!("---\nsource: wsprobe snapshot\nexpression: \"{suite} ({profile} profile)\"\n---\n{body}")
}

/// The body of a `.snap` file (everything after the header).
pub fn body(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(&rest[end + 5..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_file_gives_its_body_back() {
        let file = render("heartbeat", "core", "case a: PASS\n  -> connect accepted\n");
        assert_eq!(body(&file), Some("case a: PASS\n  -> connect accepted\n"));
        assert_eq!(body("no header"), None);
        let p = path(Path::new("snapshots"), "heartbeat", "core");
        assert_eq!(pending(&p), PathBuf::from("snapshots/core__heartbeat.snap.new"));
    }
}
