use lambda_runtime::Error;
use storeforward_core::config::Env;
use storeforward_core::startup::init_or_exit;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    storeforward_core::logging::init();
    let ready = init_or_exit(async {
        forwarder::init(forwarder::Config::from_env(&Env::process())?).await
    })
    .await;
    forwarder::serve(ready).await
}
