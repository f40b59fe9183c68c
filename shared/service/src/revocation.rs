//! Token checks that honour revocation: a token stays self-validating (one MAC), and its
//! user's standing — still there, still enabled, still in the token's epoch — is read at most
//! once per user per `recheck` interval in each process. A user disabled, deleted or given
//! new secrets elsewhere therefore loses its tokens within `recheck`; in the process that
//! made the change, at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use cloud_images_domain::identity::UserId;
use cloud_images_domain::ports::IdentityStore;
use cloud_images_domain::{DomainError, DomainResult};

use crate::tokens::{Claims, TokenSigner};

/// How long a standing that refuses a token is trusted (see [`TokenVerifier::standing`]).
const REFUSAL_RECHECK: Duration = Duration::from_secs(1);

/// Standings remembered before old ones are swept out.
const REMEMBERED_USERS: usize = 10_000;

/// The token epoch a user's tokens must carry, or `None` when no token of it is honoured.
type Standing = Option<u64>;

/// Verifies tokens against their signature, expiry and their user's current standing.
#[derive(Clone)]
pub struct TokenVerifier {
    signer: TokenSigner,
    accounts: Arc<dyn IdentityStore>,
    recheck: Duration,
    known: Arc<Mutex<HashMap<UserId, (Instant, Standing)>>>,
}

impl TokenVerifier {
    /// A verifier that re-reads a user's standing when what it knows is `recheck` old.
    pub fn new(signer: TokenSigner, accounts: Arc<dyn IdentityStore>, recheck: Duration) -> Self {
        Self {
            signer,
            accounts,
            recheck,
            known: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The signer behind it, for issuing tokens.
    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// The claims of a token that is genuine, unexpired and not revoked.
    pub async fn verify(&self, token: &str) -> DomainResult<Claims> {
        let claims = self.signer.verify(token, Utc::now())?;
        if self.standing(&claims.caller.user_id, claims.epoch).await? != Some(claims.epoch) {
            return Err(DomainError::Unauthenticated(
                "the token has been revoked".into(),
            ));
        }
        Ok(claims)
    }

    /// Drops what this process knows of `user`, so its next token is checked against the
    /// store (called by the change that revoked its tokens).
    pub fn forget(&self, user: &UserId) {
        self.remembered().remove(user);
    }

    /// The user's standing, as remembered while it is fresh. What refuses a token is trusted
    /// for only a second: a token newer than what this process knows (a user enabled again,
    /// a login after a key reset elsewhere) works within a second, not a whole interval,
    /// while a revoked token replayed costs at most one read a second.
    async fn standing(&self, user: &UserId, claimed: u64) -> DomainResult<Standing> {
        let fresh = self
            .remembered()
            .get(user)
            .filter(|(read_at, standing)| {
                let age = read_at.elapsed();
                age < self.recheck && (*standing == Some(claimed) || age < REFUSAL_RECHECK)
            })
            .map(|(_, standing)| *standing);
        if let Some(standing) = fresh {
            return Ok(standing);
        }
        let standing = self
            .accounts
            .user_by_id(user)
            .await?
            .filter(|u| u.enabled)
            .map(|u| u.token_epoch);
        let mut known = self.remembered();
        if known.len() >= REMEMBERED_USERS {
            known.retain(|_, (read_at, _)| read_at.elapsed() < self.recheck);
        }
        known.insert(user.clone(), (Instant::now(), standing));
        Ok(standing)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (Instant, Standing)>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}
