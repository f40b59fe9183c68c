//! Interoperable image import (Glance's `PUT .../stage` and `POST .../import`): the import
//! methods, a checked import request, the stores an import writes to, and the properties
//! Glance keeps on an image while it imports.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DomainError, DomainResult};
use crate::image::{Image, ImageStatus, name_enum};

name_enum!(
    /// How an import gets the image's data.
    ImportMethodName, "import method" {
        /// From the image's staging area, filled by `PUT .../stage`.
        GlanceDirect => "glance-direct",
        /// From a URL the service fetches.
        WebDownload => "web-download",
        /// From the image's own data, into more stores.
        CopyImage => "copy-image",
    }
);

/// The property naming the task that imports the image (Glance's import lock).
pub const IMPORT_TASK: &str = "os_glance_import_task";
/// The property listing the stores an import has yet to write, comma-separated.
pub const IMPORTING_TO_STORES: &str = "os_glance_importing_to_stores";
/// The property listing the stores an import failed to write, comma-separated.
pub const FAILED_IMPORT: &str = "os_glance_failed_import";
/// The property listing the stores that hold the image's data, comma-separated.
pub const STORES: &str = "stores";
/// Our property with a running import's progress: `"<bytes done>/<bytes total>"`, the total
/// empty while unknown (a download without `Content-Length`).
pub const IMPORT_PROGRESS: &str = "os_glance_import_progress";

/// How the data arrives, with what the method needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum ImportMethod {
    /// The staged data.
    GlanceDirect,
    /// The bytes at `uri`.
    WebDownload {
        /// Where to fetch them; checked against the fetch policy before a task is made.
        uri: String,
    },
    /// The image's data in another store.
    CopyImage,
}

impl ImportMethod {
    /// The method's name.
    pub fn name(&self) -> ImportMethodName {
        match self {
            Self::GlanceDirect => ImportMethodName::GlanceDirect,
            Self::WebDownload { .. } => ImportMethodName::WebDownload,
            Self::CopyImage => ImportMethodName::CopyImage,
        }
    }

    /// The status an image must have for this method (Glance's rules), or why not.
    pub fn check_status(&self, image: &Image) -> DomainResult<()> {
        let wanted = match self {
            Self::GlanceDirect => ImageStatus::Uploading,
            Self::WebDownload { .. } => ImageStatus::Queued,
            Self::CopyImage => ImageStatus::Active,
        };
        if image.status == wanted {
            return Ok(());
        }
        Err(DomainError::Conflict(match self {
            _ if image.status == ImageStatus::Active => {
                "Image with status active cannot be target for import".to_owned()
            }
            Self::GlanceDirect => {
                "Image needs to be staged before 'glance-direct' method can be used".to_owned()
            }
            Self::WebDownload { .. } => {
                "Image needs to be in 'queued' state to use 'web-download' method".to_owned()
            }
            Self::CopyImage => {
                "Only images with status active can be targeted for copying".to_owned()
            }
        }))
    }
}

/// Which stores an import writes to, as the request asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The default store (no `stores`, no `all_stores`, no `X-Image-Meta-Store`).
    Default,
    /// The stores named, in order.
    Named(Vec<String>),
    /// Every store.
    All,
}

/// A `POST /v2/images/{id}/import` body, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    /// How the data arrives.
    pub method: ImportMethod,
    /// Where it goes.
    pub stores: StoreChoice,
    /// Whether one store's failure fails the whole import (Glance's default: true).
    pub all_stores_must_succeed: bool,
    /// The body as sent, which the task shows as its `import_req`.
    pub body: Value,
}

impl ImportRequest {
    /// A `glance-direct` import to the default store, as a client would ask for it.
    pub fn glance_direct() -> Self {
        Self::glance_direct_to(None)
    }

    /// A `glance-direct` import to `store` (the default store when `None`).
    pub fn glance_direct_to(store: Option<&str>) -> Self {
        let method = serde_json::json!({ "name": "glance-direct" });
        let (stores, body) = match store {
            None => (
                StoreChoice::Default,
                serde_json::json!({ "method": method }),
            ),
            Some(store) => (
                StoreChoice::Named(vec![store.to_owned()]),
                serde_json::json!({ "method": method, "stores": [store] }),
            ),
        };
        Self {
            method: ImportMethod::GlanceDirect,
            stores,
            all_stores_must_succeed: true,
            body,
        }
    }
}

fn bad(message: impl Into<String>) -> DomainError {
    DomainError::Invalid(message.into())
}

fn flag(body: &Map<String, Value>, key: &str, default: bool) -> DomainResult<bool> {
    match body.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("'{key}' must be boolean value only"))),
    }
}

