//! The `forwarder` function: SQS event source mapping batches, or a scheduled poll of the queue,
//! delivered to the backend over HTTP.

mod backend;
mod config;
mod credentials;
#[cfg(feature = "fault-injection")]
mod fault;
mod handler;
mod oauth;
mod secret;

pub use backend::{BackendSettings, HttpBackend, Signer};
pub use config::{BreakerSettings, Config, FailureAction, SecretSettings};
pub use handler::{Event, Forwarder, Record};
pub use secret::SecretSource;

use credentials::Credentials;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use secret::SecretReader;
use storeforward_control::AwsSwitch;
use storeforward_core::breaker::Breaker;
use storeforward_sqs::SqsSource;
use tracing::{Instrument, info, info_span};

/// The delivery path the functions serve: the HTTP backend, behind the test-only fault hook in
/// local builds.
#[cfg(not(feature = "fault-injection"))]
type Delivery = HttpBackend;
#[cfg(feature = "fault-injection")]
type Delivery = fault::PanicOn<HttpBackend>;

/// A forwarder ready to serve: its secrets read, its HTTP and AWS clients built, and the
/// backend's address for the invocation span.
#[derive(Debug)]
pub struct Ready(Forwarder<Delivery>, Server);

/// The backend as OpenTelemetry's HTTP client spans name it: `server.address`, `server.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    address: String,
    port: Option<u16>,
}

impl Server {
    fn of(url: &reqwest::Url) -> Self {
        Self {
            address: url.host_str().unwrap_or_default().to_owned(),
            port: url.port_or_known_default(),
        }
    }

    /// The span every line of one invocation is written in.
    fn span(&self) -> tracing::Span {
        info_span!(
            "invocation",
            server.address = %self.address,
            server.port = self.port,
        )
    }
}

/// The cold start's work before the first event: reads the secrets that are kept elsewhere and
/// builds the HTTP client once; the SQS client follows on SQS's first call (a failed delivery, a
/// scheduled poll). An error here is an init error (the configuration).
pub async fn init(mut config: Config) -> Result<Ready, Error> {
    let secrets = config.secrets.clone();
    let reader = match secrets.any() {
        true => Some(SecretReader::new(
            &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        )),
        false => None,
    };
    if let Some(reader) = &reader {
        let settings = &mut config.backend;
        if let Some(signer) = reader
            .read_optional(secrets.signing.as_ref(), Signer::from_secret)
            .await?
        {
            settings.signer = Some(signer);
        }
        settings.identity = reader
            .read_optional(secrets.client_certificate.as_ref(), backend::identity)
            .await?;
        settings.extra_roots = reader
            .read_optional(secrets.ca_bundle.as_ref(), backend::roots)
            .await?
            .unwrap_or_default();
    }
    let mut backend = HttpBackend::new(&config.backend)?;
    if let Some(reader) = &reader {
        let credentials = Credentials::load(&secrets, reader, &backend).await?;
        backend = backend.with_credentials(credentials);
    }
    #[cfg(feature = "fault-injection")]
    let backend = fault::PanicOn::from_env(backend);
    let primary = SqsSource::on_first_use(
        config.sqs.clone(),
        &config.queue_url,
        config.dlq_url.clone(),
    )
    .with_probe_queue(config.breaker.probe_queue_url.clone());
    let circuit = match config.breaker.queues() {
        Some((probe_url, parameter)) => Some((
            switch(&config.breaker, probe_url, parameter).await,
            primary.for_queue(probe_url),
        )),
        None => {
            info!("circuit breaker off: no PROBE_QUEUE_URL / STATE_PARAMETER");
            None
        }
    };
    let server = Server::of(&config.backend.url);
    Ok(Ready(
        Forwarder {
            backend,
            primary,
            failover_url: config.failover_queue_url.clone(),
            policy: config.policy(),
            poll: config.poll.clone(),
            breaker: Breaker::new(config.breaker.threshold, config.breaker.probe_interval),
            circuit,
        },
        server,
    ))
}

/// Serves events until the runtime stops.
pub async fn serve(Ready(forwarder, server): Ready) -> Result<(), Error> {
    let (forwarder, server) = (&forwarder, &server);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        forwarder.handle(event).instrument(server.span()).await
    }))
    .await
}

/// The state parameter, and with an event source mapping trigger (Lambda names the function)
/// the mappings it switches. A scheduled forwarder has no mapping: listing finds none.
async fn switch(settings: &BreakerSettings, probe_url: &str, parameter: &str) -> AwsSwitch {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let switch = AwsSwitch::new(aws_sdk_ssm::Client::new(&aws), parameter);
    match &settings.function_name {
        Some(name) => switch.with_mappings(aws_sdk_lambda::Client::new(&aws), name, probe_url),
        None => switch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invocation_span_names_the_backends_host_and_port() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert_eq!(
            Server::of(&url("https://api.example.com/sales/save-order")),
            Server {
                address: "api.example.com".into(),
                port: Some(443)
            }
        );
        assert_eq!(Server::of(&url("http://10.0.0.7:8080/")).port, Some(8080));
    }
}
