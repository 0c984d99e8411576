use super::*;
use crate::hashing::tests::vectors;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn rfc8032_vectors_verify_and_tampering_fails() {
    let all = vectors("ed25519.json");
    for v in all["rfc8032"].as_array().unwrap() {
        let raw: [u8; 32] = unhex(v["public_key"].as_str().unwrap()).try_into().unwrap();
        let key = PublicKey::from_ed25519_raw(&raw).unwrap();
        let msg = unhex(v["message"].as_str().unwrap());
        let sig = unhex(v["signature"].as_str().unwrap());
        key.verify(Algorithm::Ed25519, &msg, &sig).unwrap();
        let mut bad = sig.clone();
        bad[5] ^= 1;
        assert!(matches!(
            key.verify(Algorithm::Ed25519, &msg, &bad),
            Err(Error::InvalidSignature(_))
        ));
        let mut other = msg.clone();
        other.push(0);
        assert!(key.verify(Algorithm::Ed25519, &other, &sig).is_err());
        // The same key through the SPKI encodings gives the same keyid.
        let again = PublicKey::parse(key.spki_pem().as_bytes()).unwrap();
        assert_eq!(again.keyid(), key.keyid());
        assert_eq!(
            PublicKey::parse(key.spki_der()).unwrap().keyid(),
            key.keyid()
        );
    }
}

#[test]
fn strict_cases_are_rejected() {
    let all = vectors("ed25519.json");
    for v in all["strict_reject"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let raw: [u8; 32] = unhex(v["public_key"].as_str().unwrap()).try_into().unwrap();
        let msg = unhex(v["message"].as_str().unwrap());
        let sig = unhex(v["signature"].as_str().unwrap());
        let verdict = PublicKey::from_ed25519_raw(&raw)
            .and_then(|k| k.verify(Algorithm::Ed25519, &msg, &sig));
        assert!(verdict.is_err(), "{name} was accepted");
    }
}

#[test]
fn signature_text_decoding() {
    let all = vectors("ed25519.json");
    let v = &all["rfc8032"][0];
    let raw: [u8; 32] = unhex(v["public_key"].as_str().unwrap()).try_into().unwrap();
    let key = PublicKey::from_ed25519_raw(&raw).unwrap();
    let sig = unhex(v["signature"].as_str().unwrap());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
    for text in [
        hex::encode(&sig),
        hex::encode_upper(&sig),
        b64.clone(),
        b64.trim_end_matches('=').to_string(),
    ] {
        assert_eq!(key.decode_signature(&text).unwrap(), sig, "{text}");
    }
    assert!(key.decode_signature("abcd").is_err());
    assert!(key.decode_signature("not base64 at all!").is_err());
}

#[test]
fn binary_signatures_accept_digest_and_hex_forms() {
    let all = vectors("ed25519.json");
    let v = &all["binary"];
    let raw: [u8; 32] = unhex(v["public_key"].as_str().unwrap()).try_into().unwrap();
    let key = PublicKey::from_ed25519_raw(&raw).unwrap();
    let digest: Digest = unhex(v["digest"].as_str().unwrap()).try_into().unwrap();
    let over_digest = unhex(v["signature_digest"].as_str().unwrap());
    let over_hex = unhex(v["signature_hex"].as_str().unwrap());
    assert_eq!(
        key.verify_binary(Algorithm::Ed25519, &digest, &over_digest)
            .unwrap(),
        MessageForm::Digest
    );
    assert_eq!(
        key.verify_binary(Algorithm::Ed25519, &digest, &over_hex)
            .unwrap(),
        MessageForm::Hex
    );
    let mut other = digest;
    other[0] ^= 1;
    assert!(key
        .verify_binary(Algorithm::Ed25519, &other, &over_digest)
        .is_err());
}

