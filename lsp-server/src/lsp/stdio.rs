//! The server's stdin and stdout as async streams, without a thread hop per message.
//!
//! `tokio::io::stdin()` and `stdout()` do every read and write on the blocking thread
//! pool, because a terminal or a file cannot be polled; each LSP message then costs
//! extra thread wake-ups on both sides, which is most of a cache hit's latency on an
//! idle machine. Editors launch language servers with pipes or socket pairs, which can:
//! those are registered with Tokio's reactor (non-blocking, polled with epoll/kqueue)
//! and anything else falls back to Tokio's blocking-pool streams.

use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) type Input = Pin<Box<dyn AsyncRead + Send>>;
pub(crate) type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// Standard input. Needs a Tokio runtime with I/O enabled.
pub(crate) fn input() -> Input {
    #[cfg(unix)]
    if let Some(input) = unix::input() {
        return input;
    }
    Box::pin(tokio::io::stdin())
}

/// Standard output. Needs a Tokio runtime with I/O enabled.
pub(crate) fn output() -> Output {
    #[cfg(unix)]
    if let Some(output) = unix::output() {
        return output;
    }
    Box::pin(tokio::io::stdout())
}

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;

    use tokio::net::unix::pipe;

    use super::{Input, Output};

    /// What a standard stream is connected to, when it can be polled.
    pub(super) enum Pollable {
        Pipe(File),
        Socket(std::os::unix::net::UnixStream),
    }

    /// A duplicate of `fd` (so the process's own descriptor stays open whatever happens
    /// to ours) when it is a pipe or a socket. The duplicate shares the open file
    /// description, so making it non-blocking affects fd 0/1 too; nothing else in the
    /// server reads stdin or writes stdout (logs go to stderr).
    pub(super) fn pollable(fd: BorrowedFd<'_>) -> Option<Pollable> {
        let owned: OwnedFd = fd.try_clone_to_owned().ok()?;
        let file = File::from(owned);
        let kind = file.metadata().ok()?.file_type();
        if kind.is_fifo() {
            Some(Pollable::Pipe(file))
        } else if kind.is_socket() {
            let socket = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
            socket.set_nonblocking(true).ok()?;
            Some(Pollable::Socket(socket))
        } else {
            None
        }
    }

    pub(super) fn input() -> Option<Input> {
        reader(pollable(std::io::stdin().as_fd())?)
    }

    pub(super) fn output() -> Option<Output> {
        writer(pollable(std::io::stdout().as_fd())?)
    }

    pub(super) fn reader(pollable: Pollable) -> Option<Input> {
        match pollable {
            Pollable::Pipe(file) => Some(Box::pin(pipe::Receiver::from_file(file).ok()?)),
            Pollable::Socket(socket) => {
                Some(Box::pin(tokio::net::UnixStream::from_std(socket).ok()?))
            }
        }
    }

    pub(super) fn writer(pollable: Pollable) -> Option<Output> {
        match pollable {
            Pollable::Pipe(file) => Some(Box::pin(pipe::Sender::from_file(file).ok()?)),
            Pollable::Socket(socket) => {
                Some(Box::pin(tokio::net::UnixStream::from_std(socket).ok()?))
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::fd::AsFd;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::unix::{pollable, reader, writer, Pollable};

    #[tokio::test]
    async fn pipes_and_sockets_are_polled_and_carry_bytes() {
        let message = b"Content-Length: 2\r\n\r\n{}";
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (read, write) = std::io::pipe().unwrap();
        let pairs = [
            (pollable(ours.as_fd()), pollable(theirs.as_fd())),
            (pollable(read.as_fd()), pollable(write.as_fd())),
        ];
        for (receiving, sending) in pairs {
            let mut reader = reader(receiving.expect("pollable")).expect("a reader");
            let mut writer = writer(sending.expect("pollable")).expect("a writer");
            writer.write_all(message).await.unwrap();
            let mut buffer = [0u8; 23];
            reader.read_exact(&mut buffer).await.unwrap();
            assert_eq!(&buffer, message);
        }
    }

    #[test]
    fn regular_files_fall_back_to_the_blocking_pool() {
        let file = tempfile::tempfile().unwrap();
        assert!(pollable(file.as_fd()).is_none());
        let (read, _write) = std::io::pipe().unwrap();
        assert!(matches!(pollable(read.as_fd()), Some(Pollable::Pipe(_))));
    }
}
