//! Image data: `PUT` and `GET /v2/images/{image_id}/file`, streamed end to end.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{
    ACCEPT_RANGES, CONNECTION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use cloud_images_domain::DomainError;
use cloud_images_domain::ports::{ByteStream, RangeRequest};
use cloud_images_service::ImageDataService;
use futures_util::TryStreamExt;

use super::{RouteTable, mount};
use crate::caller::Authenticated;
use crate::drain::KeptBody;
use crate::error::ApiError;
use crate::state::{Common, Group};

const OCTET_STREAM: &str = "application/octet-stream";

/// `/v2/images/{image_id}/file` and `/v2/images/{image_id}/stage`. The upload routes lift
/// the JSON body cap: image data is streamed to storage, never buffered.
pub fn table() -> RouteTable<Group<ImageDataService>> {
    vec![
        (
            "/v2/images/{image_id}/file",
            put(upload).layer(DefaultBodyLimit::disable()).get(download),
        ),
        (
            "/v2/images/{image_id}/stage",
            put(stage).layer(DefaultBodyLimit::disable()),
        ),
    ]
}

/// The image data routes over their service.
pub fn router(common: Common, service: ImageDataService) -> Router {
    mount(table(), Group { common, service })
}

fn size_hint(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get("x-openstack-image-size") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("x-openstack-image-size must be a number of bytes")
            }),
    }
}

/// Image data as a request carries it: an `application/octet-stream` body, with the sizes
/// announced in `x-openstack-image-size` and `Content-Length`.
struct DataBody {
    stream: ByteStream,
    size_hint: Option<u64>,
    content_length: Option<u64>,
    /// The body itself, taken back to drain it after a refusal.
    kept: KeptBody,
}

impl DataBody {
    fn of(headers: &HeaderMap, body: Body) -> Result<Self, ApiError> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(OCTET_STREAM);
        if content_type.split(';').next().map(str::trim) != Some(OCTET_STREAM) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Image data must be sent as {OCTET_STREAM}, not '{content_type}'"),
            ));
        }
        let kept = KeptBody::new(body);
        let stream = kept
            .stream()
            .map_err(|e| DomainError::Invalid(format!("The upload was interrupted: {e}")));
        Ok(Self {
            kept,
            stream: Box::pin(stream),
            size_hint: size_hint(headers)?,
            content_length: headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        })
    }
}

/// A refusal of an upload: what is still arriving of the body is read and dropped (within
/// bounds) so the client reads the answer, and the client is told not to send its next
/// request on this connection, whose rest of the body may be unread.
pub(crate) async fn refused(kept: KeptBody, error: DomainError) -> ApiError {
    kept.drain().await;
    ApiError::from(error).with_header(CONNECTION, "close")
}

/// `PUT .../file`: the image's data.
async fn upload(
    State(state): State<Group<ImageDataService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let data = DataBody::of(&headers, body)?;
    let service = &state.service;
    let (stream, hint, length) = (data.stream, data.size_hint, data.content_length);
    let store = super::store_header(&headers)?;
    match service
        .upload(&caller, &id, stream, hint, length, store)
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(refused(data.kept, e).await),
    }
}

/// `PUT .../stage`: the data into the image's staging area, for a `glance-direct` import.
async fn stage(
    State(state): State<Group<ImageDataService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let data = DataBody::of(&headers, body)?;
    let service = &state.service;
    let (stream, hint, length) = (data.stream, data.size_hint, data.content_length);
    match service.stage(&caller, &id, stream, hint, length).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(refused(data.kept, e).await),
    }
}

/// Parses a single `bytes=` range; other units and malformed values are ignored (the whole
/// data is served, as RFC 9110 asks), several ranges are refused as Glance does.
pub(crate) fn parse_range(headers: &HeaderMap) -> Result<Option<RangeRequest>, ApiError> {
    let Some(spec) = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Err(ApiError::bad_request(
            "Only a single byte range may be requested",
        ));
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    Ok(match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => number(last).map(RangeRequest::Last),
        (false, true) => number(first).map(RangeRequest::From),
        (false, false) => number(first)
            .zip(number(last))
            .map(|(a, b)| RangeRequest::Between(a, b)),
        (true, true) => None,
    })
}

async fn download(
    State(state): State<Group<ImageDataService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = parse_range(&headers)?;
    let download = state.service.download(&caller, &id, range).await?;
    if let Some(url) = download.redirect {
        // The client repeats its request (Range included) at the store, which checks the
        // presigned signature; no bytes pass through here.
        let mut response = StatusCode::FOUND.into_response();
        if let Ok(location) = HeaderValue::from_str(&url) {
            response
                .headers_mut()
                .insert(axum::http::header::LOCATION, location);
        }
        return Ok(response);
    }
    let Some(body) = download.body else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let size = download.image.size.unwrap_or(0);
    let (status, length) = match download.range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, size),
    };
    let mut response = (status, Body::from_stream(body)).into_response();
    let out = response.headers_mut();
    out.insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
    out.insert(CONTENT_LENGTH, HeaderValue::from(length));
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(value) = download
        .range
        .and_then(|r| HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.first, r.last)).ok())
    {
        out.insert(CONTENT_RANGE, value);
    }
    // Glance sends the hex MD5 here (not base64), and glanceclient compares it.
    if let Some(value) = download
        .image
        .checksum
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        out.insert("content-md5", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> Result<Option<RangeRequest>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_str(value).expect("header"));
        parse_range(&headers)
    }

    #[test]
    fn single_byte_ranges_parse_in_all_three_forms() {
        assert_eq!(
            range("bytes=0-99").ok().flatten(),
            Some(RangeRequest::Between(0, 99))
        );
        assert_eq!(
            range("bytes=100-").ok().flatten(),
            Some(RangeRequest::From(100))
        );
        assert_eq!(
            range("bytes=-5").ok().flatten(),
            Some(RangeRequest::Last(5))
        );
    }

    #[test]
    fn several_ranges_are_refused_and_nonsense_is_ignored() {
        assert!(range("bytes=0-1,5-6").is_err());
        assert_eq!(range("items=0-1").ok().flatten(), None);
        assert_eq!(range("bytes=a-b").ok().flatten(), None);
        assert_eq!(range("bytes=-").ok().flatten(), None);
    }
}
