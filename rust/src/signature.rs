//! Public keys and signature verification: Ed25519 (strict) and RSA PKCS#1 v1.5 / PSS with
//! SHA-256, as DESIGN.md section 2 ("What is signed") specifies.
//!
//! Keys come as PEM or DER SubjectPublicKeyInfo, PKCS#1 `RSA PUBLIC KEY`, a raw 32-byte Ed25519
//! key, or an X.509 certificate (PEM or DER), whose validity window is kept with the key. The
//! `keyid` is the lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo.

use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer as _, PublicKeyX509Der};
use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use base64::Engine as _;
use der::{Decode as _, Encode as _};

use crate::error::{Error, Result};
use crate::hashing::{self, to_hex, Digest};
use crate::pool;
use crate::rsa_pss::{self, PssKey};

const ED25519_OID: &str = "1.3.101.112";
const RSA_OID: &str = "1.2.840.113549.1.1.1";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const RSA_MIN_BITS: u32 = 2048;
const RSA_MAX_BITS: u32 = 4096;

/// A signature algorithm, named as in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Ed25519,
    RsaPkcs1v15Sha256,
    RsaPssSha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [
        Algorithm::Ed25519,
        Algorithm::RsaPkcs1v15Sha256,
        Algorithm::RsaPssSha256,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::RsaPkcs1v15Sha256 => "rsa-pkcs1v15-sha256",
            Algorithm::RsaPssSha256 => "rsa-pss-sha256",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown algorithm {name:?}")))
    }
}

/// Which message an Ed25519 binary signature was made over (DESIGN.md: the raw digest, or for
/// compatibility its lowercase hex). RSA signatures are always over the content digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageForm {
    Digest,
    Hex,
}

impl MessageForm {
    pub fn name(self) -> &'static str {
        match self {
            MessageForm::Digest => "digest",
            MessageForm::Hex => "hex",
        }
    }
}

enum Material {
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa {
        bits: u32,
        pkcs1: ParsedPublicKey,
        /// PSS at the salt length recovered from each signature (or the key's own).
        pss: PssKey,
        /// An RSASSA-PSS key (RFC 4055): it signs with PSS only.
        pss_only: bool,
    },
}

/// A parsed, acceptable public key. Cheap to share across threads.
pub struct PublicKey {
    material: Material,
    spki_der: Vec<u8>,
    keyid: String,
    /// Certificate validity window, Unix seconds, when the key came from a certificate.
    validity: Option<(i64, i64)>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kind", &self.kind())
            .field("keyid", &self.keyid)
            .field("validity", &self.validity)
            .finish()
    }
}

fn bad_key(msg: impl Into<String>) -> Error {
    Error::InvalidKey(msg.into())
}

fn bad_sig(msg: impl Into<String>) -> Error {
    Error::InvalidSignature(msg.into())
}

impl PublicKey {
    /// Parses any supported encoding (see the module doc).
    pub fn parse(data: &[u8]) -> Result<Self> {
        // Raw Ed25519 first: its bytes may well look like whitespace at either end.
        if let Ok(raw) = <&[u8; 32]>::try_from(data) {
            return Self::from_ed25519_raw(raw);
        }
        let trimmed = data.trim_ascii();
        if trimmed.starts_with(b"-----BEGIN") {
            let (label, der) = pem_rfc7468::decode_vec(trimmed)
                .map_err(|e| bad_key(format!("malformed PEM: {e}")))?;
            return match label {
                "PUBLIC KEY" => Self::from_spki_der(&der),
                "RSA PUBLIC KEY" => Self::from_rsa_der(&der),
                "CERTIFICATE" => Self::from_certificate_der(&der),
                other => Err(bad_key(format!(
                    "PEM label {other:?} is not a public key or certificate"
                ))),
            };
        }
        // DER: a certificate is a SEQUENCE whose first element is itself a SEQUENCE of
        // SEQUENCEs; trying SPKI first and then the certificate keeps the errors precise.
        match Self::from_spki_der(data) {
            Ok(k) => Ok(k),
            Err(spki_err) => Self::from_certificate_der(data).map_err(|_| spki_err),
        }
    }

