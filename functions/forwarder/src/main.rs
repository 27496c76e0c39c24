use lambda_runtime::Error;
use storeforward_core::config::Env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = forwarder::Config::from_env(&Env::process())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let ready = forwarder::init(config).await?;
    forwarder::serve(ready).await
}
