use lambda_runtime::Error;
use storeforward_core::config::Env;
use storeforward_core::startup::init_or_exit;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let ready = init_or_exit(async {
        forwarder::init(forwarder::Config::from_env(&Env::process())?).await
    })
    .await;
    forwarder::serve(ready).await
}
