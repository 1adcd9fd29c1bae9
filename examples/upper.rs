//! The tutorial's "phone" server (电话发送与接收): every message comes back
//! in upper case.
//!
//! Run it:   cargo run --example upper            (or: -- 127.0.0.1:0 for any free port)
//! Poke it:  python3 examples/tutorial/phone_client.py 127.0.0.1 9999 "hello"
//!      or:  nc 127.0.0.1 9999
//!
//! The tutorial's client sends one message with no newline and reads one
//! reply, so a message here is whatever one read returns, as in the
//! tutorial's `conn.recv(1024)`. Ctrl-C stops it.

use socketserver::{RequestHandler, Server, Stream};

/// Answers each message in upper case (ASCII letters; other bytes, such as
/// UTF-8 text in other scripts, pass through unchanged).
#[derive(Clone)]
struct Upper;

impl RequestHandler for Upper {
    fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        loop {
            let message = stream.read_chunk()?;
            if message.is_empty() {
                return Ok(()); // the client hung up
            }
            let reply = message.to_ascii_uppercase();
            stream.write_all(&reply)?;
        }
    }
}

fn main() -> Result<(), socketserver::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let mut server = Server::bind(addr.as_str(), Upper).threading().build()?;
    println!("serving upper on {} (threading)", server.local_addr());
    server.serve_forever()?;
    Ok(())
}
