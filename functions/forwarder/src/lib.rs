//! The `forwarder` function: SQS event source mapping batches, or a scheduled poll of the queue,
//! delivered to the backend over HTTP.

mod backend;
mod config;
#[cfg(feature = "fault-injection")]
mod fault;
mod handler;
mod secret;

pub use backend::{BackendSettings, HttpBackend, Signer};
pub use config::{Config, PollSettings};
pub use handler::Forwarder;
pub use secret::SecretSource;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use storeforward_sqs::SqsSource;

/// Reads the signing secret if it is kept elsewhere, builds the HTTP and SQS clients once, and
/// serves events until the runtime stops.
pub async fn run(mut config: Config) -> Result<(), Error> {
    if let Some(source) = &config.signing_secret_source {
        config.backend.signer = Some(source.signer().await?);
    }
    let client = config.sqs.client().await;
    let backend = HttpBackend::new(&config.backend)?;
    #[cfg(feature = "fault-injection")]
    let backend = fault::PanicOn::from_env(backend);
    let forwarder = Forwarder {
        backend,
        primary: SqsSource::new(client, &config.queue_url, config.dlq_url.clone()),
        failover_url: config.failover_queue_url.clone(),
        policy: config.policy(),
        poll: config.poll.clone(),
    };
    let forwarder = &forwarder;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        forwarder.handle(event).await
    }))
    .await
}
