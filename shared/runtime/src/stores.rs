//! The image stores a deployment configures: `--stores id=location,...` and
//! `--default-store`, or, unset, the one store of the backend's own settings.

use std::path::PathBuf;

use cloud_images_domain::import::{StoreCatalog, StoreInfo};

use crate::{Backend, Config};

/// Where one store keeps image data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory (embedded backend); relative paths are within the data directory.
    Directory(PathBuf),
    /// An S3 bucket and key prefix (aws backend), in `region` when it is not the default one.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix of image objects.
        prefix: String,
        /// The bucket's region, when not the SDK's default.
        region: Option<String>,
    },
}

/// One configured store: `id=location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The id clients name (`stores`, `X-Image-Meta-Store`, `GET /v2/info/stores`).
    pub id: String,
    /// Where it keeps data.
    pub location: StoreLocation,
}

impl StoreSpec {
    /// Parses `id=/a/directory`, `id=relative/dir`, `id=s3://bucket/prefix/` or
    /// `id=s3://bucket/prefix/?region=eu-west-1`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (id, location) = text
            .split_once('=')
            .ok_or_else(|| format!("store '{text}' is not id=location"))?;
        let id = id.trim();
        let valid_id = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_id {
            return Err(format!(
                "store id '{id}' must be letters, digits, '-' or '_'"
            ));
        }
        let location = location.trim();
        let location = match location.strip_prefix("s3://") {
            Some(rest) => s3_location(rest)?,
            None if location.is_empty() => return Err(format!("store '{id}' has no location")),
            None => StoreLocation::Directory(PathBuf::from(location)),
        };
        Ok(Self {
            id: id.to_owned(),
            location,
        })
    }

    /// The kind `GET /v2/info/stores/detail` shows.
    fn kind(&self) -> &'static str {
        match self.location {
            StoreLocation::Directory(_) => "file",
            StoreLocation::S3 { .. } => "s3",
        }
    }

    fn description(&self) -> String {
        match &self.location {
            StoreLocation::Directory(dir) => format!("Image files in {}", dir.display()),
            StoreLocation::S3 { bucket, prefix, .. } => {
                format!("S3 objects under s3://{bucket}/{prefix}")
            }
        }
    }
}

/// `bucket/prefix?region=r` after `s3://`.
fn s3_location(rest: &str) -> Result<StoreLocation, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(format!("s3://{rest} names no bucket"));
    }
    let region = match query {
        "" => None,
        q => Some(
            q.strip_prefix("region=")
                .filter(|r| !r.is_empty() && !r.contains('&'))
                .ok_or_else(|| format!("s3://{rest}: the only option is ?region=<region>"))?
                .to_owned(),
        ),
    };
    Ok(StoreLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        region,
    })
}

/// The stores, checked: at least one, ids unique, each of the backend's kind, the default
/// among them (first in the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLayout {
    /// Every store, the default first.
    pub stores: Vec<StoreSpec>,
}

impl StoreLayout {
    /// The layout `config` asks for, or what is wrong with it.
    pub fn of(config: &Config) -> Result<Self, String> {
        let mut stores = if config.stores.is_empty() {
            vec![single_store(config)]
        } else {
            config.stores.clone()
        };
        for (n, store) in stores.iter().enumerate() {
            if stores[..n].iter().any(|other| other.id == store.id) {
                return Err(format!("store id '{}' is listed twice", store.id));
            }
            let fits = matches!(
                (config.backend, &store.location),
                (Backend::Embedded, StoreLocation::Directory(_))
                    | (Backend::Aws, StoreLocation::S3 { .. })
            );
            if !fits {
                return Err(format!(
                    "store '{}': the embedded backend keeps directories, the aws backend s3:// buckets",
                    store.id
                ));
            }
        }
        if let Some(default) = &config.default_store {
            let at = stores
                .iter()
                .position(|s| &s.id == default)
                .ok_or_else(|| format!("the default store '{default}' is not configured"))?;
            stores[..=at].rotate_right(1);
        }
        for store in &mut stores {
            if let StoreLocation::Directory(dir) = &mut store.location
                && dir.is_relative()
            {
                *dir = config.data_dir.join(&dir);
            }
        }
        Ok(Self { stores })
    }

