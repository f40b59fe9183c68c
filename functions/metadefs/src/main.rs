//! The `metadefs` function: the metadata definitions catalogue under lambda_http. Its first
//! cold start on a new table loads the stock catalogue.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cloud_images_lambda::serve_http(cloud_images_lambda::Wiring::metadefs_routes).await
}
