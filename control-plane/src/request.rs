//! The parts of an API request line switchd reads before any body: the path (Docker's optional
//! version prefix, percent-encoded segments), a capture's query string and a prune's filters.
//! All come from any client of the socket, so none panics nor trusts what it reads.

use std::time::{Duration, SystemTime};

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
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

/// The filters of `POST /networks/prune?filters=JSON`, as Docker's API takes them: `until`
/// (a Unix time, an RFC 3339 time, or a duration before now such as `24h`), `label` (`KEY` or
/// `KEY=VALUE`, each one needed) and `label!` (each one refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// Only what was made before this.
    pub until: Option<SystemTime>,
    /// Labels a network must have: key, and value when given.
    pub labels: Vec<(String, Option<String>)>,
    /// Labels a network must not have.
    pub not_labels: Vec<(String, Option<String>)>,
}

impl PruneFilters {
    /// Whether a network made at `created` with `labels` may go.
    pub fn admit(&self, created: SystemTime, labels: &std::collections::BTreeMap<String, String>) -> bool {
        let has = |(k, v): &(String, Option<String>)| match v {
            Some(v) => labels.get(k) == Some(v),
            None => labels.contains_key(k),
        };
        self.until.is_none_or(|t| created < t) && self.labels.iter().all(has) && !self.not_labels.iter().any(has)
    }
}

/// Why a prune's filters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneQueryError {
    /// `filters` is not JSON of filter names to values.
    #[error("invalid filters {0:?}: expected JSON such as {{\"until\":[\"24h\"],\"label\":[\"env=test\"]}}")]
    Malformed(String),
    /// A filter prune does not take.
    #[error("invalid filter '{0}': network prune takes until, label and label!")]
    Unknown(String),
    /// An `until` that is no time.
    #[error("invalid until {0:?}: expected a Unix time, an RFC 3339 time or a duration such as 24h")]
    Until(String),
    /// A parameter other than `filters`.
    #[error("unknown prune parameter {0:?}: only filters=JSON is accepted")]
    Parameter(String),
}

/// The filters of a prune's query string, at `now`.
///
/// # Errors
/// As [`PruneQueryError`], naming what is wrong.
pub fn prune_filters(query: Option<&str>, now: SystemTime) -> Result<PruneFilters, PruneQueryError> {
    let mut f = PruneFilters::default();
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let Some(("filters", v)) = pair.split_once('=') else {
            return Err(PruneQueryError::Parameter(percent_decode(pair)));
        };
        let text = percent_decode(&v.replace('+', " "));
        // Docker sends {"label":{"a=b":true}}; a list is taken too.
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|_| PruneQueryError::Malformed(text.clone()))?;
        for (key, values) in json {
            let values: Vec<String> = match values {
                serde_json::Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>(),
                serde_json::Value::Object(o) => Some(o.keys().cloned().collect()),
                _ => None,
            }
            .ok_or_else(|| PruneQueryError::Malformed(text.clone()))?;
            for value in values {
                let label = || match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.clone(), None),
                };
                match key.as_str() {
                    "until" => f.until = Some(until(&value, now)?),
                    "label" => f.labels.push(label()),
                    "label!" => f.not_labels.push(label()),
                    _ => return Err(PruneQueryError::Unknown(key)),
                }
            }
        }
    }
    Ok(f)
}

/// An `until` value as a time: seconds since the epoch (with a fraction), an RFC 3339 time,
/// or a duration before `now`.
fn until(v: &str, now: SystemTime) -> Result<SystemTime, PruneQueryError> {
    let bad = || PruneQueryError::Until(v.to_string());
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(bad());
        }
        return Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
            .ok_or_else(bad);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(t);
    }
    let d = humantime::parse_duration(v).map_err(|_| bad())?;
    now.checked_sub(d).ok_or_else(bad)
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
    fn prune_filters_are_docker_s() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let q = |json: &str| {
            let enc = percent_encoding::utf8_percent_encode(json, percent_encoding::NON_ALPHANUMERIC).to_string();
            prune_filters(Some(&format!("filters={enc}")), now)
        };
        assert_eq!(prune_filters(None, now), Ok(PruneFilters::default()));
        let f = q(r#"{"until":["24h"],"label":["env=test","team"],"label!":["keep"]}"#).unwrap();
        assert_eq!(f.until, Some(now - Duration::from_secs(86_400)));
        assert_eq!(
            f.labels,
            [
                ("env".to_string(), Some("test".to_string())),
                ("team".to_string(), None)
            ]
        );
        assert_eq!(f.not_labels, [("keep".to_string(), None)]);
        // Docker's own shape, a map of values.
        let f = q(r#"{"label":{"env=test":true}}"#).unwrap();
        assert_eq!(f.labels, [("env".to_string(), Some("test".to_string()))]);
        // until as a Unix time and as an RFC 3339 time.
        assert_eq!(
            q(r#"{"until":["1000"]}"#).unwrap().until,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        );
        assert_eq!(
            q(r#"{"until":["1970-01-02T00:00:00Z"]}"#).unwrap().until,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))
        );
        // What a network needs to go.
        let labels: std::collections::BTreeMap<String, String> = [
            ("env".to_string(), "test".to_string()),
            ("team".to_string(), "x".to_string()),
        ]
        .into();
        let f = q(r#"{"until":["24h"],"label":["env=test","team"],"label!":["keep"]}"#).unwrap();
        let old = now - Duration::from_secs(100_000);
        assert!(f.admit(old, &labels));
        assert!(!f.admit(now, &labels), "too young");
        let mut kept = labels.clone();
        kept.insert("keep".into(), String::new());
        assert!(!f.admit(old, &kept), "label! refuses");
        assert!(
            !f.admit(old, &[("env".to_string(), "prod".to_string())].into()),
            "label value"
        );
        for (bad, says) in [
            (r#"{"colour":["red"]}"#, "invalid filter 'colour'"),
            (r#"{"until":["soon"]}"#, "invalid until \"soon\""),
            (r#"{"until":["-5"]}"#, "invalid until \"-5\""),
            (r#"{"until":["99999999999999999999"]}"#, "invalid until"),
            (r#"["until"]"#, "invalid filters"),
            (r#"{"label":[1]}"#, "invalid filters"),
        ] {
            assert!(q(bad).unwrap_err().to_string().contains(says), "{bad}");
        }
        assert!(prune_filters(Some("force=1"), now)
            .unwrap_err()
            .to_string()
            .contains("unknown prune parameter \"force=1\""));
    }

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
