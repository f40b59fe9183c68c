//! `stream-copy`: the import benchmark's baseline and its object loader.
//!
//! `stream-copy copy <store> TENANT SRC DST` streams one object to another through the same
//! object store adapter the import reads with, with no hashing, inspection or metadata, and
//! prints MiB/s. `stream-copy put <store> TENANT FILE DST` loads a local file as an object.
//! `stream-copy fetch <store> TENANT URL DST` streams a URL into an object through the
//! web-download fetcher (loopback allowed): the web-download benchmark's baseline.
//! `<store>` is `dir:ROOT` (the embedded object store) or `s3:BUCKET` (key prefix
//! `containers/`, the server's default; endpoint and credentials from the AWS environment).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use cloud_images_domain::ports::{ByteStream, ObjectStore, UploadSink};
use cloud_images_domain::task::ObjectPath;
use futures_util::StreamExt;

async fn store(spec: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if let Some(root) = spec.strip_prefix("dir:") {
        return Ok(Arc::new(cloud_images_embedded::DirObjectStore::open(
            std::path::Path::new(root),
        )?));
    }
    if let Some(bucket) = spec.strip_prefix("s3:") {
        let sdk = cloud_images_aws::load_config().await;
        let client = cloud_images_aws::s3_client(&sdk);
        return Ok(Arc::new(cloud_images_aws::S3ObjectStore::new(
            client,
            bucket,
            "containers/",
        )));
    }
    bail!("a store is dir:ROOT or s3:BUCKET, not '{spec}'")
}

async fn pump(mut body: ByteStream, mut sink: Box<dyn UploadSink>) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        sink.write(chunk).await?;
    }
    sink.commit().await?;
    Ok(bytes)
}

fn file_stream(file: tokio::fs::File) -> ByteStream {
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024).map(|chunk| {
        chunk.map_err(|e| cloud_images_domain::DomainError::unavailable("reading the file", e))
    });
    Box::pin(stream)
}

/// The body at `url` through the fetcher web-download uses, loopback and its port allowed.
async fn fetch(url: &str) -> anyhow::Result<ByteStream> {
    let port = url::Url::parse(url)?
        .port_or_known_default()
        .context("the URL names no port")?;
    let policy = cloud_images_fetch::FetchPolicy {
        allowed_ports: vec![port],
        allow_internal_addresses: true,
        ..Default::default()
    };
    let fetcher = cloud_images_fetch::Fetcher::new(policy, Default::default());
    Ok(fetcher.open(url).await?.body)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, spec, tenant, source, target] = args.as_slice() else {
        bail!("usage: stream-copy copy|put|fetch <dir:ROOT|s3:BUCKET> TENANT SRC DST");
    };
    let store = store(spec).await?;
    let target = ObjectPath::parse(target, "DST")?;
    let started = Instant::now();
    let body = match command.as_str() {
        "copy" => {
            store
                .open(tenant, &ObjectPath::parse(source, "SRC")?)
                .await?
                .1
        }
        "put" => file_stream(
            tokio::fs::File::open(source)
                .await
                .with_context(|| format!("opening {source}"))?,
        ),
        "fetch" => fetch(source).await?,
        other => bail!("unknown command '{other}'; use copy, put or fetch"),
    };
    let bytes = pump(body, store.create(tenant, &target).await?).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mib = bytes as f64 / f64::from(1 << 20);
    println!(
        "{:.0} MiB/s ({mib:.0} MiB in {seconds:.2} s)",
        mib / seconds
    );
    Ok(())
}
