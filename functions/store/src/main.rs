use lambda_http::Error;
use storeforward_core::config::Env;
use storeforward_core::startup::init_or_exit;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    storeforward_core::logging::init();
    let config = init_or_exit(async { store::Config::from_env(&Env::process()) }).await;
    store::run(config).await
}
