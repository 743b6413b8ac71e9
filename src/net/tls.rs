//! TLS identity and configuration: a fresh self-signed certificate per
//! session for the host, and a guest-side verifier that accepts exactly the
//! certificate whose SHA-256 the invite link carries.
//!
//! There is no CA and no name check: the link *is* the trust anchor. The
//! verifier still checks the TLS 1.3 handshake signature with ring's
//! algorithms, so whoever answers must hold the private key of the pinned
//! certificate. A relay or anyone else in the middle therefore cannot pose
//! as the host, and cannot read or alter the traffic.
//!
//! May depend on: rustls (ring provider only), quinn's rustls glue, rcgen,
//! ring. Nothing above `net`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::limits::{ALPN, IDLE_TIMEOUT, KEEPALIVE_INTERVAL, SERVER_NAME};

/// Failure to build a certificate or a TLS configuration (a local problem,
/// never caused by the peer).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not make the certificate.
    #[error("could not generate the session certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration error: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn rejected the rustls configuration (e.g. no TLS 1.3 suite).
    #[error("QUIC TLS configuration error: {0}")]
    Quic(String),
}

/// The host's identity for one session: a self-signed certificate and its key.
pub struct HostIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    fingerprint: [u8; 32],
}

impl fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIdentity")
            .field("fingerprint", &super::link::hex(&self.fingerprint))
            .finish_non_exhaustive()
    }
}

impl HostIdentity {
    /// Generates a fresh ECDSA P-256 key and self-signed certificate.
    pub fn generate() -> Result<Self, TlsError> {
        Self::generate_for(SERVER_NAME)
    }

    /// SHA-256 of the DER certificate: what the invite link carries.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The DER certificate.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The private key, PKCS#8 DER (for a relay that keeps its identity).
    pub fn key_der(&self) -> &[u8] {
        self.key.secret_pkcs8_der()
    }

    /// A certificate made for `name` (the relay's long-lived identity).
    pub fn generate_for(name: &str) -> Result<Self, TlsError> {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()])?;
        let cert = certified.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let fingerprint = fingerprint(&cert);
        Ok(HostIdentity {
            cert,
            key,
            fingerprint,
        })
    }

    /// An identity from a stored certificate and PKCS#8 key (both DER).
    /// The pair is checked when a TLS configuration is built from it.
    pub fn from_der(cert: Vec<u8>, key: Vec<u8>) -> Self {
        let cert = CertificateDer::from(cert);
        let fingerprint = fingerprint(&cert);
        HostIdentity {
            cert,
            key: PrivatePkcs8KeyDer::from(key),
            fingerprint,
        }
    }
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// QUIC transport settings shared by host and guest: keep-alive, idle
/// timeout, and one bidirectional stream opened by the guest.
pub fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEPALIVE_INTERVAL));
    // IDLE_TIMEOUT is a few seconds, far below the VarInt limit.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    transport.max_concurrent_uni_streams(0u8.into());
    transport
}

/// quinn server configuration presenting `identity`, TLS 1.3 only, ALPN
/// [`ALPN`], no client certificates (guests prove themselves in the
/// handshake instead).
pub fn server_config(identity: &HostIdentity) -> Result<quinn::ServerConfig, TlsError> {
    let mut transport = transport_config();
    transport.max_concurrent_bidi_streams(1u8.into());
    server_config_with(identity, ALPN, transport)
}

/// A server configuration for `identity`, speaking `alpn`, with `transport`.
pub fn server_config_with(
    identity: &HostIdentity,
    alpn: &[u8],
    transport: quinn::TransportConfig,
) -> Result<quinn::ServerConfig, TlsError> {
    let tls = rustls_server_config(identity, alpn)?;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A TLS 1.3 server configuration for `identity` speaking `alpn` (for TLS
/// over TCP; QUIC wraps the same).
pub fn rustls_server_config(
    identity: &HostIdentity,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![identity.cert.clone()],
            PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        )?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    Ok(tls)
}

/// Set by a [`PinnedCertVerifier`] when the server presented a certificate
/// other than the pinned one, so the caller can tell "impostor or stale
/// link" apart from other TLS failures.
#[derive(Debug, Clone, Default)]
pub struct MismatchFlag(Arc<AtomicBool>);

impl MismatchFlag {
    /// True once a wrong certificate has been seen.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// quinn client configuration that trusts exactly the certificate with
/// SHA-256 `expected`. The returned flag records a mismatch.
pub fn client_config(expected: [u8; 32]) -> Result<(quinn::ClientConfig, MismatchFlag), TlsError> {
    let mut transport = transport_config();
    // The host opens no streams towards a guest.
    transport.max_concurrent_bidi_streams(0u8.into());
    pinned_client_config(expected, ALPN, transport)
}

/// A client configuration that accepts only the certificate whose SHA-256
/// is `expected`, speaking `alpn`, with `transport`.
pub fn pinned_client_config(
    expected: [u8; 32],
    alpn: &[u8],
    transport: quinn::TransportConfig,
) -> Result<(quinn::ClientConfig, MismatchFlag), TlsError> {
    let (tls, flag) = rustls_pinned_client_config(expected, alpn)?;
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok((config, flag))
}

/// A TLS 1.3 client configuration that accepts only the certificate whose
/// SHA-256 is `expected`, speaking `alpn` (for TLS over TCP; QUIC wraps the
/// same).
pub fn rustls_pinned_client_config(
    expected: [u8; 32],
    alpn: &[u8],
) -> Result<(rustls::ClientConfig, MismatchFlag), TlsError> {
    let flag = MismatchFlag::default();
    let verifier = PinnedCertVerifier {
        expected,
        provider: provider(),
        mismatch: flag.clone(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    // Every connection must show the pinned certificate: no resumption
    // (and so no 0-RTT), which would skip the certificate.
    tls.resumption = rustls::client::Resumption::disabled();
    Ok((tls, flag))
}

/// Accepts exactly one certificate, identified by its SHA-256, and checks
/// the handshake signatures against it.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    expected: [u8; 32],
    provider: Arc<CryptoProvider>,
    mismatch: MismatchFlag,
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The fingerprint is public (it is in the link), so a plain
        // comparison is fine.
        if fingerprint(end_entity) == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch.0.store(true, Ordering::SeqCst);
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // QUIC is TLS 1.3 only; the config allows nothing else.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_fresh_and_fingerprints_match() {
        let a = HostIdentity::generate().unwrap();
        let b = HostIdentity::generate().unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), fingerprint(a.cert_der()));
        server_config(&a).unwrap();
        client_config(a.fingerprint()).unwrap();
    }

    #[test]
    fn verifier_pins_the_fingerprint() {
        let a = HostIdentity::generate().unwrap();
        let b = HostIdentity::generate().unwrap();
        let flag = MismatchFlag::default();
        let v = PinnedCertVerifier {
            expected: a.fingerprint(),
            provider: provider(),
            mismatch: flag.clone(),
        };
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let now = UnixTime::now();
        assert!(v.verify_server_cert(&a.cert, &[], &name, &[], now).is_ok());
        assert!(!flag.is_set());
        assert!(v.verify_server_cert(&b.cert, &[], &name, &[], now).is_err());
        assert!(flag.is_set());
    }
}
