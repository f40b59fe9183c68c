//! Generating and hashing secrets (passwords, API keys). Only slow salted hashes are stored.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use cloud_images_domain::DomainError;
use rand_core::{OsRng, RngCore};

/// A fresh random secret of `bytes` random bytes, hex encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh API key as Rackspace issues them: 32 hex digits.
pub fn new_api_key() -> String {
    random_hex(16)
}

/// Hashes a secret with Argon2id and a random salt, in PHC string format.
pub fn hash(secret: &str) -> Result<String, DomainError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::unavailable("hashing a secret", e.to_string()))
}

/// Whether `secret` matches the PHC hash; a malformed hash never matches.
pub fn verify(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hashes on the blocking pool: Argon2 is deliberately slow and must not stall request tasks.
pub async fn hash_off_thread(secret: String) -> Result<String, DomainError> {
    tokio::task::spawn_blocking(move || hash(&secret))
        .await
        .map_err(|e| DomainError::unavailable("hashing a secret", e))?
}

/// Verifies on the blocking pool, for the same reason as [`hash_off_thread`].
pub async fn verify_off_thread(secret: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&secret, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_secret_and_nothing_else() {
        let phc = hash("s3cret").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("s3cret", &phc));
        assert!(!verify("s3cret ", &phc));
    }

    #[test]
    fn hashing_twice_salts_differently() {
        assert_ne!(hash("same").ok(), hash("same").ok());
    }

    #[test]
    fn a_malformed_hash_never_matches() {
        assert!(!verify("anything", "not-a-phc-string"));
    }

    #[test]
    fn api_keys_are_32_hex_digits_and_unique() {
        let (a, b) = (new_api_key(), new_api_key());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
