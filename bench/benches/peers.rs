//! The forwarder against what most teams would write instead: a Python Lambda with Powertools'
//! batch utility, sequential (`BatchProcessor` and requests) and concurrent
//! (`AsyncBatchProcessor` and aiohttp, capped at the same `MAX_IN_FLIGHT`), driven by AWS's
//! Python Runtime Interface Client (awslambdaric). The same batches of 1 KiB records go to the
//! same backend on 127.0.0.1 answering in 100 ms, through the same Runtime API stand-in,
//! interleaved round-robin in one run. Per contestant and batch size: cold init (spawn to first
//! `/next`), the first and the warm invoke times, CPU time per invoke (each process's `cpuacct`
//! cgroup, in nanoseconds, where that controller is writable; else `/proc` in 10 ms ticks), peak
//! RSS (`VmHWM`); every delivery is checked. Where a cgroup v1 `cpu` controller is writable (root),
//! again at Lambda's CPU share for 128 MB and 1,769 MB. Build first: `cargo build --release
//! --bins` and `make peers-venv` (`make bench` does both). Writes `target/bench/peers.json` and
//! the plot `docs/bench/peers.svg`. `PEERS_MAX_IN_FLIGHT` sets the cap for ours and the async
//! peer: 100 by default, as the issue's ≥ 50× over the sequential peer needs at least 50 (at the
//! forwarder's default of 10 all but the sequential peer wait on the backend, N / 10 × 100 ms).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use common::runtime_api::{RuntimeApi, forwarder_command, lambda_env, peak_rss_kib};
use common::{cpu_by_pid, ms, percentile, sqs_event};

const BACKEND_LATENCY: Duration = Duration::from_millis(100);
const BODY_BYTES: usize = 1024;
const SIZES: [usize; 3] = [10, 100, 1_000];
const INVOKE_TIMEOUT: Duration = Duration::from_secs(900);
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
const CGROUP_CPU: &str = "/sys/fs/cgroup/cpu";
const CGROUP_CPUACCT: &str = "/sys/fs/cgroup/cpuacct";
const CFS_PERIOD_US: u64 = 100_000;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Contestant {
    Rust,
    Sync,
    Async,
}

impl Contestant {
    const ALL: [Contestant; 3] = [Contestant::Rust, Contestant::Sync, Contestant::Async];

    fn name(self) -> &'static str {
        match self {
            Contestant::Rust => "rust",
            Contestant::Sync => "powertools-sync",
            Contestant::Async => "powertools-async",
        }
    }

    /// The process, not yet spawned, against `api`.
    fn command(self, api: &str, backend: &str, max_in_flight: usize) -> Command {
        let module = match self {
            Contestant::Rust => return forwarder_command(api, backend, max_in_flight),
            Contestant::Sync => "powertools_sync",
            Contestant::Async => "powertools_async",
        };
        let task_root = repo_root().join("bench/peers");
        let venv = peers_venv();
        let handler = format!("{module}.handler");
        let mut command = Command::new(venv.join("bin/python"));
        command
            .args(["-m", "awslambdaric", &handler])
            .current_dir(&task_root)
            .env_clear()
            .envs(lambda_env(api))
            .envs([
                ("_HANDLER", handler.as_str()),
                ("LAMBDA_TASK_ROOT", task_root.to_str().unwrap()),
                ("PYTHONPATH", task_root.to_str().unwrap()),
                ("AWS_EXECUTION_ENV", "AWS_Lambda_python3.11"),
                ("PATH", "/usr/local/bin:/usr/bin:/bin"),
                ("BACKEND_URL", backend),
                ("REQUEST_TIMEOUT_MS", "60000"),
                ("MAX_IN_FLIGHT", &max_in_flight.to_string()),
            ]);
        command
    }
}

/// The CPU a contestant gets: the host's, or Lambda's share for a memory size.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Cpu {
    Host,
    Mb128,
    Mb1769,
}

