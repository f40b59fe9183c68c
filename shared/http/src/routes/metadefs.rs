//! Metadata definitions: `/v2/metadefs/namespaces[/{namespace}[/objects|properties|tags|
//! resource_types[/{name}]]]` and `/v2/metadefs/resource_types`, shaped as Glance's.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get};
use cloud_images_domain::metadefs::{
    self, Association, Contents, MetaObject, Namespace, NamespaceProperty, NamespaceQuery,
    NamespaceRecord, Property, Tag,
};
use cloud_images_service::{ContentKind, MetadefService, TagQuery};
use serde_json::{Map, Value, json};

use super::{RouteTable, created, mount};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group};
use crate::views;

type Metadefs = State<Group<MetadefService>>;

const NAMESPACES: &str = "/v2/metadefs/namespaces";

/// The `DELETE` handler of a contents collection.
macro_rules! clearing {
    ($kind:expr) => {
        |state: Metadefs, caller: Authenticated, namespace: Path<String>| {
            clear(state, caller, namespace, $kind)
        }
    };
}

/// Every metadefs route.
pub fn table() -> RouteTable<Group<MetadefService>> {
    vec![
        (NAMESPACES, get(list_namespaces).post(create_namespace)),
        (
            "/v2/metadefs/namespaces/{namespace}",
            get(show_namespace)
                .put(update_namespace)
                .delete(delete_namespace),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/objects",
            get(list_objects)
                .post(create_object)
                .delete(clearing!(ContentKind::Objects)),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/objects/{object}",
            get(show_object).put(update_object).delete(delete_object),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/properties",
            get(list_properties)
                .post(create_property)
                .delete(clearing!(ContentKind::Properties)),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/properties/{property}",
            get(show_property)
                .put(update_property)
                .delete(delete_property),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/tags",
            get(list_tags)
                .post(create_tags)
                .delete(clearing!(ContentKind::Tags)),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/tags/{tag}",
            get(show_tag)
                .post(create_tag)
                .put(update_tag)
                .delete(delete_tag),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/resource_types",
            get(list_associations).post(associate),
        ),
        (
            "/v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}",
            delete(dissociate),
        ),
        ("/v2/metadefs/resource_types", get(list_resource_types)),
    ]
}

/// The metadefs routes over their service.
pub fn router(common: Common, service: MetadefService) -> Router {
    mount(table(), Group { common, service })
}

// ---- views ----

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), json!(value));
    }
}

fn association_view(association: &Association) -> Value {
    let mut view = Map::new();
    view.insert("name".into(), json!(association.name));
    insert_some(&mut view, "prefix", association.prefix.as_ref());
    insert_some(
        &mut view,
        "properties_target",
        association.properties_target.as_ref(),
    );
    view.insert(
        "created_at".into(),
        json!(views::time(&association.created_at)),
    );
    view.insert(
        "updated_at".into(),
        json!(views::time(&association.updated_at)),
    );
    Value::Object(view)
}

fn property_view(name: &str, property: &Property) -> Value {
    let mut view = serde_json::to_value(property).unwrap_or_else(|_| json!({}));
    view["name"] = json!(name);
    view
}

fn properties_view<'a>(properties: impl Iterator<Item = (&'a String, &'a Property)>) -> Value {
    Value::Object(
        properties
            .map(|(name, property)| (name.clone(), property_view(name, property)))
            .collect(),
    )
}

fn namespace_properties(properties: &BTreeMap<String, NamespaceProperty>) -> Value {
    properties_view(properties.iter().map(|(n, p)| (n, &p.definition)))
}

fn object_view(namespace: &str, object: &MetaObject) -> Value {
    let mut view = Map::new();
    view.insert("name".into(), json!(object.name));
    insert_some(&mut view, "description", object.description.as_ref());
    view.insert("required".into(), json!(object.required));
    view.insert(
        "properties".into(),
        properties_view(object.properties.iter()),
    );
    view.insert("created_at".into(), json!(views::time(&object.created_at)));
    view.insert("updated_at".into(), json!(views::time(&object.updated_at)));
    view.insert(
        "self".into(),
        json!(format!("{NAMESPACES}/{namespace}/objects/{}", object.name)),
    );
    view.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(view)
}

