//! Writing to stdout and stderr from the user tools.
//!
//! Output is written in whole lines with explicit flushes (live streams must appear at once).
//! A closed stdout (`loggregator logs APP | head`) ends the command quietly with exit 0.

use std::io::{self, Write as _};

/// Outcome of a write to stdout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Written and flushed.
    Ok,
    /// The reader went away (broken pipe): stop quietly.
    Closed,
}

/// Writes `text` to stdout and flushes. Errors other than a closed pipe are returned.
pub(crate) fn stdout(text: &str) -> io::Result<Written> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Written::Ok),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Written::Closed),
        Err(e) => Err(e),
    }
}

/// Prints a notice line to stderr (reconnects, warnings meant for the user, not for logs).
pub(crate) fn notice(text: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{text}");
}
