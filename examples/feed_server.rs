//! The ticker feed of `examples/asyncapi-feed/feed.yaml`, for trying `wsprobe --asyncapi`:
//!
//! ```text
//! cargo run --example feed_server -- 127.0.0.1:9001 [--fault NAME]
//! wsprobe run --asyncapi examples/asyncapi-feed/feed.yaml --server local
//! ```

#[path = "asyncapi-feed/feed_server.rs"]
mod feed_server;

use feed_server::Fault;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let fault = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--fault"), Some(name)) => match Fault::parse(&name) {
            Some(fault) => Some(fault),
            None => {
                let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                eprintln!("error: no fault {name:?}; the faults are {}", known.join(", "));
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: feed_server [ADDRESS] [--fault NAME]");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().map_or(address, |a| a.to_string());
    println!("feed on ws://{bound}/feed{}", fault.map(|f| format!(" with fault {}", f.name())).unwrap_or_default());
    feed_server::serve(listener, fault).await;
}
