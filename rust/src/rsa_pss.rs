//! RSASSA-PSS with SHA-256 and MGF1-SHA-256, at the salt length the signer chose.
//!
//! Signers differ: OpenSSL's command line uses the maximum salt, HSMs, TPMs and cloud KMSs use
//! the digest length (32), some tools 0 or 20. Verification therefore recovers the salt length
//! from the signature, as OpenSSL's `-pkeyopt rsa_pss_saltlen:auto` does. aws-lc-rs (our RSA
//! code) verifies only a fixed salt length (`RsaPssSaltLength`: digest, max or one number), so
//! this module calls AWS-LC's `RSA_verify_pss_mgf1` with `RSA_PSS_SALTLEN_AUTO` through
//! `aws-lc-sys`, the same library aws-lc-rs links.
//!
//! Keys of the RSASSA-PSS type (OID 1.2.840.113549.1.1.10, RFC 4055) are accepted when their
//! parameters agree with what we verify: SHA-256, MGF1 with SHA-256, trailer field 1. A key that
//! states a salt length is held to it, as OpenSSL holds a restricted key.

use std::ptr::NonNull;

use der::asn1::ObjectIdentifier;
use der::{Decode as _, Sequence};
use spki::AlgorithmIdentifierRef;

use crate::error::{Error, Result};

pub const PSS_OID: &str = "1.2.840.113549.1.1.10";
const SHA256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const MGF1_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// `RSA_PSS_SALTLEN_AUTO` of AWS-LC's `rsa.h`: recover the salt length when verifying.
const SALTLEN_AUTO: i32 = -2;

/// RSASSA-PSS-params (RFC 4055 section 3.1); absent fields take the RFC's defaults.
#[derive(Sequence)]
struct PssParams<'a> {
    #[asn1(context_specific = "0", optional = "true")]
    hash: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "1", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "2", optional = "true")]
    salt_len: Option<u32>,
    #[asn1(context_specific = "3", optional = "true")]
    trailer: Option<u32>,
}

fn disagree(what: &str) -> Error {
    Error::InvalidKey(format!(
        "RSASSA-PSS key parameters: {what}; only SHA-256 with MGF1-SHA-256 is accepted"
    ))
}

fn is_sha256(alg: &AlgorithmIdentifierRef<'_>) -> bool {
    // The parameters of a SHA-2 identifier are NULL or absent (RFC 5754).
    alg.oid == SHA256_OID && alg.parameters.is_none_or(|p| p.is_null())
}

/// The salt length an RSASSA-PSS key restricts its signatures to (None: any), or an error when
/// its parameters name another hash or mask.
pub fn key_salt_len(params: Option<&[u8]>) -> Result<Option<u32>> {
    let Some(der) = params else {
        return Ok(None); // no parameters: an unrestricted PSS key
    };
    let p = PssParams::from_der(der).map_err(|e| disagree(&format!("malformed ({e})")))?;
    // RFC 4055 defaults: SHA-1, MGF1-SHA-1, 20, 1.
    if !p.hash.as_ref().is_some_and(is_sha256) {
        return Err(disagree("the hash is not SHA-256"));
    }
    let mgf = p
        .mask_gen
        .ok_or_else(|| disagree("the mask is MGF1-SHA-1"))?;
    let mgf_hash = mgf
        .parameters
        .and_then(|any| any.decode_as::<AlgorithmIdentifierRef<'_>>().ok());
    if mgf.oid != MGF1_OID || !mgf_hash.as_ref().is_some_and(is_sha256) {
        return Err(disagree("the mask is not MGF1 with SHA-256"));
    }
    if p.trailer.unwrap_or(1) != 1 {
        return Err(disagree("the trailer field is not 1"));
    }
    Ok(Some(p.salt_len.unwrap_or(20)))
}

/// An RSA public key held by AWS-LC, for PSS verification at any salt length.
pub struct PssKey {
    rsa: NonNull<aws_lc_sys::RSA>,
    /// The salt length the key requires, or None to recover it from each signature.
    salt_len: Option<u32>,
}

// SAFETY: AWS-LC's RSA objects may be used from several threads at once for public-key
// operations (the lazily built Montgomery contexts are created under the object's own lock);
// the key is never mutated after construction and freed only on drop.
unsafe impl Send for PssKey {}
// SAFETY: as above; `verify` takes `&self` and AWS-LC synchronises internally.
unsafe impl Sync for PssKey {}

impl std::fmt::Debug for PssKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PssKey")
            .field("salt_len", &self.salt_len)
            .finish_non_exhaustive()
    }
}

