//! Every response the conformance suite receives is checked against the served OpenAPI
//! description: its status must be documented for that route and method, and its body must
//! validate against the documented schema.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

static SPEC: OnceLock<Value> = OnceLock::new();
static VALIDATORS: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
    OnceLock::new();

/// Loads the description once per test process from the first server asked.
pub async fn ensure_loaded(client: &reqwest::Client, root: &str) {
    if SPEC.get().is_some() {
        return;
    }
    let document: Value = client
        .get(format!("{root}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = SPEC.set(document);
}

fn spec() -> &'static Value {
    SPEC.get().expect("OpenAPI description loaded")
}

/// The path template (e.g. `/v2/images/{image_id}`) that `path` matches, if any.
pub fn template_for(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let paths = spec()["paths"].as_object()?;
    // Prefer literal matches over parameterised ones (`/v3/auth/tokens` over a `{x}` route).
    let mut best: Option<(usize, &String)> = None;
    for template in paths.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        // A final `{*name}` takes the rest of the path, one segment or more.
        let greedy = parts.last().is_some_and(|p| p.starts_with("{*"));
        let fits = if greedy {
            segments.len() >= parts.len()
        } else {
            parts.len() == segments.len()
        };
        if !fits {
            continue;
        }
        let mut params = 0;
        let matches = parts.iter().zip(&segments).all(|(t, s)| {
            // (zip stops at the template's last part: a greedy one then takes the rest.)
            if t.starts_with("{*") {
                params += 1;
                true
            } else if t.starts_with('{') {
                params += 1;
                !s.is_empty()
            } else {
                t == s
            }
        });
        if matches && best.is_none_or(|(p, _)| params < p) {
            best = Some((params, template));
        }
    }
    best.map(|(_, t)| t.clone())
}

fn validator(key: &str, schema: &Value) -> std::sync::Arc<jsonschema::Validator> {
    let cache = VALIDATORS.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(key.to_owned())
        .or_insert_with(|| {
            let mut rooted = schema.clone();
            rooted["components"] = spec()["components"].clone();
            std::sync::Arc::new(
                jsonschema::validator_for(&rooted).unwrap_or_else(|e| panic!("schema {key}: {e}")),
            )
        })
        .clone()
}

fn check_body(key: &str, schema: &Value, body: &str) {
    let instance: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{key}: the body is not JSON ({e}): {body}"));
    let validator = validator(key, schema);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{key}: the response does not match the OpenAPI description: {errors:?}\n{body}"
    );
}

/// Asserts a response agrees with the description of its route.
pub fn check(method: &Method, path: &str, status: StatusCode, media: Option<&str>, body: &str) {
    let error_schema = json!({ "$ref": "#/components/schemas/Error" });
    let key = format!("{method} {path} {}", status.as_u16());
    // Any route may answer 405 (wrong method) or 500; unknown paths answer 404. All carry
    // the error body.
    // Under a version not routed here (`/v1/images` is Glance's v1, not an object account)
    // the server negotiates as at the root, whatever the method.
    if status == StatusCode::MULTIPLE_CHOICES {
        let versions = json!({ "$ref": "#/components/schemas/Versions" });
        return check_body(&key, &versions, body);
    }
    let Some(template) = template_for(path) else {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{key}: no documented route matches"
        );
        return check_body(&key, &error_schema, body);
    };
    let operation = &spec()["paths"][&template][method.as_str().to_ascii_lowercase()];
    if operation.is_null() || status == StatusCode::METHOD_NOT_ALLOWED || status.is_server_error() {
        assert!(
            status == StatusCode::METHOD_NOT_ALLOWED || status.is_server_error(),
            "{key}: {method} is not documented on {template} but answered {status}"
        );
        return check_body(&key, &error_schema, body);
    }
    let documented = &operation["responses"][status.as_u16().to_string()];
    assert!(
        !documented.is_null(),
        "{key}: status {status} is not documented for {method} {template}"
    );
    let key = format!("{method} {template} {}", status.as_u16());
    let json = media.is_some_and(|m| m.starts_with("application/json"));
    match documented["content"].as_object() {
        // Only JSON bodies have a schema to check; image bytes and text listings are opaque.
        Some(content) if json || content.len() == 1 => {
            if let Some(media) = content.get("application/json") {
                check_body(&key, &media["schema"], body);
            }
        }
        Some(content) => assert!(
            body.is_empty() || content.keys().any(|m| m != "application/json"),
            "{key}: answered {media:?}, which is not documented"
        ),
        None => assert!(
            body.is_empty(),
            "{key}: documented without a body but answered {body}"
        ),
    }
}