impl Cpu {
    fn name(self) -> &'static str {
        match self {
            Cpu::Host => "host",
            Cpu::Mb128 => "128MB",
            Cpu::Mb1769 => "1769MB",
        }
    }

    /// `cpu.cfs_quota_us` for a 100 ms period: Lambda gives one vCPU at 1,769 MB and CPU in
    /// proportion to memory (docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
    fn quota_us(self) -> Option<u64> {
        match self {
            Cpu::Host => None,
            Cpu::Mb128 => Some(CFS_PERIOD_US * 128 / 1769),
            Cpu::Mb1769 => Some(CFS_PERIOD_US),
        }
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quota_us() {
            None => write!(f, "host CPU (2 cores, no quota)"),
            Some(q) => write!(
                f,
                "{} CPU share: cfs_quota_us {q} per {CFS_PERIOD_US}",
                self.name()
            ),
        }
    }
}

/// How many invokes each contestant gets at one CPU setting and batch size; 0 = not run. The
/// sequential peer takes N × 100 ms per invoke, so it runs fewer times where that is long, and at
/// the CPU shares only where a figure needs it (the cost table reads N = 10 at 128 MB).
fn plan(cpu: Cpu, n: usize, contestant: Contestant) -> usize {
    use Contestant::{Async, Rust, Sync};
    match (cpu, n, contestant) {
        (_, 10, Rust | Async) => 20,
        (Cpu::Host, 10, Sync) => 10,
        (_, 10, Sync) => 5,
        (_, 100, Rust | Async) => 8,
        (Cpu::Host, 100, Sync) => 5,
        (Cpu::Mb1769, 100, Sync) => 3,
        (_, _, Rust | Async) => 5,
        (Cpu::Host, _, Sync) => 2,
        _ => 0,
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_venv() -> PathBuf {
    repo_root().join(".venv/peers")
}

/// The backend: answers every POST after `BACKEND_LATENCY` and keeps what it got.
#[derive(Clone, Default)]
struct Backend {
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
}

async fn receive(State(backend): State<Backend>, headers: HeaderMap, body: Bytes) -> &'static str {
    tokio::time::sleep(BACKEND_LATENCY).await;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    backend.received.lock().unwrap().push((content_type, body));
    "ok"
}

fn body(i: usize) -> String {
    let head = format!(r#"{{"id":"order-{i:06}","pad":""#);
    let pad = "x".repeat(BODY_BYTES - head.len() - 2);
    format!(r#"{head}{pad}"}}"#)
}

/// One batch and what the backend must receive from it, sorted.
struct Batch {
    event: String,
    bodies: Vec<Bytes>,
}

impl Batch {
    fn new(n: usize) -> Self {
        let mut bodies: Vec<Bytes> = (0..n).map(|i| Bytes::from(body(i))).collect();
        bodies.sort();
        Self {
            event: sqs_event(n, body).to_string(),
            bodies,
        }
    }
}

/// A contestant's process, in its own cgroups; killed and its cgroups removed on drop, also when
/// the bench fails.
struct Process {
    child: Child,
    cgroups: Cgroups,
}

/// The cgroups of one contestant's process.
struct Cgroups {
    /// With the CPU quota: entered before the program starts, so that its init runs under it.
    quota: Option<PathBuf>,
    /// Counts the CPU time of all the process's threads, also those that ended, in nanoseconds
    /// (`cpuacct.usage`). Entered once the process runs: moving a process between cgroups can
    /// take tens of milliseconds, which would otherwise count as its init.
    cpuacct: Option<PathBuf>,
}

impl Process {
    fn spawn(mut command: Command, cgroups: Cgroups) -> std::io::Result<Self> {
        command.stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = match &cgroups.quota {
            None => command.spawn()?,
            Some(dir) => {
                let mut sh = Command::new("/bin/sh");
                sh.args([
                    "-c",
                    r#"echo $$ > "$0/cgroup.procs" && exec "$@""#,
                    dir.to_str().unwrap(),
                ])
                .arg(command.get_program())
                .args(command.get_args())
                .env_clear()
                .envs(
                    command
                        .get_envs()
                        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
                if let Some(dir) = command.get_current_dir() {
                    sh.current_dir(dir);
                }
                sh.spawn()?
            }
        };
        let process = Self { child, cgroups };
        if let Some(dir) = &process.cgroups.cpuacct
            && process.cgroups.quota.as_ref() != Some(dir)
        {
            std::fs::write(dir.join("cgroup.procs"), process.pid().to_string())?;
        }
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far, since it entered its `cpuacct` cgroup where it has one
    /// (nanoseconds), else from `/proc/<pid>/stat` (10 ms ticks).
    fn cpu_seconds(&self) -> f64 {
        match &self.cgroups.cpuacct {
            Some(dir) => {
                let usage = std::fs::read_to_string(dir.join("cpuacct.usage")).unwrap();
                usage.trim().parse::<u64>().unwrap() as f64 / 1e9
            }
            None => cpu_by_pid().get(&self.pid()).map_or(0.0, |p| p.seconds),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Cgroups { quota, cpuacct } = &self.cgroups;
        for dir in quota
            .iter()
            .chain(cpuacct.iter().filter(|d| Some(*d) != quota.as_ref()))
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A new cgroup named `name` under the v1 hierarchy at `root`.
fn new_cgroup(root: &str, name: &str) -> std::io::Result<PathBuf> {
    let dir = Path::new(root).join(format!("sf-peers-{}-{name}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// A cgroup for one process with `quota_us` per period.
fn cgroup(name: &str, quota_us: u64) -> std::io::Result<PathBuf> {
    let dir = new_cgroup(CGROUP_CPU, name)?;
    let set = || -> std::io::Result<()> {
        std::fs::write(dir.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
        std::fs::write(dir.join("cpu.cfs_quota_us"), quota_us.to_string())
    };
    set().inspect_err(|_| {
        let _ = std::fs::remove_dir(&dir);
    })?;
    Ok(dir)
}

/// How CPU time is counted in this run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CpuClock {
    /// A `cpuacct` cgroup per process, apart from the `cpu` hierarchy.
    Cpuacct,
    /// `cpuacct` mounted together with `cpu`: the quota cgroup counts too (one is made without a
    /// quota on the host).
    CpuacctWithCpu,
    /// `/proc/<pid>/stat`, in 10 ms ticks.
    Ticks,
}

impl CpuClock {
    fn probe() -> Self {
        let canonical = |p: &str| std::fs::canonicalize(p).ok();
        if canonical(CGROUP_CPUACCT).is_none() {
            return CpuClock::Ticks;
        }
        let clock = if canonical(CGROUP_CPUACCT) == canonical(CGROUP_CPU) {
            CpuClock::CpuacctWithCpu
        } else {
            CpuClock::Cpuacct
        };
        match new_cgroup(CGROUP_CPUACCT, "probe").and_then(std::fs::remove_dir) {
            Ok(()) => clock,
            Err(_) => CpuClock::Ticks,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CpuClock::Ticks => {
                "CPU from /proc/<pid>/stat in 10 ms ticks (no writable cpuacct cgroup)"
            }
            _ => "CPU from each process's cpuacct cgroup (cpuacct.usage, ns)",
        }
    }

    /// The cgroups of a contestant's process at `cpu`.
    fn cgroups(self, cpu: Cpu, name: &str) -> std::io::Result<Cgroups> {
        let quota = cpu.quota_us().map(|q| cgroup(name, q)).transpose()?;
        let cpuacct = match (self, &quota) {
            (CpuClock::Ticks, _) => None,
            (CpuClock::CpuacctWithCpu, Some(dir)) => Some(dir.clone()),
            (CpuClock::CpuacctWithCpu | CpuClock::Cpuacct, _) => {
                Some(new_cgroup(CGROUP_CPUACCT, name)?)
            }
        };
        Ok(Cgroups { quota, cpuacct })
    }
}

/// Whether cgroups with a CPU quota can be made here; `Err` says why not.
fn cgroups_usable() -> Result<(), String> {
    let probe = cgroup("probe", CFS_PERIOD_US).map_err(|e| format!("{CGROUP_CPU}: {e}"))?;
    std::fs::remove_dir(&probe).map_err(|e| format!("{}: {e}", probe.display()))
}

/// One contestant's figures at one CPU setting and batch size.
#[derive(Debug)]
struct Figures {
    contestant: Contestant,
    cpu: Cpu,
    n: usize,
    init: Duration,
    invokes: Vec<Duration>,
    cpu_per_invoke: Duration,
    peak_rss_kib: u64,
}

impl Figures {
    fn first(&self) -> Duration {
        self.invokes[0]
    }

    /// Nearest-rank median of the warm invokes (all but the first).
    fn warm_p50(&self) -> Duration {
        let mut warm = self.invokes[1..].to_vec();
        warm.sort();
        percentile(&warm, 0.5)
    }
}

/// A spawned contestant waiting for events.
struct Running {
    contestant: Contestant,
    api: RuntimeApi,
    process: Process,
    init: Duration,
    cpu_at_start: f64,
    invokes: Vec<Duration>,
}

/// Checks what the backend received for one invoke of `batch` and the batch response: exactly
/// the records' bodies, each once, byte for byte, as `application/json`, and no item failure.
fn check(who: &str, n: usize, batch: &Batch, backend: &Backend, response: &str, error: bool) {
    assert!(!error, "{who} at N={n}: the invocation failed: {response}");
    let response: Value = serde_json::from_str(response)
        .unwrap_or_else(|e| panic!("{who} at N={n}: the response is not JSON ({e}): {response}"));
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "{who} at N={n}: batchItemFailures must be empty"
    );
    let received = std::mem::take(&mut *backend.received.lock().unwrap());
    assert_eq!(
        received.len(),
        n,
        "{who} at N={n}: the backend got {} deliveries",
        received.len()
    );
    assert!(
        received.iter().all(|(t, _)| t == "application/json"),
        "{who} at N={n}: every delivery is application/json"
    );
    let mut bodies: Vec<Bytes> = received.into_iter().map(|(_, b)| b).collect();
    bodies.sort();
    assert!(
        bodies == batch.bodies,
        "{who} at N={n}: the bodies delivered differ from the records' bodies"
    );
}

/// Every contestant the plan runs at `cpu` and `n`: spawned one after the other (cold init
/// alone), then invoked round-robin, one invoke at a time.
async fn compare(
    cpu: Cpu,
    n: usize,
    backend_url: &str,
    backend: &Backend,
    max_in_flight: usize,
    clock: CpuClock,
) -> Vec<Figures> {
    let batch = Batch::new(n);
    let mut running = Vec::new();
    for contestant in Contestant::ALL {
        if plan(cpu, n, contestant) == 0 {
            continue;
        }
        let api = RuntimeApi::start().await;
        let cgroups = clock
            .cgroups(cpu, &format!("{}-{}-{n}", cpu.name(), contestant.name()))
            .unwrap_or_else(|e| panic!("cgroups for {}: {e}", contestant.name()));
        let command = contestant.command(&api.address(), backend_url, max_in_flight);
        let spawned = Instant::now();
        let process = Process::spawn(command, cgroups)
            .unwrap_or_else(|e| panic!("spawning {}: {e}", contestant.name()));
        let first_next = tokio::time::timeout(INIT_TIMEOUT, api.first_next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} asked for no event in {INIT_TIMEOUT:?}",
                    contestant.name()
                )
            })
            .unwrap_or_else(|e| panic!("{} failed to start: {e}", contestant.name()));
        running.push(Running {
            contestant,
            cpu_at_start: process.cpu_seconds(),
            api,
            process,
            init: first_next - spawned,
            invokes: Vec::new(),
        });
    }
    let rounds = running
        .iter()
        .map(|r| plan(cpu, n, r.contestant))
        .max()
        .unwrap_or(0);
    for round in 0..rounds {
        for r in &mut running {
            if round >= plan(cpu, n, r.contestant) {
                continue;
            }
            let invocation =
                tokio::time::timeout(INVOKE_TIMEOUT, r.api.invoke(batch.event.clone()))
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "{} did not answer in {INVOKE_TIMEOUT:?}",
                            r.contestant.name()
                        )
                    });
            check(
                r.contestant.name(),
                n,
                &batch,
                backend,
                &invocation.body,
                invocation.error,
            );
            r.invokes.push(invocation.took);
        }
    }
    running
        .into_iter()
        .map(|r| {
            let spent = r.process.cpu_seconds() - r.cpu_at_start;
            Figures {
                contestant: r.contestant,
                cpu,
                n,
                init: r.init,
                cpu_per_invoke: Duration::from_secs_f64(spent.max(0.0) / r.invokes.len() as f64),
                peak_rss_kib: peak_rss_kib(r.process.pid()),
                invokes: r.invokes,
            }
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes every bench binary
    }
    let max_in_flight: usize = std::env::var("PEERS_MAX_IN_FLIGHT").map_or(100, |v| {
        v.parse().expect("PEERS_MAX_IN_FLIGHT: a whole number")
    });
    assert!(
        common::release_binary("forwarder").exists(),
        "no release forwarder: run `cargo build --release --bin forwarder --locked` first"
    );
    assert!(
        peers_venv().join("bin/python").exists(),
        "no Python peers' venv at .venv/peers: run `make peers-venv` first"
    );
    let mut settings = vec![Cpu::Host];
    let mut skipped = Vec::new();
    match cgroups_usable() {
        Ok(()) => settings.extend([Cpu::Mb128, Cpu::Mb1769]),
        Err(why) => {
            for cpu in [Cpu::Mb128, Cpu::Mb1769] {
                skipped.push(format!(
                    "{}: no writable cgroup v1 cpu controller ({why})",
                    cpu.name()
                ));
            }
        }
    }
    for cpu in &settings {
        for n in SIZES {
            for c in Contestant::ALL {
                if plan(*cpu, n, c) == 0 {
                    skipped.push(format!(
                        "{} at {} N={n}: not run (bounded run time; no target needs it)",
                        c.name(),
                        cpu.name()
                    ));
                }
            }
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = Backend::default();
    let backend_url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/sales/save-order", post(receive))
            .with_state(backend.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/sales/save-order")
    });
    let clock = CpuClock::probe();
    println!(
        "the forwarder against Python + Powertools peers (awslambdaric): batches of {BODY_BYTES}-byte records, backend {BACKEND_LATENCY:?}, MAX_IN_FLIGHT {max_in_flight} (ours and the async peer); {}",
        clock.describe()
    );
    let mut all = Vec::new();
    for cpu in settings {
        println!("\n{cpu}");
        println!(
            "{:<17} {:>5} {:>10} {:>11} {:>16} {:>15} {:>10}",
            "contestant",
            "N",
            "init",
            "1st invoke",
            "warm p50 (runs)",
            "CPU per invoke",
            "peak RSS"
        );
        for n in SIZES {
            let figures = rt.block_on(compare(
                cpu,
                n,
                &backend_url,
                &backend,
                max_in_flight,
                clock,
            ));
            for f in &figures {
                println!(
                    "{:<17} {:>5} {:>8.1}ms {:>9.1}ms {:>9.1}ms ({:>2}) {:>13.2}ms {:>7.1}MiB",
                    f.contestant.name(),
                    n,
                    ms(f.init),
                    ms(f.first()),
                    ms(f.warm_p50()),
                    f.invokes.len() - 1,
                    ms(f.cpu_per_invoke),
                    f.peak_rss_kib as f64 / 1024.0
                );
            }
            all.extend(figures);
        }
    }
    for s in &skipped {
        println!("skipped: {s}");
    }
    targets(&all);
    write_json(&all, &skipped, max_in_flight, clock);
    plot(&all);
}

/// The issue's targets, as ratios Python ÷ ours measured in this run.
fn targets(all: &[Figures]) {
    let find = |c: Contestant, cpu: Cpu, n: usize| {
        all.iter()
            .find(|f| f.contestant == c && f.cpu == cpu && f.n == n)
    };
    type Measure = fn(&Figures) -> f64;
    let rows: [(&str, Contestant, Cpu, Measure, f64); 6] = [
        (
            "invoke (warm p50)",
            Contestant::Sync,
            Cpu::Host,
            |f| ms(f.warm_p50()),
            50.0,
        ),
        (
            "invoke (warm p50)",
            Contestant::Async,
            Cpu::Host,
            |f| ms(f.warm_p50()),
            1.0,
        ),
        (
            "invoke at 128 MB (warm p50)",
            Contestant::Async,
            Cpu::Mb128,
            |f| ms(f.warm_p50()),
            3.0,
        ),
        (
            "CPU per invoke",
            Contestant::Async,
            Cpu::Host,
            |f| ms(f.cpu_per_invoke),
            5.0,
        ),
        ("init", Contestant::Async, Cpu::Host, |f| ms(f.init), 10.0),
        (
            "peak RSS",
            Contestant::Async,
            Cpu::Host,
            |f| f.peak_rss_kib as f64,
            3.0,
        ),
    ];
    println!("\nTARGETS (ratio Python ÷ ours; met when ≥ the target)");
    println!(
        "{:<28} {:<17} {:>7} {:>16} {:>16}",
        "measure", "against", "target", "N=100", "N=1000"
    );
    for (measure, against, cpu, value, target) in rows {
        let cell = |n: usize| match (find(against, cpu, n), find(Contestant::Rust, cpu, n)) {
            (Some(peer), Some(ours)) if value(ours) > 0.0 => {
                let ratio = value(peer) / value(ours);
                // Three decimals below 10×, so that 0.997× does not print as 1.00×.
                let digits = if ratio < 10.0 { 3 } else { 1 };
                let verdict = if ratio >= target { "met" } else { "NOT met" };
                format!("{ratio:.digits$}× {verdict}")
            }
            (Some(_), Some(_)) => "ours 0 (below resolution)".to_owned(),
            _ => "not run".to_owned(),
        };
        println!(
            "{measure:<28} {:<17} {:>6}× {:>16} {:>16}",
            against.name(),
            target,
            cell(100),
            cell(1_000)
        );
    }
}

fn write_json(all: &[Figures], skipped: &[String], max_in_flight: usize, clock: CpuClock) {
    let results: Vec<Value> = all
        .iter()
        .map(|f| {
            json!({
                "contestant": f.contestant.name(),
                "cpu": f.cpu.name(),
                "n": f.n,
                "init_ms": ms(f.init),
                "invoke_ms_p50": ms(f.warm_p50()),
                "invoke_ms_first": ms(f.first()),
                "invoke_ms_all": f.invokes.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
                "cpu_ms_per_invoke": ms(f.cpu_per_invoke),
                "peak_rss_kib": f.peak_rss_kib,
                "runs": f.invokes.len(),
            })
        })
        .collect();
    let out = repo_root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let doc = json!({
        "backend_ms": BACKEND_LATENCY.as_millis() as u64,
        "body_bytes": BODY_BYTES,
        "max_in_flight": max_in_flight,
        "cpu_clock": clock.describe(),
        "results": results,
        "skipped": skipped,
    });
    std::fs::write(
        out.join("peers.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
}

/// Warm invoke time against batch size, log-log, one line per contestant; host CPU on the left,
/// the 128 MB share on the right.
fn plot(all: &[Figures]) {
    use plotters::prelude::*;
    let path = repo_root().join("docs/bench/peers.svg");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let root = SVGBackend::new(&path, (960, 440)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let root = root
        .titled(
            "Warm invoke time, batches of 1 KiB records, backend answering in 100 ms",
            ("sans-serif", 18),
        )
        .unwrap();
    let colours = BTreeMap::from([
        (Contestant::Rust, RGBColor(0xd9, 0x5f, 0x02)),
        (Contestant::Sync, RGBColor(0x75, 0x70, 0xb3)),
        (Contestant::Async, RGBColor(0x1b, 0x9e, 0x77)),
    ]);
    let max_ms = all.iter().map(|f| ms(f.warm_p50())).fold(1.0, f64::max) * 2.0;
    for (area, cpu) in root
        .split_evenly((1, 2))
        .iter()
        .zip([Cpu::Host, Cpu::Mb128])
    {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{} CPU", cpu.name()), ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((5f64..2000f64).log_scale(), (10f64..max_ms).log_scale())
            .unwrap();
        chart
            .configure_mesh()
            .x_desc("records per batch (N)")
            .y_desc("warm invoke p50, ms")
            .draw()
            .unwrap();
        for (contestant, colour) in &colours {
            let points: Vec<(f64, f64)> = all
                .iter()
                .filter(|f| f.contestant == *contestant && f.cpu == cpu)
                .map(|f| (f.n as f64, ms(f.warm_p50())))
                .collect();
            if points.is_empty() {
                continue;
            }
            common::line_with_points(&mut chart, points, *colour, contestant.name());
        }
        common::legend(&mut chart);
    }
    root.present().unwrap();
}