impl ImportRequest {
    /// Checks a body and the `X-Image-Meta-Store` header, with Glance's words for what it
    /// refuses. `offered` are the methods this deployment offers.
    pub fn parse(
        body: &Value,
        store_header: Option<&str>,
        offered: &[ImportMethodName],
    ) -> DomainResult<Self> {
        let object = body
            .as_object()
            .ok_or_else(|| bad("The import request must be a JSON object"))?;
        let method = object
            .get("method")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("Import request requires a 'method' field."))?;
        let name = match method.get("name") {
            Some(Value::String(name)) => name.as_str(),
            Some(_) => return Err(bad("The import method's 'name' must be a string")),
            None => return Err(bad("Import request requires a 'name' field.")),
        };
        let name = name
            .parse::<ImportMethodName>()
            .ok()
            .filter(|n| offered.contains(n))
            .ok_or_else(|| bad(format!("Unknown import method name '{name}'.")))?;
        let method = match name {
            ImportMethodName::GlanceDirect => ImportMethod::GlanceDirect,
            ImportMethodName::CopyImage => ImportMethod::CopyImage,
            ImportMethodName::WebDownload => match method.get("uri") {
                Some(Value::String(uri)) if !uri.is_empty() => {
                    ImportMethod::WebDownload { uri: uri.clone() }
                }
                _ => return Err(bad("The web-download method requires a 'uri' string")),
            },
        };
        Ok(Self {
            method,
            stores: store_choice(object, store_header)?,
            all_stores_must_succeed: flag(object, "all_stores_must_succeed", true)?,
            body: body.clone(),
        })
    }
}

fn store_choice(body: &Map<String, Value>, header: Option<&str>) -> DomainResult<StoreChoice> {
    let listed = match body.get("stores") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("'stores' must be a list of store ids"))
                })
                .collect::<DomainResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(bad("'stores' must be a list of store ids")),
    };
    if flag(body, "all_stores", false)? {
        if listed.is_some() || header.is_some() {
            return Err(bad(
                "All_stores parameter can't be used with x-image-meta-store header or stores parameter",
            ));
        }
        return Ok(StoreChoice::All);
    }
    match (listed, header) {
        (Some(_), Some(_)) => Err(bad(
            "Stores parameter and x-image-meta-store header can't be both specified",
        )),
        (Some(stores), None) if stores.is_empty() => Err(bad("'stores' must name a store")),
        (Some(stores), None) => Ok(StoreChoice::Named(stores)),
        (None, Some(store)) => Ok(StoreChoice::Named(vec![store.to_owned()])),
        (None, None) => Ok(StoreChoice::Default),
    }
}

/// What a deployment offers for import: the methods (`GET /v2/info/import`) and the stores
/// (`GET /v2/info/stores`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOffer {
    /// The methods offered, in the order shown.
    pub methods: Vec<ImportMethodName>,
    /// The stores.
    pub stores: StoreCatalog,
}

/// The configured stores: their ids, in order, and which one is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCatalog {
    /// Every store: id and description.
    pub stores: Vec<StoreInfo>,
    /// The id of the store that takes data when no store is named.
    pub default: String,
}

/// One configured store, as `GET /v2/info/stores` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// Its id.
    pub id: String,
    /// What it is, for people.
    pub description: String,
    /// The kind of storage: `file` or `s3`.
    pub kind: String,
}

impl StoreCatalog {
    /// A catalog of one store, which is the default.
    pub fn single(id: &str, description: &str, kind: &str) -> Self {
        Self {
            stores: vec![StoreInfo {
                id: id.to_owned(),
                description: description.to_owned(),
                kind: kind.to_owned(),
            }],
            default: id.to_owned(),
        }
    }

    /// The store ids a choice names, each checked to exist (Glance answers 409 for an unknown
    /// one), without repeats.
    pub fn resolve(&self, choice: &StoreChoice) -> DomainResult<Vec<String>> {
        let ids = match choice {
            StoreChoice::Default => vec![self.default.clone()],
            StoreChoice::All => self.stores.iter().map(|s| s.id.clone()).collect(),
            StoreChoice::Named(ids) => ids.clone(),
        };
        let mut resolved: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !self.stores.iter().any(|s| s.id == id) {
                return Err(DomainError::Conflict(format!(
                    "Unknown scheme '{id}' found"
                )));
            }
            if !resolved.contains(&id) {
                resolved.push(id);
            }
        }
        Ok(resolved)
    }

    /// The store with id `id`, if one is configured.
    pub fn get(&self, id: &str) -> Option<&StoreInfo> {
        self.stores.iter().find(|s| s.id == id)
    }

    /// The stores an image's data is in: its `stores` property, or the default store for data
    /// stored before images recorded their stores.
    pub fn holding(&self, image: &Image) -> Vec<String> {
        match image.properties.get(STORES) {
            Some(list) => split_list(list),
            None if image.size.is_some() => vec![self.default.clone()],
            None => Vec::new(),
        }
    }
}

