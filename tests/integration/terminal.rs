//! Terminal conventions: shell completions, the man page, `--color` with NO_COLOR and
//! CLICOLOR_FORCE, `-` as standard output for every output flag, durations in hours.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs wsprobe in `dir` with extra environment variables (and without the colour ones of
/// the machine running the tests).
fn wsprobe_in(dir: &PathBuf, env: &[(&str, &str)], args: &[&str]) -> Out {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsprobe"));
    command.args(args).current_dir(dir).env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn completions_for_every_shell_and_a_man_page_come_from_the_flags() {
    let here = dir("terminal-completions");
    for (shell, marker) in [
        ("bash", "_wsprobe()"),
        ("zsh", "#compdef wsprobe"),
        ("fish", "complete -c wsprobe"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = wsprobe_in(&here, &[], &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(marker), "{shell}: no {marker:?}");
        assert!(out.stdout.contains("serve") && out.stdout.contains("wait-for-server"), "{shell}");
    }
    // The bash script is valid bash.
    let script = here.join("wsprobe.bash");
    std::fs::write(&script, wsprobe_in(&here, &[], &["completions", "bash"]).stdout).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    let man = wsprobe_in(&here, &[], &["man"]);
    assert_eq!(man.code, 0);
    assert!(
        man.stdout.starts_with(".ie \\n(.g .ds Aq") && man.stdout.contains(".TH wsprobe 1"),
        "{}",
        &man.stdout[..200]
    );
    assert!(
        man.stdout.contains(".SH SUBCOMMANDS") && man.stdout.contains("wsprobe\\-serve"),
        "the man page lists the commands"
    );
    let bad = wsprobe_in(&here, &[], &["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn colour_follows_the_flag_and_the_conventional_variables() {
    let here = dir("terminal-color");
    let run = |env: &[(&str, &str)], color: &str| {
        let out = wsprobe_in(&here, env, &["--color", color, "run", "--filter", "handshake.upgrade", "--no-progress"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout.contains("\x1b[32mPASS")
    };
    assert!(run(&[], "always"));
    assert!(!run(&[], "never"));
    assert!(!run(&[], "auto"), "not a terminal");
    assert!(run(&[("CLICOLOR_FORCE", "1")], "auto"));
    assert!(!run(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")], "auto"), "NO_COLOR wins under auto");
    assert!(run(&[("NO_COLOR", "1")], "always"), "an explicit flag wins");
}

#[test]
fn a_dash_means_standard_output_for_every_output_flag() {
    let here = dir("terminal-dash");
    let out = wsprobe_in(&here, &[], &["run", "--filter", "handshake.upgrade", "--format", "json", "--output", "-"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("the report on standard output");
    assert_eq!(report["summary"]["passed"], 1);

    let load = ["load", "--connections", "2", "--duration", "1s", "--ramp-up", "0s"];
    let out = wsprobe_in(&here, &[], &[&load[..], &["--json", "-"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).expect("only JSON on standard output");
    assert_eq!(summary["verdict"], "passed");
    assert!(
        out.stderr.contains("wsprobe load: ping mode"),
        "the human summary moves to standard error: {}",
        out.stderr
    );

    let out = wsprobe_in(&here, &[], &[&load[..], &["--hdr-log", "-"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("#wsprobe load ping against"), "{}", &out.stdout[..out.stdout.len().min(200)]);
    assert!(out.stdout.contains("#[StartTime: "), "{}", out.stdout);
    assert!(out.stderr.contains("wsprobe load: ping mode"), "{}", out.stderr);

    let out = wsprobe_in(&here, &[], &[&load[..], &["--json", "-", "--hdr-log", "-"]].concat());
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("both write to standard output"), "{}", out.stderr);
    assert!(!here.join("-").exists(), "no file named '-'");
}

#[test]
fn durations_take_hours_and_the_limit_names_itself() {
    let here = dir("terminal-hours");
    let out = wsprobe_in(&here, &[], &["load", "--duration", "2h"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("1h") && !out.stderr.contains("unknown unit"), "{}", out.stderr);
}
