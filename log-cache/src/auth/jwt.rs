//! UAA JWTs checked locally (upstream `src/internal/auth/uaa_client.go`).
//!
//! A token is `header.payload.signature` (base64url). The header's `alg` must
//! be `RS256` or `HS256` and its `kid` must name a key from UAA's
//! `GET /token_keys` of the same algorithm (an `HS256` token is never checked
//! against an RSA key, nor the reverse). RSA keys come from the JWK's `n`/`e`
//! or, as upstream reads them, from the PEM `value` (SubjectPublicKeyInfo or
//! PKCS#1); `HS256` keys are the `value` bytes, as upstream stores them. The
//! payload's `exp` (seconds; missing means long expired, as upstream's zero
//! time) must be in the future; `scope` decides admin access.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;

/// Scopes that read every source (upstream `uaa_client.go: Read`).
pub(crate) const ADMIN_SCOPES: [&str; 2] = ["doppler.firehose", "logs.admin"];

/// Longest token looked at; longer ones are refused unparsed.
const MAX_TOKEN: usize = 16 * 1024;

/// A verification key from `/token_keys`.
pub(crate) enum Key {
    /// `RS256`: modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// `HS256`: the shared secret.
    Hmac(ring::hmac::Key),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Rsa { n, .. } => write!(f, "Rsa({} bits)", n.len() * 8),
            Key::Hmac(_) => f.write_str("Hmac"),
        }
    }
}