fn tag_view(tag: &Tag) -> Value {
    json!({
        "name": tag.name,
        "created_at": views::time(&tag.created_at),
        "updated_at": views::time(&tag.updated_at),
    })
}

fn tag_names<'a>(names: impl Iterator<Item = &'a String>) -> Value {
    Value::Array(names.map(|name| json!({ "name": name })).collect())
}

/// A namespace as Glance shows it: collections only when they hold something, and its
/// contents only when asked for (lists never show them).
fn namespace_view(namespace: &Namespace, contents: Option<&Contents>) -> Value {
    let mut view = Map::new();
    view.insert("namespace".into(), json!(namespace.namespace));
    insert_some(&mut view, "display_name", namespace.display_name.as_ref());
    insert_some(&mut view, "description", namespace.description.as_ref());
    view.insert("visibility".into(), json!(namespace.visibility));
    view.insert("protected".into(), json!(namespace.protected));
    view.insert("owner".into(), json!(namespace.owner));
    view.insert(
        "created_at".into(),
        json!(views::time(&namespace.created_at)),
    );
    view.insert(
        "updated_at".into(),
        json!(views::time(&namespace.updated_at)),
    );
    view.insert(
        "self".into(),
        json!(format!("{NAMESPACES}/{}", namespace.namespace)),
    );
    view.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    if !namespace.resource_type_associations.is_empty() {
        view.insert(
            "resource_type_associations".into(),
            namespace
                .resource_type_associations
                .iter()
                .map(association_view)
                .collect(),
        );
    }
    if let Some(contents) = contents {
        if !contents.properties.is_empty() {
            view.insert(
                "properties".into(),
                namespace_properties(&contents.properties),
            );
        }
        if !contents.objects.is_empty() {
            let objects = contents
                .objects
                .values()
                .map(|o| object_view(&namespace.namespace, o));
            view.insert("objects".into(), objects.collect());
        }
        if !contents.tags.is_empty() {
            view.insert("tags".into(), tag_names(contents.tags.keys()));
        }
    }
    Value::Object(view)
}

fn record_view(record: &NamespaceRecord) -> Value {
    namespace_view(&record.namespace, Some(&record.contents))
}

// ---- queries ----

fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("The query string is malformed: {e}")))
}

fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn limit(pairs: &[(String, String)], zero_allowed: bool) -> Result<Option<usize>, ApiError> {
    let Some(raw) = last(pairs, "limit") else {
        return Ok(None);
    };
    // Any run of digits is a limit: one past what a page holds is capped, not refused.
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "limit param must be a non-negative integer",
        ));
    }
    match raw.parse::<usize>().unwrap_or(usize::MAX) {
        0 if !zero_allowed => Err(ApiError::bad_request("limit param must be positive")),
        n => Ok(Some(n)),
    }
}

fn descending(pairs: &[(String, String)]) -> Result<bool, ApiError> {
    match last(pairs, "sort_dir") {
        None | Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid sort direction: {other}"
        ))),
    }
}

fn namespace_query(pairs: &[(String, String)]) -> Result<NamespaceQuery, ApiError> {
    let defaults = NamespaceQuery::default();
    Ok(NamespaceQuery {
        limit: limit(pairs, true)?.unwrap_or(defaults.limit),
        marker: last(pairs, "marker").map(str::to_owned),
        sort_key: last(pairs, "sort_key")
            .map(str::parse)
            .transpose()?
            .unwrap_or(defaults.sort_key),
        descending: descending(pairs)?,
        visibility: last(pairs, "visibility").map(str::parse).transpose()?,
        resource_types: last(pairs, "resource_types")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn tag_query(pairs: &[(String, String)]) -> Result<TagQuery, ApiError> {
    let by_name = match last(pairs, "sort_key") {
        None | Some("created_at") => false,
        Some("name") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort key: {other}; tags sort by created_at or name"
            )));
        }
    };
    Ok(TagQuery {
        limit: limit(pairs, true)?,
        marker: last(pairs, "marker").map(str::to_owned),
        by_name,
        ascending: !descending(pairs)?,
    })
}

