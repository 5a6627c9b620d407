//! `gmm-stream healthcheck`: asks a running daemon's /healthz, for container
//! health checks (the runtime image carries no curl).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::CliError;

/// The longest wait accepted: a day (a health check that waits longer is broken).
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Exits 0 if the daemon's HTTP server answers 200 on /healthz, 1 otherwise.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's http.listen address.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "HOST:PORT")]
    address: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero() && *t <= MAX_TIMEOUT)
        .ok_or_else(|| {
            CliError::bad_input_msg(format!(
                "--timeout must be a number of seconds above 0 and at most {}",
                MAX_TIMEOUT.as_secs()
            ))
        })?;
    let status = get_status(&args.address, timeout).map_err(|e| {
        CliError::failure_msg(format!(
            "no answer from http://{}/healthz: {e}",
            args.address
        ))
    })?;
    if status == 200 {
        Ok(())
    } else {
        Err(CliError::failure_msg(format!(
            "http://{}/healthz answered {status}",
            args.address
        )))
    }
}

fn get_status(address: &str, timeout: Duration) -> std::io::Result<u16> {
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head)?;
    // "HTTP/1.1 200 OK"
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}
