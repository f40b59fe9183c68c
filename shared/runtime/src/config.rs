//! Settings, from flags or `CLOUD_IMAGES_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use cloud_images_domain::image::HashAlgo;
use cloud_images_domain::image_rules::ImageLimits;
use cloud_images_domain::import::{ImportMethodName, ImportOffer};
use cloud_images_domain::listing::PageLimits;
use cloud_images_service::{ImageSettings, TaskSettings};

use crate::stores::{StoreLayout, StoreSpec};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable on a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where state and bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// SQLite and files in the data directory.
    Embedded,
    /// DynamoDB and S3, as the serverless deployment uses them.
    Aws,
}

/// Settings shared by every entry point.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory holding the embedded default's database, image files and signing key.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_DATA_DIR",
        default_value = "./.cloud-images"
    )]
    pub data_dir: PathBuf,

    /// Where metadata and image bytes live.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_BACKEND",
        value_enum,
        default_value = "embedded"
    )]
    pub backend: Backend,

    /// DynamoDB table of the aws backend.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_AWS_TABLE",
        default_value = "cloud-images"
    )]
    pub aws_table: String,

    /// S3 bucket of image bytes for the aws backend.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_AWS_BUCKET",
        default_value = "cloud-images-data"
    )]
    pub aws_bucket: String,

    /// Key prefix of image objects in the bucket.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_AWS_PREFIX",
        default_value = "images/"
    )]
    pub aws_prefix: String,

    /// Create the table and bucket when missing (local use; a deployment's template does it).
    #[arg(long, global = true, env = "CLOUD_IMAGES_AWS_CREATE_RESOURCES")]
    pub aws_create_resources: bool,

    /// Multipart uploads older than this are abandoned, and the start-up sweep aborts them.
    #[arg(long, global = true, env = "CLOUD_IMAGES_AWS_STALE_UPLOAD_AFTER", default_value = "24h", value_parser = parse_duration_or_zero)]
    pub aws_stale_upload_after: Duration,

    /// Name of the SQS task queue (and, with `-dlq`, its dead-letter queue) created when
    /// `--aws-create-resources` is set.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_AWS_QUEUE",
        default_value = "cloud-images-tasks"
    )]
    pub aws_queue: String,

    /// URL of an existing task queue (as a deployment creates it); needed without
    /// `--aws-create-resources`.
    #[arg(long, global = true, env = "CLOUD_IMAGES_AWS_QUEUE_URL")]
    pub aws_queue_url: Option<String>,

    /// URL of the task queue's dead-letter queue; needed without `--aws-create-resources`.
    #[arg(long, global = true, env = "CLOUD_IMAGES_AWS_DEAD_LETTER_QUEUE_URL")]
    pub aws_dead_letter_queue_url: Option<String>,

    /// Bucket holding the tenants' containers for import and export (default: the image bucket).
    #[arg(long, global = true, env = "CLOUD_IMAGES_AWS_OBJECTS_BUCKET")]
    pub aws_objects_bucket: Option<String>,

    /// Key prefix of the tenants' containers: container C of tenant T is `<prefix>T/C/`.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_AWS_OBJECTS_PREFIX",
        default_value = "containers/"
    )]
    pub aws_objects_prefix: String,

    /// Log format.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,

    /// Root URL clients reach this service at, used in catalogs and links
    /// (default: `http://` + the request's Host header).
    #[arg(long, global = true, env = "CLOUD_IMAGES_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Region named in the service catalog.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_REGION",
        default_value = "RegionOne"
    )]
    pub region: String,

    /// How long an issued token stays valid, e.g. `24h`, `90m`, `3600s`.
    #[arg(long, global = true, env = "CLOUD_IMAGES_TOKEN_TTL", default_value = "24h", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// How stale a process's view of a user's standing may be: a user disabled, deleted or
    /// given a new password or API key elsewhere loses its tokens within this time (at once
    /// in the process that made the change). `0` reads the account store on every request.
    #[arg(long, global = true, env = "CLOUD_IMAGES_TOKEN_REVOCATION_CHECK", default_value = "60s", value_parser = parse_duration_or_zero)]
    pub token_revocation_check: Duration,

    /// Failed password logins in a row that lock a user's password (Keystone's
    /// `lockout_failure_attempts`); `0` turns lockout off.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_LOCKOUT_FAILURE_ATTEMPTS",
        default_value_t = 5
    )]
    pub lockout_failure_attempts: u32,

    /// How long a locked password stays locked after the last failure (Keystone's
    /// `lockout_duration`).
    #[arg(long, global = true, env = "CLOUD_IMAGES_LOCKOUT_DURATION", default_value = "15m", value_parser = parse_duration)]
    pub lockout_duration: Duration,

    /// Hex key (≥ 32 bytes) that signs tokens; by default one is generated and kept in the
    /// data directory. Every process serving one deployment needs the same key.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_TOKEN_SIGNING_KEY",
        hide_env_values = true
    )]
    pub token_signing_key: Option<String>,

    /// Largest JSON request body accepted, in bytes.
    #[arg(long, global = true, env = "CLOUD_IMAGES_MAX_JSON_BODY", default_value_t = 1024 * 1024)]
    pub max_json_body: usize,

    /// Most additional properties per image (413 beyond).
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_MAX_IMAGE_PROPERTIES",
        default_value_t = 128
    )]
    pub max_image_properties: usize,

    /// Most tags per image (413 beyond).
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_MAX_IMAGE_TAGS",
        default_value_t = 128
    )]
    pub max_image_tags: usize,

    /// Most images one tenant may own (413 on create beyond); unlimited when unset.
    #[arg(long, global = true, env = "CLOUD_IMAGES_MAX_IMAGES_PER_TENANT")]
    pub max_images_per_tenant: Option<u64>,

    /// Let image owners deactivate and reactivate their own images (Glance's default
    /// policy); by default only administrators may, as the Rackspace docs describe.
    #[arg(long, global = true, env = "CLOUD_IMAGES_OWNER_MAY_DEACTIVATE")]
    pub owner_may_deactivate: bool,

    /// Largest page a list returns, whatever `limit` asks for.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_MAX_PAGE_SIZE",
        default_value_t = 1000
    )]
    pub max_page_size: usize,

    /// Most bytes of image data one tenant may store, e.g. `500G`; uploads past it are cut
    /// off with 413. Unlimited when unset.
    #[arg(long, global = true, env = "CLOUD_IMAGES_STORAGE_QUOTA", value_parser = parse_bytes)]
    pub storage_quota: Option<u64>,

    /// Most bytes one tenant's containers (the object API, `/v1/AUTH_<tenant>`) may hold,
    /// e.g. `100G`; writes past it get 413. Unlimited when unset.
    #[arg(long, global = true, env = "CLOUD_IMAGES_CONTAINER_QUOTA", value_parser = parse_bytes)]
    pub container_quota: Option<u64>,

    /// Where roles of linked containers are assumed (an STS endpoint URL); unset, STS as
    /// the AWS configuration says (`AWS_ENDPOINT_URL`, else AWS's own).
    #[arg(long, global = true, env = "CLOUD_IMAGES_LINK_STS_ENDPOINT")]
    pub link_sts_endpoint: Option<String>,

    /// Most members (consumer tenants) one image may be shared with (413 beyond).
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_MAX_IMAGE_MEMBERS",
        default_value_t = 128
    )]
    pub max_image_members: usize,

    /// Algorithm of `os_hash_value`: sha256, sha384 or sha512.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_HASH_ALGO",
        default_value = "sha512"
    )]
    pub hash_algo: HashAlgo,

    /// Answer downloads with a redirect to a presigned store URL valid this long (aws
    /// backend; the serverless stack sets it); unset, bytes stream through the service.
    #[arg(long, global = true, env = "CLOUD_IMAGES_DOWNLOAD_REDIRECT", value_parser = parse_duration)]
    pub download_redirect: Option<Duration>,

    /// Largest image `PUT .../file` accepts, e.g. `4M`; larger uploads get 413 naming the
    /// staged upload (`POST .../file/parts`). The serverless stack sets it, as a Lambda
    /// request holds at most 6 MB. Unlimited when unset.
    #[arg(long, global = true, env = "CLOUD_IMAGES_DIRECT_UPLOAD_LIMIT", value_parser = parse_bytes)]
    pub direct_upload_limit: Option<u64>,

    /// Origins besides its own that the console's pages may send bytes to: where the part
    /// URLs of a staged upload point, so a browser can upload the parts (the serverless stack
    /// sets its bucket's). Comma-separated `scheme://host[:port]`, e.g.
    /// `https://my-bucket.s3.us-east-1.amazonaws.com`.
    #[arg(long, global = true, env = "CLOUD_IMAGES_CONSOLE_UPLOAD_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub console_upload_origins: Vec<String>,

    /// How long the part URLs of a staged upload stay valid.
    #[arg(long, global = true, env = "CLOUD_IMAGES_STAGED_UPLOAD_EXPIRY", default_value = "6h", value_parser = parse_duration)]
    pub staged_upload_expiry: Duration,

    /// How long a finished task's record stays readable.
    #[arg(long, global = true, env = "CLOUD_IMAGES_TASK_TTL", default_value = "48h", value_parser = parse_duration)]
    pub task_ttl: Duration,

    /// How long a worker holds a task between heartbeats; a killed worker's task is taken
    /// over after this.
    #[arg(long, global = true, env = "CLOUD_IMAGES_TASK_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub task_lease: Duration,

    /// Starts after which an interrupted task fails instead of being retried.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_TASK_MAX_ATTEMPTS",
        default_value_t = 3
    )]
    pub task_max_attempts: u32,

    /// Tasks the local binary runs at once (each import or export is one); by default 4 on
    /// the embedded backend and 1 on the aws backend (see `task_workers()`). The serverless
    /// stack's queue event source scales its workers itself.
    #[arg(long, global = true, env = "CLOUD_IMAGES_TASK_WORKERS")]
    pub task_workers: Option<usize>,

    /// Interoperable import methods offered (`GET /v2/info/import`), comma-separated. By
    /// default glance-direct and web-download, and copy-image where several stores exist.
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_IMPORT_METHODS",
        value_delimiter = ','
    )]
    pub import_methods: Vec<ImportMethodName>,

    /// The image stores, comma-separated `id=location`: a directory on the embedded backend
    /// (relative to the data directory), `s3://bucket/prefix/` (optionally
    /// `?region=<region>`) on the aws backend. Unset: one store, the data directory's
    /// `images/` or `--aws-bucket` with `--aws-prefix`, named `--store-id`.
    #[arg(long, global = true, env = "CLOUD_IMAGES_STORES", value_delimiter = ',', value_parser = StoreSpec::parse)]
    pub stores: Vec<StoreSpec>,

    /// The store that takes data when a request names none, and keeps staged data (default:
    /// the first of `--stores`).
    #[arg(long, global = true, env = "CLOUD_IMAGES_DEFAULT_STORE")]
    pub default_store: Option<String>,

    /// Id of the one store when `--stores` is unset; by default `local` on the embedded
    /// backend and `s3` on the aws backend.
    #[arg(long, global = true, env = "CLOUD_IMAGES_STORE_ID")]
    pub store_id: Option<String>,

    /// Ports a web-download URI may name (Glance's `allowed_ports`).
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS",
        value_delimiter = ',',
        default_value = "80,443"
    )]
    pub web_download_allowed_ports: Vec<u16>,

    /// When set, the only hosts a web-download URI may name (Glance's `allowed_hosts`).
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub web_download_allowed_hosts: Vec<String>,

    /// Hosts a web-download URI may never name (Glance's `disallowed_hosts`).
    #[arg(
        long,
        global = true,
        env = "CLOUD_IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub web_download_disallowed_hosts: Vec<String>,

    /// Let web-download reach loopback, private and link-local addresses. Only for tests
    /// that serve images from a loopback server; never in a deployment.
    #[arg(long, global = true, env = "CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL")]
    pub web_download_allow_internal: bool,
}