/// A list link: the request's own query without `marker`, then `marker` when given.
fn list_link(pairs: &[(String, String)], marker: Option<&str>) -> String {
    let mut kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(marker) = marker {
        kept.push(("marker", marker));
    }
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    if query.is_empty() {
        NAMESPACES.to_owned()
    } else {
        format!("{NAMESPACES}?{query}")
    }
}

// ---- namespaces ----

async fn list_namespaces(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    let query = namespace_query(&pairs)?;
    let (page, more) = state.service.list_namespaces(&caller, &query).await?;
    let mut body = json!({
        "namespaces": page.iter().map(|n| namespace_view(n, None)).collect::<Vec<_>>(),
        "first": list_link(&pairs, None),
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    if more {
        let marker = page.last().map(|n| n.namespace.as_str());
        body["next"] = json!(list_link(&pairs, marker));
    }
    Ok(Json(body))
}

async fn create_namespace(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let record = state.service.create_namespace(&caller, body).await?;
    let path = format!("{NAMESPACES}/{}", record.namespace.namespace);
    Ok(created(
        &state.common,
        &headers,
        &path,
        record_view(&record),
    ))
}

async fn show_namespace(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    if let Some(visibility) = last(&pairs, "visibility") {
        visibility.parse::<metadefs::NamespaceVisibility>()?;
    }
    let mut record = state.service.namespace(&caller, &namespace).await?;
    let prefix = last(&pairs, "resource_type")
        .and_then(|rt| record.namespace.association(rt))
        .and_then(|a| a.prefix.clone())
        .filter(|p| !p.is_empty());
    if let Some(prefix) = prefix {
        record.contents = metadefs::prefixed(&record.contents, &prefix);
    }
    Ok(Json(record_view(&record)))
}

async fn update_namespace(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let updated = state
        .service
        .update_namespace(&caller, &namespace, body)
        .await?;
    Ok(Json(namespace_view(&updated, None)))
}

async fn delete_namespace(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_namespace(&caller, &namespace).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Empties one kind of a namespace's contents (`DELETE .../objects`, `.../properties`,
/// `.../tags`).
async fn clear(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    kind: ContentKind,
) -> Result<StatusCode, ApiError> {
    state.service.clear(&caller, &namespace, kind).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- objects ----

async fn list_objects(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    // Glance checks these and then lists every object, as here.
    let pairs = query_pairs(raw.as_deref())?;
    limit(&pairs, false)?;
    descending(&pairs)?;
    let objects = state.service.objects(&caller, &namespace).await?;
    let views: Vec<Value> = objects.iter().map(|o| object_view(&namespace, o)).collect();
    Ok(Json(
        json!({ "objects": views, "schema": "/v2/schemas/metadefs/objects" }),
    ))
}

async fn create_object(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let object = state
        .service
        .create_object(&caller, &namespace, body)
        .await?;
    let path = format!("{NAMESPACES}/{namespace}/objects/{}", object.name);
    Ok(created(
        &state.common,
        &headers,
        &path,
        object_view(&namespace, &object),
    ))
}

async fn show_object(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, object)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let found = state.service.object(&caller, &namespace, &object).await?;
    Ok(Json(object_view(&namespace, &found)))
}

async fn update_object(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, object)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let updated = state
        .service
        .update_object(&caller, &namespace, &object, body)
        .await?;
    Ok(Json(object_view(&namespace, &updated)))
}

async fn delete_object(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, object)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .delete_object(&caller, &namespace, &object)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- properties ----

async fn list_properties(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let properties = state.service.properties(&caller, &namespace).await?;
    Ok(Json(
        json!({ "properties": namespace_properties(&properties) }),
    ))
}

async fn create_property(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let (name, property) = state
        .service
        .create_property(&caller, &namespace, body)
        .await?;
    let path = format!("{NAMESPACES}/{namespace}/properties/{name}");
    Ok(created(
        &state.common,
        &headers,
        &path,
        property_view(&name, &property.definition),
    ))
}

async fn show_property(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, property)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    let (name, found) = state
        .service
        .property(
            &caller,
            &namespace,
            &property,
            last(&pairs, "resource_type"),
        )
        .await?;
    Ok(Json(property_view(&name, &found.definition)))
}

async fn update_property(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, property)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let (name, updated) = state
        .service
        .update_property(&caller, &namespace, &property, body)
        .await?;
    Ok(Json(property_view(&name, &updated.definition)))
}

