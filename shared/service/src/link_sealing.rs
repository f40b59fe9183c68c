//! Sealing the secret keys of linked containers: AES-256-GCM under a key from the
//! configuration, bound to the tenant and container it belongs to, so a sealed secret
//! copied onto another record does not open there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cloud_images_domain::DomainError;
use cloud_images_domain::links::Secret;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// What [`crate::SigningKey::derive`] is asked for to make the sealing key.
pub const SEALING_PURPOSE: &str = "cloud-images linked container secrets v1";

/// Seals and opens linked containers' secret keys.
pub struct LinkSealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for LinkSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSealer(<key>)")
    }
}

fn context(tenant: &str, container: &str) -> Vec<u8> {
    format!("{tenant}\u{0}{container}").into_bytes()
}

fn unsealable() -> DomainError {
    DomainError::unavailable(
        "opening a linked container's secret",
        "it was sealed under another key or for another container (was the signing key rotated?)",
    )
}

impl LinkSealer {
    /// A sealer under a 256-bit key.
    pub fn new(key: [u8; 32]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, &key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
        Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// The secret sealed for `tenant`'s `container`: base64 of a random nonce and the
    /// ciphertext with its tag.
    pub fn seal(
        &self,
        tenant: &str,
        container: &str,
        secret: &Secret,
    ) -> Result<String, DomainError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| DomainError::unavailable("sealing a secret", "no randomness"))?;
        let mut sealed = secret.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context(tenant, container)),
                &mut sealed,
            )
            .map_err(|_| DomainError::unavailable("sealing a secret", "the cipher failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Opens what [`LinkSealer::seal`] sealed for the same tenant and container.
    pub fn open(&self, tenant: &str, container: &str, sealed: &str) -> Result<Secret, DomainError> {
        let raw = STANDARD.decode(sealed).map_err(|_| unsealable())?;
        if raw.len() < NONCE_LEN {
            return Err(unsealable());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unsealable())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context(tenant, container)), &mut buffer)
            .map_err(|_| unsealable())?;
        String::from_utf8(plain.to_vec())
            .map(Secret::from)
            .map_err(|_| unsealable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_container_under_its_key() {
        let sealer = LinkSealer::new([7; 32]);
        let secret = Secret::from("wJalrXUtnFEMI/K7MDENG".to_owned());
        let sealed = sealer.seal("t1", "backups", &secret).expect("seal");
        assert!(!sealed.contains("wJalr"));
        assert_ne!(
            sealed,
            sealer.seal("t1", "backups", &secret).expect("seal"),
            "nonces repeat"
        );
        assert_eq!(sealer.open("t1", "backups", &sealed).expect("open"), secret);
        assert!(
            sealer.open("t2", "backups", &sealed).is_err(),
            "another tenant opened it"
        );
        assert!(
            sealer.open("t1", "other", &sealed).is_err(),
            "another container opened it"
        );
        assert!(
            LinkSealer::new([8; 32])
                .open("t1", "backups", &sealed)
                .is_err()
        );
        let mut tampered = STANDARD.decode(&sealed).expect("base64");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(
            sealer
                .open("t1", "backups", &STANDARD.encode(tampered))
                .is_err()
        );
        for garbage in ["", "!!", "AAAA"] {
            assert!(sealer.open("t1", "backups", garbage).is_err());
        }
    }
}