/// Splits `24h` into `(24, "h")`; `what` names the expected form in the error.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(u64, &'a str), String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n = digits
        .parse()
        .map_err(|_| format!("'{text}' is not {what}"))?;
    Ok((n, unit))
}

/// Parses a web origin, `http(s)://host[:port]`, into its canonical form (lower case, no
/// trailing slash). Anything else is refused: the value is written into a
/// Content-Security-Policy, where a space or `;` would add a directive.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let refuse = || format!("'{text}' is not an origin like https://host or http://host:port");
    let lower = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = lower.split_once("://").ok_or_else(refuse)?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if matches!(scheme, "http" | "https") && host_ok && port_ok {
        Ok(lower)
    } else {
        Err(refuse())
    }
}

/// Parses `1048576`, `512K`, `100M`, `20G` or `2T` (powers of 1024) into bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(text, "a size like 1048576, 512K, 100M or 20G")?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("'{text}' has an unknown unit; use K, M, G or T")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

impl Config {
    /// The task settings this configuration sets.
    pub fn task_settings(&self) -> TaskSettings {
        TaskSettings {
            ttl: self.task_ttl,
            lease: self.task_lease,
            max_attempts: self.task_max_attempts.max(1),
            default_limit: 25.min(self.max_page_size),
            max_limit: self.max_page_size,
        }
    }

