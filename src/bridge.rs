//! `connect SOCKET`: a stdio bridge to a socket-activated server.
//!
//! An MCP client launches `mcp-secure-server connect /run/mcp-secure-server/mcp.sock` as its
//! command; the bridge copies stdin to the unix socket and the socket to stdout, and exits when
//! either side closes. It runs no sandbox of its own: it holds no policy and parses nothing.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;

use thiserror::Error;

/// Why the bridge stopped with an error.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// The socket does not exist.
    #[error(
        "cannot connect to {path}: no such socket\nhint: start it with `systemctl start mcp-secure-server.socket` (or `systemctl --user start mcp-secure-server.socket`), or check the path"
    )]
    Missing {
        /// The socket path.
        path: String,
    },
    /// The socket exists but refused or failed.
    #[error(
        "cannot connect to {path}: {source}\nhint: check that the socket unit is running and that you are in its group (SocketGroup)"
    )]
    Connect {
        /// The socket path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Copying failed.
    #[error("bridge I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bridges this process's stdio to the socket at `path` until either side closes.
///
/// # Errors
/// See [`BridgeError`].
pub fn run(path: &Path) -> Result<(), BridgeError> {
    let shown = path.display().to_string();
    let socket = UnixStream::connect(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => BridgeError::Missing {
            path: shown.clone(),
        },
        _ => BridgeError::Connect {
            path: shown.clone(),
            source,
        },
    })?;
    let mut to_socket = socket.try_clone()?;
    // stdin → socket on its own thread; when stdin ends, half-close so the server sees EOF.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let _ = copy(&mut stdin, &mut to_socket);
        let _ = to_socket.shutdown(Shutdown::Write);
    });
    // socket → stdout here; the process ends when the server closes its side.
    let mut from_socket = socket;
    let mut stdout = std::io::stdout().lock();
    copy(&mut from_socket, &mut stdout)?;
    Ok(())
}

/// Copies until EOF, flushing after every read so messages are not held back.
fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buffer[..read])?;
        to.flush()?;
    }
}
