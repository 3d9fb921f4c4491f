//! Signs notifications the way eBay does (ECDSA P-256 over SHA-1, DER,
//! wrapped in the base64 JSON `X-EBAY-SIGNATURE` header), with a key pair
//! made up on the spot: for tests, fixtures and the simulator, which stand in
//! for eBay. Nothing here is used to check real notifications.
//!
//! aws-lc-rs signs P-256 only over SHA-256 and larger digests. ECDSA signs
//! the digest read as a number, and a SHA-1 digest (160 bits) is shorter than
//! the curve order, so it is used whole; 32 bytes of which the first 12 are
//! zero stand for the same number. Signing those bytes as a "SHA-256"
//! digest therefore gives exactly the SHA-1 signature eBay makes.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A notification signer standing in for eBay.
pub struct TestSigner {
    pair: EcdsaKeyPair,
    pub kid: String,
}

impl std::fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TestSigner {
    /// A new P-256 key pair under key id `kid`.
    pub fn generate(kid: &str) -> Result<TestSigner, String> {
        Ok(TestSigner {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                .map_err(|_| "aws-lc-rs could not make a P-256 key pair".to_owned())?,
            kid: kid.to_owned(),
        })
    }

    /// The public key as eBay's `getPublicKey` answers it: PEM without line
    /// breaks, `ECDSA`, `SHA1`.
    pub fn public_key_answer(&self) -> Result<serde_json::Value, String> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|_| "the public key does not encode".to_owned())?;
        Ok(serde_json::json!({
            "key": format!(
                "-----BEGIN PUBLIC KEY-----{}-----END PUBLIC KEY-----",
                STANDARD.encode(der.as_ref())
            ),
            "algorithm": "ECDSA",
            "digest": "SHA1",
        }))
    }

    /// The `X-EBAY-SIGNATURE` header for `body`.
    pub fn signature_header(&self, body: &[u8]) -> Result<String, String> {
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, body);
        let mut widened = [0u8; 32];
        widened[12..].copy_from_slice(sha1.as_ref());
        let as_sha256 = digest::Digest::import_less_safe(&widened, &digest::SHA256)
            .map_err(|_| "32 bytes are not taken as a SHA-256 digest".to_owned())?;
        let signature = self
            .pair
            .sign_digest(&as_sha256)
            .map_err(|_| "aws-lc-rs could not sign the digest".to_owned())?;
        let header = serde_json::json!({
            "alg": "ecdsa",
            "kid": self.kid,
            "signature": STANDARD.encode(signature.as_ref()),
            "digest": "SHA1",
        });
        Ok(STANDARD.encode(header.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Signature, SigningKey};

    #[test]
    fn what_the_signer_signs_verifies_as_sha1_and_nothing_else_does() {
        let signer = TestSigner::generate("kid-1").unwrap();
        let key = SigningKey::from_answer(&signer.public_key_answer().unwrap()).unwrap();
        let body = br#"{"metadata":{"topic":"ORDER_CONFIRMATION"}}"#;
        let sig = Signature::parse(&signer.signature_header(body).unwrap()).unwrap();
        sig.verify(&key, body).unwrap();
        assert!(
            sig.verify(&key, br#"{"metadata":{"topic":"ORDER_CONFIRMATIOM"}}"#)
                .is_err()
        );
        let other = SigningKey::from_answer(
            &TestSigner::generate("kid-1")
                .unwrap()
                .public_key_answer()
                .unwrap(),
        )
        .unwrap();
        assert!(sig.verify(&other, body).is_err());
        let as_sha256 = SigningKey {
            digest: crate::webhook::Digest::Sha256,
            ..key
        };
        assert!(!as_sha256.verifies(body, &sig.signature));
    }
}
