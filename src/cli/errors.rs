//! How errors reach the user: one `error: ...` line on stderr, no backtrace.
//!
//! Exit codes: 0 success, 1 runtime or configuration error (a component's config file, a
//! missing certificate, an unreachable endpoint), 2 command-line usage error (unknown flag,
//! invalid value; clap's convention).

use std::io::Write as _;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Prints a command-line parsing outcome (help, version or a usage error) and returns the
/// exit code for it.
///
/// An invalid value for an option with a fixed set of values is reported on one line naming
/// the option and the accepted values:
/// `error: invalid value 'x' for '--filter <FILTER>': accepted values: logs, metrics`.
#[allow(clippy::print_stderr)]
pub(crate) fn clap_exit(err: &clap::Error) -> ExitCode {
    let code = u8::try_from(err.exit_code()).unwrap_or(2);
    if err.kind() == ErrorKind::InvalidValue
        && let Some(line) = invalid_value_line(err)
    {
        eprintln!("{line}");
        return ExitCode::from(code);
    }
    // Help and version go to stdout, errors to stderr; a closed pipe is not worth reporting.
    let _ = err.print();
    ExitCode::from(code)
}

fn invalid_value_line(err: &clap::Error) -> Option<String> {
    let arg = match err.get(ContextKind::InvalidArg)? {
        ContextValue::String(s) => s.clone(),
        _ => return None,
    };
    let value = match err.get(ContextKind::InvalidValue)? {
        ContextValue::String(s) => s.clone(),
        _ => return None,
    };
    let accepted = match err.get(ContextKind::ValidValue)? {
        ContextValue::Strings(v) => v.join(", "),
        ContextValue::String(s) => s.clone(),
        _ => return None,
    };
    Some(format!(
        "error: invalid value '{value}' for '{arg}': accepted values: {accepted}"
    ))
}

/// Prints a runtime error as `error: <message>: <cause>: ...` and returns exit code 1.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", message(err));
    ExitCode::FAILURE
}

/// The error and its causes joined with `: `, leaving out a cause whose text the message
/// already contains (components often put the cause into their context message).
fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let inner = anyhow::anyhow!("unknown field `x`");
        let err = inner.context("Unable to parse config: unknown field `x`");
        assert_eq!(message(&err), "Unable to parse config: unknown field `x`");
        let err = anyhow::anyhow!("connection refused").context("GET http://a/b");
        assert_eq!(message(&err), "GET http://a/b: connection refused");
    }
}
