//! The binary: first stdout line, and graceful shutdown on SIGTERM (Close 1001, exit 0).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn prints_its_url_first_and_closes_clients_with_1001_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args(["--profile", "ai", "--bind", "127.0.0.1:0", "--tick-ms", "3600000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first_line).unwrap();
    let url = first_line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{first_line:?}")).to_string();
    assert!(url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"), "{url}");

    let (mut ws, _) =
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str())).await.unwrap().unwrap();
    let welcome = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("\"connection\""), "{welcome:?}");

    // The shell's own `kill`, so no procps package is needed.
    let status = Command::new("sh").args(["-c", &format!("kill -TERM {}", child.id())]).status().unwrap();
    assert!(status.success());
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close code"),
            Some(Ok(_)) => continue,
            other => panic!("expected Close, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1001);
    drop(ws);
    let pid = child.id();
    let waited = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait())).await;
    let Ok(exit) = waited else {
        let _ = Command::new("sh").args(["-c", &format!("kill -KILL {pid}")]).status();
        panic!("the server did not exit within {WAIT:?} of SIGTERM");
    };
    let exit = exit.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn bad_flags_exit_2_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args(["--auth", "required", "--bind", "127.0.0.1:0"])
        .env_remove("WSPROBE_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jwt-secret"));
}
