//! The chat protocol of the tutorial, served by tokio the way a Rust user
//! would write it: an accept loop, a task per connection, `read` into a
//! buffer, `write_all` of each answer. It speaks the Echo handler's line
//! mode, which is what the chat benchmark's clients speak: on connect the
//! greeting (no newline), then each line, without its `\n` or `\r\n`, is
//! answered with line + suffix + `\n`; the line `q` ends the conversation.
//!
//! ```text
//! tokio-chat [--bind 127.0.0.1:0] [--current-thread]
//! ```
//!
//! Prints `serving echo on ADDR (tokio MODEL)` once listening (the bench
//! reads the address from it). `--current-thread` runs one thread instead
//! of `#[tokio::main]`'s multi-thread runtime. No signal handling: SIGTERM
//! ends it at once, as it would a program written this way.

use std::io::Write as _;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The tutorial's greeting and suffix (the Echo handler's defaults).
const GREETING: &[u8] = "欢迎致电babyshen".as_bytes();
const SUFFIX: &[u8] = "好".as_bytes();
/// A line longer than this closes the connection (the Echo handler's limit).
const MAX_LINE: usize = 64 * 1024;

fn main() {
    let mut bind: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let mut current_thread = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => {
                let value = args.next().unwrap_or_default();
                bind = value
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--bind {value}: {e}")));
            }
            "--current-thread" => current_thread = true,
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let model = if current_thread {
        "current-thread"
    } else {
        "multi-thread"
    };
    let runtime = runtime.unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    if let Err(e) = runtime.block_on(serve(bind, model)) {
        fail(&e.to_string());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tokio-chat: {message}");
    std::process::exit(2)
}

async fn serve(bind: SocketAddr, model: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(bind).await?;
    println!("serving echo on {} (tokio {model})", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset before accept: keep serving.
            Err(_) => continue,
        };
        tokio::spawn(async move {
            let _ = converse(stream).await;
        });
    }
}

async fn converse(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.write_all(GREETING).await?;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut answer = Vec::with_capacity(256);
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        // Every whole line that arrived is answered; all answers of one
        // read go out in one write.
        answer.clear();
        let mut start = 0;
        while let Some(at) = buffer[start..].iter().position(|&b| b == b'\n') {
            let mut line = &buffer[start..start + at];
            start += at + 1;
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line == b"q" {
                stream.write_all(&answer).await?;
                return Ok(());
            }
            answer.extend_from_slice(line);
            answer.extend_from_slice(SUFFIX);
            answer.push(b'\n');
        }
        buffer.drain(..start);
        if buffer.len() > MAX_LINE {
            return Ok(());
        }
        stream.write_all(&answer).await?;
    }
}
