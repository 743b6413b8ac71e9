//! The relay's join page: `GET /join` serves a small page that turns an
//! `https://relay/join#v2/…` invite link into the `lshed join …` command
//! (with a copy button) and an `lshed://` launch link.
//!
//! The secret part of such a link is the URL fragment, which browsers never
//! send to a server: the page's script reads it locally. So the relay never
//! sees it, and it logs nothing about requests anyway.
//!
//! `serve_http` is the relay's one HTTP server: the metrics page uses it
//! too, with its own answers.
//!
//! Served over plain HTTP (for an operator's own TLS reverse proxy) or over
//! HTTPS with a certificate and key the operator provides (Let's Encrypt,
//! say): browsers do not trust the relay's self-signed QUIC certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};

/// The page, from `assets/join.html`.
pub const JOIN_PAGE: &str = include_str!("../../assets/join.html");

/// Why the web listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or key file could not be used.
    #[error("{0}")]
    Tls(String),
}

/// A TLS configuration from PEM files (a certificate chain and its key).
pub fn tls_from_pem(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, WebError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| WebError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| WebError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(WebError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| WebError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebError::Tls(format!("the certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What an HTTP handler answers: status, content type, body.
pub(crate) type Answer = (StatusCode, &'static str, Bytes);

/// Serves HTTP/1.1 on `listener` (over TLS with `tls`), answering each GET
/// with `handle(path)`; other methods get 405. Runs until dropped. Shared
/// by the join page and the metrics page.
pub(crate) async fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handle: Arc<dyn Fn(&str) -> Answer + Send + Sync>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, handle) = (acceptor.clone(), handle.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let answer = if req.method() == hyper::Method::GET {
                    handle(req.uri().path())
                } else {
                    (
                        StatusCode::METHOD_NOT_ALLOWED,
                        "text/plain",
                        Bytes::from_static(b"method not allowed\n"),
                    )
                };
                async move { Ok::<_, Infallible>(response(answer)) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            // A client that breaks the connection only ends its own task.
            match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(tls)) = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    else {
                        return;
                    };
                    let _ = http
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                }
                None => {
                    let _ = http
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// The join page's answers.
pub fn join_page(path: &str) -> Answer {
    match path {
        "/join" | "/join/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(JOIN_PAGE.as_bytes()),
        ),
        "/health" => health(),
        _ => not_found(),
    }
}

pub(crate) fn health() -> Answer {
    (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n"))
}

pub(crate) fn not_found() -> Answer {
    (
        StatusCode::NOT_FOUND,
        "text/plain",
        Bytes::from_static(b"not found\n"),
    )
}

fn response((status, kind, body): Answer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", kind),
        // The pages need nothing from elsewhere, and give nothing away.
        (
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        ),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}