    pub fn from_ed25519_raw(raw: &[u8; 32]) -> Result<Self> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(raw)
            .map_err(|_| bad_key("Ed25519 key is not a valid curve point"))?;
        if vk.to_edwards().compress().to_bytes() != *raw {
            return Err(bad_key("Ed25519 key is not canonically encoded"));
        }
        if vk.is_weak() {
            return Err(bad_key("Ed25519 key is a small-order point"));
        }
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(raw);
        Ok(Self::new(Material::Ed25519(vk), spki, None))
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| bad_key(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        match spki.algorithm.oid.to_string().as_str() {
            ED25519_OID => {
                let raw: [u8; 32] = spki
                    .subject_public_key
                    .as_bytes()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad_key("Ed25519 key must be 32 bytes"))?;
                Self::from_ed25519_raw(&raw)
            }
            RSA_OID => Self::from_rsa_der(der),
            rsa_pss::PSS_OID => {
                // Same RSAPublicKey as an rsaEncryption key; the parameters restrict its use.
                let params = spki.algorithm.parameters.map(|p| p.to_der()).transpose();
                let params = params.map_err(|e| bad_key(format!("RSASSA-PSS parameters: {e}")))?;
                let salt = rsa_pss::key_salt_len(params.as_deref())?;
                let pkcs1 = spki
                    .subject_public_key
                    .as_bytes()
                    .ok_or_else(|| bad_key("malformed RSA key"))?;
                let mut key = Self::from_rsa_der(pkcs1)?;
                if let Material::Rsa { pss, pss_only, .. } = &mut key.material {
                    *pss = PssKey::new(pkcs1, salt)?;
                    *pss_only = true;
                }
                // The keyid names the key as given, restriction included.
                Ok(Self::new(key.material, der.to_vec(), None))
            }
            oid => Err(bad_key(format!(
                "unsupported key algorithm {oid} (want Ed25519 or RSA)"
            ))),
        }
    }

    /// An RSA key from PKCS#1 `RSAPublicKey` or SubjectPublicKeyInfo DER.
    fn from_rsa_der(der: &[u8]) -> Result<Self> {
        let malformed = |e: aws_lc_rs::error::KeyRejected| match e.description_() {
            "TooSmall" | "TooLarge" => bad_key(format!(
                "RSA key size out of range; {RSA_MIN_BITS} to {RSA_MAX_BITS} bits are accepted"
            )),
            other => bad_key(format!("malformed RSA key: {other}")),
        };
        let pkcs1 =
            ParsedPublicKey::new(&lc::RSA_PKCS1_2048_8192_SHA256, der).map_err(malformed)?;
        let spki: PublicKeyX509Der<'static> = pkcs1
            .as_der()
            .map_err(|_| bad_key("cannot encode RSA key"))?;
        let spki = spki.as_ref().to_vec();
        let bits = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki)
            .map_err(malformed)?
            .key_size_bits() as u32;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(bad_key(format!(
                "RSA key has {bits} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted"
            )));
        }
        let rsa_public_key = spki::SubjectPublicKeyInfoRef::from_der(&spki)
            .ok()
            .and_then(|k| k.subject_public_key.as_bytes().map(<[u8]>::to_vec))
            .ok_or_else(|| bad_key("cannot encode RSA key"))?;
        let material = Material::Rsa {
            bits,
            pkcs1,
            pss: PssKey::new(&rsa_public_key, None)?,
            pss_only: false,
        };
        Ok(Self::new(material, spki, None))
    }

    pub fn from_certificate_der(der: &[u8]) -> Result<Self> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| bad_key(format!("not a DER X.509 certificate: {e}")))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad_key(format!("certificate key: {e}")))?;
        let mut key = Self::from_spki_der(&spki)?;
        let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        let v = tbs.validity();
        key.validity = Some((secs(&v.not_before), secs(&v.not_after)));
        Ok(key)
    }

    fn new(material: Material, spki_der: Vec<u8>, validity: Option<(i64, i64)>) -> Self {
        let keyid = to_hex(&hashing::sha256(&spki_der));
        Self {
            material,
            spki_der,
            keyid,
            validity,
        }
    }

    /// `"ed25519"` or `"rsa"`.
    pub fn kind(&self) -> &'static str {
        match self.material {
            Material::Ed25519(_) => "ed25519",
            Material::Rsa { .. } => "rsa",
        }
    }

    pub fn bits(&self) -> u32 {
        match &self.material {
            Material::Ed25519(_) => 256,
            Material::Rsa { bits, .. } => *bits,
        }
    }

    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn spki_pem(&self) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &self.spki_der)
            .expect("PEM encoding of DER cannot fail")
    }

    /// `(not_before, not_after)` in Unix seconds for a key taken from a certificate.
    pub fn validity(&self) -> Option<(i64, i64)> {
        self.validity
    }

    /// The algorithm used when none is named: Ed25519, or PKCS#1 v1.5 for RSA keys.
    pub fn default_algorithm(&self) -> Algorithm {
        match self.material {
            Material::Ed25519(_) => Algorithm::Ed25519,
            Material::Rsa { pss_only: true, .. } => Algorithm::RsaPssSha256,
            Material::Rsa { .. } => Algorithm::RsaPkcs1v15Sha256,
        }
    }

    /// Fails unless `alg` can be used with this key.
    pub fn check_algorithm(&self, alg: Algorithm) -> Result<()> {
        let ok = matches!(
            (&self.material, alg),
            (Material::Ed25519(_), Algorithm::Ed25519)
                | (Material::Rsa { .. }, Algorithm::RsaPssSha256)
                | (
                    Material::Rsa {
                        pss_only: false,
                        ..
                    },
                    Algorithm::RsaPkcs1v15Sha256
                )
        );
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "algorithm {} does not fit a {} key",
                alg.name(),
                self.kind()
            )))
        }
    }

    /// Length in bytes of this key's signatures.
    pub fn signature_len(&self) -> usize {
        match &self.material {
            Material::Ed25519(_) => 64,
            Material::Rsa { bits, .. } => (*bits as usize).div_ceil(8),
        }
    }

    /// Decodes a signature given as hex (either case) or base64 (standard or URL-safe, padded or
    /// not). Hex is recognised by its exact length for this key, so the two never collide.
    pub fn decode_signature(&self, text: &str) -> Result<Vec<u8>> {
        let text = text.trim();
        let want = self.signature_len();
        let bytes = if text.len() == 2 * want && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..want)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|_| bad_sig("malformed hex"))?
        } else {
            decode_base64(text).ok_or_else(|| bad_sig("neither hex nor base64"))?
        };
        if bytes.len() != want {
            return Err(bad_sig(format!(
                "{} bytes, but a {} signature of this key has {want}",
                bytes.len(),
                self.kind()
            )));
        }
        Ok(bytes)
    }

    /// Verifies `signature` over `data`: for Ed25519 `data` is the message; for RSA it is the
    /// SHA-256 digest of the message (prehashed), which must be 32 bytes.
    pub fn verify(&self, alg: Algorithm, data: &[u8], signature: &[u8]) -> Result<()> {
        self.check_algorithm(alg)?;
        match (&self.material, alg) {
            (Material::Ed25519(vk), _) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| bad_sig("an Ed25519 signature has 64 bytes"))?;
                vk.verify_strict(data, &sig)
                    .map_err(|_| bad_sig("Ed25519 signature does not verify"))
            }
            (Material::Rsa { pkcs1, pss, .. }, _) => {
                if data.len() != 32 {
                    return Err(Error::InvalidArgument(format!(
                        "RSA verification takes a 32-byte SHA-256 digest, got {} bytes",
                        data.len()
                    )));
                }
                if signature.len() != self.signature_len() {
                    return Err(bad_sig(format!(
                        "an RSA signature of this key has {} bytes, got {}",
                        self.signature_len(),
                        signature.len()
                    )));
                }
                let ok = if alg == Algorithm::RsaPssSha256 {
                    let digest: &[u8; 32] = data.try_into().expect("length checked above");
                    pss.verify(digest, signature)
                } else {
                    let digest = aws_lc_rs::digest::Digest::import_less_safe(
                        data,
                        &aws_lc_rs::digest::SHA256,
                    )
                    .map_err(|_| Error::InvalidArgument("bad digest length".into()))?;
                    pkcs1.verify_digest_sig(&digest, signature).is_ok()
                };
                if ok {
                    Ok(())
                } else {
                    Err(bad_sig(format!("{} signature does not verify", alg.name())))
                }
            }
        }
    }

    /// Verifies a signature over a binary whose content has SHA-256 `digest`, as DESIGN.md says
    /// binaries are signed: Ed25519 over the raw digest or, failing that, its lowercase hex;
    /// RSA over the content (checked from the digest). Says which form verified.
    pub fn verify_binary(
        &self,
        alg: Algorithm,
        digest: &Digest,
        signature: &[u8],
    ) -> Result<MessageForm> {
        match self.verify(alg, digest, signature) {
            Ok(()) => Ok(MessageForm::Digest),
            Err(first) if alg == Algorithm::Ed25519 => {
                let hex = to_hex(digest);
                self.verify(alg, hex.as_bytes(), signature)
                    .map(|()| MessageForm::Hex)
                    .map_err(|_| first)
            }
            Err(e) => Err(e),
        }
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    standard.decode(text).or_else(|_| url.decode(text)).ok()
}