    /// The catalog clients see.
    pub fn catalog(&self) -> StoreCatalog {
        StoreCatalog {
            stores: self
                .stores
                .iter()
                .map(|s| StoreInfo {
                    id: s.id.clone(),
                    description: s.description(),
                    kind: s.kind().to_owned(),
                })
                .collect(),
            default: self.stores[0].id.clone(),
        }
    }
}

/// The one store of a configuration that lists none: the data directory's `images/`, or the
/// aws settings' bucket and prefix.
fn single_store(config: &Config) -> StoreSpec {
    let (default_id, location) = match config.backend {
        Backend::Embedded => ("local", StoreLocation::Directory(PathBuf::from("images"))),
        Backend::Aws => (
            "s3",
            StoreLocation::S3 {
                bucket: config.aws_bucket.clone(),
                prefix: config.aws_prefix.clone(),
                region: None,
            },
        ),
    };
    StoreSpec {
        id: config.store_id.clone().unwrap_or_else(|| default_id.into()),
        location,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration these flags give (environment aside: every flag is named).
    fn config(args: &[&str]) -> Config {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once("test").chain(args.iter().copied());
        <Flags as clap::Parser>::try_parse_from(args)
            .expect("valid flags")
            .config
    }

    fn ids(layout: &StoreLayout) -> Vec<&str> {
        layout.stores.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn without_stores_there_is_the_backends_one_store() {
        let embedded = StoreLayout::of(&config(&["--data-dir", "/d", "--backend", "embedded"]))
            .expect("valid");
        assert_eq!(
            embedded.stores,
            [StoreSpec {
                id: "local".into(),
                location: StoreLocation::Directory("/d/images".into())
            }]
        );
        let aws = config(&[
            "--backend",
            "aws",
            "--aws-bucket",
            "b",
            "--store-id",
            "main",
        ]);
        let layout = StoreLayout::of(&aws).expect("valid");
        assert_eq!(ids(&layout), ["main"]);
        assert_eq!(layout.catalog().default, "main");
        assert_eq!(layout.catalog().stores[0].kind, "s3");
    }

    #[test]
    fn the_default_store_comes_first_and_relative_directories_sit_in_the_data_dir() {
        let layout = StoreLayout::of(&config(&[
            "--backend",
            "embedded",
            "--data-dir",
            "/d",
            "--stores",
            "a=one,b=/abs,c=three",
            "--default-store",
            "c",
        ]))
        .expect("valid");
        assert_eq!(ids(&layout), ["c", "a", "b"]);
        assert_eq!(layout.catalog().default, "c");
        assert_eq!(
            layout.stores[1].location,
            StoreLocation::Directory("/d/one".into())
        );
        assert_eq!(
            layout.stores[2].location,
            StoreLocation::Directory("/abs".into())
        );
    }

    #[test]
    fn layouts_that_cannot_work_are_refused_at_start_up() {
        for args in [
            &["--backend", "embedded", "--stores", "a=x,a=y"][..],
            &["--backend", "embedded", "--stores", "a=s3://bucket/p/"],
            &["--backend", "aws", "--stores", "a=/dir"],
            &[
                "--backend",
                "embedded",
                "--stores",
                "a=x",
                "--default-store",
                "b",
            ],
        ] {
            assert!(StoreLayout::of(&config(args)).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn stores_parse_as_directories_or_buckets() {
        assert_eq!(
            StoreSpec::parse("fast=/srv/fast").expect("ok"),
            StoreSpec {
                id: "fast".into(),
                location: StoreLocation::Directory("/srv/fast".into())
            }
        );
        assert_eq!(
            StoreSpec::parse("cheap=s3://bucket/images/?region=eu-west-1")
                .expect("ok")
                .location,
            StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: "images/".into(),
                region: Some("eu-west-1".into())
            }
        );
        for bad in [
            "nolocation",
            "=dir",
            "a b=dir",
            "x=",
            "x=s3:///p",
            "x=s3://b/p?acl=x",
        ] {
            assert!(StoreSpec::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
