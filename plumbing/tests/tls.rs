//! TLS configuration tested with real handshakes over loopback TCP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plumbing::tls::dev::DevPki;
use plumbing::tls::{
    self, TlsError, TlsFiles, TlsOptions, client_config, client_config_without_cert,
    parse_cipher_suites, server_config, server_config_with,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn rsa_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rsa")
}

fn rsa_files(name: &str) -> TlsFiles {
    let d = rsa_dir();
    TlsFiles::new(
        d.join("ca.crt"),
        d.join(format!("{name}.crt")),
        d.join(format!("{name}.key")),
    )
}

/// What each side saw of one connection.
#[derive(Debug)]
struct Outcome {
    server: Result<(), String>,
    client: Result<(), String>,
    /// Negotiated (version, suite) as seen by the client, when it got that far.
    negotiated: Option<(ProtocolVersion, rustls::CipherSuite)>,
}

/// Handshake, then a ping/pong exchange so that late rejections (TLS 1.3 client certificate
/// checks happen after the client considers itself connected) are observed too.
async fn exchange(server: Arc<ServerConfig>, client: Arc<ClientConfig>, name: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let connector = TlsConnector::from(client);
    let server_name = ServerName::try_from(name.to_owned()).expect("server name");
    let mut negotiated = None;
    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let conn = tls.get_ref().1;
        negotiated = conn
            .protocol_version()
            .zip(conn.negotiated_cipher_suite().map(|s| s.suite()));
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if &buf != b"pong" {
            return Err("bad reply".to_owned());
        }
        Ok(())
    }
    .await;
    let server = tokio::time::timeout(Duration::from_secs(5), server_task)
        .await
        .map_err(|_| "server timed out".to_owned())
        .and_then(|j| j.map_err(|e| e.to_string()))
        .and_then(|r| r);
    Outcome {
        server,
        client: client_result,
        negotiated,
    }
}

fn tls12_only_client(
    files: &TlsFiles,
    suites: Option<&[rustls::SupportedCipherSuite]>,
) -> Arc<ClientConfig> {
    let ca = files.ca.as_deref().expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for c in tls::load_certs(ca).expect("ca") {
        roots.add(c).expect("root");
    }
    let config = ClientConfig::builder_with_provider(tls::provider(suites))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            tls::load_certs(&files.cert).expect("cert"),
            tls::load_key(&files.key).expect("key"),
        )
        .expect("client auth");
    Arc::new(config)
}

#[tokio::test]
async fn mtls_handshake_succeeds_with_dev_pki_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::generate(dir.path()).expect("pki");
    for name in [
        "ca.crt",
        "ca.key",
        "doppler.crt",
        "doppler.key",
        "metron.key",
        "localhost.crt",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} written");
    }
    let server = server_config(&pki.files("doppler")).expect("server config");
    let client = client_config(&pki.files("metron")).expect("client config");
    let out = exchange(server, client, "doppler").await;
    assert_eq!(out.server, Ok(()));
    assert_eq!(out.client, Ok(()));
    let (version, _) = out.negotiated.expect("negotiated");
    assert_eq!(version, ProtocolVersion::TLSv1_3);
}

#[tokio::test]
async fn dev_leaf_is_valid_for_localhost_and_127_0_0_1() {
    let pki = DevPki::in_memory().expect("pki");
    let server = pki.server_config("trafficcontroller").expect("server");
    for name in ["trafficcontroller", "localhost", "127.0.0.1"] {
        let client = pki.client_config("client").expect("client");
        let out = exchange(server.clone(), client, name).await;
        assert_eq!(out.client, Ok(()), "{name}");
        assert_eq!(out.server, Ok(()), "{name}");
    }
}

#[tokio::test]
async fn tls12_with_ecdsa_dev_pki_uses_ecdsa_aes_gcm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::generate(dir.path()).expect("pki");
    let server = server_config(&pki.files("doppler")).expect("server");
    let client = tls12_only_client(&pki.files("metron"), None);
    let out = exchange(server, client, "doppler").await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.server, Ok(()));
    let (version, suite) = out.negotiated.expect("negotiated");
    assert_eq!(version, ProtocolVersion::TLSv1_2);
    assert!(
        matches!(
            suite,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        ),
        "{suite:?}"
    );
}

