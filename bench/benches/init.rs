//! Cold init of each release binary: process start until its first
//! `GET /2018-06-01/runtime/invocation/next` on a Lambda Runtime API stand-in on 127.0.0.1.
//! Build first: `cargo build --release --bins` (`make bench` does).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::release_binary;

const RUNS: usize = 30;

/// One cold start; `None` if the binary did not ask for an event within 10 s.
fn init_time(bin: &PathBuf) -> std::io::Result<Option<Duration>> {
    let api = TcpListener::bind("127.0.0.1:0")?;
    let addr = api.local_addr()?;
    let started = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", addr.to_string().as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            (
                "QUEUE_URL",
                "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders",
            ),
            ("BACKEND_URL", "http://127.0.0.1:9/sales/save-order"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let (conn, _) = api.accept()?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request_line = String::new();
    BufReader::new(&conn).read_line(&mut request_line)?;
    let elapsed = started.elapsed();
    child.kill()?;
    child.wait()?;
    Ok(request_line
        .starts_with("GET /2018-06-01/runtime/invocation/next")
        .then_some(elapsed))
}

fn main() -> std::io::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo bench -- --list` probes every bench binary
    }
    for name in ["store", "forwarder"] {
        let bin = release_binary(name);
        if !bin.exists() {
            eprintln!(
                "{} is missing: run `cargo build --release --bins` first",
                bin.display()
            );
            std::process::exit(2);
        }
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            match init_time(&bin)? {
                Some(t) => times.push(t),
                None => {
                    eprintln!("{name}: did not call /runtime/invocation/next");
                    std::process::exit(1);
                }
            }
        }
        times.sort();
        let pct = |p: usize| times[(times.len() - 1) * p / 100].as_secs_f64() * 1e3;
        println!(
            "init/{name}: runs={RUNS} min={:.2} ms median={:.2} ms p90={:.2} ms max={:.2} ms",
            pct(0),
            pct(50),
            pct(90),
            pct(100)
        );
    }
    Ok(())
}