/// UAA's keys by `kid`.
pub(crate) type KeySet = HashMap<String, Arc<Key>>;

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Hs256,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtError {
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` other than `RS256` / `HS256`.
    #[error("unsupported algorithm: {0}")]
    Algorithm(String),
    /// No key with this `kid` (or with the token's algorithm).
    #[error("using unknown token key: {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("signature verification failed")]
    Signature,
    /// `exp` has passed.
    #[error("token is expired")]
    Expired,
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) alg: Alg,
    pub(crate) kid: String,
    signed: &'a [u8],
    signature: Vec<u8>,
    payload: Vec<u8>,
}

/// What a verified, unexpired token says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claims {
    /// The token's `exp`.
    pub(crate) exp: SystemTime,
    /// One of [`ADMIN_SCOPES`] is present.
    pub(crate) admin: bool,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Payload {
    exp: Option<f64>,
    #[serde(default)]
    scope: Vec<String>,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Splits and decodes `token` (the bare JWT).
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    if token.len() > MAX_TOKEN {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header: Header = b64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed("bad header"))?;
    let alg = match header.alg.as_deref() {
        Some("RS256") => Alg::Rs256,
        Some("HS256") => Alg::Hs256,
        other => return Err(JwtError::Algorithm(other.unwrap_or("").to_owned())),
    };
    let kid = header.kid.ok_or(JwtError::Malformed("no kid"))?;
    let payload = b64url(p).ok_or(JwtError::Malformed("bad payload encoding"))?;
    let signature = b64url(s).ok_or(JwtError::Malformed("bad signature encoding"))?;
    Ok(Parsed {
        alg,
        kid,
        signed: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
        payload,
    })
}

impl Parsed<'_> {
    /// Checks the signature with `key`, which must be of the token's algorithm.
    pub(crate) fn verify(&self, key: &Key) -> Result<(), JwtError> {
        let ok = match (self.alg, key) {
            (Alg::Rs256, Key::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, self.signed, &self.signature)
                .is_ok(),
            (Alg::Hs256, Key::Hmac(k)) => {
                ring::hmac::verify(k, self.signed, &self.signature).is_ok()
            }
            _ => return Err(JwtError::UnknownKey(self.kid.clone())),
        };
        if ok { Ok(()) } else { Err(JwtError::Signature) }
    }

    /// The claims, once the signature is verified: refused when `exp` is
    /// before `now` (or missing).
    pub(crate) fn claims(&self, now: SystemTime) -> Result<Claims, JwtError> {
        let p: Payload = serde_json::from_slice(&self.payload)
            .map_err(|_| JwtError::Malformed("bad payload"))?;
        let exp = match p.exp {
            Some(s) if s.is_finite() && s > 0.0 => {
                SystemTime::UNIX_EPOCH + Duration::from_secs(s.min(u32::MAX as f64 * 4.0) as u64)
            }
            _ => SystemTime::UNIX_EPOCH,
        };
        if now > exp {
            return Err(JwtError::Expired);
        }
        let admin = p.scope.iter().any(|s| ADMIN_SCOPES.contains(&s.as_str()));
        Ok(Claims { exp, admin })
    }
}

#[derive(Deserialize)]
struct TokenKeys {
    keys: Vec<TokenKey>,
}

#[derive(Deserialize)]
struct TokenKey {
    #[serde(default)]
    kid: String,
    alg: Option<String>,
    value: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Parses UAA's `GET /token_keys` answer. Like upstream, one unusable key
/// fails the whole set (the caller keeps the keys it had).
pub(crate) fn parse_token_keys(body: &[u8]) -> Result<KeySet, String> {
    let keys: TokenKeys = serde_json::from_slice(body)
        .map_err(|e| format!("unable to decode json token keys from UAA: {e}"))?;
    let mut set = KeySet::new();
    for k in keys.keys {
        let key = if k.alg.as_deref() == Some("HS256") {
            match k.value.as_deref() {
                Some(v) if !v.is_empty() => {
                    Key::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, v.as_bytes()))
                }
                _ => return Err(format!("empty HS256 token key {:?} from UAA", k.kid)),
            }
        } else if let (Some(n), Some(e)) = (&k.n, &k.e) {
            let (Some(n), Some(e)) = (b64url(n), b64url(e)) else {
                return Err(format!("bad n/e in token key {:?} from UAA", k.kid));
            };
            rsa_key(strip_zeros(&n), strip_zeros(&e), &k.kid)?
        } else {
            let value = k.value.as_deref().unwrap_or("");
            if value.is_empty() {
                return Err(format!("received an empty token key {:?} from UAA", k.kid));
            }
            let (n, e) = rsa_from_pem(value)
                .ok_or_else(|| format!("token key {:?}: not an RSA public key in PEM", k.kid))?;
            rsa_key(&n, &e, &k.kid)?
        };
        set.insert(k.kid, Arc::new(key));
    }
    Ok(set)
}

fn rsa_key(n: &[u8], e: &[u8], kid: &str) -> Result<Key, String> {
    if !(2048..=8192).contains(&(n.len() * 8)) || e.is_empty() {
        return Err(format!(
            "token key {kid:?}: RSA modulus of {} bits (2048 to 8192 accepted)",
            n.len() * 8
        ));
    }
    Ok(Key::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// `(n, e)` of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`
/// (PKCS#1), big-endian without leading zeros.
fn rsa_from_pem(pem: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let begin = pem.find("-----BEGIN ")?;
    let rest = &pem[begin + 11..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body_start = label_end + 5;
    let end = rest.find("-----END ")?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD.decode(b64).ok()?;
    let pkcs1 = match label {
        "PUBLIC KEY" => spki_rsa(&der)?,
        "RSA PUBLIC KEY" => der.as_slice(),
        _ => return None,
    };
    let (n, e) = pkcs1_rsa(pkcs1)?;
    Some((strip_zeros(n).to_vec(), strip_zeros(e).to_vec()))
}

/// One DER TLV: `(tag, content, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, mut rest) = rest.split_first()?;
    let len = if len0 < 0x80 {
        len0 as usize
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
/// 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPublicKey` inside a SubjectPublicKeyInfo.
fn spki_rsa(der: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, spki, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, alg, rest) = tlv(spki)? else {
        return None;
    };
    let (OID, oid, _) = tlv(alg)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (BIT_STRING, bits, _) = tlv(rest)? else {
        return None;
    };
    match bits.split_first()? {
        (0, key) => Some(key),
        _ => None,
    }
}

/// `(n, e)` of a PKCS#1 `RSAPublicKey`.
fn pkcs1_rsa(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (SEQUENCE, seq, _) = tlv(der)? else {
        return None;
    };
    let (INTEGER, n, rest) = tlv(seq)? else {
        return None;
    };
    let (INTEGER, e, _) = tlv(rest)? else {
        return None;
    };
    Some((n, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

    const A_KEY: &str = include_str!("../../tests/data/uaa-a.key.pem");
    const A_PUB: &str = include_str!("../../tests/data/uaa-a.pub.pem");
    const B_KEY: &str = include_str!("../../tests/data/uaa-b.key.pem");

    fn pem_der(pem: &str) -> Vec<u8> {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(b64).unwrap()
    }

    fn pair(pem: &str) -> RsaKeyPair {
        RsaKeyPair::from_pkcs8(&pem_der(pem)).unwrap()
    }

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn rs256(key: &RsaKeyPair, header: &str, payload: &str) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{signed}.{}", b64(&sig))
    }

    fn far() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    #[test]
    fn pem_and_jwk_forms_give_the_same_rsa_key() {
        let (n, e) = rsa_from_pem(A_PUB).unwrap();
        let kp = pair(A_KEY);
        let (pn, pe) = pkcs1_rsa(kp.public().as_ref()).unwrap();
        assert_eq!(n, strip_zeros(pn));
        assert_eq!(e, strip_zeros(pe));
        assert_eq!(n.len(), 256);
        let keys = format!(
            r#"{{"keys":[{{"kid":"pem","alg":"RS256","value":{pem:?}}},{{"kid":"jwk","kty":"RSA","alg":"RS256","n":"{}","e":"{}"}}]}}"#,
            b64(&n),
            b64(&e),
            pem = A_PUB
        );
        let set = parse_token_keys(keys.as_bytes()).unwrap();
        let token = rs256(
            &kp,
            r#"{"alg":"RS256","kid":"pem"}"#,
            &format!(r#"{{"exp":{}}}"#, far()),
        );
        let parsed = parse(&token).unwrap();
        parsed.verify(&set["pem"]).unwrap();
        parsed.verify(&set["jwk"]).unwrap();
        assert!(!parsed.claims(SystemTime::now()).unwrap().admin);
    }

    #[test]
    fn a_wrong_key_or_a_tampered_payload_fails() {
        let set = parse_token_keys(
            format!(r#"{{"keys":[{{"kid":"k","alg":"RS256","value":{A_PUB:?}}}]}}"#).as_bytes(),
        )
        .unwrap();
        let payload = format!(r#"{{"exp":{},"scope":["openid"]}}"#, far());
        let token = rs256(&pair(B_KEY), r#"{"alg":"RS256","kid":"k"}"#, &payload);
        assert_eq!(
            parse(&token).unwrap().verify(&set["k"]),
            Err(JwtError::Signature)
        );
        let good = rs256(&pair(A_KEY), r#"{"alg":"RS256","kid":"k"}"#, &payload);
        let mut parts: Vec<&str> = good.split('.').collect();
        let admin = b64(format!(r#"{{"exp":{},"scope":["logs.admin"]}}"#, far()).as_bytes());
        parts[1] = &admin;
        let tampered = parts.join(".");
        assert_eq!(
            parse(&tampered).unwrap().verify(&set["k"]),
            Err(JwtError::Signature)
        );
    }

    #[test]
    fn hs256_uses_the_shared_value_and_never_an_rsa_key() {
        let set = parse_token_keys(
            format!(
                r#"{{"keys":[{{"kid":"mac","kty":"MAC","alg":"HS256","value":"s3cret"}},{{"kid":"rsa","alg":"RS256","value":{A_PUB:?}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let hs = |kid: &str, secret: &[u8]| {
            let header = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
            let signed = format!(
                "{}.{}",
                b64(header.as_bytes()),
                b64(format!(r#"{{"exp":{},"scope":["doppler.firehose"]}}"#, far()).as_bytes())
            );
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            let tag = ring::hmac::sign(&k, signed.as_bytes());
            format!("{signed}.{}", b64(tag.as_ref()))
        };
        let t = hs("mac", b"s3cret");
        let p = parse(&t).unwrap();
        p.verify(&set["mac"]).unwrap();
        assert!(p.claims(SystemTime::now()).unwrap().admin);
        let t = hs("mac", b"guess");
        assert_eq!(
            parse(&t).unwrap().verify(&set["mac"]),
            Err(JwtError::Signature)
        );
        // Algorithm confusion: HMAC keyed with the RSA public key's PEM.
        let t = hs("rsa", A_PUB.as_bytes());
        assert_eq!(
            parse(&t).unwrap().verify(&set["rsa"]),
            Err(JwtError::UnknownKey("rsa".into()))
        );
    }

    #[test]
    fn malformed_tokens_and_algorithms_are_refused() {
        let enc = |h: &str| format!("{}.{}.", b64(h.as_bytes()), b64(b"{}"));
        assert!(matches!(parse("a.b"), Err(JwtError::Malformed(_))));
        assert!(matches!(parse("a.b.c.d"), Err(JwtError::Malformed(_))));
        assert!(matches!(parse("!!.b.c"), Err(JwtError::Malformed(_))));
        assert_eq!(
            parse(&enc(r#"{"alg":"none","kid":"k"}"#)).unwrap_err(),
            JwtError::Algorithm("none".into())
        );
        assert!(matches!(
            parse(&enc(r#"{"alg":"RS256"}"#)),
            Err(JwtError::Malformed("no kid"))
        ));
        assert!(matches!(
            parse(&"a".repeat(MAX_TOKEN + 1)),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn exp_is_required_and_checked() {
        let kp = pair(A_KEY);
        let h = r#"{"alg":"RS256","kid":"k"}"#;
        let now = SystemTime::now();
        let past = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 1;
        for payload in [format!(r#"{{"exp":{past}}}"#), "{}".to_owned()] {
            let t = rs256(&kp, h, &payload);
            assert_eq!(
                parse(&t).unwrap().claims(now).unwrap_err(),
                JwtError::Expired
            );
        }
        let t = rs256(&kp, h, &format!(r#"{{"exp":{}.5}}"#, far()));
        assert!(
            parse(&t).unwrap().claims(now).is_ok(),
            "float exp as upstream"
        );
    }

    #[test]
    fn unusable_key_sets_are_errors() {
        for body in [
            "not json",
            r#"{"keys":[{"kid":"k","alg":"RS256","value":""}]}"#,
            r#"{"keys":[{"kid":"k","alg":"HS256","value":""}]}"#,
            r#"{"keys":[{"kid":"k","alg":"RS256","value":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]}"#,
            r#"{"keys":[{"kid":"k","alg":"RS256","n":"AQAB","e":"AQAB"}]}"#,
        ] {
            assert!(parse_token_keys(body.as_bytes()).is_err(), "{body}");
        }
    }
}
