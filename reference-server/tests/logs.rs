//! Tokens never reach the logs, whichever way they arrive and whether or not they verify.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reference_server::{AuthMode, Config, Profile};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn token(secret: &str, exp_offset: i64) -> String {
    let exp = (reference_server::now_ms() / 1000) as i64 + exp_offset;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "log-test", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn no_token_appears_in_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread, so every task logs through the subscriber set on it.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (good, expired, wrong) = (token("log-secret", 300), token("log-secret", -10), token("other-secret", 300));
    runtime.block_on(async {
        let mut config = Config::new(Profile::Core);
        config.auth = AuthMode::Required;
        config.jwt_secret = Some("log-secret".into());
        config.tick = Duration::from_secs(3600);
        config.shutdown_grace = Duration::from_millis(200);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = reference_server::serve(listener, config).unwrap();
        let wait = Duration::from_secs(5);
        for (header, query) in [(Some(&good), None), (Some(&expired), None), (None, Some(&wrong))] {
            let url = match query {
                Some(token) => format!("{}?token={token}", server.url()),
                None => server.url(),
            };
            let mut request = url.into_client_request().unwrap();
            if let Some(token) = header {
                request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            let _ = tokio::time::timeout(wait, tokio_tungstenite::connect_async(request)).await.unwrap();
        }
        let (mut ws, _) =
            tokio::time::timeout(wait, tokio_tungstenite::connect_async(server.url())).await.unwrap().unwrap();
        let message = serde_json::json!({"type": "Authenticate", "token": wrong}).to_string();
        ws.send(Message::text(message)).await.unwrap();
        while let Ok(Some(Ok(message))) = tokio::time::timeout(wait, ws.next()).await {
            if message.is_close() {
                break;
            }
        }
        server.shutdown().await;
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("bad token") && logs.contains("authentication failed"), "the failures are logged:\n{logs}");
    for secret_part in [&good, &expired, &wrong] {
        for segment in secret_part.split('.') {
            assert!(!logs.contains(segment), "a token segment leaked into the logs:\n{logs}");
        }
    }
}