impl PssKey {
    /// From a PKCS#1 `RSAPublicKey` DER.
    pub fn new(pkcs1_der: &[u8], salt_len: Option<u32>) -> Result<Self> {
        // SAFETY: the pointer and length describe a live slice; AWS-LC copies what it parses
        // and returns NULL on any error.
        let rsa =
            unsafe { aws_lc_sys::RSA_public_key_from_bytes(pkcs1_der.as_ptr(), pkcs1_der.len()) };
        let rsa = NonNull::new(rsa).ok_or_else(|| {
            // SAFETY: clears this thread's error queue; no pointers involved.
            unsafe { aws_lc_sys::ERR_clear_error() };
            Error::InvalidKey("malformed RSA key".into())
        })?;
        Ok(Self { rsa, salt_len })
    }

    /// Whether `signature` is a valid RSASSA-PSS signature over the SHA-256 `digest`.
    pub fn verify(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        let salt = match self.salt_len {
            Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
            None => SALTLEN_AUTO,
        };
        // SAFETY: `self.rsa` is a valid key owned by `self`; the digest and signature pointers
        // come with their true lengths; EVP_sha256 returns a static descriptor.
        let ok = unsafe {
            let md = aws_lc_sys::EVP_sha256();
            aws_lc_sys::RSA_verify_pss_mgf1(
                self.rsa.as_ptr(),
                digest.as_ptr(),
                digest.len(),
                md,
                md,
                salt,
                signature.as_ptr(),
                signature.len(),
            )
        };
        if ok != 1 {
            // SAFETY: clears this thread's error queue so failures do not pile up in it.
            unsafe { aws_lc_sys::ERR_clear_error() };
        }
        ok == 1
    }
}

impl Drop for PssKey {
    fn drop(&mut self) {
        // SAFETY: the key was allocated by RSA_public_key_from_bytes and is freed once, here.
        unsafe { aws_lc_sys::RSA_free(self.rsa.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RSASSA-PSS-params DER pieces (RFC 4055): [0] sha256, [1] mgf1(sha256), [2] salt.
    const HASH: &str = "a00f300d06096086480165030402010500";
    const MGF: &str = "a11c301a06092a864886f70d010108300d06096086480165030402010500";

    fn params(fields: &[&str]) -> Vec<u8> {
        let body = hex::decode(fields.concat()).unwrap();
        let mut der = vec![0x30, body.len() as u8];
        der.extend(body);
        der
    }

    #[test]
    fn parameters_must_name_sha256_and_mgf1_sha256() {
        assert_eq!(key_salt_len(None).unwrap(), None);
        assert_eq!(key_salt_len(Some(&params(&[HASH, MGF]))).unwrap(), Some(20));
        assert_eq!(
            key_salt_len(Some(&params(&[HASH, MGF, "a203020120"]))).unwrap(),
            Some(32)
        );
        assert_eq!(
            key_salt_len(Some(&params(&[HASH, MGF, "a203020100", "a303020101"]))).unwrap(),
            Some(0)
        );
        for bad in [
            params(&[]),                                      // SHA-1 and MGF1-SHA-1 by default
            params(&[HASH]),                                  // MGF1-SHA-1 by default
            params(&[MGF]),                                   // SHA-1 by default
            params(&[HASH, MGF, "a203020120", "a303020102"]), // trailer 2
            params(&["a00b300906052b0e03021a0500", MGF]),     // SHA-1 hash
            vec![0x30, 0x03, 0x01, 0x01, 0x00],               // not PSS parameters
        ] {
            assert!(
                matches!(key_salt_len(Some(&bad)), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn the_mask_must_be_mgf1_over_sha256() {
        // Another algorithm's OID (1.2.840.113549.1.1.9) with SHA-256 parameters, and MGF1 over
        // SHA-1: each part of the mask is checked on its own.
        const NOT_MGF1: &str = "a11c301a06092a864886f70d010109300d06096086480165030402010500";
        const MGF1_SHA1: &str = "a118301606092a864886f70d010108300906052b0e03021a0500";
        for mask in [NOT_MGF1, MGF1_SHA1] {
            assert!(
                matches!(
                    key_salt_len(Some(&params(&[HASH, mask]))),
                    Err(Error::InvalidKey(_))
                ),
                "{mask}"
            );
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(PssKey::new(b"\x30\x03\x02\x01\x01", None).is_err());
        assert!(PssKey::new(b"", None).is_err());
    }
}