async fn delete_property(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, property)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .delete_property(&caller, &namespace, &property)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- tags ----

async fn list_tags(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    let tags = state
        .service
        .tags(&caller, &namespace, &tag_query(&pairs)?)
        .await?;
    Ok(Json(
        json!({ "tags": tag_names(tags.iter().map(|t| &t.name)) }),
    ))
}

/// `X-Openstack-Append` as oslo's `bool_from_string` reads it.
fn append_header(headers: &HeaderMap) -> bool {
    headers
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "t" | "true" | "on" | "y" | "yes"
            )
        })
}

async fn create_tags(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let names = tags_body(body)?;
    let created = state
        .service
        .create_tags(&caller, &namespace, &names, append_header(&headers))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "tags": tag_names(created.iter()) })),
    )
        .into_response())
}

/// The names of `{"tags": [{"name": …}, …]}`.
fn tags_body(body: Value) -> Result<Vec<String>, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            "The body must be an object: {\"tags\": [{\"name\": ...}]}",
        ));
    };
    if let Some(field) = ["created_at", "updated_at"]
        .into_iter()
        .find(|f| fields.contains_key(*f))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Attribute '{field}' is read-only."),
        ));
    }
    let tags = fields.remove("tags").unwrap_or(Value::Array(Vec::new()));
    if let Some(other) = fields.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unexpected field '{other}': the body holds only \"tags\""
        )));
    }
    let Value::Array(tags) = tags else {
        return Err(ApiError::bad_request("\"tags\" must be a list"));
    };
    Ok(tags
        .into_iter()
        .map(metadefs::tag_from)
        .collect::<Result<_, _>>()?)
}

async fn show_tag(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, tag)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let found = state.service.tag(&caller, &namespace, &tag).await?;
    Ok(Json(tag_view(&found)))
}

async fn create_tag(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let created_tag = state.service.create_tag(&caller, &namespace, &tag).await?;
    let path = format!("{NAMESPACES}/{namespace}/tags/{tag}");
    Ok(created(
        &state.common,
        &headers,
        &path,
        tag_view(&created_tag),
    ))
}

async fn update_tag(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, tag)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let updated = state
        .service
        .update_tag(&caller, &namespace, &tag, body)
        .await?;
    Ok(Json(tag_view(&updated)))
}

async fn delete_tag(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_tag(&caller, &namespace, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- resource types ----

async fn list_resource_types(
    State(state): Metadefs,
    Authenticated(_caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let types = state.service.resource_types().await?;
    let views: Vec<Value> = types
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "created_at": views::time(&t.created_at),
                "updated_at": views::time(&t.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "resource_types": views })))
}

async fn list_associations(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let associations = state.service.associations(&caller, &namespace).await?;
    let views: Vec<Value> = associations.iter().map(association_view).collect();
    Ok(Json(json!({ "resource_type_associations": views })))
}

async fn associate(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let association = state.service.associate(&caller, &namespace, body).await?;
    let path = format!("{NAMESPACES}/{namespace}/resource_types");
    Ok(created(
        &state.common,
        &headers,
        &path,
        association_view(&association),
    ))
}

async fn dissociate(
    State(state): Metadefs,
    Authenticated(caller): Authenticated,
    Path((namespace, resource_type)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .dissociate(&caller, &namespace, &resource_type)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
