//! `gmm-stream healthcheck`: asks a running daemon's /healthz, for container
//! health checks (the runtime image carries no curl).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::CliError;

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
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(CliError::bad_input_msg(
            "--timeout must be a positive number of seconds",
        ));
    }
    let timeout = Duration::from_secs_f64(args.timeout);
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
