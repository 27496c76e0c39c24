//! A property-based run of Schemathesis against the store API through API Gateway, driven by the
//! same `infra/openapi.yaml` a user would import, with every check it has (no 5xx, conformance of
//! statuses, headers and bodies, invalid input refused, valid input accepted, 405 for other
//! methods).

use std::time::Duration;

use crate::support::{Outcome, StackKind, World, root, run};

/// Generated requests per phase; about 20 s against LocalStack.
const EXAMPLES: &str = "300";
const TIMEOUT: Duration = Duration::from_secs(300);

pub async fn the_api_conforms_to_its_openapi_document(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    run("make", &["--no-print-directory", "-s", "schemathesis"])?;
    // It keeps a cache of crashes in its working directory.
    let workdir = root().join(".local/schemathesis");
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    let mut command =
        tokio::process::Command::new(root().join(".venv/schemathesis/bin/schemathesis"));
    command
        .current_dir(&workdir)
        .arg("--config-file")
        .arg(root().join("tests/schemathesis/schemathesis.toml"))
        .args(["--no-color", "run"])
        .arg(root().join("infra/openapi.yaml"))
        .args(["--url", stack.output("api_url")])
        .args(
            stack
                .api_key()
                .map(|k| vec!["--header".to_owned(), format!("x-api-key: {k}")])
                .unwrap_or_default(),
        )
        .args(["--max-examples", EXAMPLES, "--workers", "4"])
        .args(["--generation-database", "none"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(TIMEOUT, command.output())
        .await
        .map_err(|_| format!("schemathesis did not finish in {TIMEOUT:?}"))?
        .map_err(|e| format!("schemathesis: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The summary: phases, failures, how many test cases, the seed that reproduces the run.
    let summary = stdout.rfind("SUMMARY").map_or(&*stdout, |i| &stdout[i..]);
    if out.status.success() {
        eprintln!("schemathesis {summary}");
        Ok(())
    } else {
        Err(format!(
            "schemathesis failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