/// A comma-separated property value as its items.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[ImportMethodName] = ImportMethodName::ALL;

    fn parse(body: Value) -> DomainResult<ImportRequest> {
        ImportRequest::parse(&body, None, ALL)
    }

    #[test]
    fn a_method_name_is_required_and_must_be_offered() {
        for (body, words) in [
            (json!({}), "requires a 'method' field"),
            (json!({"method": {}}), "requires a 'name' field"),
            (
                json!({"method": {"name": "x"}}),
                "Unknown import method name 'x'",
            ),
            (
                json!({"method": {"name": "web-download"}}),
                "requires a 'uri'",
            ),
            (json!([]), "JSON object"),
        ] {
            let error = parse(body).expect_err("refused").to_string();
            assert!(error.contains(words), "{error}");
        }
        let only_direct = [ImportMethodName::GlanceDirect];
        let body = json!({"method": {"name": "copy-image"}});
        assert!(ImportRequest::parse(&body, None, &only_direct).is_err());
        assert!(ImportRequest::parse(&body, None, ALL).is_ok());
    }

    #[test]
    fn stores_come_from_the_body_or_the_header_never_both() {
        let direct = json!({"name": "glance-direct"});
        let request = |body: Value, header| ImportRequest::parse(&body, header, ALL);
        assert_eq!(
            request(json!({"method": direct}), None).expect("ok").stores,
            StoreChoice::Default
        );
        assert_eq!(
            request(json!({"method": direct}), Some("b"))
                .expect("ok")
                .stores,
            StoreChoice::Named(vec!["b".into()])
        );
        assert_eq!(
            request(json!({"method": direct, "all_stores": true}), None)
                .expect("ok")
                .stores,
            StoreChoice::All
        );
        for (body, header) in [
            (json!({"method": direct, "stores": ["a"]}), Some("b")),
            (
                json!({"method": direct, "all_stores": true, "stores": ["a"]}),
                None,
            ),
            (json!({"method": direct, "all_stores": true}), Some("a")),
            (json!({"method": direct, "all_stores": "yes"}), None),
            (
                json!({"method": direct, "all_stores_must_succeed": 1}),
                None,
            ),
            (json!({"method": direct, "stores": "a"}), None),
            (json!({"method": direct, "stores": []}), None),
        ] {
            assert!(request(body.clone(), header).is_err(), "{body} {header:?}");
        }
    }

    #[test]
    fn the_catalog_resolves_choices_and_refuses_unknown_stores() {
        let catalog = StoreCatalog {
            stores: vec![
                StoreInfo {
                    id: "a".into(),
                    description: String::new(),
                    kind: "file".into(),
                },
                StoreInfo {
                    id: "b".into(),
                    description: String::new(),
                    kind: "file".into(),
                },
            ],
            default: "b".into(),
        };
        assert_eq!(catalog.resolve(&StoreChoice::Default).expect("ok"), ["b"]);
        assert_eq!(catalog.resolve(&StoreChoice::All).expect("ok"), ["a", "b"]);
        let named = StoreChoice::Named(vec!["a".into(), "a".into()]);
        assert_eq!(catalog.resolve(&named).expect("ok"), ["a"]);
        let unknown = StoreChoice::Named(vec!["c".into()]);
        assert!(matches!(
            catalog.resolve(&unknown),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn each_method_needs_its_status() {
        let mut image =
            Image::new_queued(crate::image::ImageId::random(), None, chrono::Utc::now());
        let web = ImportMethod::WebDownload {
            uri: "http://x/".into(),
        };
        assert!(web.check_status(&image).is_ok());
        assert!(ImportMethod::GlanceDirect.check_status(&image).is_err());
        assert!(ImportMethod::CopyImage.check_status(&image).is_err());
        image.status = ImageStatus::Uploading;
        assert!(ImportMethod::GlanceDirect.check_status(&image).is_ok());
        assert!(web.check_status(&image).is_err());
        image.status = ImageStatus::Active;
        assert!(ImportMethod::CopyImage.check_status(&image).is_ok());
        let error = ImportMethod::GlanceDirect
            .check_status(&image)
            .expect_err("active");
        assert!(error.to_string().contains("status active cannot be target"));
    }
}
