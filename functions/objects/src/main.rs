//! The `objects` function: the object API (containers and objects) under lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cloud_images_lambda::serve_http(cloud_images_lambda::Wiring::objects_routes).await
}
