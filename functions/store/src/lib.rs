//! The `store` function: `POST /orders/new-order` → validated → SQS → `202 Accepted`.

mod config;
mod handler;

pub use config::Config;
pub use handler::{App, REQUEST_ID, Recorded, handle};

use lambda_http::{Error, Request, RequestExt, service_fn};
use storeforward_core::metrics::emit;
use storeforward_sqs::SqsQueue;

/// Builds the SQS client once and serves requests until the runtime stops.
pub async fn run(config: Config) -> Result<(), Error> {
    let client = config.sqs.client().await;
    let app = App {
        primary: SqsQueue::new(client.clone(), &config.queue_url),
        failover: config
            .failover_queue_url
            .as_ref()
            .map(|url| SqsQueue::new(client.clone(), url)),
        rules: config.rules,
        order_path: config.order_path,
        retry_after_secs: config.retry_after_secs,
    };
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        let function_name = req
            .lambda_context_ref()
            .map(|c| c.env_config.function_name.clone())
            .unwrap_or_default();
        let response = handle(app, req).await;
        if let Some(recorded) = response.extensions().get::<Recorded>() {
            let mut document = recorded.document(&function_name);
            if let Some(id) = response.headers().get(REQUEST_ID) {
                document = document.property("RequestId", id.to_str().unwrap_or_default());
            }
            emit(&[document]);
        }
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
