//! The standalone `log-cache` binary.

fn main() {}
