//! A switchable proxy in front of LocalStack's SQS. The outage stack's store reaches SQS only
//! through it, so a suite can take SQS away (every call is reset), take one queue away (calls
//! naming it are reset), and give it back — while API Gateway and Lambda keep running.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::LOCALSTACK;
use super::receiver::{read_request, reset};

/// The port `tests/stacks/outage.tfvars` points the store's `AWS_ENDPOINT_URL` at.
pub const PORT: u16 = 9912;

/// What the proxy lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// SQS is unreachable: every connection is reset.
    RefuseAll,
    /// Calls whose body names this queue are reset; others pass.
    RefuseQueue(String),
}

#[derive(Clone)]
pub struct SqsProxy {
    mode: Arc<Mutex<Mode>>,
    client: reqwest::Client,
}

impl SqsProxy {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], PORT))).await?;
        let proxy = Self {
            mode: Arc::new(Mutex::new(Mode::Pass)),
            client: reqwest::Client::new(),
        };
        let accepting = proxy.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(accepting.clone().connection(socket));
            }
        });
        Ok(proxy)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    fn refuses(&self, body: &str) -> bool {
        match &*self.mode.lock().unwrap_or_else(|p| p.into_inner()) {
            Mode::Pass => false,
            Mode::RefuseAll => true,
            Mode::RefuseQueue(name) => body.contains(&format!("/{name}\"")),
        }
    }

    async fn connection(self, mut socket: TcpStream) {
        let mut buffer = Vec::new();
        while let Some(request) = read_request(&mut socket, &mut buffer).await {
            if self.refuses(&request.body) {
                reset(&socket);
                return;
            }
            let method = request.method.parse().unwrap_or(reqwest::Method::POST);
            let mut forward = self
                .client
                .request(method, format!("{LOCALSTACK}{}", request.path));
            for (name, value) in &request.headers {
                if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                    forward = forward.header(name, value);
                }
            }
            let Ok(response) = forward.body(request.body).send().await else {
                reset(&socket);
                return;
            };
            let status = response.status().as_u16();
            let headers: String = response
                .headers()
                .iter()
                .filter(|(n, _)| {
                    !matches!(
                        n.as_str(),
                        "content-length" | "transfer-encoding" | "connection"
                    )
                })
                .map(|(n, v)| format!("{n}: {}\r\n", v.to_str().unwrap_or_default()))
                .collect();
            let body = response.bytes().await.unwrap_or_default();
            let head = format!(
                "HTTP/1.1 {status} X\r\n{headers}content-length: {}\r\n\r\n",
                body.len()
            );
            if socket.write_all(head.as_bytes()).await.is_err()
                || socket.write_all(&body).await.is_err()
            {
                return;
            }
        }
    }
}
