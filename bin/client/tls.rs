//! `client echo|shell|ftp --tls`: the client's TLS configuration (the system's
//! roots, `--ca FILE`, or `--insecure`), the server's name from the
//! address, and one line for a certificate that does not verify.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use socketserver::error::describe;
use socketserver::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use socketserver::tls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use socketserver::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use socketserver::tls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use socketserver::tls::{self, TlsFailure};
use socketserver::Stream;

use crate::Failure;

/// The TLS flags of `client echo`, `client shell` and `client ftp`.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Speak TLS, to a server started with --tls-cert; the server's
    /// certificate is checked against the system's roots, or --ca
    #[arg(long)]
    pub tls: bool,

    /// Trust the certificates in FILE (PEM) instead of the system's roots:
    /// for a self-signed certificate, or a private authority
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "insecure"
    )]
    pub ca: Option<PathBuf>,

    /// Do not check the server's certificate at all (a test server only:
    /// anyone between here and the server could read and change everything)
    #[arg(long, requires = "tls")]
    pub insecure: bool,
}

/// Turns `stream`, just connected to `addr`, into TLS if asked.
pub fn start(stream: &mut Stream, addr: &str, args: &TlsArgs) -> Result<(), Failure> {
    if !args.tls {
        return Ok(());
    }
    let config = config(args)?;
    if args.insecure {
        eprintln!(
            "client: warning: --insecure: the server's certificate is not checked; anyone \
             between here and {addr} can read and change this conversation"
        );
    }
    let name = server_name(addr)?;
    stream
        .upgrade_client_tls(config, name)
        .map_err(|e| handshake_failed(addr, &e))
}

/// What a TLS upgrade done elsewhere needs (`client ftp`'s `AUTH TLS`):
/// the configuration and the name the certificate must hold; `None`
/// without `--tls`. Warns about `--insecure`.
pub fn settings(
    addr: &str,
    args: &TlsArgs,
) -> Result<Option<(Arc<ClientConfig>, ServerName<'static>)>, Failure> {
    if !args.tls {
        return Ok(None);
    }
    let config = config(args)?;
    if args.insecure {
        eprintln!(
            "client: warning: --insecure: the server's certificate is not checked; anyone \
             between here and {addr} can read and change this conversation"
        );
    }
    Ok(Some((config, server_name(addr)?)))
}

fn config(args: &TlsArgs) -> Result<Arc<ClientConfig>, Failure> {
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure(format!("TLS: {e}")))?;
    let config = if args.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(tls::provider())))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(args)?)
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `--ca FILE`'s certificates, or the system's roots (as OpenSSL finds
/// them: /etc/ssl/certs, SSL_CERT_FILE, SSL_CERT_DIR).
fn roots(args: &TlsArgs) -> Result<RootCertStore, Failure> {
    let mut roots = RootCertStore::empty();
    match &args.ca {
        Some(path) => {
            let certs = tls::read_certificates(path).map_err(|e| Failure(describe(&e)))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    Failure(format!("{}: not a CA certificate: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Failure(
                    "no trusted root certificates found on this system (install \
                     ca-certificates, or give --ca FILE)"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The name the certificate must hold: the address's IP address (matched
/// against the certificate's IP addresses), or its host name as given;
/// `localhost` for a Unix socket.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, Failure> {
    if addr.starts_with("unix:") {
        return Ok(ServerName::try_from("localhost").expect("a valid name"));
    }
    if let Ok(socket) = addr.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::IpAddress(socket.ip().into()));
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        Failure(format!(
            "{host:?} is not a host name a certificate can hold"
        ))
    })
}

/// One line for a handshake that failed: a certificate that does not
/// verify says why, and how to mend it.
pub fn handshake_failed(addr: &str, e: &io::Error) -> Failure {
    // The framework's TLS wraps rustls's error; rustls's own I/O helpers
    // (the FTP client's handshake) give it bare.
    let bare = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(error) = TlsFailure::of(e).or(bare) else {
        return Failure(format!("TLS handshake with {addr} failed: {}", describe(e)));
    };
    match error {
        rustls::Error::InvalidCertificate(why) => {
            let hint = match why {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    " (give --ca FILE)"
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    " (connect by a name or address the certificate holds)"
                }
                _ => "",
            };
            let why = match why {
                CertificateError::NotValidForNameContext { .. } => "NotValidForName".to_string(),
                CertificateError::ExpiredContext { .. } => "Expired".to_string(),
                CertificateError::NotValidYetContext { .. } => "NotValidYet".to_string(),
                other => format!("{other:?}"),
            };
            Failure(format!(
                "{addr}: the server's certificate is not trusted: {why}{hint}"
            ))
        }
        other => Failure(format!("TLS handshake with {addr} failed: {other}")),
    }
}

/// `--insecure`: any certificate will do; the handshake's signatures are
/// still checked, so the connection is encrypted, only not authenticated.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
