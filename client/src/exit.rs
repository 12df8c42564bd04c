//! The `sigil` command's exit codes: a stable contract for scripts.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: signed, verified, found |
//! | 1 | verification failed (signature, identity, proof, checkpoint, timestamp) |
//! | 2 | usage error: bad flags, a missing file or trust configuration (`sigil trust init`) |
//! | 3 | network error: a server could not be reached, timed out or answered 5xx |
//! | 4 | any other failure (e.g. a server refused the request, nothing was found) |

use std::process::ExitCode;

/// What a failed command's exit code says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Verification = 1,
    Usage = 2,
    Network = 3,
    Other = 4,
}

/// The help text's summary of the codes.
pub const HELP: &str = "Exit codes: 0 success; 1 verification failed; 2 usage error (flags, missing \
file or trust configuration); 3 network error (unreachable, timeout, 5xx); 4 other failure.";

/// An error that names its exit code, carried inside an `anyhow::Error`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    pub failure: Failure,
    pub message: String,
}

/// A usage error: the command line or the local set-up must change.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Classified {
        failure: Failure::Usage,
        message: message.into(),
    }
    .into()
}

/// A verification failure.
pub fn verification(message: impl Into<String>) -> anyhow::Error {
    Classified {
        failure: Failure::Verification,
        message: message.into(),
    }
    .into()
}

/// A failure to talk to a server.
pub fn network(message: impl Into<String>) -> anyhow::Error {
    Classified {
        failure: Failure::Network,
        message: message.into(),
    }
    .into()
}

/// The failure an error stands for. `verifying`: the command checks evidence, so an error that
/// is neither usage nor network means the evidence did not verify.
pub fn classify(err: &anyhow::Error, verifying: bool) -> Failure {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Classified>() {
            return c.failure;
        }
        if let Some(r) = cause.downcast_ref::<reqwest::Error>() {
            let server_error = r.status().is_some_and(|s| s.is_server_error());
            if r.is_connect() || r.is_timeout() || r.is_request() || server_error {
                return Failure::Network;
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{IsADirectory, NotFound, PermissionDenied};
            if matches!(io.kind(), NotFound | PermissionDenied | IsADirectory) {
                return Failure::Usage;
            }
        }
    }
    if verifying {
        Failure::Verification
    } else {
        Failure::Other
    }
}

/// Prints the error and returns its exit code.
pub fn report(err: &anyhow::Error, verifying: bool) -> ExitCode {
    eprintln!("Error: {err:#}");
    ExitCode::from(classify(err, verifying) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn errors_map_to_their_codes() {
        let e = usage("pass --index").context("log get");
        assert_eq!(classify(&e, true), Failure::Usage);
        let e = network("unreachable");
        assert_eq!(classify(&e, false), Failure::Network);
        let io = std::fs::read("/nonexistent/sigil/file").context("reading the bundle");
        assert_eq!(classify(&io.unwrap_err(), true), Failure::Usage);
        let plain = anyhow::anyhow!("signature does not verify");
        assert_eq!(classify(&plain, true), Failure::Verification);
        assert_eq!(classify(&plain, false), Failure::Other);
        assert_eq!(Failure::Network as u8, 3);
    }

    #[test]
    fn a_refused_connection_is_a_network_error() {
        // Port 9 on loopback: nothing listens there in a test environment.
        let err = crate::http::http()
            .unwrap()
            .get("http://127.0.0.1:9/")
            .send()
            .map_err(anyhow::Error::from)
            .unwrap_err();
        assert_eq!(classify(&err, true), Failure::Network);
    }
}
