//! The `image-data` function: the `image-data` route group under lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cloud_images_lambda::serve_http(cloud_images_lambda::Wiring::image_data_routes).await
}
