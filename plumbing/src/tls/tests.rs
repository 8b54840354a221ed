//! TLS configuration tests (handshakes over real sockets live in `tests/tls_grpc.rs`).

use super::*;

#[test]
fn cipher_suite_list_parsing() {
    let s = parse_cipher_suites(
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    )
    .expect("valid");
    assert_eq!(s.len(), 2);
    let s = parse_cipher_suites("BOGUS, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384").expect("one");
    assert_eq!(s.len(), 1);
    assert_eq!(
        parse_cipher_suites("TLS_RSA_WITH_RC4_128_SHA")
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err("no valid ciphers provided for TLS configuration".to_owned())
    );
}

#[test]
fn cipher_suite_names_parsing() {
    assert!(parse_cipher_suite_names(None).expect("none").is_none());
    let names = [
        "BOGUS".to_owned(),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned(),
    ];
    let s = parse_cipher_suite_names(Some(&names)).expect("valid");
    assert_eq!(s.map(|s| s.len()), Some(2));
    assert!(matches!(
        parse_cipher_suite_names(Some(&["BOGUS".to_owned()])),
        Err(TlsError::NoValidCiphers)
    ));
}
