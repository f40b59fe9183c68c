//! Linked containers: a container name that stands for a bucket (and key prefix) of the
//! tenant's own S3-compatible storage, which import and export tasks read and write
//! directly, as AWS VM Import/Export's `UserBucket` does.
//!
//! The tenant's secret key is sealed by the service before it is stored; it is never shown,
//! and [`Secret`] keeps it out of every `Debug` and log line.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A linked container's place, as stored: the sealed secret only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLink {
    /// The storage's S3 endpoint, `http(s)://host[:port]`.
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Prepended to every object name to make its key: empty or ending in `/`.
    pub prefix: String,
    /// The access key id (shown back to the tenant: it names the key, it is not the key);
    /// `None` for a link through a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The secret access key, sealed; opaque here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
    /// The role the service assumes (with STS) instead of holding keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// The external id the service always presents when it assumes a tenant's role: bound to
/// the tenant, so no tenant can have the service assume a role another tenant set up for it
/// (the confused deputy). The role's trust policy requires it.
pub fn external_id(tenant: &str) -> String {
    format!("cloud-images:{tenant}")
}

impl ContainerLink {
    /// The key of `object` in the bucket.
    pub fn key(&self, object: &str) -> String {
        format!("{}{object}", self.prefix)
    }
}

/// What a linked container's storage is reached with, the secret unsealed: only ever
/// handed to the storage adapter.
#[derive(Debug, Clone)]
pub struct LinkAccess {
    /// The storage's S3 endpoint.
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Whose requests they are.
    pub credentials: LinkCredentials,
}

/// The keys a link's requests are signed with, or the role whose keys STS hands out.
#[derive(Debug, Clone)]
pub enum LinkCredentials {
    /// The tenant's access key pair.
    Keys {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
    },
    /// A role of the tenant's that the service assumes.
    Role {
        /// The role.
        role_arn: String,
        /// The external id its trust policy requires ([`external_id`]).
        external_id: String,
    },
}

/// `PUT /v1/AUTH_<tenant>/<container>` with `{"link": {...}}`: what the tenant sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// `http(s)://host[:port]` of the S3 API.
    pub endpoint: String,
    /// The region to sign for (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (default: none).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The access key id (with `secret_access_key`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// A role for the service to assume instead (on AWS).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The external id, when given: it must be the service's ([`external_id`]).
    #[serde(default)]
    pub external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    link: LinkRequest,
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::Invalid(message.into())
}

impl LinkRequest {
    /// Parses and checks `{"link": {...}}`.
    pub fn parse(body: &[u8]) -> DomainResult<Self> {
        let LinkBody { link } = serde_json::from_slice(body).map_err(|e| {
            invalid(format!(
                "A linked container is created with {{\"link\": {{\"endpoint\", \"bucket\", \"access_key_id\" and \"secret_access_key\" or \"role_arn\", \"region\"?, \"prefix\"?}}}}: {e}"
            ))
        })?;
        link.check()?;
        Ok(link)
    }

    fn check(&self) -> DomainResult<()> {
        check_bucket(&self.bucket)?;
        if let Some(prefix) = &self.prefix {
            check_prefix(prefix)?;
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || region.len() > 32
                || !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(invalid(format!("'{region}' is not a region name")));
        }
        match (&self.access_key_id, &self.secret_access_key, &self.role_arn) {
            (Some(id), Some(secret), None) => check_keys(id, secret),
            (None, None, Some(role)) => check_role(role),
            _ => Err(invalid(
                "A link names either access_key_id and secret_access_key, or role_arn",
            )),
        }
    }

    /// The credentials, the external id being `tenant`'s: a link naming another one is
    /// refused, so a role set up for one tenant is never assumed for another.
    pub fn credentials(&self, tenant: &str) -> DomainResult<LinkCredentials> {
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            return Ok(LinkCredentials::Keys {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            });
        }
        let ours = external_id(tenant);
        if let Some(given) = &self.external_id
            && *given != ours
        {
            return Err(invalid(format!(
                "The external id is the service's for your tenant, '{ours}', not '{given}': require it in the role's trust policy"
            )));
        }
        Ok(LinkCredentials::Role {
            role_arn: self.role_arn.clone().unwrap_or_default(),
            external_id: ours,
        })
    }

    /// The region to sign for.
    pub fn region(&self) -> String {
        self.region.clone().unwrap_or_else(|| "us-east-1".into())
    }

    /// The prefix, empty or ending in `/`.
    pub fn prefix(&self) -> String {
        match self.prefix.as_deref() {
            None | Some("") => String::new(),
            Some(p) if p.ends_with('/') => p.to_owned(),
            Some(p) => format!("{p}/"),
        }
    }
}

