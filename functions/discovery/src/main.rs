//! The `discovery` function: the `discovery` route group under lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cloud_images_lambda::serve_http(vec![cloud_images_http::routes::discovery::table()]).await
}
