//! The `console` function: the console's pages and session under lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cloud_images_lambda::serve_http(cloud_images_lambda::Wiring::console_routes).await
}