/// One item of a batch: the key, algorithm, data (message, digest) and signature.
#[derive(Clone, Debug)]
pub struct BatchItem {
    pub key: Arc<PublicKey>,
    pub algorithm: Algorithm,
    pub data: Vec<u8>,
    pub signature: Vec<u8>,
}

/// How batch items' `data` is read: as for [`PublicKey::verify`], or as a binary's digest for
/// [`PublicKey::verify_binary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchMode {
    Message,
    BinaryDigest,
}

/// Below this many items the pool hand-off costs more than it saves.
const BATCH_PARALLEL_MIN: usize = 8;

/// Verifies every item, in parallel on the shared pool; one verdict per item, in order.
///
/// Each item is checked exactly as a single verification would check it. Ed25519's batch
/// equation is deliberately not used: with random coefficients it accepts, with some
/// probability, signatures whose R carries a small torsion component that strict single
/// verification rejects, and a batch verdict must never differ from the single one.
pub fn verify_many(items: &[BatchItem], mode: BatchMode) -> Result<Vec<Result<MessageForm>>> {
    let one = |it: &BatchItem| match mode {
        BatchMode::Message => it
            .key
            .verify(it.algorithm, &it.data, &it.signature)
            .map(|()| MessageForm::Digest),
        BatchMode::BinaryDigest => {
            let digest: &Digest = it.data.as_slice().try_into().map_err(|_| {
                Error::InvalidArgument(format!("a digest has 32 bytes, got {}", it.data.len()))
            })?;
            it.key.verify_binary(it.algorithm, digest, &it.signature)
        }
    };
    if items.len() < BATCH_PARALLEL_MIN {
        return Ok(items.iter().map(one).collect());
    }
    pool::map(items, one)
}

#[cfg(test)]
mod tests;
