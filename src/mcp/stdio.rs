//! Standard input and output for the session, without a thread hop per read and write.
//!
//! tokio's `stdin()`/`stdout()` run every read and write on the blocking thread pool, which
//! costs two thread wake-ups per message on top of the real work (measured: ~4x the round trip
//! of a `tools/call`). When fd 0/1 is a pipe or socket (how MCP clients and systemd start us),
//! we put a duplicate of it in non-blocking mode and drive it from the reactor instead. The
//! file status flags belong to the open file description, which fd 0 and fd 1 may share (a
//! socket-activated connection is both), so a descriptor that is already non-blocking is
//! wrapped too, and the original flags are restored once, by [`restore_flags`], when the
//! session is over. Terminals and regular files keep tokio's blocking implementation: a terminal
//! left non-blocking would break the user's shell.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use rustix::fs::{FileType, OFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The session's input.
pub type Input = Box<dyn AsyncRead + Unpin + Send>;
/// The session's output.
pub type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// Standard input, reactor-driven when it is a pipe or socket. Must be called inside the
/// runtime.
///
/// # Errors
/// Duplicating the descriptor or registering it with the reactor failed.
pub fn input() -> io::Result<Input> {
    match NonBlocking::new(io::stdin())? {
        Some(fd) => Ok(Box::new(fd)),
        None => Ok(Box::new(tokio::io::stdin())),
    }
}

/// Standard output, reactor-driven when it is a pipe or socket. Must be called inside the
/// runtime.
///
/// # Errors
/// Duplicating the descriptor or registering it with the reactor failed.
pub fn output() -> io::Result<Output> {
    match NonBlocking::new(io::stdout())? {
        Some(fd) => Ok(Box::new(fd)),
        None => Ok(Box::new(tokio::io::stdout())),
    }
}

/// File descriptions we made non-blocking, with their original flags.
static CHANGED: Mutex<Vec<(OwnedFd, OFlags)>> = Mutex::new(Vec::new());

/// Restores the flags of every descriptor [`input`] and [`output`] made non-blocking. Call it
/// when the session is over (after the runtime has stopped using them).
pub fn restore_flags() {
    let mut changed = CHANGED.lock().unwrap_or_else(PoisonError::into_inner);
    for (fd, flags) in changed.drain(..) {
        let _ = rustix::fs::fcntl_setfl(&fd, flags);
    }
}

/// A non-blocking duplicate of a standard descriptor, registered with the reactor.
struct NonBlocking {
    fd: AsyncFd<OwnedFd>,
}

impl NonBlocking {
    /// `None` when `fd` is not a pipe or socket.
    fn new(fd: impl AsFd) -> io::Result<Option<Self>> {
        let stat = rustix::fs::fstat(&fd)?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if !matches!(kind, FileType::Fifo | FileType::Socket) {
            return Ok(None);
        }
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        if !flags.contains(OFlags::NONBLOCK) {
            rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
            CHANGED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((rustix::io::dup(&fd)?, flags));
        }
        // Already non-blocking (by us for the other direction, or by whoever started us): a
        // blocking wrapper would fail with EAGAIN, so it must be driven by the reactor too.
        let duplicate = rustix::io::dup(&fd)?;
        register(duplicate).map(|fd| Some(NonBlocking { fd }))
    }
}

/// Registers an owned descriptor with the reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `register` requires that the descriptor stays open and is the same one for the
    // whole life of the `AsyncFd`. An `OwnedFd` closes its descriptor only when dropped, and
    // the `AsyncFd` owns it until then; `OwnedFd::as_raw_fd` always returns that descriptor.
    // (The safe `AsyncFd::new` is deprecated because arbitrary types cannot promise this.)
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

impl AsyncRead for NonBlocking {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *unfilled)?)) {
                Ok(Ok(read)) => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                // Spurious readiness: the guard cleared it; wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for NonBlocking {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), data)?)) {
                Ok(Ok(written)) => return Poll::Ready(Ok(written)),
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here; every write went to the kernel.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
