//! The `store` function: `POST /orders/new-order` → validated → SQS → `202 Accepted`.

mod config;
mod event;
mod handler;

pub use config::Config;
pub use event::Answer;
pub use handler::{App, REQUEST_ID, Recorded, handle};

use lambda_http::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use storeforward_core::metrics::{Document, emit};
use storeforward_core::order::Storage;
use storeforward_sqs::SqsQueue;

use crate::event::Event;

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
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            // Boxed, as `lambda_http`'s adapter boxes a handler's future: inline, the runtime's
            // future nests too deep for the compiler to lay out.
            let (answer, metrics) = Box::pin(invoke(app, event)).await;
            emit(metrics.as_slice());
            Ok::<_, std::convert::Infallible>(answer)
        },
    ))
    .await
}

/// One invocation as [`run`] serves it: the event as Lambda hands it over → the request → [`handle`]
/// → the answer in the shape of the event's payload version, and the request's metrics document.
/// Any event gets an answer, whatever its host, headers, path or fields.
pub async fn invoke<S: Storage>(
    app: &App<S>,
    event: LambdaEvent<Box<RawValue>>,
) -> (Answer, Option<Document>) {
    let LambdaEvent { payload, context } = event;
    let function_name = context.env_config.function_name.clone();
    let event = Event::read(payload.get());
    let http = event.is_http();
    let response = handle(app, event.into_request(context)).await;
    let metrics = response.extensions().get::<Recorded>().map(|recorded| {
        let document = recorded.document(&function_name);
        match response.headers().get(REQUEST_ID) {
            Some(id) => document.property("RequestId", id.to_str().unwrap_or_default()),
            None => document,
        }
    });
    (Answer::new(response, http), metrics)
}
