//! The reading side of [`startup`](super::startup) lines: [`LineWatcher`] collects the lines
//! another process writes (typically its stderr) so a test or supervisor can wait, with a
//! deadline, until the lines it expects have appeared.

use std::io::{BufRead as _, BufReader, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// [`LineWatcher::wait_for`] gave up: some expected lines did not appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no line contains {missing:?}; lines seen: {lines:#?}")]
pub struct MissingLines {
    /// The needles no collected line contains.
    pub missing: Vec<String>,
    /// Every line collected.
    pub lines: Vec<String>,
}

/// Lines read from a stream on a background thread, collected as they are waited for.
#[derive(Debug)]
pub struct LineWatcher {
    rx: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl LineWatcher {
    /// Starts reading `reader` line by line on a new thread, which ends at end of stream, on
    /// the first read error (invalid UTF-8 included) or when the watcher is dropped.
    pub fn spawn(reader: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LineWatcher {
            rx,
            lines: Vec::new(),
        }
    }

    /// Collects lines until every one of `needles` is contained in some collected line, the
    /// stream ends, or `timeout` passes. The error names the needles still missing and shows
    /// the lines collected.
    pub fn wait_for(&mut self, needles: &[&str], timeout: Duration) -> Result<(), MissingLines> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing: Vec<&str> = needles
                .iter()
                .copied()
                .filter(|n| self.find(n).is_none())
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(_) => {
                    return Err(MissingLines {
                        missing: missing.into_iter().map(str::to_owned).collect(),
                        lines: self.lines.clone(),
                    });
                }
            }
        }
    }

    /// The lines collected so far, in order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The first collected line that contains `needle`.
    pub fn find(&self, needle: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.contains(needle))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_every_needle_and_keeps_the_lines() {
        let mut w = LineWatcher::spawn(std::io::Cursor::new(b"a: 1\nb: 2\nc: 3\n".to_vec()));
        w.wait_for(&["b: ", "a: "], Duration::from_secs(10))
            .expect("both lines");
        assert_eq!(w.find("b: "), Some("b: 2"));
        assert_eq!(w.lines(), ["a: 1", "b: 2"]);
        let err = w
            .wait_for(&["d: ", "c: "], Duration::from_secs(10))
            .expect_err("stream ended");
        assert_eq!(err.missing, ["d: "]);
        assert_eq!(err.lines, ["a: 1", "b: 2", "c: 3"]);
        assert_eq!(w.lines(), ["a: 1", "b: 2", "c: 3"]);
        assert_eq!(w.find("d: "), None);
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let (reader, _keep_open) = std::io::pipe().expect("pipe");
        let mut w = LineWatcher::spawn(reader);
        let err = w
            .wait_for(&["never"], Duration::from_millis(20))
            .expect_err("nothing written");
        assert_eq!(err.missing, ["never"]);
        assert!(w.lines().is_empty());
    }
}
