//! A Redis for cluster tests. Each test gets its own: a private
//! `redis-server` on a free port (no persistence), or, when `REDIS_URL` is
//! set, a database of that server of its own, emptied first. Only a private
//! server can be stopped and restarted.

use std::{
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
    time::{Instant, sleep, timeout},
};

const INSTALL_HINT: &str = "the cluster tests need Redis: install redis-server (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`) or set REDIS_URL=redis://HOST:PORT to a server the tests may use";

pub struct Redis {
    /// What a server gets as `--redis`.
    pub url: String,
    private: Option<Private>,
}

struct Private {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// A private `redis-server`, or a fresh database of `REDIS_URL`.
    pub async fn start() -> Result<Redis> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self::shared(&url).await,
            _ => {
                let port = free_port()?;
                let child = spawn(port).await?;
                Ok(Redis {
                    url: format!("redis://127.0.0.1:{port}"),
                    private: Some(Private {
                        port,
                        child: Some(child),
                    }),
                })
            }
        }
    }

    /// Databases 1-15 of a shared server, one per test in this process.
    async fn shared(url: &str) -> Result<Redis> {
        static NEXT_DB: AtomicU32 = AtomicU32::new(1);
        let db = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        ensure!(
            db <= 15,
            "more cluster tests than REDIS_URL has spare databases (1-15)"
        );
        let base = url.trim_end_matches('/');
        let url = format!("{base}/{db}");
        let address = base
            .strip_prefix("redis://")
            .context("REDIS_URL must look like redis://HOST:PORT")?;
        command(address, &format!("SELECT {db}\r\nFLUSHDB\r\n"))
            .await
            .with_context(|| format!("cannot reach REDIS_URL={base}"))?;
        Ok(Redis { url, private: None })
    }

    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// Stops the private server, dropping every connection and all data.
    pub async fn stop(&mut self) -> Result<()> {
        let private = self
            .private
            .as_mut()
            .context("only a private Redis can be stopped")?;
        let mut child = private.child.take().context("already stopped")?;
        child.kill().await?;
        Ok(())
    }

    /// Starts the private server again on the same port, empty.
    pub async fn start_again(&mut self) -> Result<()> {
        let private = self
            .private
            .as_mut()
            .context("only a private Redis can be restarted")?;
        ensure!(private.child.is_none(), "still running");
        private.child = Some(spawn(private.port).await?);
        Ok(())
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn spawn(port: u16) -> Result<Child> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!("{INSTALL_HINT}"),
        Err(error) => return Err(error).context("start redis-server"),
    };
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if command(&address, "PING\r\n")
            .await
            .is_ok_and(|reply| reply.starts_with("+PONG"))
        {
            return Ok(child);
        }
        ensure!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer within 10 s"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Sends inline commands and returns what came back first.
async fn command(address: &str, commands: &str) -> Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(commands.as_bytes()).await?;
        let mut reply = vec![0; 256];
        let n = stream.read(&mut reply).await?;
        ensure!(
            !reply[..n].starts_with(b"-"),
            "{}",
            String::from_utf8_lossy(&reply[..n])
        );
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    };
    timeout(Duration::from_secs(2), exchange)
        .await
        .context("Redis did not answer in time")?
}
