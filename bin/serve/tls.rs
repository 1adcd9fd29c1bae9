//! `serve --tls-cert FILE --tls-key FILE`: the whole connection is TLS
//! (echo and shell); for ftp, FTPS: the control connection starts in
//! clear and `AUTH TLS` turns it into TLS (and `--implicit-tls-bind` adds
//! a listener where TLS comes first).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use socketserver::tls::{self, rustls::ServerConfig};

/// The TLS options of `serve`.
#[derive(Args, Debug)]
#[command(next_help_heading = "TLS options")]
pub struct TlsOptions {
    /// Serve over TLS with this certificate chain, PEM, the server's
    /// certificate first (Let's Encrypt's fullchain.pem); needs --tls-key.
    /// ftp: FTPS (AUTH TLS, PROT P; see --tls-required)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key, PEM (Let's Encrypt's privkey.pem)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// The server's TLS configuration from the flags, `None` without them.
/// Errors carry the exit code: 2 for flags that do not go together or a
/// file that holds no certificate or key, 1 for a file that cannot be
/// read.
pub fn load(options: &TlsOptions, udp: bool) -> Result<Option<Arc<ServerConfig>>, (u8, String)> {
    let (cert, key) = match (&options.tls_cert, &options.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return Err((2, "--tls-cert needs --tls-key FILE".into())),
        (None, Some(_)) => return Err((2, "--tls-key needs --tls-cert FILE".into())),
    };
    if udp {
        return Err((2, "--tls-cert serves streams: not with --udp".into()));
    }
    tls::server_config_from_pem_files(cert, key)
        .map(Some)
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::InvalidData {
                2
            } else {
                1
            };
            (code, format!("TLS: {}", socketserver::error::describe(&e)))
        })
}