#[test]
fn rsa_pkcs1_and_pss_from_vectors() {
    let all = vectors("rsa.json");
    for v in all["vectors"].as_array().unwrap() {
        let key = PublicKey::parse(v["public_key_pem"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(key.keyid(), v["keyid"].as_str().unwrap());
        assert_eq!(key.bits() as u64, v["bits"].as_u64().unwrap());
        let digest: Digest = unhex(v["digest"].as_str().unwrap()).try_into().unwrap();
        let alg = Algorithm::parse(v["algorithm"].as_str().unwrap()).unwrap();
        let sig = unhex(v["signature"].as_str().unwrap());
        assert_eq!(
            key.verify_binary(alg, &digest, &sig).unwrap(),
            MessageForm::Digest
        );
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(key.verify(alg, &digest, &bad).is_err());
        let other = if alg == Algorithm::RsaPssSha256 {
            Algorithm::RsaPkcs1v15Sha256
        } else {
            Algorithm::RsaPssSha256
        };
        assert!(key.verify(other, &digest, &sig).is_err());
        assert!(key.verify(Algorithm::Ed25519, &digest, &sig).is_err());
    }
}

#[test]
fn certificates_carry_their_validity() {
    let all = vectors("rsa.json");
    let c = &all["certificate"];
    let key = PublicKey::parse(c["pem"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(key.keyid(), c["keyid"].as_str().unwrap());
    let (nb, na) = key.validity().unwrap();
    assert_eq!(nb, c["not_before"].as_i64().unwrap());
    assert_eq!(na, c["not_after"].as_i64().unwrap());
}

#[test]
fn unacceptable_keys() {
    assert!(matches!(
        PublicKey::parse(b"garbage"),
        Err(Error::InvalidKey(_))
    ));
    assert!(
        PublicKey::parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .is_err()
    );
    let all = vectors("rsa.json");
    let small = all["rsa1024_pem"].as_str().unwrap();
    let err = PublicKey::parse(small.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("2048 to 4096 bits"), "{err}");
}

#[test]
fn batch_verdicts_match_single() {
    let all = vectors("ed25519.json");
    let mut items = Vec::new();
    for v in all["rfc8032"].as_array().unwrap() {
        let raw: [u8; 32] = unhex(v["public_key"].as_str().unwrap()).try_into().unwrap();
        let key = Arc::new(PublicKey::from_ed25519_raw(&raw).unwrap());
        let msg = unhex(v["message"].as_str().unwrap());
        let sig = unhex(v["signature"].as_str().unwrap());
        let mut bad = sig.clone();
        bad[0] ^= 0x80;
        for signature in [sig, bad] {
            items.push(BatchItem {
                key: key.clone(),
                algorithm: Algorithm::Ed25519,
                data: msg.clone(),
                signature,
            });
        }
    }
    let items: Vec<_> = items.iter().cycle().take(40).cloned().collect();
    let out = verify_many(&items, BatchMode::Message).unwrap();
    for (it, got) in items.iter().zip(out) {
        let single = it.key.verify(it.algorithm, &it.data, &it.signature);
        assert_eq!(got.is_ok(), single.is_ok());
    }
}

#[test]
fn names_and_debug_output_say_what_the_key_is() {
    assert_eq!(MessageForm::Digest.name(), "digest");
    assert_eq!(MessageForm::Hex.name(), "hex");
    let all = vectors("rsa.json");
    let v = &all["vectors"][0];
    let rsa = PublicKey::parse(v["public_key_pem"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(rsa.kind(), "rsa");
    let shown = format!("{rsa:?}");
    assert!(
        shown.starts_with("PublicKey { kind: \"rsa\", keyid: "),
        "{shown}"
    );
    assert!(shown.contains(rsa.keyid()), "{shown}");
    let ed = vectors("ed25519.json");
    let raw: [u8; 32] = unhex(ed["rfc8032"][0]["public_key"].as_str().unwrap())
        .try_into()
        .unwrap();
    assert_eq!(PublicKey::from_ed25519_raw(&raw).unwrap().kind(), "ed25519");
    if let Material::Rsa { pss, .. } = &rsa.material {
        assert_eq!(format!("{pss:?}"), "PssKey { salt_len: None, .. }");
    } else {
        panic!("an RSA key without RSA material");
    }
}

#[test]
fn a_failed_pss_verification_leaves_no_error_queued() {
    let all = vectors("rsa.json");
    for v in all["vectors"].as_array().unwrap() {
        let key = PublicKey::parse(v["public_key_pem"].as_str().unwrap().as_bytes()).unwrap();
        let digest: Digest = unhex(v["digest"].as_str().unwrap()).try_into().unwrap();
        let bad = vec![0u8; key.bits() as usize / 8];
        assert!(key.verify(Algorithm::RsaPssSha256, &digest, &bad).is_err());
        // AWS-LC queues an error per failure; one left behind would grow with every bad signature.
        // SAFETY: reads this thread's error queue; no pointers involved.
        assert_eq!(unsafe { aws_lc_sys::ERR_peek_error() }, 0);
    }
}

#[test]
fn verify_many_gives_each_item_its_own_verdict_in_order() {
    let all = vectors("ed25519.json");
    let v = &all["rfc8032"][2];
    let raw: [u8; 32] = unhex(v["public_key"].as_str().unwrap()).try_into().unwrap();
    let key = Arc::new(PublicKey::from_ed25519_raw(&raw).unwrap());
    let msg = unhex(v["message"].as_str().unwrap());
    let sig = unhex(v["signature"].as_str().unwrap());
    let mut bad = sig.clone();
    bad[0] ^= 1;
    let item = |data: &[u8], signature: &[u8]| BatchItem {
        key: key.clone(),
        algorithm: Algorithm::Ed25519,
        data: data.to_vec(),
        signature: signature.to_vec(),
    };
    // Fewer items than the parallel threshold, and more: the same verdicts either way.
    for copies in [1, 5] {
        let mut items = Vec::new();
        for _ in 0..copies {
            items.push(item(&msg, &sig));
            items.push(item(&msg, &bad));
        }
        let verdicts = verify_many(&items, BatchMode::Message).unwrap();
        assert_eq!(verdicts.len(), 2 * copies);
        for pair in verdicts.chunks(2) {
            assert_eq!(*pair[0].as_ref().unwrap(), MessageForm::Digest);
            assert!(matches!(pair[1], Err(Error::InvalidSignature(_))));
        }
    }
    assert!(verify_many(&[], BatchMode::Message).unwrap().is_empty());
    // As binary digests, data that is not 32 bytes is an error of its own item.
    assert_eq!(msg.len(), 2);
    let verdicts = verify_many(&[item(&msg, &sig)], BatchMode::BinaryDigest).unwrap();
    assert!(matches!(verdicts[0], Err(Error::InvalidArgument(_))));
}
