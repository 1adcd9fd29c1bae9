//! An echo server in the style of the examples in Python's socketserver
//! documentation: each line a client sends comes back unchanged.
//!
//! Run it:   cargo run --example echo                              (threading, the default)
//!           cargo run --example echo -- 127.0.0.1:9999 pool 8     (8 worker threads)
//!           cargo run --example echo -- 127.0.0.1:9999 sync       (one client at a time)
//!           cargo run --example echo -- 127.0.0.1:9999 event      (event loops, one per CPU)
//! Poke it:  nc 127.0.0.1 9999
//!      or:  python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 9999)); s.sendall(b"hi\n"); print(s.recv(100))'
//!
//! Python's version, for comparison:
//!
//! ```python
//! class MyTCPHandler(socketserver.StreamRequestHandler):
//!     def handle(self):
//!         for line in self.rfile:
//!             self.wfile.write(line)
//!
//! with socketserver.ThreadingTCPServer(("127.0.0.1", 9999), MyTCPHandler) as server:
//!     server.serve_forever()
//! ```

use std::io;

use socketserver::{Model, RequestHandler, Server, Stream};

/// Sends every line back. One `Vec` per connection is reused for every
/// line, so a long conversation allocates nothing more.
#[derive(Clone)]
struct Echo;

impl RequestHandler for Echo {
    fn setup(&mut self, stream: &mut Stream) -> io::Result<()> {
        log::info!("{} connected", stream.peer_addr());
        Ok(())
    }

    fn handle(&mut self, stream: &mut Stream) -> io::Result<()> {
        let mut line = Vec::new();
        while stream.read_line_into(&mut line)? > 0 {
            stream.write_all(&line)?;
            line.clear();
        }
        Ok(())
    }

    fn finish(&mut self, stream: &mut Stream) -> io::Result<()> {
        log::info!(
            "{} gone after {} bytes",
            stream.peer_addr(),
            stream.bytes_read()
        );
        Ok(())
    }
}

fn main() -> Result<(), socketserver::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9999".into());
    let model = match args.next().as_deref() {
        None | Some("threading") => Model::Threading,
        Some("sync") => Model::Sync,
        Some("event") => Model::event(),
        Some("pool") => {
            let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(4);
            Model::Pool {
                workers,
                queue: workers,
            }
        }
        Some(other) => {
            eprintln!(
                "echo: unknown model {other:?}; usage: echo [ADDR] [sync|threading|pool N|event]"
            );
            std::process::exit(2);
        }
    };
    let mut server = Server::bind(addr.as_str(), Echo).model(model).build()?;
    println!("serving echo on {} ({model})", server.local_addr());
    server.serve_forever()?;
    Ok(())
}
