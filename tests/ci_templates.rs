//! The CI templates in `ci/` do what they say: their own commands, taken from the YAML, pass
//! against a conforming server (rate limit on) and fail against a broken one. This is its own
//! test binary so that it never shares the machine with the load and fuzz tests: the load
//! gate's latency assertion is part of what is tested.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reference_server::{AuthMode, BackgroundServer, Config, Fault, Profile};
use serde_json::Value;

const SECRET: &str = "template-secret";

/// Held while a template runs against a conforming server, whose load gate asserts a p99:
/// the other templates' runs wait rather than load the machine meanwhile.
static QUIET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The reference server on its own runtime, with the spec's rate limit on.
async fn server(faults: &[Fault]) -> BackgroundServer {
    let mut config = Config::new(Profile::Core);
    config.auth = AuthMode::Optional;
    config.jwt_secret = Some(SECRET.into());
    config.faults = faults.to_vec();
    tokio::task::spawn_blocking(move || BackgroundServer::start(config, SocketAddr::from(([127, 0, 0, 1], 0)), 1))
        .await
        .unwrap()
        .expect("server starts")
}

fn template(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci").join(name);
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The commands a template runs against the server: everything but installing wsprobe and
/// starting the user's server, which the test does itself.
fn is_ours(script: &str) -> bool {
    !script.contains("cargo install") && !script.contains("start-server")
}

/// A YAML mapping of strings (`env:`, `variables:`), as environment variables.
fn string_map(mapping: &Value) -> BTreeMap<String, String> {
    mapping.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
}

struct Ran {
    code: i32,
    output: String,
}

/// Runs one script as the CI runner would (bash, errexit), with wsprobe on the PATH.
async fn run_script(script: String, env: BTreeMap<String, String>, dir: PathBuf) -> Ran {
    let bin = Path::new(env!("CARGO_BIN_EXE_wsprobe")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &script])
            .envs(env)
            .env("PATH", path)
            .current_dir(dir)
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the script ends").unwrap().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}

fn workdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// GitHub: each `run:` of ours, with the job's `env:` (URL and secret pointed at our server),
/// the first `steps` of them.
async fn github(server: &BackgroundServer, secret: &str, dir: &str, steps: usize) -> Vec<Ran> {
    let workflow = template("github-actions.yml");
    let job = &workflow["jobs"]["conformance"];
    let mut env = string_map(&job["env"]);
    assert_eq!(env.get("WSPROBE_JWT_SECRET").map(String::as_str), Some("${{ secrets.WS_JWT_SECRET }}"));
    env.insert("WS_URL".into(), server.url().to_string());
    env.insert("WSPROBE_JWT_SECRET".into(), secret.into());
    let dir = workdir(dir);
    let mut results = Vec::new();
    let ours: Vec<&str> =
        job["steps"].as_array().unwrap().iter().filter_map(|s| s["run"].as_str()).filter(|s| is_ours(s)).collect();
    assert_eq!(ours.len(), 2, "the conformance suite and the load gate");
    for script in ours.into_iter().take(steps) {
        results.push(run_script(script.to_string(), env.clone(), dir.clone()).await);
    }
    results
}

/// GitLab: the job's `script:` lines of ours, as one script, with its `variables:`.
async fn gitlab(server: &BackgroundServer, dir: &str) -> Ran {
    let pipeline = template("gitlab-ci.yml");
    let job = &pipeline["websocket-conformance"];
    let lines: Vec<&str> =
        job["script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).filter(|l| is_ours(l)).collect();
    assert!(lines.iter().any(|l| l.starts_with("wsprobe run")) && lines.iter().any(|l| l.starts_with("wsprobe load")));
    assert_eq!(job["artifacts"]["reports"]["junit"], "wsprobe-junit.xml");
    let mut env = string_map(&job["variables"]);
    env.insert("WS_URL".into(), server.url().to_string());
    env.insert("WSPROBE_JWT_SECRET".into(), SECRET.into());
    run_script(lines.join("\n"), env, workdir(dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_template_passes_a_conforming_server_and_publishes_junit() {
    let _quiet = QUIET.lock().await;
    let server = server(&[]).await;
    let results = github(&server, SECRET, "template-github-good", 2).await;
    for ran in &results {
        assert_eq!(ran.code, 0, "{}", ran.output);
    }
    let junit = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("template-github-good/wsprobe-junit.xml"),
    )
    .unwrap();
    assert!(junit.contains("<testsuites") && !junit.contains("<failure"), "{junit}");
    // The load gate stays under the spec's rate limit: nothing was closed with 1008.
    let load: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("template-github-good/wsprobe-load.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(load["verdict"], "passed", "{load:#}");
    assert_eq!(load["connections_lost"], 0, "{load:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_template_fails_a_broken_server_and_runs_without_a_missing_secret() {
    let broken = server(&[Fault::MalformedPong]).await;
    let results = github(&broken, SECRET, "template-github-broken", 2).await;
    assert!(
        results.iter().all(|ran| ran.code == 1),
        "{}",
        results.iter().map(|r| r.output.as_str()).collect::<String>()
    );
    // A fork's pull request gets an empty secret: the conformance step says so and runs on.
    let server = server(&[]).await;
    let results = github(&server, "", "template-github-fork", 1).await;
    assert_eq!(results[0].code, 0, "{}", results[0].output);
    assert!(results[0].output.contains("::warning::WS_JWT_SECRET is not available"), "{}", results[0].output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_template_passes_a_conforming_server_and_fails_a_broken_one() {
    let _quiet = QUIET.lock().await;
    let good = gitlab(&server(&[]).await, "template-gitlab-good").await;
    assert_eq!(good.code, 0, "{}", good.output);
    let broken = gitlab(&server(&[Fault::NoWelcome]).await, "template-gitlab-broken").await;
    assert_eq!(broken.code, 1, "{}", broken.output);
}
