//! Static Large Objects: segments joined into one object by a manifest, and deleted with it.

use chrono::Utc;
use cloud_images_domain::containers::{ObjectRecord, check_segment, parse_manifest};
use cloud_images_domain::identity::Caller;
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};
use md5::{Digest, Md5};
use serde_json::json;

use super::{ContainerService, DEFAULT_CONTENT_TYPE, listing_time, md5_hex, own_account};

impl ContainerService {
    /// Stores a Static Large Object from its manifest: its segments joined, in order.
    pub async fn upload_manifest(
        &self,
        caller: &Caller,
        account: &str,
        path: &ObjectPath,
        content_type: Option<String>,
        manifest: &[u8],
    ) -> DomainResult<ObjectRecord> {
        own_account(caller, account)?;
        caller.require_writer()?;
        let tenant = caller.tenant_id.as_str();
        self.built_in(tenant, &path.container).await?;
        let segments = parse_manifest(manifest)?;
        let mut records = Vec::with_capacity(segments.len());
        for (index, segment) in segments.iter().enumerate() {
            let record = self
                .records
                .object(tenant, &segment.path)
                .await?
                .ok_or_else(|| {
                    DomainError::Invalid(format!(
                        "Segment {index} ({}) does not exist",
                        segment.path
                    ))
                })?;
            check_segment(index, segment, &record)?;
            records.push(record);
        }
        let size = records.iter().map(|r| r.size).sum();
        self.check_room(tenant, path, Some(size)).await?;
        let parts: Vec<(ObjectPath, u64)> = segments
            .iter()
            .zip(&records)
            .map(|(s, r)| (s.path.clone(), r.size))
            .collect();
        let stored_manifest: Vec<_> = segments
            .iter()
            .zip(&records)
            .map(|(s, r)| {
                json!({
                    "name": format!("/{}", s.path),
                    "hash": r.etag,
                    "bytes": r.size,
                    "content_type": r.content_type,
                    "last_modified": listing_time(r),
                })
            })
            .collect();
        let etags: Vec<&str> = records.iter().map(|r| r.etag.as_str()).collect();
        let record = ObjectRecord {
            name: path.object.clone(),
            size,
            etag: large_object_etag(&etags),
            content_type: content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            last_modified: Utc::now(),
            manifest: Some(serde_json::Value::Array(stored_manifest).to_string()),
        };
        self.objects.join(tenant, path, &parts).await?;
        match self
            .records
            .put_object(tenant, &path.container, &record, self.settings.max_bytes)
            .await
        {
            Ok(_) => Ok(record),
            Err(e) => {
                // The joined bytes replaced any older object's; without a record they go.
                if let Err(e) = self.objects.delete(tenant, path).await {
                    tracing::warn!(%path, error = %e, "joined bytes of a refused manifest could not be removed");
                }
                Err(e)
            }
        }
    }

    /// Deletes an object; with `segments`, a Static Large Object's segments too. The
    /// objects deleted.
    pub async fn delete(
        &self,
        caller: &Caller,
        account: &str,
        path: &ObjectPath,
        segments: bool,
    ) -> DomainResult<u64> {
        own_account(caller, account)?;
        caller.require_writer()?;
        let tenant = caller.tenant_id.as_str();
        let Some(removed) = self.records.delete_object(tenant, path).await? else {
            return Err(self.no_object(tenant, path).await);
        };
        self.objects.delete(tenant, path).await?;
        let mut deleted = 1;
        if segments && let Some(manifest) = &removed.manifest {
            for segment in manifest_paths(manifest) {
                if self
                    .records
                    .delete_object(tenant, &segment)
                    .await?
                    .is_some()
                {
                    self.objects.delete(tenant, &segment).await?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

/// A Static Large Object's ETag as Swift computes it: the MD5 of its segments' ETags.
fn large_object_etag(etags: &[&str]) -> String {
    let mut hash = Md5::new();
    for etag in etags {
        hash.update(etag.as_bytes());
    }
    md5_hex(hash.finalize())
}

/// The segment paths of a stored manifest.
fn manifest_paths(manifest: &str) -> Vec<ObjectPath> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(manifest).unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| e.get("name")?.as_str().map(str::to_owned))
        .filter_map(|name| ObjectPath::parse(name.trim_start_matches('/'), "segment").ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_objects_etag_is_the_md5_of_its_segments_etags() {
        // Two empty segments: the MD5 of their two ETags written one after the other.
        let etag = large_object_etag(&["d41d8cd98f00b204e9800998ecf8427e"; 2]);
        assert_eq!(etag, "020eb29b524d7ba672d9d48bc72db455");
    }

    #[test]
    fn stored_manifests_name_their_segments() {
        let manifest = r#"[{"name": "/c_segments/a/1", "hash": "x"}, {"name": "/c_segments/a/2"}]"#;
        let paths: Vec<String> = manifest_paths(manifest)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(paths, ["c_segments/a/1", "c_segments/a/2"]);
    }
}
