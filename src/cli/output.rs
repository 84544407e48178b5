//! Writing reports to stdout and errors to stderr without panicking when the reader is gone.
//!
//! `println!` panics when stdout is a closed pipe (`binfmtd status | head -c1`). Here EPIPE
//! means the reader wanted no more: the rest of the output is dropped quietly and the command
//! ends with the exit code of what it did. Other write errors are returned.

use std::io::{ErrorKind, Write};

/// Writes `text` to `w` and flushes; a closed reader (EPIPE) is not an error.
fn write_quiet(mut w: impl Write, text: &str) -> std::io::Result<()> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints `text` to stdout as is (add the newline yourself).
pub fn out(text: &str) -> std::io::Result<()> {
    write_quiet(std::io::stdout().lock(), text)
}

/// Prints `text` to stderr; failures are ignored (there is nowhere left to report them).
pub fn err(text: &str) {
    let _ = write_quiet(std::io::stderr().lock(), text);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_pipe_is_quiet_other_errors_are_not() {
        assert!(write_quiet(Failing(ErrorKind::BrokenPipe), "x").is_ok());
        let e = write_quiet(Failing(ErrorKind::StorageFull), "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageFull);
        let mut buf = Vec::new();
        write_quiet(&mut buf, "report\n").unwrap_or_default();
        assert_eq!(buf, b"report\n");
    }
}
