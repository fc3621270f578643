//! Which ends of a connection are a client breaking HTTP, to be refused on the record, and
//! which are ordinary ends (closed, reset, timed out, shut down).
//!
//! hyper and h2 already answer a client that breaks the protocol: a malformed or oversized
//! HTTP/1.1 request head gets its 400 or 431 and the connection is closed; an HTTP/2 client
//! that floods the server with reset streams (its own, or streams it makes the server reset:
//! past 1,024 a connection, hyper's `max_local_error_reset_streams`), endless CONTINUATION
//! frames or empty frames gets a GOAWAY and is closed. Neither reaches the handler, so
//! neither is in the access log; the connection's error is all that is left of it.
//! [`broken`] reads that error.
//!
//! An HTTP/2 request whose header list is past the limit ends no connection: h2 answers it
//! on its stream alone (a bare 431) and goes on, so no error is left of it to read here.
//!
//! # Guarantees
//! - Only what the client sent counts: an HTTP/1.1 parse error, or an HTTP/2 connection error
//!   this server detected (a GOAWAY it sent with an error code). Connections closed or reset by
//!   the client, timed out, or ended by a GOAWAY the client sent are not refusals.
//! - The description is the library's own words, plus the HTTP/2 error code's name.

use std::error::Error;

/// How a client broke HTTP, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    /// `HTTP/1.1` or `HTTP/2`.
    pub(crate) protocol: &'static str,
    /// What the server found, e.g. `message head is too large` or
    /// `detected excessive load generating behavior (ENHANCE_YOUR_CALM)`.
    pub(crate) why: String,
}

/// How the client broke HTTP, if the error `e` a connection ended with says it did.
pub(crate) fn broken(e: &(dyn Error + 'static)) -> Option<Broken> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return by_http2_client(h2);
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && hyper.is_parse()
        {
            return Some(Broken {
                protocol: "HTTP/1.1",
                why: hyper.to_string(),
            });
        }
        cause = e.source();
    }
    None
}

/// An HTTP/2 connection error this server detected and answered with a GOAWAY.
fn by_http2_client(e: &h2::Error) -> Option<Broken> {
    let reason = e.reason()?;
    if !(e.is_go_away() && e.is_library()) || reason == h2::Reason::NO_ERROR {
        return None;
    }
    Some(Broken {
        protocol: "HTTP/2",
        why: format!("{} ({reason:?})", reason.description()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection error as hyper returns it: its own error, with h2's as the source.
    #[derive(Debug)]
    struct Wrapped(h2::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("http2 error")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn ordinary_ends_are_not_refusals() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(broken(&io), None);
        // An error that is not a GOAWAY this server sent (here a bare error code).
        assert_eq!(
            broken(&Wrapped(h2::Error::from(h2::Reason::REFUSED_STREAM))),
            None
        );
    }
}