    /// How the object API behaves.
    pub fn container_settings(&self) -> cloud_images_service::ContainerSettings {
        cloud_images_service::ContainerSettings {
            max_bytes: self.container_quota,
            download_redirect: self.download_redirect,
            max_direct_bytes: self.direct_upload_limit,
        }
    }

    /// The image rules this configuration sets.
    pub fn image_settings(&self, stores: &StoreLayout) -> ImageSettings {
        ImageSettings {
            limits: ImageLimits {
                max_properties: self.max_image_properties,
                max_tags: self.max_image_tags,
            },
            max_images_per_tenant: self.max_images_per_tenant,
            owner_may_deactivate: self.owner_may_deactivate,
            page_limits: PageLimits {
                default: 25.min(self.max_page_size),
                max: self.max_page_size,
            },
            hash_algo: self.hash_algo,
            storage_quota_bytes: self.storage_quota,
            max_members_per_image: self.max_image_members,
            download_redirect: self.download_redirect,
            direct_upload_limit: self.direct_upload_limit,
            staged_upload_expiry: self.staged_upload_expiry,
            imports: self.import_offer(stores),
        }
    }

    /// How many tasks the local binary runs at once. On the aws backend (a test and
    /// development setup; deployments scale through Lambda) one: with several loops polling
    /// SQS, a task taken over after a restart stalled on the emulator in about one run of two
    /// (tests/api tasks.rs, a_task_cut_off_by_a_kill_finishes_after_a_restart), cause not yet
    /// found.
    pub fn task_workers(&self) -> usize {
        self.task_workers.unwrap_or(match self.backend {
            Backend::Embedded => 4,
            Backend::Aws => 1,
        })
    }