#[tokio::test]
async fn rsa_pkcs1_keys_and_upstream_tls12_suites() {
    let suites = parse_cipher_suites(
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    )
    .expect("suites");
    let options = TlsOptions {
        tls12_suites: Some(suites.clone()),
        alpn: None,
    };
    let server = server_config_with(&rsa_files("doppler"), &options).expect("server");
    let client = tls12_only_client(&rsa_files("metron"), Some(&suites[1..]));
    let out = exchange(server.clone(), client, "doppler").await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.server, Ok(()));
    assert_eq!(
        out.negotiated,
        Some((
            ProtocolVersion::TLSv1_2,
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ))
    );
    // TLS 1.3 with RSA identities works too.
    let client = client_config(&rsa_files("metron")).expect("client");
    let out = exchange(server, client, "doppler").await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.negotiated.map(|n| n.0), Some(ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn tls12_suite_outside_configured_list_is_refused() {
    // Server restricted to upstream's RSA suites; a TLS 1.2 client offering only a CBC-free
    // ECDSA suite cannot agree on anything.
    let options = TlsOptions {
        tls12_suites: Some(
            parse_cipher_suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").expect("s"),
        ),
        alpn: None,
    };
    let server = server_config_with(&rsa_files("doppler"), &options).expect("server");
    let client = tls12_only_client(
        &rsa_files("metron"),
        Some(&[rustls::crypto::ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]),
    );
    let out = exchange(server, client, "doppler").await;
    assert!(out.client.is_err(), "{out:?}");
    assert!(out.server.is_err(), "{out:?}");
}

#[tokio::test]
async fn sec1_ec_key_is_accepted() {
    let d = rsa_dir();
    let files = TlsFiles::new(
        d.join("ca.crt"),
        d.join("ec-doppler.crt"),
        d.join("ec-doppler.key"),
    );
    let server = server_config(&files).expect("server with SEC1 key");
    let client = client_config(&rsa_files("metron")).expect("client");
    let out = exchange(server, client, "doppler").await;
    assert_eq!(out.client, Ok(()));
    assert_eq!(out.server, Ok(()));
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::generate(dir.path()).expect("pki");
    let server = server_config(&pki.files("doppler")).expect("server");
    let client =
        client_config_without_cert(&pki.ca_path(), &TlsOptions::default()).expect("client");
    let out = exchange(server, client, "doppler").await;
    assert!(out.client.is_err(), "{out:?}");
    let err = out.server.expect_err("server must refuse");
    assert!(err.contains("peer sent no certificates"), "{err}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = DevPki::in_memory().expect("pki");
    let other = DevPki::in_memory().expect("other pki");
    let server = pki.server_config("doppler").expect("server");
    // Trusts the right CA (so the server is accepted) but presents a foreign certificate.
    let foreign = other.identity("metron").expect("metron");
    let files = pki.files("metron");
    let client = tls::client_config_from_pem(
        &tls::PemIdentity {
            ca: Some((pki.ca_cert_pem().as_bytes(), Path::new("ca.crt"))),
            cert: (foreign.cert_pem.as_bytes(), &files.cert),
            key: (foreign.key_pem.as_bytes(), &files.key),
        },
        &TlsOptions::default(),
    )
    .expect("client");
    let out = exchange(server, client, "doppler").await;
    let err = out.server.expect_err("server must refuse");
    // Both CAs are named `loggregator_ca`, so webpki finds the wrong issuer by name and
    // reports a bad signature.
    assert!(
        err.contains("invalid peer certificate: BadSignature"),
        "{err}"
    );
    assert!(out.client.is_err());
}

#[tokio::test]
async fn server_from_another_ca_is_refused_by_client() {
    let pki = DevPki::in_memory().expect("pki");
    let other = DevPki::in_memory().expect("other pki");
    let server = other.server_config("doppler").expect("server");
    let client = pki.client_config("metron").expect("client");
    let out = exchange(server, client, "doppler").await;
    let err = out.client.expect_err("client must refuse");
    // Both CAs are named `loggregator_ca`, so webpki finds the wrong issuer by name and
    // reports a bad signature.
    assert!(
        err.contains("invalid peer certificate: BadSignature"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_server_name_is_refused() {
    let pki = DevPki::in_memory().expect("pki");
    let server = pki.server_config("doppler").expect("server");
    let client = pki.client_config("metron").expect("client");
    let out = exchange(server, client, "reverselogproxy").await;
    let err = out.client.expect_err("client must refuse");
    assert!(
        err.contains("certificate not valid for name \"reverselogproxy\""),
        "{err}"
    );
}

/// A hand-built ClientHello with legacy version `minor` (3.`minor`) and no supported_versions
/// extension.
fn client_hello(minor: u8) -> Vec<u8> {
    let mut body = vec![0x03, minor];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE_{ECDSA,RSA} AES128 GCM
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    // Extensions: signature_algorithms (ecdsa_secp256r1_sha256, rsa_pkcs1_sha256),
    // supported_groups (x25519, secp256r1), ec_point_formats (uncompressed).
    let ext: &[u8] = &[
        0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01, //
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, //
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,
    ];
    body.extend_from_slice(&[0x00, ext.len() as u8]);
    body.extend_from_slice(ext);
    let mut hs = vec![0x01, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, hs.len() as u8];
    record.extend_from_slice(&hs);
    record
}

/// Sends `hello` to a dev-PKI server; returns the first 7 reply bytes and the server's result.
async fn raw_hello(hello: &[u8]) -> ([u8; 7], Result<(), String>) {
    let pki = DevPki::in_memory().expect("pki");
    let acceptor = TlsAcceptor::from(pki.server_config("doppler").expect("server"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let r = tokio::time::timeout(Duration::from_secs(1), acceptor.accept(tcp)).await;
        match r {
            Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err("handshake still in progress".to_owned()),
        }
    });
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(hello).await.expect("write");
    let mut reply = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .expect("read reply");
    drop(tcp);
    (reply, server.await.expect("join"))
}

/// TLS 1.1 cannot be negotiated: a TLS 1.1 ClientHello gets a fatal `protocol_version` alert,
/// while the same hello claiming TLS 1.2 gets a ServerHello.
#[tokio::test]
async fn tls11_client_hello_is_rejected_with_protocol_version_alert() {
    let (reply, server) = raw_hello(&client_hello(2)).await;
    // Alert record, fatal (2), protocol_version (70).
    assert_eq!(reply[0], 0x15, "{reply:?}");
    assert_eq!(&reply[5..7], &[2, 70], "{reply:?}");
    let err = server.expect_err("handshake fails");
    assert!(err.contains("Tls12NotOffered"), "{err}");

    let (reply, _) = raw_hello(&client_hello(3)).await;
    // Handshake record carrying a ServerHello (type 2) at TLS 1.2.
    assert_eq!(&reply[..3], &[0x16, 0x03, 0x03], "{reply:?}");
    assert_eq!(reply[5], 0x02, "{reply:?}");
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::generate(dir.path()).expect("pki");
    let mut files = pki.files("doppler");
    files.cert = PathBuf::from("/x/y.pem");
    assert_eq!(
        server_config(&files).map(|_| ()).map_err(|e| e.to_string()),
        Err("reading certificate file /x/y.pem: no such file".to_owned())
    );
    let mut files = pki.files("doppler");
    files.key = PathBuf::from("/x/key.pem");
    assert_eq!(
        client_config(&files).map(|_| ()).map_err(|e| e.to_string()),
        Err("reading private key file /x/key.pem: no such file".to_owned())
    );
    let mut files = pki.files("doppler");
    files.ca = Some(PathBuf::from("/x/ca.pem"));
    assert_eq!(
        server_config(&files).map(|_| ()).map_err(|e| e.to_string()),
        Err("reading CA certificate file /x/ca.pem: no such file".to_owned())
    );
    let files = pki.files("nobody");
    let err = server_config(&files).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        err,
        Err(format!(
            "reading certificate file {}: no such file",
            dir.path().join("nobody.crt").display()
        ))
    );
}

#[test]
fn invalid_file_contents_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::generate(dir.path()).expect("pki");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a pem file\n").expect("write");

    // A key file without a key; a cert file without a certificate.
    let mut files = pki.files("doppler");
    files.key = files.cert.clone();
    assert_eq!(
        server_config(&files).map(|_| ()).map_err(|e| e.to_string()),
        Err(format!("no private key found in {}", files.cert.display()))
    );
    let mut files = pki.files("doppler");
    files.cert = junk.clone();
    assert_eq!(
        server_config(&files).map(|_| ()).map_err(|e| e.to_string()),
        Err(format!("no certificate found in {}", junk.display()))
    );
    let mut files = pki.files("doppler");
    files.ca = Some(junk.clone());
    assert_eq!(
        client_config(&files).map(|_| ()).map_err(|e| e.to_string()),
        Err(format!("no certificate found in {}", junk.display()))
    );

    // Corrupt base64 inside a PEM block.
    let broken = dir.path().join("broken.crt");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let mut files = pki.files("doppler");
    files.cert = broken.clone();
    let err = server_config(&files).map(|_| ()).expect_err("invalid");
    assert!(
        matches!(err, TlsError::InvalidPem { ref path, .. } if *path == broken),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("invalid PEM in {}", broken.display()))
    );

    // Certificate and key that do not belong together.
    let mut files = pki.files("doppler");
    files.key = dir.path().join("metron.key");
    let err = server_config(&files).map(|_| ()).expect_err("mismatch");
    assert!(matches!(err, TlsError::InvalidIdentity { .. }), "{err}");
    assert!(err.to_string().contains("doppler.crt"), "{err}");
}

#[test]
fn client_config_requires_ca() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::generate(pki_dir.path()).expect("pki");
    let mut files = pki.files("metron");
    files.ca = None;
    assert!(matches!(client_config(&files), Err(TlsError::MissingCa)));
    // A server without CA does not ask for client certificates.
    assert!(server_config(&files).is_ok());
}

#[test]
fn alpn_defaults() {
    let pki = DevPki::in_memory().expect("pki");
    let server = pki.server_config("doppler").expect("server");
    assert_eq!(
        server.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let client = pki.client_config("metron").expect("client");
    assert!(client.alpn_protocols.is_empty());
}