fn check_keys(id: &str, secret: &Secret) -> DomainResult<()> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            "access_key_id must be 1 to 128 printable characters",
        ));
    }
    let secret = secret.expose();
    if secret.is_empty() || secret.len() > 256 || secret.chars().any(char::is_control) {
        return Err(invalid("secret_access_key must be 1 to 256 characters"));
    }
    Ok(())
}

/// `arn:<partition>:iam::<12-digit account>:role/<path and name>`.
fn check_role(arn: &str) -> DomainResult<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = arn.len() <= 2048
        && parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
        });
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "'{arn}' is not a role ARN (arn:aws:iam::<account>:role/<name>)"
        )))
    }
}

/// S3's bucket naming rules: 3 to 63 lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit.
fn check_bucket(bucket: &str) -> DomainResult<()> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(bucket.chars().next())
        && edge_ok(bucket.chars().last())
        && !bucket.contains("..");
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "'{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')"
        )))
    }
}

fn check_prefix(prefix: &str) -> DomainResult<()> {
    let valid = prefix.len() <= 512
        && !prefix.starts_with('/')
        && !prefix.chars().any(|c| c.is_control() || c == '\\')
        && prefix
            .split('/')
            .all(|segment| segment != "." && segment != "..");
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "'{prefix}' is not a key prefix (no leading '/', no '.' or '..' segments, no control characters)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(link: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "link": link })).expect("json")
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "endpoint": "https://s3.example.com", "bucket": "my-images",
            "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t/key+"
        })
    }

    #[test]
    fn a_link_names_its_bucket_and_keeps_its_secret_out_of_debug() {
        let link = LinkRequest::parse(&body(good())).expect("link");
        assert_eq!(link.region(), "us-east-1");
        assert_eq!(link.prefix(), "");
        assert!(!format!("{link:?}").contains("s3cr3t"));
        let mut with_prefix = good();
        with_prefix["prefix"] = "exports".into();
        assert_eq!(
            LinkRequest::parse(&body(with_prefix))
                .expect("link")
                .prefix(),
            "exports/"
        );
    }

    #[test]
    fn bad_links_are_refused_with_what_is_wrong() {
        let cases = [
            ("bucket", serde_json::json!("UPPER")),
            ("bucket", serde_json::json!("ab")),
            ("bucket", serde_json::json!("a..b")),
            ("prefix", serde_json::json!("/abs")),
            ("prefix", serde_json::json!("a/../b")),
            ("region", serde_json::json!("us east")),
            ("access_key_id", serde_json::json!("")),
            ("secret_access_key", serde_json::json!("")),
            ("unknown", serde_json::json!(1)),
        ];
        for (field, value) in cases {
            let mut link = good();
            link[field] = value.clone();
            assert!(
                matches!(
                    LinkRequest::parse(&body(link)),
                    Err(DomainError::Invalid(_))
                ),
                "{field}: {value}"
            );
        }
        assert!(LinkRequest::parse(b"{}").is_err());
        let mut both = good();
        both["role_arn"] = "arn:aws:iam::123456789012:role/both".into();
        assert!(LinkRequest::parse(&body(both)).is_err(), "keys and a role");
    }

    #[test]
    fn a_role_link_presents_the_tenants_own_external_id() {
        let role = serde_json::json!({
            "endpoint": "https://s3.example.com", "bucket": "my-images",
            "role_arn": "arn:aws:iam::123456789012:role/imports/cloud-images"
        });
        let link = LinkRequest::parse(&body(role.clone())).expect("link");
        match link.credentials("t1").expect("credentials") {
            LinkCredentials::Role {
                role_arn,
                external_id,
            } => {
                assert_eq!(
                    role_arn,
                    "arn:aws:iam::123456789012:role/imports/cloud-images"
                );
                assert_eq!(external_id, "cloud-images:t1");
            }
            LinkCredentials::Keys { .. } => panic!("keys from a role link"),
        }
        let mut theirs = role.clone();
        theirs["external_id"] = "cloud-images:t2".into();
        let link = LinkRequest::parse(&body(theirs)).expect("link");
        assert!(matches!(
            link.credentials("t1"),
            Err(DomainError::Invalid(_))
        ));
        for bad in [
            "arn:aws:iam::123:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
        ] {
            let mut wrong = role.clone();
            wrong["role_arn"] = bad.into();
            assert!(LinkRequest::parse(&body(wrong)).is_err(), "{bad}");
        }
    }
}
