//! Self-validating tokens: the claims travel in the token, signed with HMAC-SHA256, so checking
//! a request costs one MAC and no store lookup.
//!
//! Layout: `ci1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(key, "ci1." + claims))>`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use cloud_images_domain::DomainError;
use cloud_images_domain::identity::Caller;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "ci1.";

/// The secret that signs tokens. Anyone holding it can mint tokens: keep it private.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// Accepts a key of at least 32 bytes (HMAC-SHA256's block-strength minimum we insist on).
    pub fn new(bytes: Vec<u8>) -> Result<Self, DomainError> {
        if bytes.len() < 32 {
            return Err(DomainError::Invalid(
                "the token signing key must be at least 32 bytes".into(),
            ));
        }
        Ok(Self(bytes))
    }

    /// Parses a key written as hex (as the embedded default stores it).
    pub fn from_hex(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(DomainError::Invalid(
                "the token signing key must be hex".into(),
            ));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| DomainError::Invalid("the token signing key must be hex".into()))?;
        Self::new(bytes)
    }

    /// A key for another purpose, derived so that neither key tells anything of the other
    /// (HMAC-SHA256 of the purpose under this key, as HKDF's expand step does).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who is calling.
    #[serde(flatten)]
    pub caller: Caller,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Random audit id, distinguishing tokens issued in the same second.
    pub aid: String,
    /// The user's token epoch when issued: raising the user's epoch revokes the token.
    #[serde(default)]
    pub epoch: u64,
}

impl Claims {
    /// When the token was issued.
    pub fn issued_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.iat, 0).unwrap_or_default()
    }
    /// When the token stops being accepted.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or_default()
    }
}

/// A token and the claims it carries.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The opaque token to send as `X-Auth-Token`.
    pub id: String,
    /// What it asserts.
    pub claims: Claims,
}

/// Issues and verifies tokens with one key and lifetime.
#[derive(Clone, Debug)]
pub struct TokenSigner {
    key: SigningKey,
    ttl: Duration,
}

impl TokenSigner {
    /// A signer whose tokens live for `ttl`.
    pub fn new(key: SigningKey, ttl: std::time::Duration) -> Self {
        let ttl = Duration::from_std(ttl).unwrap_or(Duration::hours(24));
        Self { key, ttl }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key.0).expect("HMAC takes any key length")
    }

    /// Issues a token for `caller` in its user's token `epoch`, valid from `now` for the
    /// configured lifetime.
    pub fn issue(&self, caller: Caller, epoch: u64, now: DateTime<Utc>) -> IssuedToken {
        let claims = Claims {
            caller,
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
            aid: crate::secrets::random_hex(8),
            epoch,
        };
        let body = serde_json::to_vec(&claims).expect("claims serialize");
        let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body));
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        IssuedToken {
            id: format!("{signed}.{tag}"),
            claims,
        }
    }

    /// Checks the signature and expiry of `token` at `now`; any defect is `Unauthenticated`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, DomainError> {
        let rejected = |why: &str| DomainError::Unauthenticated(format!("the token {why}"));
        let (signed, tag) = token
            .rsplit_once('.')
            .ok_or_else(|| rejected("is malformed"))?;
        let body = signed
            .strip_prefix(PREFIX)
            .ok_or_else(|| rejected("is malformed"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| rejected("is malformed"))?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| rejected("is not valid"))?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| rejected("is malformed"))?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| rejected("is malformed"))?;
        if now.timestamp() >= claims.exp {
            return Err(rejected("has expired"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud_images_domain::identity::{Role, TenantId, UserId};

    fn signer(byte: u8) -> TokenSigner {
        let key = SigningKey::new(vec![byte; 32]).expect("key");
        TokenSigner::new(key, std::time::Duration::from_secs(3600))
    }

    fn caller() -> Caller {
        Caller {
            tenant_id: TenantId::random(),
            tenant_name: "acme".into(),
            user_id: UserId::random(),
            user_name: "alice".into(),
            roles: Role::Member.with_implied(),
            request_id: None,
        }
    }

    #[test]
    fn a_token_verifies_to_the_caller_it_was_issued_for() {
        let now = Utc::now();
        let token = signer(1).issue(caller(), 0, now);
        let claims = signer(1).verify(&token.id, now).expect("valid");
        assert_eq!(claims, token.claims);
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn a_token_is_rejected_once_expired() {
        let now = Utc::now();
        let token = signer(1).issue(caller(), 0, now);
        let later = now + Duration::seconds(3600);
        assert!(matches!(
            signer(1).verify(&token.id, later),
            Err(DomainError::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_token_signed_with_another_key_is_rejected() {
        let now = Utc::now();
        let token = signer(1).issue(caller(), 0, now);
        assert!(signer(2).verify(&token.id, now).is_err());
    }

    #[test]
    fn a_token_with_altered_claims_is_rejected() {
        let now = Utc::now();
        let token = signer(1).issue(caller(), 0, now);
        let (_, tag) = token.id.rsplit_once('.').expect("tag");
        let mut forged_claims = token.claims.clone();
        forged_claims.caller.roles = Role::Admin.with_implied();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).expect("json"));
        let forged = format!("{PREFIX}{body}.{tag}");
        assert!(signer(1).verify(&forged, now).is_err());
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let now = Utc::now();
        for junk in [
            "",
            ".",
            "ci1.",
            "ci1..",
            "ci1.!!!.???",
            "abc.def",
            "ci1.e30.AAAA",
        ] {
            assert!(signer(1).verify(junk, now).is_err(), "{junk:?} accepted");
        }
    }

    #[test]
    fn keys_must_be_long_enough_and_hex() {
        assert!(SigningKey::new(vec![0; 16]).is_err());
        assert!(SigningKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(SigningKey::from_hex("xyz").is_err());
        assert!(SigningKey::from_hex(&"é".repeat(32)).is_err());
    }
}