    /// The import methods and the stores this configuration offers.
    pub fn import_offer(&self, stores: &StoreLayout) -> ImportOffer {
        let methods = if self.import_methods.is_empty() {
            let mut methods = vec![
                ImportMethodName::GlanceDirect,
                ImportMethodName::WebDownload,
            ];
            if stores.stores.len() > 1 {
                methods.push(ImportMethodName::CopyImage);
            }
            methods
        } else {
            self.import_methods.clone()
        };
        ImportOffer {
            methods,
            stores: stores.catalog(),
        }
    }

    /// What a web-download may reach.
    pub fn fetch_policy(&self) -> cloud_images_fetch::FetchPolicy {
        cloud_images_fetch::FetchPolicy {
            allowed_ports: self.web_download_allowed_ports.clone(),
            allowed_hosts: self.web_download_allowed_hosts.clone(),
            disallowed_hosts: self.web_download_disallowed_hosts.clone(),
            allow_internal_addresses: self.web_download_allow_internal,
            ..Default::default()
        }
    }
}

/// Like [`parse_duration`], but `0` is allowed (meaning at once).
fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        Ok(Duration::ZERO)
    } else {
        parse_duration(text)
    }
}

/// Parses `90`, `90s`, `15m`, `24h` or `2d` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(text, "a duration like 90s, 15m, 24h or 2d")?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}' has an unknown unit; use s, m, h or d")),
    };
    if n == 0 {
        return Err("a duration must be positive".into());
    }
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// Where the embedded default delivers events (`serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct EventSinks {
    /// JSON-lines file events are appended to (relative to the data directory; `off` for
    /// none): an audit trail of every change.
    #[arg(
        long = "events-file",
        env = "CLOUD_IMAGES_EVENTS_FILE",
        default_value = "events.jsonl"
    )]
    file: String,
    /// URL each batch of events is POSTed to as a JSON array, until it answers 2xx.
    #[arg(long = "events-webhook", env = "CLOUD_IMAGES_EVENTS_WEBHOOK")]
    pub webhook: Option<String>,
    /// Secret each webhook body is signed with (HMAC-SHA256 in `X-Cloud-Images-Signature`).
    #[arg(
        long = "events-webhook-secret",
        env = "CLOUD_IMAGES_EVENTS_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
}

impl EventSinks {
    /// The events file, unless switched off.
    pub fn file(&self) -> Option<std::path::PathBuf> {
        (self.file != "off" && !self.file.is_empty()).then(|| self.file.clone().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("20g"), Ok(20 << 30));
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn origins_are_canonical_and_nothing_else_passes() {
        assert_eq!(
            parse_origin("HTTPS://Bucket.s3.us-east-1.amazonaws.com/"),
            Ok("https://bucket.s3.us-east-1.amazonaws.com".into())
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:4566"),
            Ok("http://127.0.0.1:4566".into())
        );
        for bad in [
            "",
            "bucket.example",
            "ftp://host",
            "https://",
            "https://host/path",
            "https://host:0",
            "https://host:99999",
            "https://a..b",
            "https://host; script-src *",
            "https://host 'unsafe-inline'",
            "https://*.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn nonsense_durations_are_refused() {
        for bad in ["", "h", "10x", "-5s", "0", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
