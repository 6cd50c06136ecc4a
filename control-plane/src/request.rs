//! The parts of an API request line switchd reads before any body: the path (Docker's optional
//! version prefix, percent-encoded segments) and a capture's query string. Both come from any
//! client of the socket, so neither panics nor trusts what it reads.

/// The path's segments, percent-decoded, after Docker's optional version prefix (`/v1.47/`):
/// `/v1.47/networks/my%20net/connect` gives `["networks", "my net", "connect"]`. Invalid
/// escapes stay as they are; bytes that are not UTF-8 after decoding become U+FFFD.
pub fn path_segments(path: &str) -> Vec<String> {
    strip_version(path)
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect()
}

/// Strips Docker's optional API version prefix (`/v1.47/...`).
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            if rest[..i].bytes().all(|b| b.is_ascii_digit() || b == b'.') && i > 0 {
                return &rest[i..];
            }
        }
    }
    path
}

fn percent_decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `count=N` of a capture's query: how many frames before the stream ends (none: until the
/// client goes).
///
/// # Errors
/// A count that is not a number of 1 or more, or any other parameter, named in the sentence.
pub fn capture_count(query: Option<&str>) -> Result<Option<u64>, CaptureQueryError> {
    let mut count = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("count", v)) => {
                let n = v.parse::<u64>().ok().filter(|n| *n > 0);
                count = Some(n.ok_or_else(|| CaptureQueryError::Count(v.to_string()))?);
            }
            _ => return Err(CaptureQueryError::Unknown(pair.to_string())),
        }
    }
    Ok(count)
}

/// Why a capture's query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureQueryError {
    /// A count that is not a number of 1 or more.
    #[error("invalid count {0:?}: expected a number of frames, 1 or more")]
    Count(String),
    /// A parameter other than `count`.
    #[error("unknown capture parameter {0:?}: only count=N is accepted")]
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_the_version_and_their_escapes() {
        assert_eq!(
            path_segments("/v1.47/networks/my%20net/connect"),
            ["networks", "my net", "connect"]
        );
        assert_eq!(path_segments("/networks/"), ["networks"]);
        assert_eq!(path_segments("/vx/networks"), ["vx", "networks"]);
        assert_eq!(path_segments("/a%2"), ["a%2"]);
        assert_eq!(path_segments("/%ff"), ["\u{fffd}"]);
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(percent_decode("10.99.0.2%3A4789"), "10.99.0.2:4789");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn version_prefix_is_optional() {
        assert_eq!(strip_version("/v1.47/networks"), "/networks");
        assert_eq!(strip_version("/networks"), "/networks");
        assert_eq!(strip_version("/vx/networks"), "/vx/networks");
        assert_eq!(strip_version("/v/networks"), "/v/networks");
    }

    #[test]
    fn capture_counts() {
        assert_eq!(capture_count(None), Ok(None));
        assert_eq!(capture_count(Some("count=3")), Ok(Some(3)));
        assert!(capture_count(Some("count=0"))
            .unwrap_err()
            .to_string()
            .contains("1 or more"));
        assert!(capture_count(Some("x=1"))
            .unwrap_err()
            .to_string()
            .contains("only count=N"));
    }
}
